//! Replication of a primary secret to other regions served by this server: shared by
//! CreateSecret (`AddReplicaRegions`), ReplicateSecretToRegions, RemoveRegionsFromReplication,
//! StopReplicationToReplica, DescribeSecret and every write on a primary.
//!
//! A replica is a secret of its own in the replica region (same account, same name, the
//! primary's ARN with the region swapped, `primary_region` set to the primary's region),
//! written in the primary's write transaction: it is `InSync` as soon as that commits. Its
//! versions are the primary's, each decrypted under the primary's key and sealed again under
//! the replica's own key (in the replica region), bound to the replica's ARN. Description,
//! tags, resource policy, staging labels and dates follow the primary. A primary with
//! replicas has `primary_region` set to its own region (AWS shows `PrimaryRegion` only on
//! replicated secrets).
//!
//! A cross-account replica is a secret in another account of the primary's region, created
//! by its own account with `CrossAccountPrimaryARN` (`Pending`, no value, a managed resource
//! policy letting the primary's account accept replication) and associated by the primary's
//! account (AssociateCrossAccountReplica). The association is an entry of the primary marked
//! `cross_account`, in the primary's own region (so at most one per primary), brought up to
//! date by the same [`sync`] in the primary's write transactions. Only versions and their
//! staging labels are copied (sealed again under the replica's own key): the replica keeps
//! its own description, tags, resource policy and lifecycle, as AWS's cross-account replicas
//! do. Its account cannot write it (as a region replica) until StopReplicationToReplica
//! makes it standalone.
//!
//! Runs inside a store transaction. A region served by a peer server (`--peer REGION=URL`)
//! has an entry marked `peer` and no replica secret here: each change of the primary leaves
//! a row in the replication outbox in the same transaction, and the entry is `InProgress`
//! until the delivery worker (`crate::replication`) has applied it on the peer.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::values;
use super::{Authorized, Ctx, Scope, SecretFacts};
use crate::crypto::SecretBytes;
use crate::error::ApiError;
use crate::kms::Keyring;
use crate::store::rows::{ReplicaRow, SecretRow, VersionRow};
use crate::store::Tx;

/// `ReplicationStatusType`.
pub const IN_SYNC: &str = "InSync";
/// `ReplicationStatusType`.
pub const FAILED: &str = "Failed";
/// `ReplicationStatusType`.
pub const IN_PROGRESS: &str = "InProgress";

/// `StatusType`: a cross-account replica not associated yet.
pub const PENDING: &str = "Pending";
/// `StatusType`: a cross-account replication stopped by the other side.
pub const DETACHED: &str = "Detached";

/// The refusal of a cross-account replica without a customer managed key.
pub const XACCT_NEEDS_CMK: &str = "A cross-account replica secret must be encrypted with a customer managed KMS key: specify one in KmsKeyId (the AWS managed key aws/secretsmanager can't be used across accounts).";
/// The `StatusMessage` of an `InSync` replica.
pub const REPLICATION_SUCCEEDED: &str = "Replication succeeded";

/// How `ReplicationStatus` names the replica region's AWS managed key.
pub const DEFAULT_KEY_ALIAS: &str = "alias/aws/secretsmanager";

/// AWS's refusal of a write made on a replica.
pub const NOT_ON_REPLICA: &str =
    "Operation not permitted on a replica secret. Call must be made in primary secret's region.";

/// One `ReplicaRegionType` of `AddReplicaRegions`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicaRegion {
    pub region: Option<String>,
    pub kms_key_id: Option<String>,
}

/// One `ReplicationStatusType`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicationStatus {
    pub region: String,
    pub kms_key_id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<f64>,
}

/// Whether `secret` is a replica: its primary lives in another region, or it is a
/// cross-account replica (until StopReplicationToReplica).
pub fn is_replica(secret: &SecretRow) -> bool {
    is_region_replica(secret) || secret.cross_account_primary_arn.is_some()
}

/// Whether `secret` is a replica of a primary in another region.
pub fn is_region_replica(secret: &SecretRow) -> bool {
    secret
        .primary_region
        .as_deref()
        .is_some_and(|p| p != secret.region)
}

/// Whether `secret` has replicas of its own: replica regions (here or on a peer) or an
/// associated cross-account replica. Such a secret is never overwritten by a replica
/// (ForceOverwriteReplicaSecret), as DeleteSecret refuses to delete it.
pub fn holds_replicas(tx: &mut Tx<'_>, secret: &SecretRow) -> Result<bool, ApiError> {
    Ok(secret.cross_account_replica || !tx.replicas_of(&secret.secret_id)?.is_empty())
}

/// Whether `secret` is a primary with replica regions.
pub fn is_replicated_primary(secret: &SecretRow) -> bool {
    secret.primary_region.as_deref() == Some(secret.region.as_str())
}

/// Refuse a write on a replica, in AWS's words (a cross-account replica's refusal says
/// how it becomes writable).
pub fn ensure_not_replica(secret: &SecretRow) -> Result<(), ApiError> {
    if let Some(primary) = &secret.cross_account_primary_arn {
        return Err(ApiError::InvalidParameter(format!(
            "Operation not permitted on a cross-account replica secret. It receives its value from primary secret {primary}; call StopReplicationToReplica on the replica to make it a standalone secret."
        )));
    }
    if is_replica(secret) {
        return Err(ApiError::InvalidParameter(NOT_ON_REPLICA.into()));
    }
    Ok(())
}

/// `arn` with its region replaced by `region` (the replica's ARN: same name, same suffix).
pub fn replica_arn(arn: &str, region: &str) -> String {
    let mut parts: Vec<&str> = arn.splitn(5, ':').collect();
    if let Some(r) = parts.get_mut(3) {
        *r = region;
    }
    parts.join(":")
}

/// Check one `RegionType` value (1–128 characters, `^([a-z]+-)+\d+$`).
pub fn validate_region(field: &str, region: &str) -> Result<(), ApiError> {
    crate::secrets::check_len(field, region.chars().count(), 1, 128)?;
    if !region_shaped(region) {
        return Err(ApiError::Validation(format!(
            "1 validation error detected: Value '{region}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: ^([a-z]+-)+\\d+$"
        )));
    }
    Ok(())
}

fn region_shaped(region: &str) -> bool {
    let Some((head, digits)) = region.rsplit_once('-') else {
        return false;
    };
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && head
            .split('-')
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()))
}

/// Check `AddReplicaRegions` (at least one, each with a well-formed `Region`, `KmsKeyId` at
/// most 2048 characters, no region twice).
pub fn validate_add_regions(list: &[ReplicaRegion]) -> Result<(), ApiError> {
    crate::secrets::check_len("addReplicaRegions", list.len(), 1, usize::MAX)?;
    let mut seen: Vec<&str> = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let n = i.saturating_add(1);
        let region = super::required(
            &format!("addReplicaRegions.{n}.member.region"),
            r.region.as_deref(),
        )?;
        validate_region(&format!("addReplicaRegions.{n}.member.region"), region)?;
        if let Some(k) = &r.kms_key_id {
            crate::secrets::check_len(
                &format!("addReplicaRegions.{n}.member.kmsKeyId"),
                k.chars().count(),
                0,
                2048,
            )?;
        }
        if seen.contains(&region) {
            return Err(ApiError::InvalidParameter(format!(
                "The region {region} is listed more than once in AddReplicaRegions."
            )));
        }
        seen.push(region);
    }
    Ok(())
}

