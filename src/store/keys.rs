//! Access keys (the secret key sealed under a master key).

use diesel::prelude::*;

use super::rows::AccessKeyRow;
use super::schema::access_keys;
use super::{StoreError, Tx};

diesel::table! {
    /// Whether this database ever held an access key (migration
    /// `2026-12-08-000000_access_keys_held`): one row, written with the first key.
    access_keys_held (id) {
        id -> Integer,
        first_at -> BigInt,
    }
}

impl Tx<'_> {
    pub fn access_key(&mut self, access_key_id: &str) -> Result<Option<AccessKeyRow>, StoreError> {
        access_keys::table
            .find(access_key_id)
            .select(AccessKeyRow::as_select())
            .get_result(self.conn)
            .optional()
            .map_err(|e| self.db(e))
    }

    pub fn access_keys(&mut self) -> Result<Vec<AccessKeyRow>, StoreError> {
        access_keys::table
            .select(AccessKeyRow::as_select())
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    pub fn count_access_keys(&mut self) -> Result<i64, StoreError> {
        access_keys::table
            .count()
            .get_result(self.conn)
            .map_err(|e| self.db(e))
    }

    /// Insert an access key, and record (in the same transaction) that this database has
    /// held one: see [`Tx::access_keys_ever_held`].
    pub fn insert_access_key(&mut self, row: &AccessKeyRow) -> Result<(), StoreError> {
        diesel::insert_into(access_keys::table)
            .values(row)
            .execute(self.conn)
            .map_err(|e| self.db(e))?;
        native!(&mut *self.conn, |c| diesel::insert_into(
            access_keys_held::table
        )
        .values((
            access_keys_held::id.eq(1),
            access_keys_held::first_at.eq(row.created_at),
        ))
        .on_conflict_do_nothing()
        .execute(c))
        .map(|_| ())
        .map_err(|e| self.db(e))
    }

    /// Whether this database has ever held an access key (deleting every key leaves it
    /// true): the bootstrap root key is installed only into a database that never held one.
    pub fn access_keys_ever_held(&mut self) -> Result<bool, StoreError> {
        let n: i64 = access_keys_held::table
            .count()
            .get_result(self.conn)
            .map_err(|e| self.db(e))?;
        Ok(n > 0)
    }

    /// Re-seal one access key's secret (master key rotation).
    pub fn reseal_access_key(
        &mut self,
        access_key_id: &str,
        sealed: &[u8],
        master_key_id: i32,
    ) -> Result<(), StoreError> {
        diesel::update(access_keys::table.find(access_key_id))
            .set((
                access_keys::secret_sealed.eq(sealed),
                access_keys::master_key_id.eq(master_key_id),
            ))
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }
}

impl Tx<'_> {
    pub fn set_access_key_status(
        &mut self,
        access_key_id: &str,
        status: &str,
    ) -> Result<(), StoreError> {
        diesel::update(access_keys::table.find(access_key_id))
            .set(access_keys::status.eq(status))
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    pub fn delete_access_key(&mut self, access_key_id: &str) -> Result<(), StoreError> {
        diesel::delete(access_keys::table.find(access_key_id))
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::rows::AccessKeyRow;

    /// A database records its first key, and deleting every key leaves the record.
    #[test]
    fn a_database_that_held_a_key_says_so_after_every_key_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::store::Store::open(&format!("sqlite://{}/k.db", dir.path().display())).unwrap();
        let held = || {
            store
                .read_blocking(|tx| Ok(tx.access_keys_ever_held()?))
                .unwrap()
        };
        assert!(!held());
        for (i, id) in ["AKIAHELDTEST00000001", "AKIAHELDTEST00000002"]
            .into_iter()
            .enumerate()
        {
            let row = AccessKeyRow {
                access_key_id: id.into(),
                account_id: "111122223333".into(),
                user_name: None,
                secret_sealed: vec![1, 2, 3],
                master_key_id: 1,
                status: "Active".into(),
                created_at: i64::try_from(i).unwrap(),
            };
            store
                .write_blocking(|tx| Ok(tx.insert_access_key(&row)?))
                .unwrap();
            assert!(held());
        }
        for id in ["AKIAHELDTEST00000001", "AKIAHELDTEST00000002"] {
            store
                .write_blocking(|tx| Ok(tx.delete_access_key(id)?))
                .unwrap();
        }
        let n = store
            .read_blocking(|tx| Ok(tx.count_access_keys()?))
            .unwrap();
        assert_eq!(n, 0);
        assert!(held());
    }
}
