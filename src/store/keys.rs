//! Access keys (the secret key sealed under a master key).

use diesel::prelude::*;

use super::rows::AccessKeyRow;
use super::schema::access_keys;
use super::{StoreError, Tx};

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

    pub fn insert_access_key(&mut self, row: &AccessKeyRow) -> Result<(), StoreError> {
        diesel::insert_into(access_keys::table)
            .values(row)
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
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
