//! CreateSecret.

use serde::{Deserialize, Serialize};

use super::values::{self, SecretString};
use super::{tag_pairs, Authorized, Ctx, Operation, Tag, Target, Targeted};
use crate::error::ApiError;
use crate::secrets::{self, AWSCURRENT};
use crate::store::rows::{SecretRow, VersionRow};
use crate::store::Tx;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub name: Option<String>,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub secret_binary: Option<SecretString>,
    pub secret_string: Option<SecretString>,
    pub tags: Option<Vec<Tag>>,
    pub add_replica_regions: Option<Vec<super::replicas::ReplicaRegion>>,
    pub force_overwrite_replica_secret: Option<bool>,
    /// A managed external secret's partner type.
    #[serde(rename = "Type")]
    pub secret_type: Option<String>,
    /// Makes the new secret a cross-account replica of this primary (in another account of
    /// the same region and partition); see `replicas`.
    #[serde(rename = "CrossAccountPrimaryARN")]
    pub cross_account_primary_arn: Option<String>,
}

impl Targeted for Input {
    fn target(&self) -> Target {
        Target::NewSecret(self.name.clone().unwrap_or_default())
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The replicas `AddReplicaRegions` asked for, and their status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_status: Option<Vec<super::replicas::ReplicationStatus>>,
}

#[derive(Debug)]
pub struct CreateSecret;

/// The further action `AddReplicaRegions` needs.
const REPLICATE: &str = "secretsmanager:ReplicateSecretToRegions";

impl Operation for CreateSecret {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "CreateSecret";
    const ACTION: &'static str = "secretsmanager:CreateSecret";
    const READ_ONLY: bool = false;

    fn validate(input: &Input) -> Result<(), ApiError> {
        let name = super::require_ref("name", &input.name)?;
        secrets::validate_name(name)?;
        if let Some(t) = &input.client_request_token {
            secrets::validate_token(t)?;
        }
        // Only a value makes a version, and only a version needs the token.
        if input.secret_string.is_some() || input.secret_binary.is_some() {
            secrets::require_token(input.client_request_token.as_deref())?;
        }
        if let Some(d) = &input.description {
            secrets::validate_description(d)?;
        }
        if let Some(k) = &input.kms_key_id {
            secrets::check_len("kmsKeyId", k.len(), 0, 2048)?;
        }
        if let Some(tags) = &input.tags {
            secrets::validate_tags(&tag_pairs(tags)?)?;
        }
        if let Some(t) = &input.secret_type {
            secrets::validate_secret_type(t)?;
        }
        if let Some(arn) = &input.cross_account_primary_arn {
            secrets::check_len("crossAccountPrimaryARN", arn.chars().count(), 20, 2048)?;
            super::replicas::validate_cross_account_create(input)?;
        }
        if let Some(r) = &input.add_replica_regions {
            super::replicas::validate_add_regions(r)?;
        }
        Ok(())
    }

    fn named_key(input: &Input) -> Option<&str> {
        input.kms_key_id.as_deref()
    }

