//! Rotation: the jobs of rotations in progress (`migrations/*/rotation`) and the queries of
//! the scheduler, all by index (`rotation_jobs_due`, `secrets_next_rotation`).

use diesel::prelude::*;

use super::rows::SecretRow;
use super::schema::{secret_versions, secrets};
use super::{StoreError, Tx};

diesel::table! {
    rotation_jobs (secret_id) {
        secret_id -> Text,
        token -> Text,
        function_arn -> Text,
        test_only -> Bool,
        step -> Text,
        attempt -> Integer,
        next_attempt_at -> BigInt,
        state -> Text,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        rotation_token_hash -> Nullable<Text>,
    }
}

/// One rotation of a secret, in progress or failed.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = rotation_jobs, treat_none_as_null = true)]
pub struct RotationJobRow {
    pub secret_id: String,
    /// The ClientRequestToken: the AWSPENDING version's id.
    pub token: String,
    pub function_arn: String,
    /// `RotateImmediately=false`: only testSecret, on a copy of the current value.
    pub test_only: bool,
    /// The step running or last run.
    pub step: String,
    /// Attempts of the whole sequence made so far.
    pub attempt: i32,
    /// When a `pending` job is due, or when a `running` job's lease ends.
    pub next_attempt_at: i64,
    /// `pending`, `running`, `failed` or `abandoned` (a new AWSCURRENT was written; the
    /// engine records it and drops the job).
    pub state: String,
    /// The last failure's message (redacted; never a value).
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The running attempt's RotationToken, as its SHA-256 (hex); `None` between attempts.
    pub rotation_token_hash: Option<String>,
}

impl Tx<'_> {
    /// When the oldest rotation not completed (running, waiting for a retry, or failed) was
    /// started; `None` when there is none. The table holds only rotations in progress or
    /// failed, one per secret.
    pub fn oldest_unfinished_rotation(&mut self) -> Result<Option<i64>, StoreError> {
        rotation_jobs::table
            .filter(rotation_jobs::state.eq_any(["pending", "running", "failed"]))
            .select(diesel::dsl::min(rotation_jobs::created_at))
            .first(self.conn)
            .map_err(|e| self.db(e))
    }

    /// Record a new rotation of a secret, replacing any earlier (failed) one.
    pub fn insert_rotation_job(&mut self, row: &RotationJobRow) -> Result<(), StoreError> {
        self.delete_rotation_job(&row.secret_id)?;
        diesel::insert_into(rotation_jobs::table)
            .values(row)
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    /// The rotation of a secret, if any.
    pub fn rotation_job(&mut self, secret_id: &str) -> Result<Option<RotationJobRow>, StoreError> {
        rotation_jobs::table
            .find(secret_id)
            .select(RotationJobRow::as_select())
            .get_result(self.conn)
            .optional()
            .map_err(|e| self.db(e))
    }

    pub fn update_rotation_job(&mut self, row: &RotationJobRow) -> Result<(), StoreError> {
        diesel::update(rotation_jobs::table.find(&row.secret_id))
            .set(row)
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    pub fn delete_rotation_job(&mut self, secret_id: &str) -> Result<(), StoreError> {
        diesel::delete(rotation_jobs::table.find(secret_id))
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    /// Jobs due at `now`: pending ones whose time has come and running ones whose lease ended
    /// (their server stopped), earliest first.
    pub fn due_rotation_jobs(
        &mut self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<RotationJobRow>, StoreError> {
        rotation_jobs::table
            .filter(rotation_jobs::state.eq_any(["pending", "running", "abandoned"]))
            .filter(rotation_jobs::next_attempt_at.le(now))
            .order(rotation_jobs::next_attempt_at.asc())
            .limit(limit)
            .select(RotationJobRow::as_select())
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    /// Secrets whose scheduled rotation is due at `now` (by `secrets_next_rotation`).
    pub fn secrets_due_for_rotation(
        &mut self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<SecretRow>, StoreError> {
        secrets::table
            .filter(secrets::next_rotation_at.le(now))
            .order(secrets::next_rotation_at.asc())
            .limit(limit)
            .select(SecretRow::as_select())
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    /// Give a version created without a value (the AWSPENDING placeholder of a rotation) its
    /// sealed value.
    #[expect(clippy::too_many_arguments, reason = "the sealed value's parts")]
    pub fn fill_version(
        &mut self,
        secret_id: &str,
        version_id: &str,
        value_kind: &str,
        ciphertext: &[u8],
        wrapped_dek: &[u8],
        kms_key_id: &str,
        kms_term: i32,
    ) -> Result<(), StoreError> {
        diesel::update(secret_versions::table.find((secret_id, version_id)))
            .set((
                secret_versions::value_kind.eq(value_kind),
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
