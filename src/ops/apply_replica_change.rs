//! StrongroomApplyReplicaChange (`X-Amz-Target: secretsmanager.StrongroomApplyReplicaChange`,
//! IAM action `strongroom:ApplyReplicaChange`): on a peer server, a primary's server applies a
//! change of a primary secret to its replica in this server's region (see `crate::replication`).
//!
//! The change carries the primary's full state; its values are sealed here under the
//! replica's own key (the requested `KmsKeyId`, resolved in this region, or this region's
//! `aws/secretsmanager`). A change whose `Seq` is not above the last one applied for the
//! primary and region is already applied: it is acknowledged and ignored. A replica promoted
//! with StopReplicationToReplica refuses every later change of its old primary, and a name
//! taken by another secret is refused, unless `ForceOverwrite` (the primary's
//! `ForceOverwriteReplicaSecret`) allows replacing that secret.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::replicas;
use super::{values, Authorized, Ctx, Operation, Target, Targeted};
use crate::error::ApiError;
use crate::store::rows::{SecretRow, VersionRow};
use crate::store::Tx;

/// One version as shipped: its value (base64 of the plaintext) only in memory and on the
/// TLS connection.
#[derive(Deserialize, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ShippedVersion {
    pub version_id: String,
    pub created_at: i64,
    /// `S` or `B`; `None` for a version without a value (a rotation's placeholder).
    pub value_kind: Option<String>,
    pub value: Option<String>,
    /// The value is left out because the replica holds it already (a version's value never
    /// changes). A replica that does not hold it answers `PreconditionNotMetException`, and
    /// the primary sends the version again with its value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_omitted: Option<bool>,
}

impl std::fmt::Debug for ShippedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShippedVersion")
            .field("version_id", &self.version_id)
            .field("value_kind", &self.value_kind)
            .finish_non_exhaustive()
    }
}

impl Drop for ShippedVersion {
    fn drop(&mut self) {
        if let Some(v) = &mut self.value {
            v.zeroize();
        }
    }
}

/// The primary's state as shipped.
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ShippedSecret {
    pub name: String,
    pub description: Option<String>,
    pub last_changed_at: i64,
    pub owning_service: Option<String>,
    pub resource_policy: Option<String>,
    pub tag_list: bool,
    pub secret_type: Option<String>,
    pub external_rotation_metadata: Option<String>,
    pub external_rotation_role_arn: Option<String>,
    pub rotation_enabled: Option<bool>,
    pub rotation_lambda_arn: Option<String>,
    pub rotation_rules: Option<String>,
    pub last_rotated_at: Option<i64>,
    pub tags: Vec<(String, String)>,
    /// Staging label → version id.
    pub stages: BTreeMap<String, String>,
    pub versions: Vec<ShippedVersion>,
}

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    /// The primary secret's ARN (its region and account).
    pub primary_arn: Option<String>,
    /// The outbox sequence number of the latest change this delivery covers.
    pub seq: Option<i64>,
    /// Remove the replica (RemoveRegionsFromReplication on the primary).
    pub delete: Option<bool>,
    /// Replace a secret of another owner holding the replica's name.
    pub force_overwrite: Option<bool>,
    /// The replica's key as requested on the primary (resolved here, on creation).
    pub kms_key_id: Option<String>,
    pub secret: Option<ShippedSecret>,
}

impl Targeted for Input {
    fn target(&self) -> Target {
        Target::Any
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    /// The replica's ARN (the primary's with the region swapped).
    #[serde(rename = "ARN")]
    pub arn: String,
    /// Whether the change was applied now (false: already applied before).
    pub applied: bool,
    /// The replica's key as the primary's `ReplicationStatus` shows it.
    pub kms_key_id: Option<String>,
    /// This server understands `ValueOmitted`: the primary may leave out the values it
    /// delivered before. A primary never omits a value for a peer that has not said so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted_values_accepted: Option<bool>,
}

/// The refusal of a change to a replica promoted since.
pub fn promoted_message(arn: &str, region: &str) -> String {
    format!(
        "The replica {arn} in region {region} was promoted to a standalone secret (StopReplicationToReplica); it no longer accepts changes from its primary."
    )
}

#[derive(Debug)]
pub struct ApplyReplicaChange;

impl Operation for ApplyReplicaChange {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = crate::replication::APPLY_OPERATION;
    const ACTION: &'static str = crate::replication::APPLY_ACTION;
    const READ_ONLY: bool = false;

