//! Row structs, shared with the operations as plain data (ops never see diesel itself).

use diesel::prelude::*;

use super::schema::{
    access_keys, audit_events, kms_aliases, kms_key_material, kms_keys, secret_replicas,
    secret_versions, secrets,
};

/// A stored access key. `secret_sealed` is the secret key sealed under a master key.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = access_keys)]
pub struct AccessKeyRow {
    pub access_key_id: String,
    pub account_id: String,
    pub user_name: Option<String>,
    pub secret_sealed: Vec<u8>,
    pub master_key_id: i32,
    pub status: String,
    pub created_at: i64,
}

/// A KMS key's metadata.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = kms_keys, treat_none_as_null = true)]
pub struct KmsKeyRow {
    pub key_id: String,
    pub account_id: String,
    pub region: String,
    pub arn: String,
    pub description: String,
    pub key_manager: String,
    pub key_state: String,
    pub created_at: i64,
    pub deletion_date: Option<i64>,
    pub rotation_enabled: bool,
    pub rotation_period_days: i32,
    pub next_rotation_at: Option<i64>,
    pub current_term: i32,
    pub policy: Option<String>,
}

#[cfg(test)]
impl KmsKeyRow {
    /// An enabled customer managed key `key_id` of `account` in us-east-1 with key policy
    /// `policy` (the default one when `None`), for tests of decisions on keys.
    pub fn customer_for_test(account: &str, key_id: &str, policy: Option<String>) -> Self {
        Self {
            key_id: key_id.to_owned(),
            account_id: account.to_owned(),
            region: "us-east-1".to_owned(),
            arn: format!("arn:aws:kms:us-east-1:{account}:key/{key_id}"),
            description: String::new(),
            key_manager: "CUSTOMER".to_owned(),
            key_state: "Enabled".to_owned(),
            created_at: 0,
            deletion_date: None,
            rotation_enabled: false,
            rotation_period_days: 365,
            next_rotation_at: None,
            current_term: 1,
            policy,
        }
    }
}

/// One term of a KMS key's material, sealed under a master key.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = kms_key_material)]
pub struct KmsMaterialRow {
    pub key_id: String,
    pub term: i32,
    pub sealed: Vec<u8>,
    pub master_key_id: i32,
    pub created_at: i64,
}

/// A KMS alias.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = kms_aliases)]
pub struct KmsAliasRow {
    pub account_id: String,
    pub region: String,
    pub alias_name: String,
    pub target_key_id: String,
    pub created_at: i64,
    pub last_updated_at: i64,
}

/// A secret's metadata.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = secrets, treat_none_as_null = true)]
pub struct SecretRow {
    pub secret_id: String,
    pub account_id: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub created_at: i64,
    pub last_changed_at: i64,
    pub last_accessed_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub purge_at: Option<i64>,
    pub owning_service: Option<String>,
    pub primary_region: Option<String>,
    pub resource_policy: Option<String>,
    /// Whether the secret has a tag list (created with `Tags`, or tagged since): it is then
    /// shown, empty once every tag was removed.
    pub tag_list: bool,
    /// A managed external secret's partner type (`Type`).
    pub secret_type: Option<String>,
    /// A managed external secret's rotation metadata: the JSON list of `{Key, Value}`
    /// RotateSecret took as `ExternalSecretRotationMetadata`.
    pub external_rotation_metadata: Option<String>,
    /// The role RotateSecret took as `ExternalSecretRotationRoleArn`.
    pub external_rotation_role_arn: Option<String>,
    /// `None` until rotation is first configured; `false` after CancelRotateSecret.
    pub rotation_enabled: Option<bool>,
    pub rotation_lambda_arn: Option<String>,
    /// The RotationRules as JSON (`AutomaticallyAfterDays`, `ScheduleExpression`, `Duration`).
    pub rotation_rules: Option<String>,
    /// The last successful rotation.
    pub last_rotated_at: Option<i64>,
    /// When the scheduler next starts a rotation (the start of the schedule's window).
    pub next_rotation_at: Option<i64>,
    /// A cross-account replica's primary (`CrossAccountPrimaryARN`), until
    /// StopReplicationToReplica makes it standalone.
    pub cross_account_primary_arn: Option<String>,
    /// A cross-account replica's status while it has no association: `Pending` (never
    /// associated) or `Detached` (disassociated by its primary).
    pub cross_account_status: Option<String>,
    /// Whether the secret is the primary of a cross-account entry (`secret_replicas`).
    pub cross_account_replica: bool,
}

