//! Replicas of primary secrets in other regions of the same store, and cross-account
//! replicas in other accounts of the same region (`secret_replicas`).

use diesel::prelude::*;

use super::rows::ReplicaRow;
use super::schema::secret_replicas;
use super::{StoreError, Tx};

impl Tx<'_> {
    /// A primary secret's replica regions, ordered by region (not its cross-account entry).
    pub fn replicas_of(&mut self, primary_secret_id: &str) -> Result<Vec<ReplicaRow>, StoreError> {
        secret_replicas::table
            .filter(secret_replicas::primary_secret_id.eq(primary_secret_id))
            .filter(secret_replicas::cross_account.eq(false))
            .order(secret_replicas::region.asc())
            .select(ReplicaRow::as_select())
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    /// A primary secret's cross-account entry, if it has one (at most one: its region is the
    /// primary's own).
    pub fn cross_account_entry(
        &mut self,
        primary_secret_id: &str,
    ) -> Result<Option<ReplicaRow>, StoreError> {
        secret_replicas::table
            .filter(secret_replicas::primary_secret_id.eq(primary_secret_id))
            .filter(secret_replicas::cross_account.eq(true))
            .select(ReplicaRow::as_select())
            .first(self.conn)
            .optional()
            .map_err(|e| self.db(e))
    }

    /// Remove every cross-account entry of a primary (when the primary itself is deleted).
    pub fn delete_cross_account_entries(
        &mut self,
        primary_secret_id: &str,
    ) -> Result<(), StoreError> {
        diesel::delete(
            secret_replicas::table
                .filter(secret_replicas::primary_secret_id.eq(primary_secret_id))
                .filter(secret_replicas::cross_account.eq(true)),
        )
        .execute(self.conn)
        .map(|_| ())
        .map_err(|e| self.db(e))
    }

    /// The replica entry whose replica secret is `replica_secret_id`, if any.
    pub fn replica_entry(
        &mut self,
        replica_secret_id: &str,
    ) -> Result<Option<ReplicaRow>, StoreError> {
        secret_replicas::table
            .filter(secret_replicas::replica_secret_id.eq(replica_secret_id))
            .select(ReplicaRow::as_select())
            .get_result(self.conn)
            .optional()
            .map_err(|e| self.db(e))
    }

    /// Insert or replace the entry of `row`'s primary and region.
    pub fn put_replica(&mut self, row: &ReplicaRow) -> Result<(), StoreError> {
        self.delete_replica(&row.primary_secret_id, &row.region)?;
        diesel::insert_into(secret_replicas::table)
            .values(row)
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    /// Remove the entry of a primary's region (the replica secret itself is not touched).
    pub fn delete_replica(
        &mut self,
        primary_secret_id: &str,
        region: &str,
    ) -> Result<(), StoreError> {
        diesel::delete(secret_replicas::table.find((primary_secret_id, region)))
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }
}

impl Tx<'_> {
    /// The versions of secret `from` that secret `to` has no version of the same id of
    /// (one anti-join: no row of either secret's version list is read back).
    pub fn versions_missing(&mut self, from: &str, to: &str) -> Result<Vec<String>, StoreError> {
        use super::schema::secret_versions as v;
        let other = diesel::alias!(v as other);
        v::table
            .filter(v::secret_id.eq(from))
            .filter(diesel::dsl::not(diesel::dsl::exists(
                other
                    .filter(other.field(v::secret_id).eq(to))
                    .filter(other.field(v::version_id).eq(v::version_id)),
            )))
            .order((v::created_at.asc(), v::version_id.asc()))
            .select(v::version_id)
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    /// The versions of `replica` copied without a value (a rotation's `AWSPENDING`
    /// placeholder) whose counterpart in `primary` has one since (filled by the rotation
    /// function's PutSecretValue).
    pub fn versions_filled_since_copy(
        &mut self,
        primary: &str,
        replica: &str,
    ) -> Result<Vec<String>, StoreError> {
        use super::schema::secret_versions as v;
        let other = diesel::alias!(v as other);
        v::table
            .filter(v::secret_id.eq(replica))
            .filter(v::value_kind.is_null())
            .filter(diesel::dsl::exists(
                other
                    .filter(other.field(v::secret_id).eq(primary))
                    .filter(other.field(v::version_id).eq(v::version_id))
                    .filter(other.field(v::value_kind).is_not_null()),
            ))
            .order((v::created_at.asc(), v::version_id.asc()))
            .select(v::version_id)
            .load(self.conn)
            .map_err(|e| self.db(e))
    }
}