    /// `strongroom:PrimaryArn` and `strongroom:PrimaryRegion`: a peer's policy may narrow
    /// what its replication principal applies (the resource is `*`, as the replica may not
    /// exist yet).
    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        let Some(arn) = input.primary_arn.clone() else {
            return Vec::new();
        };
        let region = parse_primary_arn(&arn).map(|(r, _)| r).unwrap_or_default();
        vec![
            ("strongroom:PrimaryArn".to_owned(), vec![arn]),
            ("strongroom:PrimaryRegion".to_owned(), vec![region]),
        ]
    }

    fn validate(input: &Input) -> Result<(), ApiError> {
        let arn = super::required("primaryArn", input.primary_arn.as_deref())?;
        parse_primary_arn(arn)?;
        super::required("seq", input.seq)?;
        if input.delete != Some(true) {
            super::required("secret", input.secret.as_ref())?;
        }
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let primary_arn = super::required("primaryArn", input.primary_arn.clone())?;
        let (primary_region, account) = parse_primary_arn(&primary_arn)?;
        let region = auth.scope.region.clone();
        if account != auth.principal.account_id {
            return Err(ApiError::AccessDenied(format!(
                "The replication principal of account {} cannot apply changes of a secret of account {account}.",
                auth.principal.account_id
            )));
        }
        if primary_region == region {
            return Err(ApiError::InvalidParameter(
                "Invalid replica region: the primary secret is in this region.".into(),
            ));
        }
        // A primary in a region this server serves is in this store: its replicas here are
        // written in its own transactions, never by a peer.
        if ctx.regions.contains(&primary_region) {
            return Err(ApiError::InvalidParameter(format!(
                "Invalid primary region: this server serves {primary_region} itself; its secrets are not replicated to it by a peer."
            )));
        }
        if let Some(shipped) = &input.secret {
            // The replica's name is the primary's: the name the change ships must be the one
            // its ARN carries (a principal narrowed by `strongroom:PrimaryArn` must not write
            // others).
            if !arn_names(&primary_arn, &shipped.name) {
                return Err(ApiError::InvalidParameter(format!(
                    "The secret name {} is not the name in PrimaryArn {primary_arn}.",
                    shipped.name
                )));
            }
            // The replication principal carries the primary's resource policy, but gains
            // nothing by it: a policy that would let the principal itself do what its own
            // policies do not (read the replica, change or promote it) is refused.
            if let Some(policy) = &shipped.resource_policy {
                let arn = replicas::replica_arn(&primary_arn, &region);
                if auth.resource_policy_grants(
                    &arn,
                    &account,
                    &shipped.tags,
                    policy,
                    REPLICA_ACTIONS,
                ) {
                    return Err(ApiError::AccessDenied(format!(
                        "The resource policy of this change would grant {} access to the replica {arn}: a replication principal can't be granted access to the secrets it replicates.",
                        auth.principal.arn
                    )));
                }
            }
        }
        let keyring = ctx.keyring.clone();
        let now = ctx.now_ms();
        let input = std::sync::Arc::new(input);
        ctx.store
            .write(move |tx| {
                apply(
                    tx,
                    &keyring,
                    &input,
                    &primary_arn,
                    &primary_region,
                    &account,
                    &region,
                    now,
                )
            })
            .await
    }
}

