//! What a request's target is: the secret a SecretId names (with its tags, resource policy
//! and, for a read, its sealed value), the ARN a missing secret would have, a new secret's
//! ARN, a KMS key with its key policy.

use std::sync::Arc;

use crate::error::ApiError;
use crate::ops::{self, Ctx, Scope, Target};
use crate::policy;

/// What a target resolved to: the ARN to authorize on, the secret when it exists, the
/// resource's condition keys (tags, SecretId) and its resource policy.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub arn: String,
    pub account: String,
    /// Shared with the read cache's entry: not copied per request.
    pub secret: Option<Arc<crate::store::rows::SecretRow>>,
    pub keys: Vec<(String, Vec<String>)>,
    /// The resource's keys built once and shared (a found secret's, kept with the read
    /// cache's entry it was built from), read as if set after `keys`.
    pub shared_keys: Option<Arc<policy::ContextKeys>>,
    pub resource_policy: Option<String>,
    /// `resource_policy` compiled under `arn`'s label, kept by the first decision that
    /// compiled it for the next ones on the same read of the secret (with the read cache's
    /// entry it was read into).
    pub policy_cell: Option<PolicyCell>,
    /// An already-compiled resource-side policy (a role's trust policy), used instead of
    /// `resource_policy`.
    pub compiled_policy: Option<Arc<policy::Policy>>,
    /// The resource policy must allow even in its own account (a KMS key policy).
    pub resource_required: bool,
    /// The resource as the caller named it, for a denial's message: a secret's ARN is
    /// written from the SecretId given (no suffix the caller did not send), so that a
    /// refusal reads the same whether or not the secret exists. `None`: `arn`.
    pub shown: Option<String>,
}

impl Resolved {
    /// A resource known by its ARN alone (no secret, no condition keys of its own, no
    /// resource policy), owned by `account`.
    pub fn on(arn: impl Into<String>, account: impl Into<String>) -> Self {
        Self {
            arn: arn.into(),
            account: account.into(),
            secret: None,
            keys: Vec::new(),
            shared_keys: None,
            policy_cell: None,
            resource_policy: None,
            compiled_policy: None,
            resource_required: false,
            shown: None,
        }
    }
}

/// A secret's resource policy, compiled once per read of the secret.
pub type PolicyCell = Arc<std::sync::OnceLock<Arc<policy::Policy>>>;

/// Resolve a target to the ARN to authorize on (and the secret, when it exists). With
/// `fetch`, a secret's selected version is read (sealed) in the same read transaction; what
/// that read found, value or error, is for the operation to use once authorized.
pub(super) async fn resolve(
    ctx: &Ctx,
    scope: &Scope,
    target: Target,
    fetch: Option<ops::values::VersionSelector>,
) -> Result<(Resolved, Option<Arc<Fetched>>), ApiError> {
    match target {
        Target::Secret(id) => resolve_secret(ctx, scope, id, fetch).await,
        other => Ok((resolve_other(ctx, scope, other).await?, None)),
    }
}

/// A value fetched with its secret, or why it could not be.
pub(super) type Fetched = Result<ops::values::FetchedValue, ApiError>;

/// [`resolve`] for a SecretId: the secret, its tags and (with `fetch`) the value to read, in
/// one short read transaction.
async fn resolve_secret(
    ctx: &Ctx,
    scope: &Scope,
    id: String,
    fetch: Option<ops::values::VersionSelector>,
) -> Result<(Resolved, Option<Arc<Fetched>>), ApiError> {
    let shown = crate::secrets::would_be_arn(&scope.region, &scope.account, &id);
    let found = find_secret(ctx, scope, id, fetch).await?;
    match found {
        Ok(found) => {
            // The cached row, its keys and value are shared, not copied.
            let (secret, fetched) = (Arc::clone(&found.0), found.2.clone());
            let resolved = Resolved {
                arn: secret.arn.clone(),
                account: secret.account_id.clone(),
                resource_policy: secret.resource_policy.clone(),
                compiled_policy: None,
                resource_required: false,
                shown: Some(shown),
                secret: Some(secret),
                keys: Vec::new(),
                shared_keys: Some(Arc::clone(&found.3)),
                policy_cell: Some(Arc::clone(&found.4)),
            };
            Ok((resolved, fetched))
        }
        Err(id) => Ok((missing_secret(scope, &id), None)),
    }
}