/// `secretsmanager:AddReplicaRegions`: the regions requested.
pub fn add_regions_key(list: &[ReplicaRegion]) -> (String, Vec<String>) {
    (
        "secretsmanager:AddReplicaRegions".to_owned(),
        list.iter().filter_map(|r| r.region.clone()).collect(),
    )
}

/// Refuse a replica region that is the secret's own, or that neither this server nor a
/// configured peer serves: nothing is written.
pub fn check_served(ctx: &Ctx, own_region: &str, regions: &[&str]) -> Result<(), ApiError> {
    for r in regions {
        if *r == own_region {
            return Err(ApiError::InvalidParameter("Invalid replica region.".into()));
        }
        if !ctx.regions.iter().any(|s| s == r) && !ctx.peers.iter().any(|s| s == r) {
            let peers = if ctx.peers.is_empty() {
                "no peer server is configured (--peer REGION=URL)".to_owned()
            } else {
                format!("its peers serve {}", ctx.peers.join(", "))
            };
            return Err(ApiError::InvalidParameter(format!(
                "Invalid replica region. This Strongroom server does not serve region {r} (it serves {}; {peers}).",
                ctx.regions.join(", ")
            )));
        }
    }
    Ok(())
}

/// Enqueue the delivery of `primary`'s state (or, with `delete`, of its replica's removal)
/// to the peer serving `entry`'s region, in the caller's transaction.
fn enqueue_peer(
    tx: &mut Tx<'_>,
    primary: &SecretRow,
    entry: &ReplicaRow,
    delete: bool,
    force: bool,
    now_ms: i64,
) -> Result<(), ApiError> {
    tx.enqueue_outbox(&crate::store::outbox::NewOutboxRow {
        primary_secret_id: primary.secret_id.clone(),
        primary_arn: primary.arn.clone(),
        region: entry.region.clone(),
        kind: if delete { "delete" } else { "sync" }.to_owned(),
        force_overwrite: force,
        replica_kms_key_id: (entry.kms_key_id != DEFAULT_KEY_ALIAS)
            .then(|| entry.kms_key_id.clone()),
        created_at: now_ms,
    })?;
    Ok(())
}

/// A peer replica's `StatusMessage` while changes wait in the outbox: how far behind it is,
/// the oldest undelivered change, and the last delivery error.
fn lag_message(
    tx: &mut Tx<'_>,
    entry: &ReplicaRow,
    now_ms: i64,
) -> Result<Option<String>, ApiError> {
    let Some(pending) = tx.outbox_pending(&entry.primary_secret_id, &entry.region)? else {
        return Ok(entry.status_message.clone());
    };
    let behind = now_ms.saturating_sub(pending.oldest_created_at).max(0) / 1000;
    let when = super::epoch_seconds(pending.oldest_created_at);
    let mut msg = format!(
        "Replication lag: {behind} seconds behind; oldest undelivered change {when} (epoch seconds), {} delivery attempt(s) so far.",
        pending.attempts
    );
    if let Some(e) = entry
        .status_message
        .as_ref()
        .or(pending.last_error.as_ref())
    {
        msg.push(' ');
        msg.push_str(e);
    }
    Ok(Some(msg.chars().take(4096).collect()))
}

/// The replication status of a primary's replicas, by region.
pub fn statuses(tx: &mut Tx<'_>, primary: &SecretRow) -> Result<Vec<ReplicationStatus>, ApiError> {
    let mut out = Vec::new();
    let now = super::system_now_ms();
    for r in tx.replicas_of(&primary.secret_id)? {
        let last_accessed = match &r.replica_secret_id {
            Some(id) => tx.secret_by_id(id)?.and_then(|s| s.last_accessed_at),
            None => None,
        };
        let status_message = if r.peer {
            lag_message(tx, &r, now)?
        } else {
            r.status_message.clone()
        };
        // AWS's InSync entries say so (the AWS CLI's describe-secret example).
        let status_message = status_message
            .or_else(|| (r.status == IN_SYNC).then(|| REPLICATION_SUCCEEDED.to_owned()));
        out.push(ReplicationStatus {
            region: r.region,
            kms_key_id: r.kms_key_id,
            status: r.status,
            status_message,
            last_accessed_date: last_accessed.map(super::epoch_seconds),
        });
    }
    Ok(out)
}

/// What [`add_replicas`] needs besides the transaction.
#[derive(Debug)]
pub struct AddRequest<'a> {
    pub keyring: &'a Keyring,
    pub auth: &'a Authorized,
    /// The operation's IAM action, decided again with each replica region's key.
    pub action: &'static str,
    pub regions: &'a [ReplicaRegion],
    /// The regions served by peer servers.
    pub peers: &'a [String],
    pub force: bool,
    pub now_ms: i64,
}