/// The actions on a secret that a shipped resource policy must not grant the replication
/// principal (every action Secrets Manager decides on a secret).
const REPLICA_ACTIONS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "secretsmanager:DescribeSecret",
    "secretsmanager:ListSecretVersionIds",
    "secretsmanager:GetResourcePolicy",
    "secretsmanager:PutResourcePolicy",
    "secretsmanager:DeleteResourcePolicy",
    "secretsmanager:ValidateResourcePolicy",
    "secretsmanager:ListResourcePolicies",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:DeleteSecret",
    "secretsmanager:RestoreSecret",
    "secretsmanager:RotateSecret",
    "secretsmanager:CancelRotateSecret",
    "secretsmanager:TagResource",
    "secretsmanager:UntagResource",
    "secretsmanager:ReplicateSecretToRegions",
    "secretsmanager:RemoveRegionsFromReplication",
    "secretsmanager:StopReplicationToReplica",
];

/// Whether the secret ARN `arn` names `name`: its last part is the name, a hyphen and the
/// six-character suffix.
fn arn_names(arn: &str, name: &str) -> bool {
    arn.splitn(7, ':').nth(6).is_some_and(|last| {
        last.len() == name.len() + 7
            && last.starts_with(name)
            && last.as_bytes().get(name.len()) == Some(&b'-')
    })
}

/// `(region, account)` of a secret ARN.
fn parse_primary_arn(arn: &str) -> Result<(String, String), ApiError> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    match parts.as_slice() {
        ["arn", _, "secretsmanager", region, account, "secret", name]
            if !region.is_empty() && account.len() == 12 && !name.is_empty() =>
        {
            Ok(((*region).to_owned(), (*account).to_owned()))
        }
        _ => Err(ApiError::InvalidParameter(
            "PrimaryArn is not a secret ARN.".into(),
        )),
    }
}