/// A secret found by [`find_secret`]: the row, its tags, (when asked) the selected version,
/// sealed, or why it could not be read, the secret's condition keys ([`secret_key_layer`]
/// of the row and tags) and its resource policy once compiled.
type Found = (
    Arc<crate::store::rows::SecretRow>,
    Vec<(String, String)>,
    Option<Arc<Fetched>>,
    Arc<policy::ContextKeys>,
    PolicyCell,
);

/// The secret `id` names in the scope, with its tags and (with `fetch`) the selected version,
/// in one short read; `Err(id)` when there is none. A found secret is kept in the store's
/// read cache (exact: any write, through any server, empties it before it is answered)
/// under everything that chose it; what the caller may do with it is decided on every
/// request.
async fn find_secret(
    ctx: &Ctx,
    scope: &Scope,
    id: String,
    fetch: Option<ops::values::VersionSelector>,
) -> Result<Result<Arc<Found>, String>, ApiError> {
    // Every choice in the key, length-prefixed: no two choices give the same key.
    let sel = |f: fn(&ops::values::VersionSelector) -> Option<&String>| {
        fetch.as_ref().map(|s| f(s).map_or("", String::as_str))
    };
    let key = crate::store::cache::key(
        "secret",
        &[
            Some(&scope.account),
            Some(&scope.region),
            Some(&id),
            sel(|s| s.version_id.as_ref()),
            sel(|s| s.stage.as_ref()),
        ],
    );
    let (account, region) = (scope.account.clone(), scope.region.clone());
    let keyring = ctx.keyring.clone();
    let missing = id.clone();
    let found = ctx
        .store
        .read_point_cached(key, move |tx| {
            let mut found = tx.find_secret(&account, &region, &id)?;
            // Another account's secret is addressed by its full ARN.
            if found.is_none() && id.starts_with("arn:") {
                found = tx.secret_by_arn(&id)?.filter(|s| s.region == region);
            }
            let Some(secret) = found else {
                return Ok(None);
            };
            let tags = tx.tags(&secret.secret_id)?;
            let fetched = fetch.map(|sel| {
                ops::values::fetch_value(
                    tx,
                    &keyring,
                    &secret,
                    sel.version_id.as_deref(),
                    sel.stage.as_deref(),
                )
            });
            let keys = secret_key_layer(&secret, &tags);
            Ok(Some((
                Arc::new(secret),
                tags,
                fetched.map(Arc::new),
                keys,
                PolicyCell::default(),
            )))
        })
        .await?;
    Ok(found.ok_or(missing))
}

/// What a SecretId that names no secret resolves to: the ARN it would have (authorized like
/// any other, so that a caller who may not see it learns nothing), no policy, no tags.
pub(super) fn missing_secret(scope: &Scope, id: &str) -> Resolved {
    let arn = crate::secrets::would_be_arn(&scope.region, &scope.account, id);
    // An ARN names its account: another account's missing secret is decided as across
    // accounts (needing a resource policy), exactly as one that exists.
    let account = match arn.split(':').nth(4) {
        Some(a) if id.starts_with("arn:") && !a.is_empty() => a.to_owned(),
        _ => scope.account.clone(),
    };
    Resolved {
        arn: arn.clone(),
        account,
        secret: None,
        keys: vec![("secretsmanager:SecretId".to_owned(), vec![arn.clone()])],
        shared_keys: None,
        policy_cell: None,
        resource_policy: None,
        compiled_policy: None,
        resource_required: false,
        shown: Some(arn),
    }
}