/// Create the replicas `req` asks for (regions already checked with [`check_served`]).
/// A region already replicated in sync is left as it is; a failed one is tried again.
/// The caller's use of each replica region's customer managed key (`kms:GenerateDataKey`
/// and `kms:Encrypt` for the replica's ARN, decided with that key's key policy) is decided
/// first: a refusal fails the whole request.
/// A name taken in the replica region leaves that replica `Failed` (or, with `force`, the
/// secret holding the name is deleted and replaced by the replica).
pub fn add_replicas(
    tx: &mut Tx<'_>,
    req: &AddRequest<'_>,
    primary: &mut SecretRow,
) -> Result<(), ApiError> {
    let existing = tx.replicas_of(&primary.secret_id)?;
    let tags = tx.tags(&primary.secret_id)?;
    let mut wanted = Vec::new();
    for r in req.regions {
        let region = super::required("region", r.region.clone())?;
        if existing
            .iter()
            .any(|e| e.region == region && e.status == IN_SYNC)
        {
            continue;
        }
        if req.peers.contains(&region) {
            // The peer resolves the key in its region and seals the replica with it. The
            // caller's use of that key is decided neither here (the key lives in the peer's
            // store) nor on the peer (which knows the replication principal, not the caller):
            // README, "Replication", says so.
            let entry = ReplicaRow {
                primary_secret_id: primary.secret_id.clone(),
                region: region.clone(),
                replica_secret_id: None,
                kms_key_id: r
                    .kms_key_id
                    .clone()
                    .unwrap_or_else(|| DEFAULT_KEY_ALIAS.to_owned()),
                status: IN_PROGRESS.to_owned(),
                status_message: None,
                created_at: req.now_ms,
                peer: true,
                cross_account: false,
                replica_arn: None,
                replication_role_arn: None,
            };
            tx.put_replica(&entry)?;
            enqueue_peer(tx, primary, &entry, false, req.force, req.now_ms)?;
            continue;
        }
        // The replica region's key, resolved there.
        let key = match &r.kms_key_id {
            None => None,
            Some(id) => {
                let key = req
                    .keyring
                    .resolve(tx, &primary.account_id, &region, id, req.now_ms)?
                    .ok_or_else(|| {
                        ApiError::InvalidParameter(format!(
                            "Secrets Manager can't find the specified KMS key: {id} in region {region}"
                        ))
                    })?;
                (key.key_manager != "AWS").then_some(key)
            }
        };
        if let Some(k) = &key {
            let facts = SecretFacts {
                tags: tags.clone(),
                key_aliases: super::key_aliases(tx, Some(k))?,
                key: Some(k.clone()),
                // As AWS asks of a replica under a customer managed key; decided for the
                // replica, whose ARN binds the values the key seals.
                key_actions: &["kms:GenerateDataKey", "kms:Encrypt"],
                key_for: Some(replica_arn(&primary.arn, &region)),
                request_keys: Vec::new(),
                secret_keys: None,
                policy_cell: None,
            };
            req.auth
                .authorize_secret(req.action, &primary.arn, Some((primary, &facts)))
                .map_err(|r| r.error)?;
        } else if req.auth.principal.account_id != primary.account_id {
            return Err(super::default_key_not_shareable());
        }
        wanted.push((region, key));
    }
    for (region, key) in wanted {
        let shown = key
            .as_ref()
            .map_or_else(|| DEFAULT_KEY_ALIAS.to_owned(), |k| k.arn.clone());
        let entry = |replica: Option<String>, message: Option<String>| ReplicaRow {
            primary_secret_id: primary.secret_id.clone(),
            region: region.clone(),
            status: if replica.is_some() { IN_SYNC } else { FAILED }.to_owned(),
            replica_secret_id: replica,
            kms_key_id: shown.clone(),
            status_message: message,
            created_at: req.now_ms,
            peer: false,
            cross_account: false,
            replica_arn: None,
            replication_role_arn: None,
        };
        // A failed replica that exists (a write could not reach it): tried again in place.
        let failed = existing
            .iter()
            .find(|e| e.region == region)
            .and_then(|e| e.replica_secret_id.clone());
        if let Some(mut replica) = match failed {
            Some(id) => tx.secret_by_id(&id)?,
            None => None,
        } {
            let source = Source::of(tx, primary, None)?;
            let mut row = tx
                .replica_entry(&replica.secret_id)?
                .ok_or_else(|| ApiError::internal("replica without its entry"))?;
            match copy_into(tx, req.keyring, &source, &mut replica, req.now_ms, false) {
                Ok(()) => {
                    row.status = IN_SYNC.to_owned();
                    row.status_message = None;
                }
                Err(e) if !kms_refusal(&e) => return Err(e),
                Err(e) => {
                    row.status = FAILED.to_owned();
                    row.status_message = Some(format!("Replication failed: {}", e.message()));
                }
            }
            tx.put_replica(&row)?;
            continue;
        }
        if let Some(taken) = tx.find_secret(&primary.account_id, &region, &primary.name)? {
            if !req.force || holds_replicas(tx, &taken)? || is_replica(&taken) {
                let why = if req.force {
                    format!(
                        "Replication failed: Secret name {} already exists in region {region} and is itself replicated; it can't be overwritten.",
                        primary.name
                    )
                } else {
                    format!(
                        "Replication failed: Secret name {} already exists in region {region}.",
                        primary.name
                    )
                };
                tx.put_replica(&entry(None, Some(why)))?;
                continue;
            }
            tx.delete_secret(&taken.secret_id)?;
        }
        let mut replica = SecretRow {
            secret_id: uuid::Uuid::new_v4().to_string(),
            account_id: primary.account_id.clone(),
            region: region.clone(),
            name: primary.name.clone(),
            arn: replica_arn(&primary.arn, &region),
            kms_key_id: key.as_ref().map(|k| k.key_id.clone()),
            created_at: req.now_ms,
            last_accessed_at: None,
            primary_region: Some(primary.region.clone()),
            cross_account_primary_arn: None,
            cross_account_status: None,
            cross_account_replica: false,
            ..primary.clone()
        };
        tx.insert_secret(&replica)?;
        let source = Source::of(tx, primary, None)?;
        match copy_into(tx, req.keyring, &source, &mut replica, req.now_ms, false) {
            Ok(()) => tx.put_replica(&entry(Some(replica.secret_id.clone()), None))?,
            Err(e) if !kms_refusal(&e) => return Err(e),
            Err(e) => {
                // Nothing usable was replicated: the replica is removed, its entry says why.
                tx.delete_secret(&replica.secret_id)?;
                tx.put_replica(&entry(
                    None,
                    Some(format!("Replication failed: {}", e.message())),
                ))?;
            }
        }
    }
    if !tx.replicas_of(&primary.secret_id)?.is_empty() && !is_replicated_primary(primary) {
        primary.primary_region = Some(primary.region.clone());
        tx.update_secret(primary)?;
    }
    Ok(())
}

/// Bring every replica of `primary` (as the write left it) up to date with it, after a
/// write on the primary in the same transaction. A secret without replicas costs nothing. A replica that
/// cannot be written (its key disabled, say) is marked `Failed` with the reason, and marked
/// `InSync` again once a later write reaches it; the primary's write stands either way.
pub fn sync(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    primary: &SecretRow,
    now_ms: i64,
) -> Result<(), ApiError> {
    sync_known(tx, keyring, primary, now_ms, None)
}

/// What a PutSecretValue on the primary holds already, for [`sync_known`]: its stage map as
/// the write left it, the version it created with that version's value (whose `Debug` is
/// redacted), and the deprecated versions it dropped. Such a write changes no tags.
#[derive(Debug)]
pub struct Known<'k> {
    pub stages: &'k std::collections::BTreeMap<String, String>,
    pub version: &'k VersionRow,
    pub value: &'k SecretBytes,
    pub pruned: &'k [String],
}

/// [`sync`] after a write that holds `known` (the primary's state in this transaction).
/// A replica served here that was `InSync` (a copy of the primary as it was before the
/// write) takes the write's difference: the new version sealed under its key, the labels
/// that moved, the dropped versions, the dates; nothing of the primary is read or
/// decrypted again, and the version sets are not compared. Any other replica is copied in
/// full, as by [`sync`].
pub fn sync_known(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    primary: &SecretRow,
    now_ms: i64,
    known: Option<Known<'_>>,
) -> Result<(), ApiError> {
    if primary.cross_account_replica {
        sync_cross_account(tx, keyring, primary, now_ms)?;
    }
    if !is_replicated_primary(primary) {
        return Ok(());
    }
    // Read for the first replica copied in full (a primary replicated only to peers, or
    // only to replicas in sync, needs none).
    let mut source = None;
    for mut entry in tx.replicas_of(&primary.secret_id)? {
        if entry.peer {
            enqueue_peer(tx, primary, &entry, false, false, now_ms)?;
            if entry.status == IN_SYNC {
                entry.status = IN_PROGRESS.to_owned();
                tx.put_replica(&entry)?;
            }
            continue;
        }
        let Some(rid) = entry.replica_secret_id.clone() else {
            continue;
        };
        let Some(mut replica) = tx.secret_by_id(&rid)? else {
            continue;
        };
        let by_difference = match known.as_ref().filter(|_| entry.status == IN_SYNC) {
            Some(k) => copy_difference(tx, keyring, primary, k, &mut replica, now_ms),
            None => Ok(false),
        };
        let outcome = match by_difference {
            Ok(true) => Ok(()),
            Ok(false) => copy_full(
                tx,
                keyring,
                primary,
                known.as_ref(),
                &mut source,
                &mut replica,
                now_ms,
            ),
            Err(e) => Err(e),
        };
        let (status, message) = match outcome {
            Ok(()) => (IN_SYNC.to_owned(), None),
            Err(e) if !kms_refusal(&e) => return Err(e),
            Err(e) => (
                FAILED.to_owned(),
                Some(format!("Replication failed: {}", e.message())),
            ),
        };
        if entry.status != status || entry.status_message != message {
            entry.status = status;
            entry.status_message = message;
            tx.put_replica(&entry)?;
        }
    }
    Ok(())
}