/// One replica region of a primary secret (see `store::replicas`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = secret_replicas, treat_none_as_null = true)]
pub struct ReplicaRow {
    pub primary_secret_id: String,
    pub region: String,
    /// The replica's own secret (in `region`); `None` when it could not be created.
    pub replica_secret_id: Option<String>,
    /// The key as `ReplicationStatus` shows it (a key ARN, or `alias/aws/secretsmanager`).
    pub kms_key_id: String,
    /// `InSync`, `InProgress` or `Failed`.
    pub status: String,
    pub status_message: Option<String>,
    pub created_at: i64,
    /// Whether the region is served by a peer server (the replica lives in its store).
    pub peer: bool,
    /// A cross-account replica in another account of the primary's region (`region` is the
    /// primary's own), not a region replica.
    pub cross_account: bool,
    /// A cross-account replica's ARN.
    pub replica_arn: Option<String>,
    /// A cross-account entry's `ReplicationRoleARN`.
    pub replication_role_arn: Option<String>,
}

/// One version of a secret: ciphertext and wrapped data key (no plaintext, ever).
#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = secret_versions)]
pub struct VersionRow {
    pub secret_id: String,
    pub version_id: String,
    pub created_at: i64,
    pub last_accessed_at: Option<i64>,
    /// `S` (SecretString), `B` (SecretBinary) or `None` (a version without a value).
    pub value_kind: Option<String>,
    pub ciphertext: Option<Vec<u8>>,
    pub wrapped_dek: Option<Vec<u8>>,
    pub kms_key_id: Option<String>,
    pub kms_term: Option<i32>,
}

impl std::fmt::Debug for VersionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionRow")
            .field("secret_id", &self.secret_id)
            .field("version_id", &self.version_id)
            .field("created_at", &self.created_at)
            .field("value_kind", &self.value_kind)
            .field("kms_key_id", &self.kms_key_id)
            .field("kms_term", &self.kms_term)
            .finish_non_exhaustive()
    }
}

/// One audit record as stored. Appended as a [`NewAuditRow`] (see `Tx::insert_new_audits`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    pub chain_id: String,
    pub seq: i64,
    pub event_id: String,
    pub event_time: i64,
    pub event_name: String,
    pub principal_arn: Option<String>,
    pub access_key_id: Option<String>,
    pub source_ip: Option<String>,
    pub resource_arn: Option<String>,
    pub error_code: Option<String>,
    pub decision: String,
    pub record: String,
    pub prev_hash: String,
    pub hash: String,
    /// Query columns, derived from `record` (see `audit::index`; `verify` re-derives them).
    pub account_id: Option<String>,
    pub event_source: Option<String>,
    pub read_only: Option<bool>,
    pub user_name: Option<String>,
    pub resource_type: Option<String>,
    pub resource_name: Option<String>,
}

impl AuditRow {
    /// The row as [`NewAuditRow`], borrowing its strings.
    pub fn as_new(&self) -> NewAuditRow<'_> {
        NewAuditRow {
            chain_id: &self.chain_id,
            seq: self.seq,
            event_id: &self.event_id,
            event_time: self.event_time,
            event_name: &self.event_name,
            principal_arn: self.principal_arn.as_deref(),
            access_key_id: self.access_key_id.as_deref(),
            source_ip: self.source_ip.as_deref(),
            resource_arn: self.resource_arn.as_deref(),
            error_code: self.error_code.as_deref(),
            decision: &self.decision,
            record: &self.record,
            prev_hash: &self.prev_hash,
            hash: &self.hash,
            account_id: self.account_id.as_deref(),
            event_source: self.event_source.as_deref(),
            read_only: self.read_only,
            user_name: self.user_name.as_deref(),
            resource_type: self.resource_type.as_deref(),
            resource_name: self.resource_name.as_deref(),
        }
    }
}

/// An [`AuditRow`] to append, borrowing its strings: the audit writer appends a batch straight
/// from the records it holds, without copying each record's text and columns into owned
/// strings (an allocation per string, and the frees after the commit, in the thread every
/// request of the batch waits for). See `Tx::insert_new_audits`.
#[derive(Debug, Clone, Copy)]
pub struct NewAuditRow<'a> {
    pub chain_id: &'a str,
    pub seq: i64,
    pub event_id: &'a str,
    pub event_time: i64,
    pub event_name: &'a str,
    pub principal_arn: Option<&'a str>,
    pub access_key_id: Option<&'a str>,
    pub source_ip: Option<&'a str>,
    pub resource_arn: Option<&'a str>,
    pub error_code: Option<&'a str>,
    pub decision: &'a str,
    pub record: &'a str,
    pub prev_hash: &'a str,
    pub hash: &'a str,
    pub account_id: Option<&'a str>,
    pub event_source: Option<&'a str>,
    pub read_only: Option<bool>,
    pub user_name: Option<&'a str>,
    pub resource_type: Option<&'a str>,
    pub resource_name: Option<&'a str>,
}

/// A secret with everything Describe/List show: stages by version and tags in order.
#[derive(Debug, Clone)]
pub struct SecretView {
    pub secret: SecretRow,
    /// `(version_id, stages)` for every version that carries at least one stage.
    pub stages: Vec<(String, Vec<String>)>,
    /// `(key, value)` in insertion order.
    pub tags: Vec<(String, String)>,
}

