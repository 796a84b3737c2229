//! Secrets, versions, staging labels and tags.
//!
//! Point lookups use `get_result` (no LIMIT), never `.first()`: diesel binds `.first()`'s
//! `LIMIT 1` as a parameter, and SQLite marks a statement whose LIMIT is a bound parameter
//! as expired on every re-bind, so a cached `.first()` statement is re-prepared (parsed and
//! planned again) on every execution. Every lookup here is by a primary or unique key.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::fixed::{fixed_sql, Arg, Fixed};
use super::rows::{SecretRow, SecretView, VersionRow};
use super::schema::{secret_stages, secret_tags, secret_versions, secrets};
use super::{AnyConnection, StoreError, Tx};

// UPDATEs of every new version, and of a version's first read of the day, in the text
// diesel's DSL would build; see `store::fixed` for why they are not built with it.
fixed_sql!(
    /// A version's row, every column bound (`VersionRow`'s order). A DSL insert of a row
    /// with optional columns rebuilds its SQL on every call to find its prepared statement.
    InsertVersion = [
        "INSERT INTO secret_versions (secret_id, version_id, created_at, last_accessed_at, \
         value_kind, ciphertext, wrapped_dek, kms_key_id, kms_term) VALUES (",
        ", ",
        ", ",
        ", ",
        ", ",
        ", ",
        ", ",
        ", ",
        ", ",
        ")"
    ]
);
fixed_sql!(
    /// `(at, secret_id)`: a secret's last change (a new version).
    SetSecretChanged = ["UPDATE secrets SET last_changed_at = ", " WHERE secret_id = ", ""]
);
fixed_sql!(
    /// `(at, secret_id, version_id)`: a version's last access day.
    TouchVersion = [
        "UPDATE secret_versions SET last_accessed_at = ",
        " WHERE secret_id = ",
        " AND version_id = ",
        ""
    ]
);
fixed_sql!(
    /// `(at, secret_id)`: a secret's last access day.
    TouchSecret = ["UPDATE secrets SET last_accessed_at = ", " WHERE secret_id = ", ""]
);