/// [`copy_into`] from the primary's state (`source`, read on first use and kept for the
/// next replica).
fn copy_full<'a>(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    primary: &'a SecretRow,
    known: Option<&Known<'_>>,
    source: &mut Option<Source<'a>>,
    replica: &mut SecretRow,
    now_ms: i64,
) -> Result<(), ApiError> {
    let source = match source {
        Some(s) => s,
        None => source.insert(Source::of(tx, primary, known)?),
    };
    copy_into(tx, keyring, source, replica, now_ms, false)
}

/// Bring `replica`, a copy of the primary as it was before the write `known`, up to date
/// with the write's difference. `Ok(false)`, with nothing written, when the replica's own
/// labels show it is not that copy (a label of the write names a version the replica's
/// labels do not, or the new version is there already): the caller copies in full. A KMS
/// refusal comes before anything is written.
fn copy_difference(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    primary: &SecretRow,
    known: &Known<'_>,
    replica: &mut SecretRow,
    now_ms: i64,
) -> Result<bool, ApiError> {
    let current = tx.stages(&replica.secret_id)?;
    let new_id = &known.version.version_id;
    let held = |v: &String| current.values().any(|c| c == v);
    if held(new_id) || !known.stages.values().all(|v| v == new_id || held(v)) {
        return Ok(false);
    }
    let mut key = None;
    let copy = sealed_copy(
        tx,
        keyring,
        replica,
        &mut key,
        known.version,
        Some(known.value),
        now_ms,
    )?;
    tx.insert_version(&copy)?;
    tx.update_stages(&replica.secret_id, &current, known.stages)?;
    for vid in known.pruned {
        tx.delete_version(&replica.secret_id, vid)?;
    }
    copy_metadata(tx, primary, replica)?;
    Ok(true)
}

/// The primary's `version` as a version of `replica`: its value (`plain`, the version's
/// decrypted value; `None` for a version without one) sealed under the replica's key
/// (`key`, looked up on first use), bound to the replica's ARN.
fn sealed_copy(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    replica: &SecretRow,
    key: &mut Option<crate::store::rows::KmsKeyRow>,
    version: &VersionRow,
    plain: Option<&SecretBytes>,
    now_ms: i64,
) -> Result<VersionRow, ApiError> {
    let mut copy = VersionRow {
        secret_id: replica.secret_id.clone(),
        last_accessed_at: None,
        ciphertext: None,
        wrapped_dek: None,
        kms_key_id: None,
        kms_term: None,
        ..version.clone()
    };
    if let (Some(_), Some(plain)) = (&version.value_kind, plain) {
        let k = match key {
            Some(k) => k,
            None => key.insert(values::secret_key(tx, keyring, replica, now_ms)?),
        };
        let sealed =
            keyring.seal_value(tx, k, &replica.arn, &version.version_id, plain.expose())?;
        copy.ciphertext = Some(sealed.ciphertext);
        copy.wrapped_dek = Some(sealed.wrapped_dek);
        copy.kms_key_id = Some(k.key_id.clone());
        copy.kms_term = Some(k.current_term);
    }
    Ok(copy)
}

/// Whether a replica write failed because a KMS key could not be used (disabled, pending
/// deletion, gone): the replica is then `Failed`, the primary's write stands. Any other
/// error fails the whole transaction.
fn kms_refusal(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::EncryptionFailure(_)
            | ApiError::DecryptionFailure(_)
            | ApiError::KmsDisabled(_)
            | ApiError::KmsInvalidState(_)
            | ApiError::KmsNotFound(_)
    )
}

/// What every replica is made a copy of: the primary as the write left it, with its labels
/// and tags (read once for all its replicas), and the versions copied so far (each read and
/// decrypted once, however many replicas it is sealed again for).
struct Source<'a> {
    primary: &'a SecretRow,
    stages: std::collections::BTreeMap<String, String>,
    tags: Vec<(String, String)>,
    versions: RefCell<HashMap<String, Option<VersionRow>>>,
    values: RefCell<HashMap<String, SecretBytes>>,
}

impl<'a> Source<'a> {
    /// The primary's state: `known`'s parts as given, the rest read when needed.
    fn of(
        tx: &mut Tx<'_>,
        primary: &'a SecretRow,
        known: Option<&Known<'_>>,
    ) -> Result<Self, ApiError> {
        let stages = match known {
            Some(k) => k.stages.clone(),
            None => tx.stages(&primary.secret_id)?,
        };
        let source = Self {
            primary,
            stages,
            tags: tx.tags(&primary.secret_id)?,
            versions: RefCell::default(),
            values: RefCell::default(),
        };
        if let Some(k) = known {
            let vid = k.version.version_id.clone();
            source
                .versions
                .borrow_mut()
                .insert(vid.clone(), Some(k.version.clone()));
            if k.version.value_kind.is_some() {
                source.values.borrow_mut().insert(vid, k.value.clone());
            }
        }
        Ok(source)
    }

    /// The primary's version `vid`.
    fn version(&self, tx: &mut Tx<'_>, vid: &str) -> Result<Option<VersionRow>, ApiError> {
        if let Some(v) = self.versions.borrow().get(vid) {
            return Ok(v.clone());
        }
        let v = tx.version(&self.primary.secret_id, vid)?;
        self.versions.borrow_mut().insert(vid.to_owned(), v.clone());
        Ok(v)
    }

    /// The value of the primary's `version`, decrypted under the primary's key.
    fn open(
        &self,
        tx: &mut Tx<'_>,
        keyring: &Keyring,
        version: &VersionRow,
    ) -> Result<SecretBytes, ApiError> {
        if let Some(v) = self.values.borrow().get(&version.version_id) {
            return Ok(v.clone());
        }
        let plain = values::open_version(tx, keyring, self.primary, version)?;
        self.values
            .borrow_mut()
            .insert(version.version_id.clone(), plain.clone());
        Ok(plain)
    }
}

/// Make `replica` a copy of `primary`: metadata, tags, versions (sealed again under the
/// replica's key) and staging labels.
/// With `values_only` (a cross-account replica), only versions and staging labels are
/// copied; the replica's own metadata stays, its last-changed date moves when they changed.
fn copy_into(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    source: &Source<'_>,
    replica: &mut SecretRow,
    now_ms: i64,
    values_only: bool,
) -> Result<(), ApiError> {
    let primary = source.primary;
    // New versions first (oldest first): when one cannot be sealed under the replica's key,
    // the replica is left as it was (its labels still name versions it has).
    let missing = tx.versions_missing(&primary.secret_id, &replica.secret_id)?;
    let extra = tx.versions_missing(&replica.secret_id, &primary.secret_id)?;
    let mut new_versions = Vec::with_capacity(missing.len());
    for vid in &missing {
        if let Some(version) = source.version(tx, vid)? {
            new_versions.push(version);
        }
    }
    new_versions.sort_by(|a, b| (a.created_at, &a.version_id).cmp(&(b.created_at, &b.version_id)));
    let mut key = None;
    for version in new_versions {
        let plain = match version.value_kind {
            Some(_) => Some(source.open(tx, keyring, &version)?),
            None => None,
        };
        let copy = sealed_copy(
            tx,
            keyring,
            replica,
            &mut key,
            &version,
            plain.as_ref(),
            now_ms,
        )?;
        tx.insert_version(&copy)?;
    }
    // A placeholder copied while empty, filled on the primary since: seal its value here too.
    for vid in tx.versions_filled_since_copy(&primary.secret_id, &replica.secret_id)? {
        let Some(version) = source.version(tx, &vid)? else {
            continue;
        };
        let Some(kind) = version.value_kind.clone() else {
            continue;
        };
        let k = match &key {
            Some(k) => k,
            None => key.insert(values::secret_key(tx, keyring, replica, now_ms)?),
        };
        let plain = source.open(tx, keyring, &version)?;
        let sealed = keyring.seal_value(tx, k, &replica.arn, &vid, plain.expose())?;
        tx.fill_version(
            &replica.secret_id,
            &vid,
            &kind,
            &sealed.ciphertext,
            &sealed.wrapped_dek,
            &k.key_id,
            k.current_term,
        )?;
    }
    let mut changed = !missing.is_empty() || !extra.is_empty() || key.is_some();
    let current = tx.stages(&replica.secret_id)?;
    if current != source.stages {
        tx.update_stages(&replica.secret_id, &current, &source.stages)?;
        changed = true;
    }
    for vid in &extra {
        tx.delete_version(&replica.secret_id, vid)?;
    }
    if values_only {
        if changed {
            tx.set_secret_changed(&replica.secret_id, now_ms)?;
            replica.last_changed_at = now_ms;
        }
        return Ok(());
    }
    copy_metadata(tx, primary, replica)?;
    if tx.tags(&replica.secret_id)? != source.tags {
        tx.replace_tags(&replica.secret_id, &source.tags)?;
    }
    Ok(())
}

