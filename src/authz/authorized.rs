//! The proof an operation runs with: [`Authorized`], constructed by this module only, after
//! the decision allowed the request.

use std::sync::Arc;

use crate::auth::Principal;
use crate::authz::keys::{DecidedKey, DecidedKeyId};
use crate::error::ApiError;
use crate::ops::values;
use crate::ops::{Scope, SecretFacts};
use crate::store::rows::SecretRow;

/// Proof that a request was authenticated and authorized, with what the pipeline resolved.
/// Only `authz` can construct it (`mint` is private to that module; the field `_sealed`
/// keeps a struct literal out of reach).
#[derive(Debug, Clone)]
pub struct Authorized {
    pub principal: Arc<Principal>,
    pub scope: Scope,
    /// The ARN the decision was made on (the full ARN of an existing secret).
    pub resource_arn: String,
    /// The secret the target named, when it exists (shared with the read cache's entry).
    pub secret: Option<Arc<SecretRow>>,
    /// Decides further per-secret actions (BatchGetSecretValue) with the same evaluator.
    pub authorizer: Option<Arc<dyn SecretAuthorizer>>,
    /// The target's value, fetched (still sealed) in the resolver's read transaction when
    /// the operation asked for it (`Operation::fetch_value`); an error is reported only
    /// after authorization, by the operation.
    fetched: Option<Arc<Result<values::FetchedValue, ApiError>>>,
    /// What each key the request named resolved to when its use was decided.
    decided_keys: Vec<DecidedKey>,
    _sealed: (),
}

/// Authorizes an action on one more secret within an already-authorized request, and
/// records that decision as its own audit event.
pub trait SecretAuthorizer: Send + Sync + std::fmt::Debug {
    /// Decide `action` on the secret the caller named `named` (its SecretId as given, or the
    /// secret's ARN when a filter found it): `found` when it exists, with what the decision
    /// needs; a missing secret is decided on the ARN it would have, as for a single request.
    fn authorize_secret(
        &self,
        action: &str,
        named: &str,
        found: Option<(&SecretRow, &SecretFacts)>,
    ) -> Result<(), Refusal>;
    /// Whether the caller could perform `action` on the KMS key `key` if its key policy
    /// were `policy` (KMS's key-policy lockout safety check). Records nothing.
    fn would_allow_on_key(
        &self,
        action: &str,
        key: &crate::store::rows::KmsKeyRow,
        policy: &str,
    ) -> bool;
    /// Whether the caller could perform one of `actions` on the secret `arn` (of `account`,
    /// tagged `tags`) if its resource policy were `policy`, where its own policies alone do
    /// not let it: on any later request, not only on this one (the policy's conditions on
    /// what differs between requests count as met, its `Deny` statements as not applying,
    /// a session's role's other sessions as the caller). A policy that cannot be read counts
    /// as granting. Records nothing.
    fn resource_policy_grants(
        &self,
        arn: &str,
        account: &str,
        tags: &[(String, String)],
        policy: &str,
        actions: &[&str],
    ) -> bool;
    /// Whether accounts `a` and `b` are both in the organization the principals directory
    /// declares (AssociateCrossAccountReplica's `ReplicaRestriction` `SameOrg`).
    fn same_organization(&self, a: &str, b: &str) -> bool;
}

/// A per-secret refusal: the error for the caller, and whether the caller may know the
/// secret exists (its own action was allowed and the refusal came from its KMS key).
#[derive(Debug)]
pub struct Refusal {
    pub error: ApiError,
    pub may_see: bool,
}

impl Authorized {
    /// Minted by `Authz::authorize_operation` after the decision allowed the request.
    pub(super) fn mint(
        principal: Arc<Principal>,
        scope: Scope,
        resource_arn: String,
        secret: Option<Arc<SecretRow>>,
        authorizer: Option<Arc<dyn SecretAuthorizer>>,
    ) -> Self {
        Self {
            principal,
            scope,
            resource_arn,
            secret,
            authorizer,
            fetched: None,
            decided_keys: Vec::new(),
            _sealed: (),
        }
    }