    fn key_uses(input: &Input) -> Vec<super::KeyUse> {
        let has_value = input.secret_string.is_some() || input.secret_binary.is_some();
        match &input.kms_key_id {
            Some(id) if has_value => vec![super::KeyUse::Named("kms:GenerateDataKey", id.clone())],
            _ => Vec::new(),
        }
    }

    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        let mut keys: Vec<(String, Vec<String>)> = [
            super::key_if("secretsmanager:Name", input.name.as_ref()),
            super::key_if("secretsmanager:Description", input.description.as_ref()),
            super::key_if("secretsmanager:KmsKeyId", input.kms_key_id.as_ref()),
            super::key_if("secretsmanager:Type", input.secret_type.as_ref()),
            super::key_if(
                "secretsmanager:ForceOverwriteReplicaSecret",
                input.force_overwrite_replica_secret,
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(tags) = &input.tags {
            keys.extend(super::request_tag_keys(tags));
            // The new secret's tags are the request's: `aws:ResourceTag/k` and
            // `secretsmanager:ResourceTag/k` hold them, as AWS decides CreateSecret (its ABAC
            // tutorial allows creating a secret on `aws:ResourceTag` matching the principal).
            for t in tags {
                if let Some(k) = t.key.as_deref() {
                    let v = vec![t.value.clone().unwrap_or_default()];
                    keys.push((["aws:ResourceTag/", k].concat(), v.clone()));
                    keys.push((["secretsmanager:ResourceTag/", k].concat(), v));
                }
            }
        }
        if let Some(r) = &input.add_replica_regions {
            keys.push(super::replicas::add_regions_key(r));
        }
        keys
    }

    fn extra_actions(input: &Input) -> Vec<&'static str> {
        let mut actions = Vec::new();
        if input.tags.as_ref().is_some_and(|t| !t.is_empty()) {
            actions.push("secretsmanager:TagResource");
        }
        if input.add_replica_regions.is_some() {
            actions.push(REPLICATE);
        }
        // The replica gets its managed resource policy (`replicas::cross_account_policy`).
        if input.cross_account_primary_arn.is_some() {
            actions.push("secretsmanager:PutResourcePolicy");
        }
        actions
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let name = super::required("name", input.name)?;
        let value = values::take_value(input.secret_string, input.secret_binary)?;
        let tag_list = input.tags.is_some();
        let tags = tag_pairs(&input.tags.unwrap_or_default())?;
        let token = input.client_request_token;
        let description = input.description;
        let kms_key_id = input.kms_key_id;
        let secret_type = input.secret_type;
        let scope = auth.scope.clone();
        let cross_account_primary = match input.cross_account_primary_arn {
            Some(arn) => Some(super::replicas::check_cross_account_primary(&scope, &arn)?),
            None => None,
        };
        let replica_regions = input.add_replica_regions;
        if let Some(r) = &replica_regions {
            let names: Vec<&str> = r.iter().filter_map(|r| r.region.as_deref()).collect();
            super::replicas::check_served(ctx, &scope.region, &names)?;
        }
        let force = input.force_overwrite_replica_secret == Some(true);
        let new_arn = auth.resource_arn.clone();
        let keyring = ctx.keyring.clone();
        let retrier = auth.clone();
        let now = ctx.now_ms();
        let peers = std::sync::Arc::clone(&ctx.peers);
        ctx.store
            .write(move |tx| {
                if let Some(existing) = tx.find_secret(&scope.account, &scope.region, &name)? {
                    if existing.name == name {
                        if existing.deleted_at.is_some() {
                            return Err(ApiError::InvalidRequest(
                                "You can't create this secret because a secret with this name is already scheduled for deletion.".into(),
                            ));
                        }
                        if let Some(tok) = &token {
                            if let Some(version) = tx.version(&existing.secret_id, tok)? {
                                // Answering a retry compares the value sent with the stored
                                // one: only a caller who may create this very secret and read
                                // that version gets the comparison.
                                if !may_retry(tx, &retrier, &existing, &version)? {
                                    return Err(ApiError::ResourceExists(format!(
                                        "The operation failed because the secret {name} already exists."
                                    )));
                                }
                                let w = values::write_version(
                                    tx, &keyring, &existing, tok, value.as_ref(), &[AWSCURRENT.to_owned()], now,
                                )?;
                                debug_assert_eq!(w, values::Written::Idempotent);
                                return Ok(Output {
                                    arn: existing.arn,
                                    name: existing.name,
                                    version_id: value.as_ref().map(|_| tok.clone()),
                                    replication_status: None,
                                });
                            }
                            return Err(ApiError::ResourceExists(format!(
                                "The operation failed because the secret {name} already exists."
                            )));
                        }
                        return Err(ApiError::ResourceExists(
                            "A resource with the ID you requested already exists.".into(),
                        ));
                    }
                }
                let kms = match &kms_key_id {
                    None => None,
                    Some(id) => {
                        let key = keyring
                            .resolve(tx, &scope.account, &scope.region, id, now)?
                            .ok_or_else(|| {
                                ApiError::InvalidParameter(format!(
                                    "Secrets Manager can't find the specified KMS key: {id}"
                                ))
                            })?;
                        // The secret gets the key its `secretsmanager:KmsKeyArn` was decided
                        // on, and a value is sealed under the key whose use was decided.
                        retrier.ensure_named_key(id, &key)?;
                        if key.key_manager == "AWS" {
                            None
                        } else {
                            Some(key.key_id)
                        }
                    }
                };
                if cross_account_primary.is_some() && kms.is_none() {
                    return Err(ApiError::InvalidParameter(
                        super::replicas::XACCT_NEEDS_CMK.into(),
                    ));
                }
                // The ARN (with its fresh suffix) the request was authorized on.
                let arn = new_arn.clone();
                let row = new_row(NewSecret {
                    account: &scope.account,
                    region: &scope.region,
                    name: &name,
                    arn: &arn,
                    description: description.as_deref(),
                    kms_key_id: kms,
                    tag_list,
                    secret_type: secret_type.as_deref(),
                    now,
                });
                let row = SecretRow {
                    resource_policy: cross_account_primary
                        .as_ref()
                        .map(|p| super::replicas::cross_account_policy(&p.account)),
                    cross_account_status: cross_account_primary
                        .as_ref()
                        .map(|_| super::replicas::PENDING.to_owned()),
                    cross_account_primary_arn: cross_account_primary.as_ref().map(|p| p.arn.clone()),
                    ..row
                };
                tx.insert_secret(&row).map_err(|e| {
                    if e.is_unique_violation() {
                        // A concurrent create of the name committed after this transaction
                        // looked (PostgreSQL reports it so under SERIALIZABLE, not as a
                        // serialization failure): run again, and the look finds it, so the
                        // same token and value answer that secret, as a retry would.
                        tx.retry_on_failure();
                        ApiError::ResourceExists(format!(
                            "The operation failed because the secret {name} already exists."
                        ))
                    } else {
                        e.into()
                    }
                })?;
                tx.replace_tags(&row.secret_id, &tags)?;
                let version_id = match &value {
                    Some(v) => {
                        let vid = secrets::require_token(token.as_deref())?.to_owned();
                        values::write_version(tx, &keyring, &row, &vid, Some(v), &[AWSCURRENT.to_owned()], now)?;
                        Some(vid)
                    }
                    None => None,
                };
                let replication_status = match &replica_regions {
                    Some(regions) => {
                        let mut row = row.clone();
                        let req = super::replicas::AddRequest {
                            keyring: &keyring,
                            auth: &retrier,
                            action: REPLICATE,
                            regions,
                            peers: &peers,
                            force,
                            now_ms: now,
                        };
                        super::replicas::add_replicas(tx, &req, &mut row)?;
                        Some(super::replicas::statuses(tx, &row)?)
                    }
                    None => None,
                };
                Ok(Output {
                    arn,
                    name: name.clone(),
                    version_id,
                    replication_status,
                })
            })
            .await
    }
}

/// Whether the caller of a CreateSecret retried on the existing secret `existing` (its token
/// names `version`) may have its value compared: `secretsmanager:CreateSecret` and
/// `secretsmanager:GetSecretValue` on that secret (its resource policy and tags take part),
/// and `kms:Decrypt` on the key that sealed the version. Each decision is audited.
fn may_retry(
    tx: &mut Tx<'_>,
    auth: &Authorized,
    existing: &SecretRow,
    version: &VersionRow,
) -> Result<bool, ApiError> {
    let key = match &version.kms_key_id {
        Some(id) => tx.kms_key(id)?,
        None => None,
    };
    let mut facts = super::SecretFacts {
        tags: tx.tags(&existing.secret_id)?,
        key: None,
        key_actions: &[],
        key_for: None,
        request_keys: Vec::new(),
        key_aliases: Vec::new(),
        secret_keys: None,
        policy_cell: None,
    };
    if auth
        .authorize_secret(
            CreateSecret::ACTION,
            &existing.arn,
            Some((existing, &facts)),
        )
        .is_err()
    {
        return Ok(false);
    }
    facts.key_aliases = super::key_aliases(tx, key.as_ref())?;
    facts.key = key;
    facts.key_actions = &["kms:Decrypt"];
    Ok(auth
        .authorize_secret(
            "secretsmanager:GetSecretValue",
            &existing.arn,
            Some((existing, &facts)),
        )
        .is_ok())
}

/// What a new secret's row is made of.
#[derive(Debug, Clone)]
pub struct NewSecret<'a> {
    pub account: &'a str,
    pub region: &'a str,
    pub name: &'a str,
    pub arn: &'a str,
    pub description: Option<&'a str>,
    /// A customer managed key's id (`None`: the account's `aws/secretsmanager` key).
    pub kms_key_id: Option<String>,
    /// Whether the request carried `Tags` (even empty).
    pub tag_list: bool,
    pub secret_type: Option<&'a str>,
    pub now: i64,
}