/// Make `replica`'s row the primary's metadata, with what the replica keeps of its own:
/// identity, region, key, dates of its own, its primary, and its deletion state (a primary
/// with replicas is never deleted). Written only when it differs.
fn copy_metadata(
    tx: &mut Tx<'_>,
    primary: &SecretRow,
    replica: &mut SecretRow,
) -> Result<(), ApiError> {
    let mine = SecretRow {
        secret_id: replica.secret_id.clone(),
        region: replica.region.clone(),
        arn: replica.arn.clone(),
        kms_key_id: replica.kms_key_id.clone(),
        created_at: replica.created_at,
        last_accessed_at: replica.last_accessed_at,
        primary_region: replica.primary_region.clone(),
        deleted_at: replica.deleted_at,
        purge_at: replica.purge_at,
        // Rotation runs on the primary only; its results reach the replica through this
        // copy. A replica is never due itself (the scheduler looks only at this column).
        next_rotation_at: None,
        cross_account_primary_arn: None,
        cross_account_status: None,
        cross_account_replica: false,
        ..primary.clone()
    };
    let same_but_date = SecretRow {
        last_changed_at: replica.last_changed_at,
        ..mine.clone()
    };
    if !same_metadata(&same_but_date, replica) {
        tx.update_secret(&mine)?;
    } else if mine.last_changed_at != replica.last_changed_at {
        tx.set_secret_changed(&mine.secret_id, mine.last_changed_at)?;
    }
    *replica = mine;
    Ok(())
}

/// Whether two rows of the same secret hold the same metadata.
fn same_metadata(a: &SecretRow, b: &SecretRow) -> bool {
    a.name == b.name
        && a.description == b.description
        && a.kms_key_id == b.kms_key_id
        && a.last_changed_at == b.last_changed_at
        && a.last_accessed_at == b.last_accessed_at
        && a.deleted_at == b.deleted_at
        && a.purge_at == b.purge_at
        && a.owning_service == b.owning_service
        && a.primary_region == b.primary_region
        && a.resource_policy == b.resource_policy
        && a.tag_list == b.tag_list
        && a.secret_type == b.secret_type
        && a.external_rotation_metadata == b.external_rotation_metadata
        && a.external_rotation_role_arn == b.external_rotation_role_arn
        && a.rotation_enabled == b.rotation_enabled
        && a.rotation_lambda_arn == b.rotation_lambda_arn
        && a.rotation_rules == b.rotation_rules
        && a.last_rotated_at == b.last_rotated_at
        && a.next_rotation_at == b.next_rotation_at
}

/// After UpdateSecret changed a replica's own key: its primary's `ReplicationStatus` shows
/// the new one. Nothing for a secret that is not a replica.
pub fn replica_key_changed(tx: &mut Tx<'_>, replica: &SecretRow) -> Result<(), ApiError> {
    if !is_replica(replica) {
        return Ok(());
    }
    let Some(mut entry) = tx.replica_entry(&replica.secret_id)? else {
        return Ok(());
    };
    entry.kms_key_id = match &replica.kms_key_id {
        Some(id) => tx.kms_key(id)?.map_or_else(|| id.clone(), |k| k.arn),
        None => DEFAULT_KEY_ALIAS.to_owned(),
    };
    tx.put_replica(&entry)?;
    Ok(())
}

/// Remove `region`'s replica of `primary` (its secret and its entry; on a peer, through
/// the outbox); nothing when the region is not replicated.
pub fn remove(
    tx: &mut Tx<'_>,
    primary: &SecretRow,
    region: &str,
    now_ms: i64,
) -> Result<(), ApiError> {
    let entries = tx.replicas_of(&primary.secret_id)?;
    let Some(entry) = entries.into_iter().find(|e| e.region == region) else {
        return Ok(());
    };
    if entry.peer {
        enqueue_peer(tx, primary, &entry, true, false, now_ms)?;
    }
    if let Some(id) = &entry.replica_secret_id {
        tx.delete_secret(id)?;
    }
    tx.delete_replica(&primary.secret_id, region)?;
    Ok(())
}

/// After replicas were removed: a primary with none left is a standalone secret again.
pub fn settle_primary(tx: &mut Tx<'_>, primary: &mut SecretRow) -> Result<(), ApiError> {
    if is_replicated_primary(primary) && tx.replicas_of(&primary.secret_id)?.is_empty() {
        primary.primary_region = None;
        tx.update_secret(primary)?;
    }
    Ok(())
}

/// AWS's refusal to delete a primary that still has replicas (region replicas, or an
/// associated cross-account replica: a detached one does not hold it).
pub fn ensure_no_replicas(tx: &mut Tx<'_>, secret: &SecretRow) -> Result<(), ApiError> {
    if secret.cross_account_replica {
        if let Some(entry) = tx.cross_account_entry(&secret.secret_id)? {
            if entry.status != DETACHED {
                return Err(ApiError::InvalidParameter(format!(
                    "You can't delete secret {} that is associated with cross-account replica {}. Call DisassociateCrossAccountReplica first.",
                    secret.arn,
                    entry.replica_arn.unwrap_or_default()
                )));
            }
        }
    }
    let regions: Vec<String> = tx
        .replicas_of(&secret.secret_id)?
        .into_iter()
        .map(|r| r.region)
        .collect();
    if regions.is_empty() {
        return Ok(());
    }
    Err(ApiError::InvalidParameter(format!(
        "You can't delete secret {} that still has replica regions [{}].",
        secret.arn,
        regions.join(", ")
    )))
}

// ---- Cross-account replicas --------------------------------------------------------------

/// `CrossAccountPrimaryType`: what a cross-account replica's DescribeSecret shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct CrossAccountPrimary {
    #[serde(rename = "PrimarySecretARN")]
    pub primary_secret_arn: String,
    pub replication_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
}

/// `CrossAccountReplicaEntry`: what a cross-account primary's DescribeSecret shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct CrossAccountReplicaEntry {
    #[serde(rename = "ReplicaSecretARN")]
    pub replica_secret_arn: String,
    #[serde(rename = "ReplicationRoleARN", skip_serializing_if = "Option::is_none")]
    pub replication_role_arn: Option<String>,
    pub replication_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
}

/// The partition of every ARN this server makes.
const PARTITION: &str = "aws";