    /// Attach the value the resolver fetched for the operation.
    pub(super) fn with_fetched(
        mut self,
        fetched: Option<Arc<Result<values::FetchedValue, ApiError>>>,
    ) -> Self {
        self.fetched = fetched;
        self
    }

    /// Attach what the keys the request named resolved to when their use was decided.
    pub(super) fn with_decided_keys(mut self, decided: Vec<DecidedKey>) -> Self {
        self.decided_keys = decided;
        self
    }

    /// Refuse to seal under `key`, what the operation resolved `named` (a `KmsKeyId` of the
    /// request) to inside its write transaction, unless it is the key whose use was decided
    /// for the caller: an alias moved (or created) between the decision and the write, or the
    /// name was never decided at all. Sending the request again decides the key it names now.
    pub fn ensure_named_key(
        &self,
        named: &str,
        key: &crate::store::rows::KmsKeyRow,
    ) -> Result<(), ApiError> {
        // Every decision on the name (its `secretsmanager:KmsKeyArn`, the use of the key)
        // must have met this key.
        let mut decided = self.decided_keys.iter().filter(|d| d.named == named);
        let same = decided.clone().next().is_some()
            && decided.all(|d| match &d.key {
                DecidedKeyId::Key(id) => *id == key.key_id,
                DecidedKeyId::Managed => {
                    key.key_manager == "AWS" && key.account_id == self.principal.account_id
                }
                DecidedKeyId::Missing => false,
            });
        if same {
            return Ok(());
        }
        Err(ApiError::InvalidRequest(format!(
            "The KMS key {named} changed while this request was being authorized; send the request again."
        )))
    }

    /// The value fetched with the target secret (when the operation asked for one and the
    /// secret exists), or the error fetching it met.
    pub fn fetched_value(&self) -> Option<Result<&values::FetchedValue, ApiError>> {
        self.fetched
            .as_deref()
            .map(|r| r.as_ref().map_err(Clone::clone))
    }

    /// Authorize `action` on another secret (denied when no authorizer was attached); see
    /// [`SecretAuthorizer::authorize_secret`].
    pub fn authorize_secret(
        &self,
        action: &str,
        named: &str,
        found: Option<(&SecretRow, &SecretFacts)>,
    ) -> Result<(), Refusal> {
        match &self.authorizer {
            Some(a) => a.authorize_secret(action, named, found),
            None => Err(Refusal {
                error: ApiError::AccessDenied(format!(
                    "User: {} is not authorized to perform: {action} on resource: {named}",
                    self.principal.arn
                )),
                may_see: false,
            }),
        }
    }

    /// Whether the caller could perform `action` on `key` under key policy `policy`.
    pub fn would_allow_on_key(
        &self,
        action: &str,
        key: &crate::store::rows::KmsKeyRow,
        policy: &str,
    ) -> bool {
        self.authorizer
            .as_ref()
            .is_some_and(|a| a.would_allow_on_key(action, key, policy))
    }

    /// Whether `policy`, as the resource policy of `arn`, would grant the caller one of
    /// `actions` its own policies do not (true without an authorizer: fails closed); see
    /// [`SecretAuthorizer::resource_policy_grants`].
    pub fn resource_policy_grants(
        &self,
        arn: &str,
        account: &str,
        tags: &[(String, String)],
        policy: &str,
        actions: &[&str],
    ) -> bool {
        self.authorizer
            .as_ref()
            .is_none_or(|a| a.resource_policy_grants(arn, account, tags, policy, actions))
    }

    /// Whether accounts `a` and `b` are in the same organization (false without an
    /// authorizer, or without a declared organization).
    pub fn same_organization(&self, a: &str, b: &str) -> bool {
        self.authorizer
            .as_ref()
            .is_some_and(|x| x.same_organization(a, b))
    }

    /// The target secret, or `ResourceNotFoundException`.
    pub fn secret(&self) -> Result<&SecretRow, ApiError> {
        self.secret
            .as_deref()
            .ok_or_else(ApiError::secret_not_found)
    }
}