/// The row CreateSecret stores for a new secret (a fresh id, no versions yet).
pub fn new_row(n: NewSecret<'_>) -> SecretRow {
    SecretRow {
        secret_id: uuid::Uuid::new_v4().to_string(),
        account_id: n.account.to_owned(),
        region: n.region.to_owned(),
        name: n.name.to_owned(),
        arn: n.arn.to_owned(),
        description: n.description.map(str::to_owned),
        kms_key_id: n.kms_key_id,
        created_at: n.now,
        last_changed_at: n.now,
        last_accessed_at: None,
        deleted_at: None,
        purge_at: None,
        owning_service: None,
        primary_region: None,
        resource_policy: None,
        tag_list: n.tag_list,
        secret_type: n.secret_type.map(str::to_owned),
        external_rotation_metadata: None,
        external_rotation_role_arn: None,
        rotation_enabled: None,
        rotation_lambda_arn: None,
        rotation_rules: None,
        last_rotated_at: None,
        next_rotation_at: None,
        cross_account_status: None,
        cross_account_primary_arn: None,
        cross_account_replica: false,
    }
}

/// Benchmark only (`strongroom bench-seed`): create `count` secrets straight in the store,
/// as CreateSecret (with `Tags` and a `SecretString`) followed by PutResourcePolicy and
/// `versions - 1` PutSecretValue calls would, without requests or audit records: names
/// `bench/appNN/secret-IIIII`, a `team` tag, `versions` 1 KB values (version `v` holds
/// `{"id":I,"version":v,...}`) each sealed under the account's `aws/secretsmanager` key
/// (the same envelope a request writes) and labelled as PutSecretValue labels them (the
/// newest AWSCURRENT, the one before AWSPREVIOUS, older ones none) and, when given,
/// `resource_policy`. Written in transactions of about 2,000 versions. Answers how many
/// secrets were created.
pub fn seed_for_benchmark(
    store: &crate::store::Store,
    keyring: &crate::kms::Keyring,
    account: &str,
    region: &str,
    range: std::ops::Range<u64>,
    versions: u32,
    resource_policy: Option<&str>,
) -> Result<u64, ApiError> {
    let versions = versions.max(1);
    let per_tx = (2_000 / u64::from(versions)).max(1);
    let mut done = 0_u64;
    let mut start = range.start;
    while start < range.end {
        let end = start.saturating_add(per_tx).min(range.end);
        store.write_blocking(|tx| {
            let now = super::system_now_ms();
            for i in start..end {
                let name = format!("bench/app{:02}/secret-{i:05}", i % 100);
                let arn = secrets::secret_arn(region, account, &name, &secrets::arn_suffix());
                let description = format!("bench secret {i}");
                let mut row = new_row(NewSecret {
                    account,
                    region,
                    name: &name,
                    arn: &arn,
                    description: Some(&description),
                    kms_key_id: None,
                    tag_list: true,
                    secret_type: None,
                    now,
                });
                row.resource_policy = resource_policy.map(str::to_owned);
                tx.insert_secret(&row)?;
                tx.replace_tags(
                    &row.secret_id,
                    &[("team".into(), format!("app{:02}", i % 100))],
                )?;
                for v in 1..=versions {
                    let head = format!("{{\"id\":{i},\"version\":{v},\"password\":\"");
                    let pad = 1024_usize.saturating_sub(head.len()).saturating_sub(2);
                    let value = values::NewValue {
                        kind: secrets::ValueKind::String,
                        bytes: crate::crypto::SecretBytes::new(
                            format!("{head}{}\"}}", "x".repeat(pad)).into_bytes(),
                        ),
                    };
                    let vid = uuid::Uuid::new_v4().to_string();
                    values::write_version(
                        tx,
                        keyring,
                        &row,
                        &vid,
                        Some(&value),
                        &[AWSCURRENT.to_owned()],
                        now,
                    )?;
                }
            }
            Ok(())
        })?;
        done = done.saturating_add(end.saturating_sub(start));
        start = end;
    }
    Ok(done)
}