impl Tx<'_> {
    /// Find a secret of `account`/`region` by name, full ARN or partial ARN (no suffix).
    pub fn find_secret(
        &mut self,
        account: &str,
        region: &str,
        id: &str,
    ) -> Result<Option<SecretRow>, StoreError> {
        let by_arn = if id.starts_with("arn:") {
            // By the ARN's own unique index only (see the name lookup below); the account
            // and region are checked on the row.
            let found = native!(&mut *self.conn, |c| secrets::table
                .filter(secrets::arn.eq(id))
                .select(SecretRow::as_select())
                .get_result(c)
                .optional())
            .map_err(|e| self.db(e))?
            .filter(|s: &SecretRow| s.account_id == account && s.region == region);
            if found.is_some() {
                return Ok(found);
            }
            // A partial ARN: `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`.
            let prefix = format!("arn:aws:secretsmanager:{region}:{account}:secret:");
            match id.strip_prefix(&prefix) {
                Some(name) => Some(name.to_owned()),
                None => return Ok(None),
            }
        } else {
            None
        };
        let name = by_arn.as_deref().unwrap_or(id);
        let by_account = secrets::table
            .filter(secrets::account_id.eq(account))
            .filter(secrets::region.eq(region));
        let found = match &mut *self.conn {
            AnyConnection::Sqlite(c) => by_account
                .filter(secrets::name.eq(name))
                .select(SecretRow::as_select())
                .get_result(c)
                .optional(),
            // PostgreSQL: the name compared in the "C" collation, the listing index's
            // (`secrets_list_name`: account, region, name), so that an index matches all
            // three columns whatever the planner knows. Compared in the default collation,
            // the planner without statistics on the table (a store just filled, before
            // autovacuum analyzed it) took that index for its first two columns and
            // filtered every secret of the account and region by name: 2,000 rows read per
            // lookup over 2,000 secrets, and a predicate lock over all of them in every
            // SERIALIZABLE write. Equality is the same in both collations (both are
            // deterministic: equal text is equal bytes).
            AnyConnection::Postgresql(c) => by_account
                .filter(
                    diesel::dsl::sql::<diesel::sql_types::Bool>(
                        "\"secrets\".\"name\" COLLATE \"C\" = ",
                    )
                    .bind::<diesel::sql_types::Text, _>(name),
                )
                .select(SecretRow::as_select())
                .get_result(c)
                .optional(),
        }
        .map_err(|e| self.db(e))?;
        Ok(found)
    }

    pub fn secret_by_id(&mut self, secret_id: &str) -> Result<Option<SecretRow>, StoreError> {
        native!(&mut *self.conn, |c| secrets::table
            .find(secret_id)
            .select(SecretRow::as_select())
            .get_result(c)
            .optional())
        .map_err(|e| self.db(e))
    }

    pub fn insert_secret(&mut self, row: &SecretRow) -> Result<(), StoreError> {
        diesel::insert_into(secrets::table)
            .values(row)
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    pub fn update_secret(&mut self, row: &SecretRow) -> Result<(), StoreError> {
        native!(&mut *self.conn, |c| diesel::update(
            secrets::table.find(&row.secret_id)
        )
        .set(row)
        .execute(c))
        .map(|_| ())
        .map_err(|e| self.db(e))
    }

    /// Remove a secret with its versions, stages, tags and rotation job.
    pub fn delete_secret(&mut self, secret_id: &str) -> Result<(), StoreError> {
        self.delete_rotation_job(secret_id)?;
        // A primary is deleted only without an associated cross-account replica; a detached
        // entry goes with it.
        self.delete_cross_account_entries(secret_id)?;
        diesel::delete(secret_stages::table.filter(secret_stages::secret_id.eq(secret_id)))
            .execute(self.conn)
            .map_err(|e| self.db(e))?;
        diesel::delete(secret_tags::table.filter(secret_tags::secret_id.eq(secret_id)))
            .execute(self.conn)
            .map_err(|e| self.db(e))?;
        diesel::delete(secret_versions::table.filter(secret_versions::secret_id.eq(secret_id)))
            .execute(self.conn)
            .map_err(|e| self.db(e))?;
        diesel::delete(secrets::table.find(secret_id))
            .execute(self.conn)
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    pub fn insert_version(&mut self, row: &VersionRow) -> Result<(), StoreError> {
        let args = [
            Arg::Text(&row.secret_id),
            Arg::Text(&row.version_id),
            Arg::Int(row.created_at),
            Arg::OptInt(row.last_accessed_at),
            Arg::OptText(row.value_kind.as_deref()),
            Arg::OptBlob(row.ciphertext.as_deref()),
            Arg::OptBlob(row.wrapped_dek.as_deref()),
            Arg::OptText(row.kms_key_id.as_deref()),
            Arg::OptInt32(row.kms_term),
        ];
        native!(&mut *self.conn, |c| Fixed::<InsertVersion>::new(&args)
            .execute(c))
        .map(|_| ())
        .map_err(|e| self.db(e))
    }

    pub fn version(
        &mut self,
        secret_id: &str,
        version_id: &str,
    ) -> Result<Option<VersionRow>, StoreError> {
        native!(&mut *self.conn, |c| secret_versions::table
            .find((secret_id, version_id))
            .select(VersionRow::as_select())
            .get_result(c)
            .optional())
        .map_err(|e| self.db(e))
    }

    /// How many versions a secret has.
    pub fn count_versions(&mut self, secret_id: &str) -> Result<usize, StoreError> {
        let n: i64 = native!(&mut *self.conn, |c| secret_versions::table
            .filter(secret_versions::secret_id.eq(secret_id))
            .count()
            .get_result(c))
        .map_err(|e| self.db(e))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// `(version_id, created_at)` of a secret's versions created at or before `at_ms`,
    /// oldest first: what pruning needs, without reading sealed values.
    pub fn version_ids_created_by(
        &mut self,
        secret_id: &str,
        at_ms: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        native!(&mut *self.conn, |c| secret_versions::table
            .filter(secret_versions::secret_id.eq(secret_id))
            .filter(secret_versions::created_at.le(at_ms))
            .order((
                secret_versions::created_at.asc(),
                secret_versions::version_id.asc(),
            ))
            .select((secret_versions::version_id, secret_versions::created_at))
            .load(c))
        .map_err(|e| self.db(e))
    }

    /// Record a change of a secret (a new version) at `at_ms`.
    pub fn set_secret_changed(&mut self, secret_id: &str, at_ms: i64) -> Result<(), StoreError> {
        let args = [Arg::Int(at_ms), Arg::Text(secret_id)];
        native!(&mut *self.conn, |c| Fixed::<SetSecretChanged>::new(&args)
            .execute(c))
        .map(|_| ())
        .map_err(|e| self.db(e))
    }

    /// Every version of a secret, oldest first.
    pub fn versions(&mut self, secret_id: &str) -> Result<Vec<VersionRow>, StoreError> {
        secret_versions::table
            .filter(secret_versions::secret_id.eq(secret_id))
            .order((
                secret_versions::created_at.asc(),
                secret_versions::version_id.asc(),
            ))
            .select(VersionRow::as_select())
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    pub fn delete_version(&mut self, secret_id: &str, version_id: &str) -> Result<(), StoreError> {
        native!(&mut *self.conn, |c| diesel::delete(
            secret_versions::table.find((secret_id, version_id))
        )
        .execute(c))
        .map(|_| ())
        .map_err(|e| self.db(e))
    }

    pub fn touch_version(
        &mut self,
        secret_id: &str,
        version_id: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let args = [Arg::Int(at), Arg::Text(secret_id), Arg::Text(version_id)];
        native!(&mut *self.conn, |c| Fixed::<TouchVersion>::new(&args)
            .execute(c))
        .map_err(|e| self.db(e))?;
        let args = [Arg::Int(at), Arg::Text(secret_id)];
        native!(&mut *self.conn, |c| Fixed::<TouchSecret>::new(&args)
            .execute(c))
        .map(|_| ())
        .map_err(|e| self.db(e))
    }

    /// `stage -> version_id` for a secret.
    pub fn stages(&mut self, secret_id: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let rows: Vec<(String, String)> = native!(&mut *self.conn, |c| secret_stages::table
            .filter(secret_stages::secret_id.eq(secret_id))
            .select((secret_stages::stage, secret_stages::version_id))
            .load(c))
        .map_err(|e| self.db(e))?;
        Ok(rows.into_iter().collect())
    }

    /// The version carrying `stage`, if any.
    pub fn stage_version(
        &mut self,
        secret_id: &str,
        stage: &str,
    ) -> Result<Option<String>, StoreError> {
        native!(&mut *self.conn, |c| secret_stages::table
            .find((secret_id, stage))
            .select(secret_stages::version_id)
            .get_result(c)
            .optional())
        .map_err(|e| self.db(e))
    }

    /// Replace the whole stage map of a secret with `stages` (`stage -> version_id`).
    pub fn replace_stages(
        &mut self,
        secret_id: &str,
        stages: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        native!(&mut *self.conn, |c| diesel::delete(
            secret_stages::table.filter(secret_stages::secret_id.eq(secret_id))
        )
        .execute(c))
        .map_err(|e| self.db(e))?;
        for (stage, version) in stages {
            native!(&mut *self.conn, |c| diesel::insert_into(
                secret_stages::table
            )
            .values((
                secret_stages::secret_id.eq(secret_id),
                secret_stages::stage.eq(stage),
                secret_stages::version_id.eq(version),
            ))
            .execute(c))
            .map_err(|e| self.db(e))?;
        }
        Ok(())
    }

    /// Tags in insertion order.
    pub fn tags(&mut self, secret_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        native!(&mut *self.conn, |c| secret_tags::table
            .filter(secret_tags::secret_id.eq(secret_id))
            .order(secret_tags::position.asc())
            .select((secret_tags::tag_key, secret_tags::tag_value))
            .load(c))
        .map_err(|e| self.db(e))
    }

    /// Replace a secret's tags with `tags` (in order).
    pub fn replace_tags(
        &mut self,
        secret_id: &str,
        tags: &[(String, String)],
    ) -> Result<(), StoreError> {
        diesel::delete(secret_tags::table.filter(secret_tags::secret_id.eq(secret_id)))
            .execute(self.conn)
            .map_err(|e| self.db(e))?;
        for (pos, (k, v)) in (0_i64..).zip(tags.iter()) {
            diesel::insert_into(secret_tags::table)
                .values((
                    secret_tags::secret_id.eq(secret_id),
                    secret_tags::tag_key.eq(k),
                    secret_tags::tag_value.eq(v),
                    secret_tags::position.eq(pos),
                ))
                .execute(self.conn)
                .map_err(|e| self.db(e))?;
        }
        Ok(())
    }

    /// A secret with its stages (grouped by version) and tags.
    pub fn secret_view(&mut self, secret: SecretRow) -> Result<SecretView, StoreError> {
        let stage_map = self.stages(&secret.secret_id)?;
        let tags = self.tags(&secret.secret_id)?;
        let mut by_version: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (stage, version) in stage_map {
            by_version.entry(version).or_default().push(stage);
        }
        Ok(SecretView {
            secret,
            stages: by_version.into_iter().collect(),
            tags,
        })
    }

    /// Secrets whose recovery window has ended.
    pub fn secrets_due_for_purge(&mut self, now: i64) -> Result<Vec<SecretRow>, StoreError> {
        secrets::table
            .filter(secrets::purge_at.le(now))
            .select(SecretRow::as_select())
            .load(self.conn)
            .map_err(|e| self.db(e))
    }
}

impl Tx<'_> {
    /// Replace a version's sealed value and the key that protects it (re-encryption under
    /// another KMS key). The version id, dates and kind are kept.
    pub fn reseal_version(
        &mut self,
        secret_id: &str,
        version_id: &str,
        ciphertext: &[u8],
        wrapped_dek: &[u8],
        kms_key_id: &str,
        kms_term: i32,
    ) -> Result<(), StoreError> {
        diesel::update(secret_versions::table.find((secret_id, version_id)))
            .set((
                secret_versions::ciphertext.eq(ciphertext),
                secret_versions::wrapped_dek.eq(wrapped_dek),
                secret_versions::kms_key_id.eq(kms_key_id),
                secret_versions::kms_term.eq(kms_term),
            ))
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }
}

impl Tx<'_> {
    /// A secret by its exact full ARN, in any account (cross-account access by ARN).
    pub fn secret_by_arn(&mut self, arn: &str) -> Result<Option<SecretRow>, StoreError> {
        native!(&mut *self.conn, |c| secrets::table
            .filter(secrets::arn.eq(arn))
            .select(SecretRow::as_select())
            .get_result(c)
            .optional())
        .map_err(|e| self.db(e))
    }
}

#[cfg(test)]
mod postgres_lookup_tests {
    use diesel::connection::SimpleConnection;
    use diesel::sql_types::BigInt;
    use diesel::RunQueryDsl;

    use super::super::{AnyConnection, StoreError};

    #[derive(diesel::QueryableByName)]
    struct Fetched {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    /// On PostgreSQL, a lookup by name, full ARN or partial ARN reads the one row it finds
    /// through an index that matches its whole key, also on a table without statistics (a
    /// store just filled, before autovacuum analyzed it), where the planner once filtered
    /// every secret of the account and region by name. Counted with the transaction's own
    /// statistics (`pg_stat_xact_user_tables`).
    #[test]
    fn a_lookup_reads_one_row_of_a_table_without_statistics() {
        let Some(store) = super::super::listing::fresh_postgres_store() else {
            eprintln!("skipped: STRONGROOM_TEST_DATABASE_URL is not set");
            return;
        };
        store
            .write_blocking(|tx| {
                let AnyConnection::Postgresql(c) = &mut *tx.conn else {
                    panic!("a PostgreSQL store")
                };
                c.batch_execute(
                    "INSERT INTO secrets (secret_id, account_id, region, name, arn, created_at, \
                     last_changed_at) SELECT 'id-' || g, '111111111111', 'us-east-1', 'app/s' || g, \
                     'arn:aws:secretsmanager:us-east-1:111111111111:secret:app/s' || g || '-AbCdEf', \
                     0, 0 FROM generate_series(1, 500) g",
                )
                .map_err(StoreError::from)?;
                Ok(())
            })
            .unwrap();
        let arn = "arn:aws:secretsmanager:us-east-1:111111111111:secret:app/s250-AbCdEf";
        let partial = "arn:aws:secretsmanager:us-east-1:111111111111:secret:app/s250";
        for id in ["app/s250", arn, partial] {
            let (found, fetched) = store
                .read_blocking(|tx| {
                    let found = tx.find_secret("111111111111", "us-east-1", id)?;
                    let AnyConnection::Postgresql(c) = &mut *tx.conn else {
                        panic!("a PostgreSQL store")
                    };
                    let f: Fetched = diesel::sql_query(
                        "SELECT (COALESCE(idx_tup_fetch, 0) + seq_tup_read)::bigint AS n \
                         FROM pg_stat_xact_user_tables WHERE relname = 'secrets'",
                    )
                    .get_result(c)
                    .map_err(StoreError::from)?;
                    Ok((found, f.n))
                })
                .unwrap();
            assert_eq!(
                found.map(|s| s.secret_id),
                Some("id-250".to_owned()),
                "{id}"
            );
            assert!(
                fetched <= 5,
                "{id}: {fetched} rows of secrets read (500 in the table)"
            );
        }
        // Another account's ARN is not found from this account (positive control above).
        let other = store
            .read_blocking(|tx| Ok(tx.find_secret("222222222222", "us-east-1", arn)?))
            .unwrap();
        assert!(other.is_none());
    }
}
