//! One file per AWS operation: its `Input`, its `Output` and its `handle`.
//!
//! The [`Operation`] trait says what an operation reads (`Input`), and what it does once
//! authorized (`handle`, which only gets an [`Authorized`] value that the pipeline alone can
//! mint). Which resource it must be authorized on is the input's to say ([`Targeted`]): an
//! input naming one resource by a required member (`SecretId`, `KeyId`) says which member
//! once ([`NamesTarget`]), and its target and that member's validation follow.
//!
//! May depend on: `store` (through `Tx` closures), `kms`, `crypto`, `secrets`, `error`,
//! `auth::Principal`, and `rotation`'s schedules, wiring and in-transaction helpers (its
//! engine, which calls into `ops`, is never used here). Never on actix or diesel.

pub mod apply_replica_change;
pub mod associate_cross_account_replica;
pub mod batch_get_secret_value;
pub mod bench_seed;
pub mod cancel_rotate_secret;
pub mod cloudtrail;
pub mod create_secret;
pub mod delete_resource_policy;
pub mod delete_secret;
pub mod describe_secret;
pub mod directory;
pub mod disassociate_cross_account_replica;
pub mod get_random_password;
pub mod get_resource_policy;
pub mod get_secret_value;
pub mod iam;
pub mod kms_ops;
pub mod list_resource_policies;
pub mod list_secret_version_ids;
pub mod list_secrets;
pub mod organizations;
pub mod put_resource_policy;
pub mod put_secret_value;
pub mod query;
pub mod remove_regions_from_replication;
pub mod replicas;
pub mod replicate_secret_to_regions;
pub mod restore_secret;
pub mod rotate_secret;
pub mod stop_replication_to_replica;
pub mod strongroom;
pub mod sts;
pub mod tag_resource;
pub mod untag_resource;
pub mod update_secret;
pub mod update_secret_version_stage;
pub mod validate_resource_policy;
pub mod values;

pub use crate::authz::{Authorized, Refusal, SecretAuthorizer};

use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;
use crate::kms::Keyring;
use crate::store::rows::SecretRow;
use crate::store::Store;

/// Everything an operation may use.
#[derive(Clone)]
pub struct Ctx {
    pub store: Store,
    pub keyring: Keyring,
    /// The server's clock, injectable for tests (epoch milliseconds).
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// What operations share with the rotation engine (declared functions, its wake-up).
    pub rotation: crate::rotation::Wiring,
    /// The regions this server serves (replication targets).
    pub regions: Arc<Vec<String>>,
    /// The regions served by peer servers (`--peer REGION=URL`): replication targets
    /// reached through the outbox.
    pub peers: Arc<Vec<String>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }
}

/// The system clock in epoch milliseconds.
pub fn system_now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Epoch milliseconds as the epoch seconds (with fraction) AWS's JSON protocol sends.
pub fn epoch_seconds(ms: i64) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "timestamps fit an f64 mantissa")]
    let s = ms as f64 / 1000.0;
    s
}

/// Account and region a request acts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub account: String,
    pub region: String,
}

/// What an operation must be authorized on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An existing secret named by a SecretId (name, full or partial ARN).
    Secret(String),
    /// No specific resource (`*`): listing, random passwords, batch reads.
    Any,
    /// A secret about to be created with this name: authorized on its new ARN (with the
    /// fresh suffix), which the operation then uses.
    NewSecret(String),
    /// A KMS key named by a key id, key ARN, alias or alias ARN.
    KmsKey(String),
    /// A CloudTrail trail named by its name or ARN (`None`: the server's one trail,
    /// [`crate::ops::cloudtrail::TRAIL_NAME`]), authorized on the ARN it names.
    Trail(Option<String>),
}

/// What an operation's input names as the resource to authorize.
pub trait Targeted {
    /// The resource to authorize.
    fn target(&self) -> Target;
}