#[expect(clippy::too_many_arguments, reason = "one transaction's inputs")]
fn apply(
    tx: &mut Tx<'_>,
    keyring: &crate::kms::Keyring,
    input: &Input,
    primary_arn: &str,
    primary_region: &str,
    account: &str,
    region: &str,
    now: i64,
) -> Result<Output, ApiError> {
    let seq = super::required("seq", input.seq)?;
    let arn = replicas::replica_arn(primary_arn, region);
    let mut existing = tx.secret_by_arn(&arn)?;
    let shown_key = |tx: &mut Tx<'_>, s: &SecretRow| -> Result<Option<String>, ApiError> {
        Ok(Some(match &s.kms_key_id {
            Some(id) => tx.kms_key(id)?.map_or_else(|| id.clone(), |k| k.arn),
            None => replicas::DEFAULT_KEY_ALIAS.to_owned(),
        }))
    };
    // A replica promoted since refuses its old primary, before anything else, unless the
    // primary's owner replicates again with ForceOverwriteReplicaSecret (the promoted
    // secret, if it has no replicas of its own, is then replaced).
    if let Some(s) = existing.take() {
        if s.primary_region.as_deref() == Some(primary_region) {
            existing = Some(s);
        } else {
            let replaceable = input.force_overwrite == Some(true)
                && input.delete != Some(true)
                && !replicas::is_replica(&s)
                && !replicas::holds_replicas(tx, &s)?;
            if !replaceable {
                return Err(ApiError::InvalidRequest(promoted_message(&arn, region)));
            }
            tx.delete_secret(&s.secret_id)?;
        }
    }
    if tx
        .applied_seq(primary_arn, region)?
        .is_some_and(|last| seq <= last)
    {
        let kms_key_id = match &existing {
            Some(s) => shown_key(tx, s)?,
            None => None,
        };
        return Ok(Output {
            arn,
            applied: false,
            kms_key_id,
            omitted_values_accepted: Some(true),
        });
    }
    if input.delete == Some(true) {
        if let Some(s) = &existing {
            tx.delete_secret(&s.secret_id)?;
        }
        tx.set_applied_seq(primary_arn, region, seq, now)?;
        return Ok(Output {
            arn,
            applied: true,
            kms_key_id: None,
            omitted_values_accepted: Some(true),
        });
    }
    let shipped = super::required("secret", input.secret.as_ref())?;
    let mut replica = match existing {
        Some(s) => s,
        None => create(
            tx,
            keyring,
            input,
            shipped,
            &arn,
            primary_region,
            account,
            region,
            now,
        )?,
    };
    let mut have: BTreeMap<String, VersionRow> = tx
        .versions(&replica.secret_id)?
        .into_iter()
        .map(|v| (v.version_id.clone(), v))
        .collect();
    let mut key = None;
    for v in &shipped.versions {
        let present = have.remove(&v.version_id);
        if v.value_omitted == Some(true) && v.value_kind.is_some() {
            if present.as_ref().is_some_and(|p| p.value_kind.is_some()) {
                continue;
            }
            return Err(ApiError::PreconditionNotMet(format!(
                "The replica does not hold the value of version {}, which this change left out; send it with its value.",
                v.version_id
            )));
        }
        let needs_value = match &present {
            None => true,
            Some(p) => p.value_kind.is_none() && v.value_kind.is_some(),
        };
        if !needs_value {
            continue;
        }
        let sealed = match (&v.value_kind, &v.value) {
            (Some(kind), Some(b64)) => {
                let k = match &key {
                    Some(k) => k,
                    None => key.insert(values::secret_key(tx, keyring, &replica, now)?),
                };
                let plain = zeroize::Zeroizing::new(
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
                        .map_err(|_| {
                            ApiError::InvalidParameter("A shipped value is not base64.".into())
                        })?,
                );
                let s = keyring.seal_value(tx, k, &replica.arn, &v.version_id, &plain)?;
                Some((kind.clone(), s, k.key_id.clone(), k.current_term))
            }
            _ => None,
        };
        match (present, sealed) {
            (None, sealed) => {
                let mut row = VersionRow {
                    secret_id: replica.secret_id.clone(),
                    version_id: v.version_id.clone(),
                    created_at: v.created_at,
                    last_accessed_at: None,
                    value_kind: None,
                    ciphertext: None,
                    wrapped_dek: None,
                    kms_key_id: None,
                    kms_term: None,
                };
                if let Some((kind, s, kid, term)) = sealed {
                    row.value_kind = Some(kind);
                    row.ciphertext = Some(s.ciphertext);
                    row.wrapped_dek = Some(s.wrapped_dek);
                    row.kms_key_id = Some(kid);
                    row.kms_term = Some(term);
                }
                tx.insert_version(&row)?;
            }
            (Some(_), Some((kind, s, kid, term))) => {
                tx.fill_version(
                    &replica.secret_id,
                    &v.version_id,
                    &kind,
                    &s.ciphertext,
                    &s.wrapped_dek,
                    &kid,
                    term,
                )?;
            }
            (Some(_), None) => {}
        }
    }
    if tx.stages(&replica.secret_id)? != shipped.stages {
        tx.replace_stages(&replica.secret_id, &shipped.stages)?;
    }
    // Versions the primary no longer has.
    for vid in have.keys() {
        tx.delete_version(&replica.secret_id, vid)?;
    }
    let updated = SecretRow {
        description: shipped.description.clone(),
        last_changed_at: shipped.last_changed_at,
        owning_service: shipped.owning_service.clone(),
        resource_policy: shipped.resource_policy.clone(),
        tag_list: shipped.tag_list,
        secret_type: shipped.secret_type.clone(),
        external_rotation_metadata: shipped.external_rotation_metadata.clone(),
        external_rotation_role_arn: shipped.external_rotation_role_arn.clone(),
        rotation_enabled: shipped.rotation_enabled,
        rotation_lambda_arn: shipped.rotation_lambda_arn.clone(),
        rotation_rules: shipped.rotation_rules.clone(),
        last_rotated_at: shipped.last_rotated_at,
        // Rotation runs on the primary only.
        next_rotation_at: None,
        ..replica.clone()
    };
    tx.update_secret(&updated)?;
    replica = updated;
    if tx.tags(&replica.secret_id)? != shipped.tags {
        tx.replace_tags(&replica.secret_id, &shipped.tags)?;
    }
    tx.set_applied_seq(primary_arn, region, seq, now)?;
    Ok(Output {
        kms_key_id: shown_key(tx, &replica)?,
        arn,
        applied: true,
        omitted_values_accepted: Some(true),
    })
}