/// [`resolve`] for targets other than a SecretId.
async fn resolve_other(ctx: &Ctx, scope: &Scope, target: Target) -> Result<Resolved, ApiError> {
    let base = |arn: String| Resolved {
        arn,
        account: scope.account.clone(),
        secret: None,
        keys: Vec::new(),
        shared_keys: None,
        policy_cell: None,
        resource_policy: None,
        compiled_policy: None,
        resource_required: false,
        shown: None,
    };
    match target {
        Target::Any => Ok(base("*".to_owned())),
        Target::NewSecret(name) => Ok(base(crate::secrets::secret_arn(
            &scope.region,
            &scope.account,
            &name,
            &crate::secrets::arn_suffix(),
        ))),
        Target::Secret(id) => Ok(resolve_secret(ctx, scope, id, None).await?.0),
        Target::Trail(name) => {
            let arn = crate::ops::cloudtrail::trail_arn(scope, name.as_deref());
            // A trail ARN names its account: another account's trail is decided as across
            // accounts (no trail has a resource policy here, so that is a refusal).
            let account = match arn.split(':').nth(4) {
                Some(a) if !a.is_empty() => a.to_owned(),
                _ => scope.account.clone(),
            };
            Ok(Resolved {
                account,
                ..base(arn)
            })
        }
        Target::KmsKey(id) => {
            let (account, region) = (scope.account.clone(), scope.region.clone());
            // A key that does not exist (or the managed key, before its first use) is
            // authorized on the ARN it would have; a store error refuses the request.
            let key = ctx
                .store
                .read(move |tx| {
                    let found = if crate::kms::names_default_alias(&account, &region, &id) {
                        crate::kms::default_key_if_created(tx, &account, &region)?
                    } else {
                        crate::kms::resolve_key(tx, &account, &region, &id, |_| {
                            Err(ApiError::internal("the default alias is resolved above"))
                        })?
                    };
                    Ok(match found {
                        // The key's aliases, read with it: `kms:ResourceAliases`.
                        Some(k) => {
                            let aliases =
                                tx.kms_alias_names_of(&k.account_id, &k.region, &k.key_id)?;
                            Ok((k, aliases))
                        }
                        None => Err(format!("arn:aws:kms:{region}:{account}:key/{id}")),
                    })
                })
                .await?;
            Ok(match key {
                // An existing key is decided with its key policy, which must allow, and with
                // the condition keys KMS sets about the key.
                Ok((k, aliases)) => Resolved {
                    resource_policy: Some(crate::kms::key_policy::effective(&k)),
                    resource_required: true,
                    shown: None,
                    account: k.account_id,
                    keys: crate::kms::key_policy::key_condition_keys(aliases),
                    ..base(k.arn)
                },
                Err(arn) => base(arn),
            })
        }
    }
}

/// A secret's own condition keys: `secretsmanager:SecretId`, its tags as
/// `aws:ResourceTag/k` and `secretsmanager:ResourceTag/k`, its rotation function
/// (`secretsmanager:resource/AllowRotationLambdaArn`), its primary region and its managed
/// external secret type (`secretsmanager:resource/Type`).
pub(super) fn secret_keys(
    secret: &crate::store::rows::SecretRow,
    tags: &[(String, String)],
) -> Vec<(String, Vec<String>)> {
    let mut keys = Vec::with_capacity(4 + 2 * tags.len());
    keys.push((
        "secretsmanager:SecretId".to_owned(),
        vec![secret.arn.clone()],
    ));
    for (k, v) in tags {
        keys.push((["aws:ResourceTag/", k].concat(), vec![v.clone()]));
        keys.push((["secretsmanager:ResourceTag/", k].concat(), vec![v.clone()]));
    }
    if let Some(a) = &secret.rotation_lambda_arn {
        keys.push((
            "secretsmanager:resource/AllowRotationLambdaArn".to_owned(),
            vec![a.clone()],
        ));
    }
    if let Some(p) = &secret.primary_region {
        keys.push((
            "secretsmanager:SecretPrimaryRegion".to_owned(),
            vec![p.clone()],
        ));
    }
    if let Some(t) = &secret.secret_type {
        keys.push(("secretsmanager:resource/Type".to_owned(), vec![t.clone()]));
    }
    keys
}