/// A required member that names a resource (`SecretId`, `KeyId`): its name in validation
/// messages, its checks, and the kind of target it names.
pub trait IdMember {
    /// The member's name as AWS's validation messages spell it (`secretId`).
    const FIELD: &'static str;
    /// Check a present value's shape and limits.
    fn check(id: &str) -> Result<(), ApiError>;
    /// The target a value names.
    fn target(id: String) -> Target;
}

/// `SecretId`: an existing secret, by name or full or partial ARN.
#[derive(Debug)]
pub enum SecretId {}

impl IdMember for SecretId {
    const FIELD: &'static str = "secretId";
    fn check(id: &str) -> Result<(), ApiError> {
        crate::secrets::validate_secret_id(id)
    }
    fn target(id: String) -> Target {
        Target::Secret(id)
    }
}

/// An input whose operation acts on the one resource a required member names: `By` says
/// which member, `target_id` reads it. The input's [`Target`] follows; its operation's
/// `validate` calls [`NamesTarget::checked_target_id`] first, so a missing or malformed
/// member is refused before authorization.
pub trait NamesTarget {
    type By: IdMember;
    /// The member's value as the request sent it.
    fn target_id(&self) -> Option<&str>;
    /// The member, present and well-formed. Operations check it first in `validate`, as AWS
    /// reports it before the other members.
    fn checked_target_id(&self) -> Result<&str, ApiError> {
        let id = required(Self::By::FIELD, self.target_id())?;
        Self::By::check(id)?;
        Ok(id)
    }
}

impl<T: NamesTarget> Targeted for T {
    fn target(&self) -> Target {
        T::By::target(self.target_id().unwrap_or_default().to_owned())
    }
}

/// A KMS key an operation uses on the caller's behalf, and the KMS action that needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyUse {
    /// The action on the key that encrypts the target secret.
    SecretKey(&'static str),
    /// The action on the key the request names (its `KmsKeyId`).
    Named(&'static str, String),
}

/// What a per-secret decision needs besides the secret: its tags (`aws:ResourceTag/k`) and,
/// for a secret under a customer managed key, the key and the KMS action the operation
/// performs with it (decided with the key policy).
#[derive(Debug, Clone, Default)]
pub struct SecretFacts {
    pub tags: Vec<(String, String)>,
    pub key: Option<crate::store::rows::KmsKeyRow>,
    /// The KMS actions the operation performs with `key`, each decided.
    pub key_actions: &'static [&'static str],
    /// The ARN of the secret `key` seals or opens (`kms:EncryptionContext:SecretARN`), when
    /// it is not the secret decided on (a replica in another region).
    pub key_for: Option<String>,
    /// The request's own condition keys for this decision (BatchGetSecretValue's reads are
    /// of AWSCURRENT: `secretsmanager:VersionStage`).
    pub request_keys: Vec<(String, Vec<String>)>,
    /// The names of the aliases of `key` (`kms:ResourceAliases`), read with it
    /// ([`key_aliases`]).
    pub key_aliases: Vec<String>,
    /// The secret's own condition keys, built from the secret these facts are about and
    /// `tags` ([`Self::with_secret_keys`]) and kept with them (in the read cache's entry);
    /// `None`: built for each decision.
    pub secret_keys: Option<std::sync::Arc<crate::policy::ContextKeys>>,
    /// The secret's resource policy, compiled by the first decision on these facts that
    /// needs it and kept with them ([`Self::with_secret_keys`]); `None`: compiled (from the
    /// compiled-policy cache) for each decision.
    pub policy_cell: Option<crate::authz::resolve::PolicyCell>,
}

impl SecretFacts {
    /// These facts with the condition keys of `secret` (the secret they are about) and
    /// their tags built once.
    pub fn with_secret_keys(mut self, secret: &crate::store::rows::SecretRow) -> Self {
        self.secret_keys = Some(crate::authz::secret_key_layer(secret, &self.tags));
        self.policy_cell = Some(crate::authz::resolve::PolicyCell::default());
        self
    }
}

