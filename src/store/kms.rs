//! KMS keys, their material terms and aliases.

use diesel::prelude::*;

use super::rows::{KmsAliasRow, KmsKeyRow, KmsMaterialRow};
use super::schema::{kms_aliases, kms_key_material, kms_keys};
use super::{StoreError, Tx};

impl Tx<'_> {
    pub fn kms_key(&mut self, key_id: &str) -> Result<Option<KmsKeyRow>, StoreError> {
        native!(&mut *self.conn, |c| kms_keys::table
            .find(key_id)
            .select(KmsKeyRow::as_select())
            .get_result(c)
            .optional())
        .map_err(|e| self.db(e))
    }

    pub fn insert_kms_key(&mut self, row: &KmsKeyRow) -> Result<(), StoreError> {
        diesel::insert_into(kms_keys::table)
            .values(row)
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    pub fn update_kms_key(&mut self, row: &KmsKeyRow) -> Result<(), StoreError> {
        diesel::update(kms_keys::table.find(&row.key_id))
            .set(row)
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    /// Keys of an account and region, by creation time.
    pub fn kms_keys(&mut self, account: &str, region: &str) -> Result<Vec<KmsKeyRow>, StoreError> {
        kms_keys::table
            .filter(kms_keys::account_id.eq(account))
            .filter(kms_keys::region.eq(region))
            .order((kms_keys::created_at.asc(), kms_keys::key_id.asc()))
            .select(KmsKeyRow::as_select())
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    /// Every key in the store (for master key rotation and background jobs).
    pub fn all_kms_keys(&mut self) -> Result<Vec<KmsKeyRow>, StoreError> {
        kms_keys::table
            .select(KmsKeyRow::as_select())
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    pub fn kms_material(
        &mut self,
        key_id: &str,
        term: i32,
    ) -> Result<Option<KmsMaterialRow>, StoreError> {
        native!(&mut *self.conn, |c| kms_key_material::table
            .find((key_id, term))
            .select(KmsMaterialRow::as_select())
            .get_result(c)
            .optional())
        .map_err(|e| self.db(e))
    }

    pub fn all_kms_material(&mut self) -> Result<Vec<KmsMaterialRow>, StoreError> {
        kms_key_material::table
            .select(KmsMaterialRow::as_select())
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    pub fn insert_kms_material(&mut self, row: &KmsMaterialRow) -> Result<(), StoreError> {
        diesel::insert_into(kms_key_material::table)
            .values(row)
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    /// Re-seal one material row (master key rotation).
    pub fn reseal_kms_material(
        &mut self,
        key_id: &str,
        term: i32,
        sealed: &[u8],
        master_key_id: i32,
    ) -> Result<(), StoreError> {
        diesel::update(kms_key_material::table.find((key_id, term)))
            .set((
                kms_key_material::sealed.eq(sealed),
                kms_key_material::master_key_id.eq(master_key_id),
            ))
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    pub fn kms_alias(
        &mut self,
        account: &str,
        region: &str,
        alias: &str,
    ) -> Result<Option<KmsAliasRow>, StoreError> {
        native!(&mut *self.conn, |c| kms_aliases::table
            .find((account, region, alias))
            .select(KmsAliasRow::as_select())
            .get_result(c)
            .optional())
        .map_err(|e| self.db(e))
    }

    /// The key an alias points to, in one statement (`None`: no such alias, or its key is
    /// gone).
    pub fn kms_key_by_alias(
        &mut self,
        account: &str,
        region: &str,
        alias: &str,
    ) -> Result<Option<KmsKeyRow>, StoreError> {
        native!(&mut *self.conn, |c| kms_keys::table
            .filter(
                kms_keys::key_id.eq_any(
                    kms_aliases::table
                        .filter(kms_aliases::account_id.eq(account))
                        .filter(kms_aliases::region.eq(region))
                        .filter(kms_aliases::alias_name.eq(alias))
                        .select(kms_aliases::target_key_id),
                ),
            )
            .select(KmsKeyRow::as_select())
            .get_result(c)
            .optional())
        .map_err(|e| self.db(e))
    }

    pub fn kms_aliases(
        &mut self,
        account: &str,
        region: &str,
    ) -> Result<Vec<KmsAliasRow>, StoreError> {
        kms_aliases::table
            .filter(kms_aliases::account_id.eq(account))
            .filter(kms_aliases::region.eq(region))
            .order(kms_aliases::alias_name.asc())
            .select(KmsAliasRow::as_select())
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    /// The names of the aliases of `account`/`region` that name key `key_id`, sorted.
    pub fn kms_alias_names_of(
        &mut self,
        account: &str,
        region: &str,
        key_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        kms_aliases::table
            .filter(kms_aliases::account_id.eq(account))
            .filter(kms_aliases::region.eq(region))
            .filter(kms_aliases::target_key_id.eq(key_id))
            .order(kms_aliases::alias_name.asc())
            .select(kms_aliases::alias_name)
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    pub fn insert_kms_alias(&mut self, row: &KmsAliasRow) -> Result<(), StoreError> {
        diesel::insert_into(kms_aliases::table)
            .values(row)
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    pub fn delete_kms_alias(
        &mut self,
        account: &str,
        region: &str,
        alias: &str,
    ) -> Result<bool, StoreError> {
        diesel::delete(kms_aliases::table.find((account, region, alias)))
            .execute(self.conn)
            .map(|n| n > 0)
            .map_err(|e| self.db(e))
    }
}