/// A signed statement about an audit chain: a digest (`kind = "digest"`: records
/// `seq_from..=seq_to` end with `last_hash`) or a prune anchor (`kind = "anchor"`: records up
/// to `seq_to` were exported and deleted; the last had `last_hash`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::audit_digests)]
pub struct AuditDigestRow {
    pub chain_id: String,
    pub kind: String,
    pub seq_from: i64,
    pub seq_to: i64,
    pub last_hash: String,
    pub record_count: i64,
    pub created_at: i64,
    /// First 16 hex digits of SHA-256 of the public key.
    pub key_id: String,
    /// The Ed25519 public key, hex.
    pub public_key: String,
    /// Ed25519 signature over `audit::digest_payload`, hex.
    pub signature: String,
}

/// One entry of the audit lookup index (`sql/audit_lookup.sql`): a copy of a record's query
/// columns, which LookupEvents searches (`audit verify` checks it against the chain).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = super::schema::audit_lookup)]
pub struct AuditLookupRow {
    pub chain_id: String,
    pub seq: i64,
    pub event_time: i64,
    pub event_name: String,
    pub principal_arn: Option<String>,
    pub access_key_id: Option<String>,
    pub source_ip: Option<String>,
    pub resource_arn: Option<String>,
    pub error_code: Option<String>,
    pub decision: String,
    pub account_id: Option<String>,
    pub event_source: Option<String>,
    pub read_only: Option<bool>,
    pub user_name: Option<String>,
    pub resource_type: Option<String>,
    pub resource_name: Option<String>,
}

impl AuditLookupRow {
    /// The lookup entry a chain row should have: its query columns.
    pub fn of(r: &AuditRow) -> Self {
        Self {
            chain_id: r.chain_id.clone(),
            seq: r.seq,
            event_time: r.event_time,
            event_name: r.event_name.clone(),
            principal_arn: r.principal_arn.clone(),
            access_key_id: r.access_key_id.clone(),
            source_ip: r.source_ip.clone(),
            resource_arn: r.resource_arn.clone(),
            error_code: r.error_code.clone(),
            decision: r.decision.clone(),
            account_id: r.account_id.clone(),
            event_source: r.event_source.clone(),
            read_only: r.read_only,
            user_name: r.user_name.clone(),
            resource_type: r.resource_type.clone(),
            resource_name: r.resource_name.clone(),
        }
    }
}

/// Which audit records to read, newest first. Every `Some` field must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The recipient account (LookupEvents' scope).
    pub account_id: Option<String>,
    pub event_id: Option<String>,
    pub event_name: Option<String>,
    pub event_source: Option<String>,
    pub read_only: Option<bool>,
    pub user_name: Option<String>,
    pub access_key_id: Option<String>,
    pub resource_type: Option<String>,
    /// Matches the resource ARN or the resource's short name exactly.
    pub resource_name: Option<String>,
    /// A prefix of the resource ARN (when it starts with `arn:`) or of its short name.
    pub resource_prefix: Option<String>,
    pub principal_arn: Option<String>,
    /// Only records whose authorization decision was `Deny`.
    pub denied_only: bool,
    pub error_code: Option<String>,
    pub source_ip: Option<String>,
    /// Inclusive lower bound, epoch milliseconds.
    pub since_ms: Option<i64>,
    /// Inclusive upper bound, epoch milliseconds.
    pub until_ms: Option<i64>,
    /// Keyset cursor: only records strictly older than `(event_time, chain_id, seq)`.
    pub before: Option<(i64, String, i64)>,
    pub limit: i64,
}

impl AuditFilter {
    /// Whether the filter names anything besides time, cursor and event id (what the
    /// chain table's own indexes answer): such queries read the lookup index.
    pub fn has_lookup_attribute(&self) -> bool {
        let Self {
            account_id,
            event_id: _,
            event_name,
            event_source,
            read_only,
            user_name,
            access_key_id,
            resource_type,
            resource_name,
            resource_prefix,
            principal_arn,
            denied_only,
            error_code,
            source_ip,
            since_ms: _,
            until_ms: _,
            before: _,
            limit: _,
        } = self;
        *denied_only
            || read_only.is_some()
            || [
                account_id,
                event_name,
                event_source,
                user_name,
                access_key_id,
                resource_type,
                resource_name,
                resource_prefix,
                principal_arn,
                error_code,
                source_ip,
            ]
            .iter()
            .any(|v| v.is_some())
    }
}

/// The short name of a resource: a secret's name (without AWS's 6-character suffix), a KMS
/// key id or alias.
pub fn resource_short_name(arn: &str) -> String {
    if let Some((_, rest)) = arn.split_once(":secret:") {
        return match rest.rsplit_once('-') {
            Some((name, sfx))
                if sfx.len() == 6 && sfx.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                name.to_owned()
            }
            _ => rest.to_owned(),
        };
    }
    match arn.rsplit_once(":key/") {
        Some((_, id)) => id.to_owned(),
        None => arn.rsplit(':').next().unwrap_or(arn).to_owned(),
    }
}