/// The names of the aliases that name `key` (a customer managed key; none for the AWS
/// managed key, whose alias is AWS's), for `kms:ResourceAliases` in the decision on it.
pub fn key_aliases(
    tx: &mut crate::store::Tx<'_>,
    key: Option<&crate::store::rows::KmsKeyRow>,
) -> Result<Vec<String>, ApiError> {
    match key.filter(|k| k.key_manager != "AWS") {
        Some(k) => Ok(tx.kms_alias_names_of(&k.account_id, &k.region, &k.key_id)?),
        None => Ok(Vec::new()),
    }
}

/// One AWS operation.
pub trait Operation {
    type Input: DeserializeOwned + Targeted + Send + 'static;
    type Output: Serialize;
    /// The operation's AWS name (`GetSecretValue`).
    const NAME: &'static str;
    /// The IAM action (`secretsmanager:GetSecretValue`).
    const ACTION: &'static str;
    /// Whether it only reads (CloudTrail's `readOnly`).
    const READ_ONLY: bool;
    /// Whether it may act on a replica secret (reads, and StopReplicationToReplica); any
    /// other operation on a replica is refused with AWS's message (`replicas::NOT_ON_REPLICA`).
    const ON_REPLICA: bool = Self::READ_ONLY;
    /// Whether this request may act on a replica secret (`ON_REPLICA` unless the operation
    /// says otherwise for some inputs: UpdateSecret changing only the replica's key).
    fn on_replica(_input: &Self::Input) -> bool {
        Self::ON_REPLICA
    }

    /// Check the input's shape and limits (before authorization, as AWS does).
    fn validate(input: &Self::Input) -> Result<(), ApiError>;
    /// Request-specific condition keys (`secretsmanager:VersionStage`, `aws:RequestTag/k`...),
    /// as `(key, values)`. The pipeline adds the global and resource keys.
    fn context_keys(_input: &Self::Input) -> Vec<(String, Vec<String>)> {
        Vec::new()
    }
    /// Further actions the same request needs on the same resource (CreateSecret with tags
    /// also needs `secretsmanager:TagResource`).
    fn extra_actions(_input: &Self::Input) -> Vec<&'static str> {
        Vec::new()
    }
    /// KMS keys the operation uses on the caller's behalf (`kms:Decrypt` to read a value
    /// under a customer managed key, `kms:GenerateDataKey` to write one). Each is decided
    /// with the key's key policy, after the operation's own action was allowed.
    fn key_uses(_input: &Self::Input) -> Vec<KeyUse> {
        Vec::new()
    }
    /// The KMS key the request names for its secret (its `KmsKeyId`), if any. The key's ARN,
    /// resolved in the secret's account and region, is `secretsmanager:KmsKeyArn` in the
    /// request's decisions (absent when the name resolves to no key), and the operation holds
    /// its own resolution of the name to that one ([`Authorized::ensure_named_key`]).
    fn named_key(_input: &Self::Input) -> Option<&str> {
        None
    }
    /// The version whose value the operation will read from its target secret, if any:
    /// the resolver then fetches it (sealed) in the same read transaction as the secret,
    /// and the operation finds it in `Authorized::fetched_value`.
    fn fetch_value(_input: &Self::Input) -> Option<values::VersionSelector> {
        None
    }
    /// The resource to authorize: the one its input names ([`Targeted`]; operations say it
    /// on their input rather than here).
    fn target(input: &Self::Input) -> Target {
        input.target()
    }
    /// Further resources (ARNs) the operation acts on, on which `ACTION` must be allowed too,
    /// by the caller's identity policies (they have no policy of their own): the alias of
    /// KMS's CreateAlias and DeleteAlias, besides the key.
    fn also_on(_input: &Self::Input, _scope: &Scope) -> Vec<String> {
        Vec::new()
    }
    /// Actions on resources of other services the request needs, `(action, ARN)`, decided
    /// by the caller's identity policies: RotateSecret's `lambda:InvokeFunction` on its
    /// rotation function. `secret` is the resolved target secret, if any.
    fn other_actions(
        _input: &Self::Input,
        _secret: Option<&SecretRow>,
    ) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// Do it.
    fn handle(
        ctx: &Ctx,
        auth: &Authorized,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, ApiError>>;
}