/// [`secret_keys`] as a layer of their own, each key set in turn as
/// `RequestContext::with` sets it: built once per read of the secret and shared by every
/// decision on what that read found.
pub fn secret_key_layer(
    secret: &crate::store::rows::SecretRow,
    tags: &[(String, String)],
) -> Arc<policy::ContextKeys> {
    Arc::new(
        secret_keys(secret, tags)
            .into_iter()
            .fold(policy::ContextKeys::new(), |layer, (k, v)| {
                layer.with(&k, v)
            }),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::auth::Principal;
    use crate::authz::{Authz, Facts, Keys};
    use crate::policy::ContextValue;
    use crate::store::rows::SecretRow;

    fn row() -> SecretRow {
        SecretRow {
            secret_id: "id".into(),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            name: "app/db".into(),
            arn: "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf".into(),
            description: None,
            kms_key_id: None,
            created_at: 1_000,
            last_changed_at: 2_000,
            last_accessed_at: None,
            deleted_at: None,
            purge_at: None,
            owning_service: None,
            primary_region: Some("eu-west-1".into()),
            resource_policy: None,
            tag_list: false,
            secret_type: Some("rds".into()),
            external_rotation_metadata: None,
            external_rotation_role_arn: None,
            rotation_enabled: None,
            rotation_lambda_arn: Some("arn:aws:lambda:us-east-1:111122223333:function:rot".into()),
            rotation_rules: None,
            last_rotated_at: None,
            next_rotation_at: None,
            cross_account_primary_arn: None,
            cross_account_status: None,
            cross_account_replica: false,
        }
    }

    /// Every key of a context as the evaluator reads it, by name and through `get`.
    fn all_keys(c: &policy::RequestContext) -> BTreeMap<String, ContextValue> {
        let keys: BTreeMap<String, ContextValue> =
            c.keys().map(|(k, v)| (k.to_owned(), v.clone())).collect();
        for (k, v) in &keys {
            assert_eq!(c.get(&k.to_uppercase()), Some(v), "{k}");
        }
        keys
    }

    fn pairs(keys: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        keys.iter()
            .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
            .collect()
    }

    /// A secret's keys as one shared layer read exactly as the same keys set one by one
    /// between the operation's keys before them and the request's after them: what was set
    /// before is overridden, what is set after overrides, tags differing only in case keep
    /// the last one.
    #[test]
    fn the_secrets_layer_reads_as_its_keys_set_in_order() {
        let secret = row();
        let tags: Vec<(String, String)> = [("Env", "prod"), ("env", "dev"), ("Team", "blue")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let dir = crate::identity::Directory::default();
        let principal = Principal::user(
            "111122223333",
            "arn:aws:iam::111122223333:user/alice",
            "AIDA1",
            "alice",
            BTreeMap::new(),
            "AKIA1",
        );
        let facts = Facts {
            region: "us-east-1".to_owned(),
            now_ms: 1_714_564_800_123,
            source_ip: "192.0.2.7".parse().ok(),
            secure_transport: Some(true),
        };
        let on = Resolved::on(secret.arn.clone(), secret.account_id.clone());
        let before = pairs(&[
            ("secretsmanager:VersionStage", &["AWSPREVIOUS"]),
            ("secretsmanager:SecretId", &["arn:other"]),
            ("aws:resourcetag/TEAM", &["red"]),
            ("aws:SourceIp", &["10.0.0.1"]),
        ]);
        let after = pairs(&[
            (
                "secretsmanager:KmsKeyArn",
                &["arn:aws:kms:us-east-1:111122223333:key/k"],
            ),
            ("secretsmanager:ResourceTag/env", &["test"]),
            ("x:Several", &["a", "b"]),
        ]);
        let layer = secret_key_layer(&secret, &tags);
        let flat: Vec<(String, Vec<String>)> = before
            .iter()
            .cloned()
            .chain(secret_keys(&secret, &tags))
            .chain(after.iter().cloned())
            .collect();
        for action in ["secretsmanager:GetSecretValue", "kms:Decrypt"] {
            let layered = Authz::context(
                &dir,
                &principal,
                &facts,
                action,
                &on,
                Keys {
                    before: &before,
                    shared: Some(&layer),
                    after: &after,
                },
            );
            let one_by_one =
                Authz::context(&dir, &principal, &facts, action, &on, Keys::flat(&flat));
            assert_eq!(all_keys(&layered), all_keys(&one_by_one));
            let value = |k: &str| layered.get(k).map(|v| v.values.clone());
            assert_eq!(value("aws:resourcetag/env"), Some(vec!["dev".to_owned()]));
            assert_eq!(
                value("secretsmanager:resourcetag/env"),
                Some(vec!["test".to_owned()])
            );
            assert_eq!(value("aws:ResourceTag/Team"), Some(vec!["blue".to_owned()]));
            assert_eq!(
                value("secretsmanager:secretid"),
                Some(vec![secret.arn.clone()])
            );
            assert_eq!(
                value("secretsmanager:versionstage"),
                Some(vec!["AWSPREVIOUS".to_owned()])
            );
            assert_eq!(value("aws:sourceip"), Some(vec!["10.0.0.1".to_owned()]));
        }
    }
}