/// The parts of a secret ARN that cross-account replication compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretArnParts {
    pub arn: String,
    pub partition: String,
    pub region: String,
    pub account: String,
}

/// Split `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`; `None` for anything else.
pub fn secret_arn_parts(arn: &str) -> Option<SecretArnParts> {
    let mut it = arn.splitn(7, ':');
    let (Some("arn"), Some(partition), Some("secretsmanager"), Some(region), Some(account)) =
        (it.next(), it.next(), it.next(), it.next(), it.next())
    else {
        return None;
    };
    let (Some("secret"), Some(name)) = (it.next(), it.next()) else {
        return None;
    };
    let account_ok = account.len() == 12 && account.chars().all(|c| c.is_ascii_digit());
    if partition.is_empty() || region.is_empty() || !account_ok || name.is_empty() {
        return None;
    }
    Some(SecretArnParts {
        arn: arn.to_owned(),
        partition: partition.to_owned(),
        region: region.to_owned(),
        account: account.to_owned(),
    })
}

/// CreateSecret with `CrossAccountPrimaryARN`: the members a cross-account replica can't
/// have (its value and description come from its primary), and its required key.
pub fn validate_cross_account_create(input: &super::create_secret::Input) -> Result<(), ApiError> {
    let refused = [
        ("SecretString", input.secret_string.is_some()),
        ("SecretBinary", input.secret_binary.is_some()),
        ("Description", input.description.is_some()),
        ("AddReplicaRegions", input.add_replica_regions.is_some()),
        ("Type", input.secret_type.is_some()),
    ];
    if let Some((name, _)) = refused.iter().find(|(_, present)| *present) {
        return Err(ApiError::InvalidParameter(format!(
            "You can't include {name} when you create a cross-account replica secret (CrossAccountPrimaryARN)."
        )));
    }
    if input.kms_key_id.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::InvalidParameter(XACCT_NEEDS_CMK.into()));
    }
    Ok(())
}

/// The primary a new cross-account replica names: a secret ARN of another account in the
/// request's own region and partition.
pub fn check_cross_account_primary(scope: &Scope, arn: &str) -> Result<SecretArnParts, ApiError> {
    let parts = secret_arn_parts(arn).ok_or_else(|| {
        ApiError::InvalidParameter(format!(
            "CrossAccountPrimaryARN {arn} isn't the full ARN of a secret (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)."
        ))
    })?;
    if parts.region != scope.region || parts.partition != PARTITION {
        return Err(ApiError::InvalidParameter(format!(
            "The primary secret {arn} must be in the same Region and partition as the replica secret ({})."
        , scope.region)));
    }
    if parts.account == scope.account {
        return Err(ApiError::InvalidParameter(format!(
            "The primary secret {arn} must be in a different AWS account than the replica secret."
        )));
    }
    Ok(parts)
}

/// The managed resource policy (`cross-account-replication`) a new cross-account replica
/// gets: the primary's account may accept replication into it. StopReplicationToReplica
/// removes it.
pub fn cross_account_policy(primary_account: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": "cross-account-replication",
        "Statement": [{
            "Sid": "CrossAccountReplication",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:{}:iam::{primary_account}:root", PARTITION)},
            "Action": ACCEPT_ACTION,
            "Resource": "*"
        }]
    })
    .to_string()
}

/// The action AssociateCrossAccountReplica needs on the replica secret, decided with the
/// replica's resource policy (Secrets Manager "calls AcceptCrossAccountReplication on the
/// replica secret on your behalf").
pub const ACCEPT_ACTION: &str = "secretsmanager:AcceptCrossAccountReplication";

/// DescribeSecret's `CrossAccountPrimary` (on a cross-account replica) and
/// `CrossAccountReplicas` (on a primary with a cross-account entry).
pub fn cross_account_view(
    tx: &mut Tx<'_>,
    secret: &SecretRow,
) -> Result<
    (
        Option<CrossAccountPrimary>,
        Option<Vec<CrossAccountReplicaEntry>>,
    ),
    ApiError,
> {
    let primary = match &secret.cross_account_primary_arn {
        Some(arn) => {
            let entry = tx
                .replica_entry(&secret.secret_id)?
                .filter(|e| e.cross_account);
            let (status, message) = match entry {
                Some(e) => (e.status, e.status_message),
                None => {
                    let status = secret
                        .cross_account_status
                        .clone()
                        .unwrap_or_else(|| PENDING.to_owned());
                    let message = (status == DETACHED).then(|| {
                        "The primary secret's account disassociated this replica (DisassociateCrossAccountReplica); it no longer receives changes. Call StopReplicationToReplica to make it a standalone secret.".to_owned()
                    });
                    (status, message)
                }
            };
            Some(CrossAccountPrimary {
                primary_secret_arn: arn.clone(),
                replication_status: status,
                status_message: message,
            })
        }
        None => None,
    };
    let replicas = if secret.cross_account_replica {
        tx.cross_account_entry(&secret.secret_id)?.map(|e| {
            vec![CrossAccountReplicaEntry {
                replica_secret_arn: e.replica_arn.unwrap_or_default(),
                replication_role_arn: e.replication_role_arn,
                replication_status: e.status,
                status_message: e.status_message,
            }]
        })
    } else {
        None
    };
    Ok((primary, replicas))
}

/// Bring `primary`'s associated cross-account replica up to date (versions and labels
/// only); a KMS refusal leaves it `Failed` with the reason, a later write retries.
fn sync_cross_account(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    primary: &SecretRow,
    now_ms: i64,
) -> Result<(), ApiError> {
    let Some(mut entry) = tx.cross_account_entry(&primary.secret_id)? else {
        return Ok(());
    };
    if entry.status == DETACHED {
        return Ok(());
    }
    let replica = match &entry.replica_secret_id {
        Some(id) => tx.secret_by_id(id)?,
        None => None,
    };
    let Some(mut replica) =
        replica.filter(|r| r.cross_account_primary_arn.as_deref() == Some(primary.arn.as_str()))
    else {
        return Ok(());
    };
    let key = match &replica.kms_key_id {
        Some(id) => tx.kms_key(id)?,
        None => None,
    };
    let granted = key
        .as_ref()
        .is_some_and(|k| replica_key_lets_encrypt(k, &primary.account_id, &replica.arn));
    let (status, message) = if granted {
        let source = Source::of(tx, primary, None)?;
        match copy_into(tx, keyring, &source, &mut replica, now_ms, true) {
            Ok(()) => (IN_SYNC.to_owned(), None),
            Err(e) if !kms_refusal(&e) => return Err(e),
            Err(e) => (
                FAILED.to_owned(),
                Some(format!("Replication failed: {}", e.message())),
            ),
        }
    } else {
        (
            FAILED.to_owned(),
            Some(format!(
                "Replication failed: the key policy of the replica secret's KMS key does not allow the primary secret's account {} kms:Encrypt.",
                primary.account_id
            )),
        )
    };
    if entry.status != status || entry.status_message != message {
        entry.status = status;
        entry.status_message = message;
        tx.put_replica(&entry)?;
    }
    Ok(())
}