/// Create the replica (its name checked for a collision first).
#[expect(clippy::too_many_arguments, reason = "one transaction's inputs")]
fn create(
    tx: &mut Tx<'_>,
    keyring: &crate::kms::Keyring,
    input: &Input,
    shipped: &ShippedSecret,
    arn: &str,
    primary_region: &str,
    account: &str,
    region: &str,
    now: i64,
) -> Result<SecretRow, ApiError> {
    if let Some(taken) = tx.find_secret(account, region, &shipped.name)? {
        if input.force_overwrite != Some(true)
            || replicas::holds_replicas(tx, &taken)?
            || replicas::is_replica(&taken)
        {
            return Err(ApiError::ResourceExists(format!(
                "Secret name {} already exists in region {region}{}.",
                shipped.name,
                if input.force_overwrite == Some(true) {
                    " and is itself replicated; it can't be overwritten"
                } else {
                    ""
                }
            )));
        }
        tx.delete_secret(&taken.secret_id)?;
    }
    let kms_key_id = match &input.kms_key_id {
        None => None,
        Some(id) => {
            let key = keyring
                .resolve(tx, account, region, id, now)?
                .ok_or_else(|| {
                    ApiError::InvalidParameter(format!(
                        "Secrets Manager can't find the specified KMS key: {id} in region {region}"
                    ))
                })?;
            (key.key_manager != "AWS").then_some(key.key_id)
        }
    };
    let row = SecretRow {
        secret_id: uuid::Uuid::new_v4().to_string(),
        account_id: account.to_owned(),
        region: region.to_owned(),
        name: shipped.name.clone(),
        arn: arn.to_owned(),
        description: shipped.description.clone(),
        kms_key_id,
        created_at: now,
        last_changed_at: shipped.last_changed_at,
        last_accessed_at: None,
        deleted_at: None,
        purge_at: None,
        owning_service: shipped.owning_service.clone(),
        primary_region: Some(primary_region.to_owned()),
        resource_policy: shipped.resource_policy.clone(),
        tag_list: shipped.tag_list,
        secret_type: shipped.secret_type.clone(),
        external_rotation_metadata: shipped.external_rotation_metadata.clone(),
        external_rotation_role_arn: shipped.external_rotation_role_arn.clone(),
        rotation_enabled: shipped.rotation_enabled,
        rotation_lambda_arn: shipped.rotation_lambda_arn.clone(),
        rotation_rules: shipped.rotation_rules.clone(),
        last_rotated_at: shipped.last_rotated_at,
        next_rotation_at: None,
        cross_account_primary_arn: None,
        cross_account_status: None,
        cross_account_replica: false,
    };
    tx.insert_secret(&row)?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_arns_are_parsed() {
        assert_eq!(
            parse_primary_arn("arn:aws:secretsmanager:us-east-1:111122223333:secret:a:b-AbCdEf")
                .unwrap(),
            ("us-east-1".to_owned(), "111122223333".to_owned())
        );
        assert!(parse_primary_arn("arn:aws:kms:us-east-1:111122223333:key/x").is_err());
        assert!(parse_primary_arn("nope").is_err());
    }

    #[test]
    fn a_primary_arn_names_only_its_own_secret() {
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf";
        assert!(arn_names(arn, "app/db"));
        for other in ["prod/db", "app/d", "app/db-AbC", "app/db-AbCdEf", "", "app"] {
            assert!(!arn_names(arn, other), "{other}");
        }
        assert!(!arn_names(
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/dbxAbCdEf",
            "app/db"
        ));
    }
}
