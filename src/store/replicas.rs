//! Replicas of primary secrets in other regions of the same store, and cross-account
//! replicas in other accounts of the same region (`secret_replicas`).

use diesel::prelude::*;

use std::collections::BTreeMap;

use super::fixed::{fixed_sql, Arg, Fixed};
use super::rows::ReplicaRow;
use super::schema::{secret_replicas, secret_stages};
use super::{StoreError, Tx};

fixed_sql!(
    /// `(secret_id, stage, version_id)`: put a staging label on a version.
    PutStage = [
        "INSERT INTO secret_stages (secret_id, stage, version_id) VALUES (",
        ", ",
        ", ",
        ") ON CONFLICT (secret_id, stage) DO UPDATE SET version_id = excluded.version_id"
    ]
);

impl Tx<'_> {
    /// A primary secret's replica regions, ordered by region (not its cross-account entry).
    pub fn replicas_of(&mut self, primary_secret_id: &str) -> Result<Vec<ReplicaRow>, StoreError> {
        native!(&mut *self.conn, |c| secret_replicas::table
            .filter(secret_replicas::primary_secret_id.eq(primary_secret_id))
            .filter(secret_replicas::cross_account.eq(false))
            .order(secret_replicas::region.asc())
            .select(ReplicaRow::as_select())
            .load(c))
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
    /// The ids of the versions of secret `from` that secret `to` has no version of the same
    /// id of, by id. One statement reading only the two secrets' primary key index entries:
    /// SQLite merges the two ranges (both in version id order) in one pass, with no lookup
    /// per version (a replica is compared with its primary on every write of the primary,
    /// and a secret can hold many versions).
    pub fn versions_missing(&mut self, from: &str, to: &str) -> Result<Vec<String>, StoreError> {
        use super::schema::secret_versions as v;
        use diesel::query_dsl::positional_order_dsl::PositionalOrderDsl;
        native!(&mut *self.conn, |c| v::table
            .filter(v::secret_id.eq(from))
            .select(v::version_id)
            .except(v::table.filter(v::secret_id.eq(to)).select(v::version_id))
            .positional_order_by(1)
            .load(c))
        .map_err(|e| self.db(e))
    }

    /// The versions of `replica` copied without a value (a rotation's `AWSPENDING`
    /// placeholder) whose counterpart in `primary` has one since (filled by the rotation
    /// function's PutSecretValue), by id. Reads the partial index of versions without a value
    /// (`secret_versions_empty`): a replica's versions with values are not visited.
    pub fn versions_filled_since_copy(
        &mut self,
        primary: &str,
        replica: &str,
    ) -> Result<Vec<String>, StoreError> {
        use super::schema::secret_versions as v;
        let other = diesel::alias!(v as other);
        // No ORDER BY: SQLite would read the versions in another index's order instead.
        let mut ids: Vec<String> = native!(&mut *self.conn, |c| v::table
            .filter(v::secret_id.eq(replica))
            .filter(v::value_kind.is_null())
            .filter(diesel::dsl::exists(
                other
                    .filter(other.field(v::secret_id).eq(primary))
                    .filter(other.field(v::version_id).eq(v::version_id))
                    .filter(other.field(v::value_kind).is_not_null()),
            ))
            .select(v::version_id)
            .load(c))
        .map_err(|e| self.db(e))?;
        ids.sort();
        Ok(ids)
    }
}

impl Tx<'_> {
    /// Change a secret's stage map from `current` (as it is) to `next`: only the labels that
    /// moved, came or went are written (a write of the primary typically moves two labels
    /// of each replica).
    pub fn update_stages(
        &mut self,
        secret_id: &str,
        current: &BTreeMap<String, String>,
        next: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        for stage in current.keys().filter(|s| !next.contains_key(*s)) {
            native!(&mut *self.conn, |c| diesel::delete(
                secret_stages::table.find((secret_id, stage))
            )
            .execute(c))
            .map_err(|e| self.db(e))?;
        }
        for (stage, version) in next {
            if current.get(stage) == Some(version) {
                continue;
            }
            let args = [Arg::Text(secret_id), Arg::Text(stage), Arg::Text(version)];
            native!(&mut *self.conn, |c| Fixed::<PutStage>::new(&args)
                .execute(c))
            .map_err(|e| self.db(e))?;
        }
        Ok(())
    }
}