/// Whether the replica's key policy (alone) lets the primary's account use the replica's
/// key to seal a value of `replica_arn`, as each replication of a later write does: AWS
/// decides `kms:Encrypt` on the replica's key for every value it replicates, so a key
/// policy the replica's account changed to no longer grant the primary's account stops
/// replication. Replication here runs as no principal of the primary's account in
/// particular, so the key policy must grant the account itself (`Principal` naming the
/// account or its root); condition keys the server can't know here (organization, tags)
/// are absent, so a statement that needs them does not allow.
fn replica_key_lets_encrypt(
    key: &crate::store::rows::KmsKeyRow,
    primary_account: &str,
    replica_arn: &str,
) -> bool {
    use crate::policy::{self, PrincipalInfo};
    if key.key_manager == "AWS" {
        return false;
    }
    let text = crate::kms::key_policy::effective(key);
    let Ok(parsed) = policy::Policy::parse(&text, policy::PolicyType::Resource) else {
        return false;
    };
    let set = policy::PolicySet {
        resource: Some(std::sync::Arc::new(parsed)),
        ..policy::PolicySet::default()
    };
    let rctx = policy::RequestContext::new(
        PrincipalInfo::root(primary_account),
        "kms:Encrypt",
        &key.arn,
        Some(&key.account_id),
    )
    .with("kms:CallerAccount", [primary_account])
    .with(
        "kms:ViaService",
        [crate::kms::key_policy::via_service(&key.region).as_str()],
    )
    .with("aws:ViaAWSService", ["true"])
    .with("kms:EncryptionContext:SecretARN", [replica_arn])
    .with(
        "kms:EncryptionContextKeys",
        ["SecretARN", "SecretVersionId"],
    );
    policy::authorize(&rctx, &set).is_allowed()
}

/// What AssociateCrossAccountReplica asks for, once its input was checked.
#[derive(Debug)]
pub struct Association<'a> {
    pub keyring: &'a Keyring,
    pub auth: &'a Authorized,
    pub replica_arn: &'a str,
    pub role_arn: Option<String>,
    /// `ReplicaRestriction` is `SameOrg` (the default).
    pub same_org: bool,
    pub now_ms: i64,
}

/// Associate `primary` with the cross-account replica `req` names, and copy its versions
/// into it, in the caller's transaction: any refusal or failure returns an error and the
/// transaction leaves both secrets as they were. Again for the same replica, repairs it.
pub fn associate(
    tx: &mut Tx<'_>,
    req: &Association<'_>,
    primary: &mut SecretRow,
) -> Result<ReplicaRow, ApiError> {
    super::ensure_not_deleted(primary)?;
    if req.auth.principal.account_id != primary.account_id {
        return Err(ApiError::InvalidRequest(format!(
            "You must call AssociateCrossAccountReplica from the account that owns the primary secret ({})."
        , primary.account_id)));
    }
    let parts = secret_arn_parts(req.replica_arn).ok_or_else(|| {
        ApiError::InvalidParameter(format!(
            "CrossAccountReplicaARN {} isn't the full ARN of a secret (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME).",
            req.replica_arn
        ))
    })?;
    let own = secret_arn_parts(&primary.arn)
        .ok_or_else(|| ApiError::internal("a stored secret ARN that does not parse"))?;
    if parts.region != own.region || parts.partition != own.partition {
        return Err(ApiError::InvalidParameter(format!(
            "The replica secret {} must be in the same Region and partition as the primary secret ({}).",
            req.replica_arn, own.region
        )));
    }
    if parts.account == own.account {
        return Err(ApiError::InvalidParameter(format!(
            "The replica secret {} must be in a different AWS account than the primary secret.",
            req.replica_arn
        )));
    }
    if let Some(role) = &req.role_arn {
        let role_account = role
            .strip_prefix(&format!("arn:{}:iam::", own.partition))
            .and_then(|r| r.split_once(":role/"))
            .map(|(a, _)| a);
        if role_account != Some(own.account.as_str()) {
            return Err(ApiError::InvalidParameter(format!(
                "ReplicationRoleARN {role} isn't the ARN of an IAM role in the primary secret's account ({}).",
                own.account
            )));
        }
    }
    // The replica's account decides (its resource policy, the caller's identity policies,
    // with the replica's tags and its key's policy for kms:Encrypt) before anything about
    // the replica is told: a missing secret is decided on the ARN named, as for any request.
    let replica = tx
        .secret_by_arn(req.replica_arn)?
        .filter(|r| r.region == own.region);
    let replica_key = match replica.as_ref().and_then(|r| r.kms_key_id.clone()) {
        Some(id) => tx.kms_key(&id)?,
        None => None,
    };
    let facts = SecretFacts {
        tags: match &replica {
            Some(r) => tx.tags(&r.secret_id)?,
            None => Vec::new(),
        },
        key_aliases: super::key_aliases(tx, replica_key.as_ref())?,
        key: replica_key.clone(),
        key_actions: if replica_key.is_some() {
            &["kms:Encrypt"]
        } else {
            &[]
        },
        key_for: None,
        request_keys: Vec::new(),
        secret_keys: None,
        policy_cell: None,
    };
    req.auth
        .authorize_secret(
            ACCEPT_ACTION,
            req.replica_arn,
            replica.as_ref().map(|r| (r, &facts)),
        )
        .map_err(|r| r.error)?;
    let mut replica = replica.ok_or_else(ApiError::secret_not_found)?;
    if replica.cross_account_primary_arn.as_deref() != Some(primary.arn.as_str()) {
        return Err(ApiError::InvalidRequest(format!(
            "The secret {} isn't a cross-account replica of secret {}: the replica account must create it with CreateSecret and CrossAccountPrimaryARN set to the primary secret's ARN.",
            replica.arn, primary.arn
        )));
    }
    if replica.deleted_at.is_some() {
        return Err(ApiError::InvalidRequest(format!(
            "The replica secret {} is scheduled for deletion.",
            replica.arn
        )));
    }
    if replica_key.is_none() {
        return Err(ApiError::InvalidRequest(format!(
            "The replica secret {} isn't encrypted with a customer managed KMS key.",
            replica.arn
        )));
    }
    if req.same_org
        && !req
            .auth
            .same_organization(&primary.account_id, &replica.account_id)
    {
        return Err(ApiError::InvalidRequest(format!(
            "The replica account {} isn't in the same organization as the primary account {}. Set ReplicaRestriction to NoRestriction to replicate outside the organization.",
            replica.account_id, primary.account_id
        )));
    }
    if let Some(existing) = tx.cross_account_entry(&primary.secret_id)? {
        let same = existing.replica_secret_id.as_deref() == Some(replica.secret_id.as_str());
        if !same && existing.status != DETACHED {
            return Err(ApiError::LimitExceeded(format!(
                "Secret {} already has cross-account replica {}; a primary secret can have at most one. Call DisassociateCrossAccountReplica first.",
                primary.arn,
                existing.replica_arn.unwrap_or_default()
            )));
        }
    }
    // Each later write is replicated under the key policy alone (see
    // `replica_key_lets_encrypt`): an association its writes could not reach is refused.
    if !replica_key
        .as_ref()
        .is_some_and(|k| replica_key_lets_encrypt(k, &primary.account_id, &replica.arn))
    {
        return Err(ApiError::AccessDenied(format!(
            "The key policy of the replica secret's KMS key does not allow the primary secret's account {} kms:Encrypt.",
            primary.account_id
        )));
    }
    let source = Source::of(tx, primary, None)?;
    copy_into(tx, req.keyring, &source, &mut replica, req.now_ms, true)?;
    if replica.cross_account_status.is_some() {
        replica.cross_account_status = None;
        tx.update_secret(&replica)?;
    }
    let entry = ReplicaRow {
        primary_secret_id: primary.secret_id.clone(),
        region: primary.region.clone(),
        replica_secret_id: Some(replica.secret_id.clone()),
        kms_key_id: replica_key.map_or_else(|| DEFAULT_KEY_ALIAS.to_owned(), |k| k.arn),
        status: IN_SYNC.to_owned(),
        status_message: None,
        created_at: req.now_ms,
        peer: false,
        cross_account: true,
        replica_arn: Some(replica.arn.clone()),
        replication_role_arn: req.role_arn.clone(),
    };
    tx.put_replica(&entry)?;
    if !primary.cross_account_replica {
        primary.cross_account_replica = true;
        tx.update_secret(primary)?;
    }
    Ok(entry)
}