/// A missing required member, in AWS's wording.
pub fn required<T>(field: &str, v: Option<T>) -> Result<T, ApiError> {
    v.ok_or_else(|| {
        ApiError::Validation(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

/// Check a required member is present without taking it.
pub fn require_ref<'a, T>(field: &str, v: &'a Option<T>) -> Result<&'a T, ApiError> {
    v.as_ref().ok_or_else(|| {
        ApiError::Validation(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

/// A secret under its account's AWS managed key (`aws/secretsmanager`) can be neither read
/// nor written from another account: that key's policy cannot be shared. AWS refuses with
/// `InvalidRequestException` once the request itself was allowed (a resource policy may
/// well allow the caller).
pub fn ensure_key_shareable(auth: &Authorized, secret: &SecretRow) -> Result<(), ApiError> {
    ensure_key_shareable_with(&auth.principal.account_id, secret)
}

/// [`ensure_key_shareable`] for a caller of `caller_account` (inside a write transaction).
pub fn ensure_key_shareable_with(caller_account: &str, secret: &SecretRow) -> Result<(), ApiError> {
    if caller_account != secret.account_id && secret.kms_key_id.is_none() {
        return Err(default_key_not_shareable());
    }
    Ok(())
}

/// Before a write reusing the token (VersionId) of an existing version with a value: that
/// write compares the value sent with the stored one, which decrypts it, so `kms:Decrypt` on
/// the key that sealed the version is decided (a write-only caller, `kms:GenerateDataKey`
/// only, would otherwise confirm guesses of a value it may not read). `action` is the
/// operation's own (already allowed), decided again with the key as the per-secret decision.
/// Returns the version it read (`None`: there is none), for the write that follows.
pub fn authorize_value_comparison(
    tx: &mut crate::store::Tx<'_>,
    auth: &Authorized,
    action: &str,
    secret: &SecretRow,
    version_id: &str,
) -> Result<Option<crate::store::rows::VersionRow>, ApiError> {
    let Some(version) = tx.version(&secret.secret_id, version_id)? else {
        return Ok(None);
    };
    if version.value_kind.is_none() {
        return Ok(Some(version));
    }
    let key = match &version.kms_key_id {
        Some(id) => tx.kms_key(id)?,
        None => None,
    };
    let Some(key) = key else {
        return Err(ApiError::AccessDenied(format!(
            "User: {} is not authorized to perform: kms:Decrypt on the KMS key of resource: {}. Access to KMS is not allowed",
            auth.principal.arn, secret.arn
        )));
    };
    let facts = SecretFacts {
        tags: tx.tags(&secret.secret_id)?,
        key_aliases: key_aliases(tx, Some(&key))?,
        key: Some(key),
        key_actions: &["kms:Decrypt"],
        key_for: None,
        request_keys: Vec::new(),
        secret_keys: None,
        policy_cell: None,
    };
    auth.authorize_secret(action, &secret.arn, Some((secret, &facts)))
        .map_err(|r| r.error)?;
    Ok(Some(version))
}

/// AWS's refusal of another account's use of a secret under the default key.
pub fn default_key_not_shareable() -> ApiError {
    ApiError::InvalidRequest(
        "You can't access a secret from a different AWS account if you encrypt the secret with the default KMS service key.".into(),
    )
}

/// A secret scheduled for deletion answers `InvalidRequestException` to reads and writes.
pub fn ensure_not_deleted(secret: &SecretRow) -> Result<(), ApiError> {
    if secret.deleted_at.is_some() {
        return Err(crate::secrets::marked_for_deletion());
    }
    Ok(())
}

/// A tag as the wire carries it.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: Option<String>,
    pub value: Option<String>,
}

/// Wire tags → `(key, value)` pairs; a tag without a key is a validation error.
pub fn tag_pairs(tags: &[Tag]) -> Result<Vec<(String, String)>, ApiError> {
    tags.iter()
        .enumerate()
        .map(|(i, t)| {
            let k = t.key.clone().ok_or_else(|| {
                ApiError::Validation(format!(
                    "1 validation error detected: Value null at 'tags.{}.member.key' failed to satisfy constraint: Member must not be null",
                    i + 1
                ))
            })?;
            Ok((k, t.value.clone().unwrap_or_default()))
        })
        .collect()
}

/// `aws:RequestTag/k` and `aws:TagKeys` for wire tags.
pub fn request_tag_keys(tags: &[Tag]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = tags
        .iter()
        .filter_map(|t| {
            Some((
                format!("aws:RequestTag/{}", t.key.as_deref()?),
                vec![t.value.clone().unwrap_or_default()],
            ))
        })
        .collect();
    out.push((
        "aws:TagKeys".to_owned(),
        tags.iter().filter_map(|t| t.key.clone()).collect(),
    ));
    out
}

/// Refuse a write whose secret's KMS key is no longer the one the request was authorized
/// on (`decided`, the key the resolution read): another request moved the secret to another
/// key in between, and a value sealed now would be sealed under a key whose use was never
/// decided for this caller. Sending the request again decides the new key.
pub fn ensure_key_unchanged(secret: &SecretRow, decided: Option<&str>) -> Result<(), ApiError> {
    if secret.kms_key_id.as_deref() == decided {
        return Ok(());
    }
    Err(ApiError::InvalidRequest(
        "The secret's KMS key changed while this request was being authorized; send the request again.".into(),
    ))
}

/// A key with one value, when the value is present.
pub fn key_if(key: &str, v: Option<impl ToString>) -> Option<(String, Vec<String>)> {
    v.map(|v| (key.to_owned(), vec![v.to_string()]))
}

/// `(key, value)` pairs → wire tags.
pub fn wire_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<T: DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_input_naming_its_target_by_a_member_is_authorized_on_what_the_member_names() {
        let get: get_secret_value::Input = input(r#"{"SecretId":"app/db"}"#);
        assert_eq!(get.target(), Target::Secret("app/db".into()));
        assert_eq!(get.checked_target_id().unwrap(), "app/db");
        let key: kms_ops::common::KeyIdInput = input(r#"{"KeyId":"alias/app"}"#);
        assert_eq!(key.target(), Target::KmsKey("alias/app".into()));
        let list: list_secrets::Input = input("{}");
        assert_eq!(list.target(), Target::Any);
        let check: validate_resource_policy::Input = input(r#"{"SecretId":"app/db"}"#);
        assert_eq!(check.target(), Target::Secret("app/db".into()));
    }

    #[test]
    fn a_missing_or_malformed_member_is_refused_in_its_own_name() {
        let none: describe_secret::Input = input("{}");
        let e = none.checked_target_id().unwrap_err();
        assert_eq!(e.code(), "ValidationException");
        assert!(e.message().contains("Value null at 'secretId'"), "{e:?}");
        let bad: describe_secret::Input = input(r#"{"SecretId":"no spaces"}"#);
        assert_eq!(
            bad.checked_target_id().unwrap_err().code(),
            "ValidationException"
        );
        let none: kms_ops::common::KeyIdInput = input("{}");
        let e = none.checked_target_id().unwrap_err();
        assert!(e.message().contains("Value null at 'keyId'"), "{e:?}");
        let long = format!(r#"{{"KeyId":"{}"}}"#, "k".repeat(2049));
        let e = input::<kms_ops::common::KeyIdInput>(&long)
            .checked_target_id()
            .unwrap_err();
        assert!(e.message().contains("'keyId'"), "{e:?}");
    }
}