/// Remove `primary`'s cross-account entry for `replica_arn`: the replica (if it is still
/// this primary's) stays a replica, `Detached`, until its account promotes it.
pub fn disassociate(
    tx: &mut Tx<'_>,
    auth: &Authorized,
    primary: &mut SecretRow,
    replica_arn: &str,
) -> Result<(), ApiError> {
    if auth.principal.account_id != primary.account_id {
        return Err(ApiError::InvalidRequest(format!(
            "You must call DisassociateCrossAccountReplica from the account that owns the primary secret ({}).",
            primary.account_id
        )));
    }
    let entry = tx
        .cross_account_entry(&primary.secret_id)?
        .filter(|e| e.replica_arn.as_deref() == Some(replica_arn))
        .ok_or_else(|| {
            ApiError::ResourceNotFound(format!(
                "Secrets Manager can't find cross-account replica {replica_arn} of secret {}.",
                primary.arn
            ))
        })?;
    tx.delete_replica(&entry.primary_secret_id, &entry.region)?;
    if let Some(id) = &entry.replica_secret_id {
        if let Some(mut replica) = tx.secret_by_id(id)? {
            if replica.cross_account_primary_arn.as_deref() == Some(primary.arn.as_str()) {
                replica.cross_account_status = Some(DETACHED.to_owned());
                tx.update_secret(&replica)?;
            }
        }
    }
    primary.cross_account_replica = false;
    tx.update_secret(primary)?;
    Ok(())
}

/// StopReplicationToReplica on a cross-account replica: it becomes a standalone secret of
/// its account (its managed resource policy removed); its primary's entry, if it still
/// stands, shows `Detached`.
pub fn promote_cross_account(tx: &mut Tx<'_>, replica: &mut SecretRow) -> Result<(), ApiError> {
    if let Some(mut entry) = tx
        .replica_entry(&replica.secret_id)?
        .filter(|e| e.cross_account)
    {
        entry.status = DETACHED.to_owned();
        entry.status_message = Some(
            "The replica's account stopped replication (StopReplicationToReplica); the replica is a standalone secret.".to_owned(),
        );
        tx.put_replica(&entry)?;
    }
    replica.cross_account_primary_arn = None;
    replica.cross_account_status = None;
    replica.resource_policy = None;
    tx.update_secret(replica)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_arn_is_the_primary_arn_with_the_region_swapped() {
        assert_eq!(
            replica_arn(
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db:x-AbCdEf",
                "eu-west-1"
            ),
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app/db:x-AbCdEf"
        );
    }

    #[test]
    fn secret_arns_are_split_for_cross_account_checks() {
        let p = secret_arn_parts(
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db:x-AbCdEf",
        )
        .unwrap();
        assert_eq!(
            (p.partition.as_str(), p.region.as_str(), p.account.as_str()),
            ("aws", "us-east-1", "111122223333")
        );
        for bad in [
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:",
            "arn:aws:secretsmanager:us-east-1:1111:secret:x",
            "arn:aws:kms:us-east-1:111122223333:key/x",
            "arn:aws:secretsmanager::111122223333:secret:x",
            "app/db",
        ] {
            assert!(secret_arn_parts(bad).is_none(), "{bad}");
        }
    }

    fn key_with(policy: serde_json::Value) -> crate::store::rows::KmsKeyRow {
        crate::store::rows::KmsKeyRow::customer_for_test(
            "444455556666",
            "k1",
            Some(policy.to_string()),
        )
    }

    fn granting(principal: &str, condition: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "kms:Encrypt",
             "Resource": "*", "Condition": condition}]})
    }

    #[test]
    fn replication_seals_only_into_a_key_whose_policy_grants_the_primary_account() {
        let replica = "arn:aws:secretsmanager:us-east-1:444455556666:secret:copy-AbCdEf";
        let none = serde_json::json!({});
        let lets = |policy| replica_key_lets_encrypt(&key_with(policy), "111122223333", replica);
        // the account, by its root or its id
        assert!(lets(granting(
            "arn:aws:iam::111122223333:root",
            none.clone()
        )));
        assert!(lets(granting("111122223333", none.clone())));
        // one role of it, another account, the owner only: not the account
        assert!(!lets(granting(
            "arn:aws:iam::111122223333:role/replicator",
            none.clone()
        )));
        assert!(!lets(granting(
            "arn:aws:iam::777788889999:root",
            none.clone()
        )));
        assert!(!lets(
            serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
             "Action": "kms:*", "Resource": "*"}]})
        ));
        // conditions on the replica's encryption context
        let on = |arn: &str| serde_json::json!({"StringEquals": {"kms:EncryptionContext:SecretARN": arn}});
        assert!(lets(granting("111122223333", on(replica))));
        assert!(!lets(granting(
            "111122223333",
            on("arn:aws:secretsmanager:us-east-1:444455556666:secret:other-AbCdEf")
        )));
        // an explicit deny of the account wins
        let mut denied = granting("111122223333", none);
        denied["Statement"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"Effect": "Deny",
                "Principal": {"AWS": "111122223333"}, "Action": "kms:*", "Resource": "*"}));
        assert!(!lets(denied));
    }

    #[test]
    fn the_managed_policy_lets_the_primary_account_accept_only() {
        let text = cross_account_policy("111122223333");
        let policy =
            crate::policy::Policy::parse(&text, crate::policy::PolicyType::Resource).unwrap();
        drop(policy);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let st = &v["Statement"][0];
        assert_eq!(st["Action"], ACCEPT_ACTION);
        assert_eq!(st["Principal"]["AWS"], "arn:aws:iam::111122223333:root");
    }

    #[test]
    fn regions_follow_the_model_pattern() {
        for ok in ["us-east-1", "eu-west-3", "us-gov-west-1", "a-1"] {
            assert!(validate_region("region", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "useast1",
            "us-east-",
            "US-east-1",
            "us--east-1",
            "-1",
            "us-east-1a",
        ] {
            let e = validate_region("region", bad).unwrap_err();
            assert_eq!(e.code(), "ValidationException", "{bad}");
        }
    }

    #[test]
    fn add_replica_regions_are_checked() {
        let r = |region: Option<&str>| ReplicaRegion {
            region: region.map(str::to_owned),
            kms_key_id: None,
        };
        assert!(validate_add_regions(&[r(Some("eu-west-1"))]).is_ok());
        let e = validate_add_regions(&[]).unwrap_err();
        assert!(
            e.message().contains("'addReplicaRegions'")
                && e.message().contains("greater than or equal to 1"),
            "{e:?}"
        );
        let e = validate_add_regions(&[r(None)]).unwrap_err();
        assert!(
            e.message().contains("addReplicaRegions.1.member.region"),
            "{e:?}"
        );
        let e = validate_add_regions(&[r(Some("eu-west-1")), r(Some("eu-west-1"))]).unwrap_err();
        assert_eq!(e.code(), "InvalidParameterException");
    }
}
