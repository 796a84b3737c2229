//! Authorization, in one place: what a request's target resolves to ([`resolve`]), the
//! policies that take part and their cache, THE request context ([`context`]), the KMS key
//! policy checks ([`keys`]), per-secret decisions inside a request ([`per_secret`]) and the
//! proof an operation runs with ([`Authorized`], which only this module can construct).
//!
//! Every decision is made by the pure evaluator (`policy::authorize`); this module gathers
//! its inputs and fails closed: a policy that cannot be read, a store error or a key that
//! cannot be found refuses the request, and the refusal is recorded with why.

mod authorized;
mod cache;
pub mod context;
mod keys;
mod per_secret;
pub mod resolve;

use std::sync::{Arc, Mutex};

pub use authorized::{Authorized, Refusal, SecretAuthorizer};
pub use context::{request_context, Facts};
pub use resolve::{secret_key_layer, Resolved};

use crate::audit::{self, Draft};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::identity::live::Live;
use crate::ops::{Ctx, Operation, Scope};
use crate::policy;

/// The authorization state a server shares between requests: the live principals directory,
/// the compiled-policy cache, the store (for resolution and key lookups) and the clock.
#[derive(Debug, Clone)]
pub struct Authz {
    ctx: Ctx,
    identities: Arc<Live>,
    policies: Arc<Mutex<cache::PolicyCache>>,
}

impl Authz {
    pub fn new(ctx: Ctx, identities: Arc<Live>) -> Self {
        Self {
            ctx,
            identities,
            policies: Arc::new(Mutex::new(cache::PolicyCache::default())),
        }
    }

    /// The live principals directory.
    pub fn identities(&self) -> &Arc<Live> {
        &self.identities
    }

    /// The server's clock, epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.ctx.now_ms()
    }

    /// Resolve operation `O`'s target, decide its actions and the KMS keys it uses, and hand
    /// out the proof it runs with, with a recorder of the per-secret decisions it makes
    /// later (BatchGetSecretValue). `base` is the request's audit draft so far; the decision
    /// is recorded in `draft`.
    pub async fn authorize_operation<O: Operation>(
        &self,
        principal: &Arc<Principal>,
        scope: &Scope,
        input: &O::Input,
        draft: &mut Draft,
    ) -> Result<(Authorized, per_secret::Events), ApiError> {
        let (resolved, fetched) =
            resolve::resolve(&self.ctx, scope, O::target(input), O::fetch_value(input)).await?;
        draft.resource_arn = Some(resolved.arn.clone());
        let mut keys = O::context_keys(input);
        keys.extend(resolved.keys.iter().cloned());
        // `secretsmanager:KmsKeyArn`: the key the request names, resolved where the secret
        // is (a new secret's in the caller's scope); set after the resource's keys.
        let mut after = Vec::new();
        let mut decided_keys = Vec::new();
        if let Some(id) = O::named_key(input) {
            let owner = match resolved.secret.as_deref() {
                Some(s) => Scope {
                    account: s.account_id.clone(),
                    region: s.region.clone(),
                },
                None => scope.clone(),
            };
            let (decided, arn) = self.named_key_arn(&owner, id).await?;
            if let Some(arn) = arn {
                after.push(("secretsmanager:KmsKeyArn".to_owned(), vec![arn]));
            }
            decided_keys.push(decided);
        }
        let set = Keys {
            before: &keys,
            shared: resolved.shared_keys.as_ref(),
            after: &after,
        };
        for action in std::iter::once(O::ACTION).chain(O::extra_actions(input)) {
            let dir = self.identities.get();
            self.authorize_under(&dir, principal, scope, action, &resolved, set, draft)?;
        }
        for (action, arn) in O::other_actions(input, resolved.secret.as_deref()) {
            let account = arn.split(':').nth(4).unwrap_or_default().to_owned();
            let other = Resolved::on(arn, account);
            self.authorize(principal, scope, action, &other, &[], draft)?;
        }
        for arn in O::also_on(input, scope) {
            let also = Resolved {
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
            self.authorize(
                principal,
                scope,
                O::ACTION,
                &also,
                &O::context_keys(input),
                draft,
            )?;
        }
        let uses = O::key_uses(input);
        if !uses.is_empty() {
            decided_keys.extend(
                self.authorize_key_uses(
                    principal,
                    scope,
                    &resolved,
                    uses,
                    fetched.as_deref(),
                    draft,
                )
                .await?,
            );
        }
        let per_secret = Arc::new(per_secret::PerSecret::new(
            self.clone(),
            Arc::clone(principal),
            scope.clone(),
            draft.per_secret_base(),
        ));
        let events = per_secret::Events(Arc::clone(&per_secret));
        let authorizer: Arc<dyn SecretAuthorizer> = per_secret;
        let authorized = Authorized::mint(
            Arc::clone(principal),
            scope.clone(),
            resolved.arn,
            resolved.secret,
            Some(authorizer),
        )
        .with_fetched(fetched)
        .with_decided_keys(decided_keys);
        Ok((authorized, events))
    }

    /// Decide one action on a resolved resource; records the decision in the draft and
    /// answers AWS's AccessDeniedException wording when denied.
    pub fn authorize(
        &self,
        principal: &Principal,
        scope: &Scope,
        action: &str,
        resolved: &Resolved,
        keys: &[(String, Vec<String>)],
        draft: &mut Draft,
    ) -> Result<(), ApiError> {
        let dir = self.identities.get();
        self.authorize_under(
            &dir,
            principal,
            scope,
            action,
            resolved,
            Keys::flat(keys),
            draft,
        )
    }

    /// [`Self::authorize`] with the principals directory `dir` (not the one in force by
    /// the time of the call): a caller that chose what to look up for the decision by the
    /// policies of `dir` (`kms:ResourceAliases`) has it decided by those same policies, not
    /// by those of a reload in between.
    #[expect(
        clippy::too_many_arguments,
        reason = "authorize's arguments and the directory it decides under"
    )]
    pub(super) fn authorize_under(
        &self,
        dir: &crate::identity::Directory,
        principal: &Principal,
        scope: &Scope,
        action: &str,
        resolved: &Resolved,
        keys: Keys<'_>,
        draft: &mut Draft,
    ) -> Result<(), ApiError> {
        let facts = self.facts(scope, draft);
        let (recorded, result) = self.decide(dir, principal, &facts, action, resolved, keys);
        recorded.write(draft);
        result
    }

    /// [`Self::authorize_under`] with the request's `facts`: the decision, and what it writes
    /// into the audit draft.
    pub(super) fn decide(
        &self,
        dir: &crate::identity::Directory,
        principal: &Principal,
        facts: &Facts,
        action: &str,
        resolved: &Resolved,
        keys: Keys<'_>,
    ) -> (Recorded, Result<(), ApiError>) {
        let rctx = Self::context(dir, principal, facts, action, resolved, keys);
        let set = match self.policy_set(principal, resolved, dir) {
            Ok(set) => set,
            Err(why) => {
                // A policy that takes part cannot be read: nothing is decided, the request is
                // refused (its Deny statements may be exactly what should apply).
                tracing::error!(resource = %resolved.arn, "authorization refused: {why}");
                let recorded = Recorded {
                    decision: policy::Effect::ImplicitDeny.as_str().to_owned(),
                    reason: format!("refused without a decision: {why}"),
                    deciding: None,
                };
                return (recorded, Err(denied(principal, action, resolved, None)));
            }
        };
        let decision = policy::authorize(&rctx, &set);
        let recorded = Recorded::of(&decision);
        if decision.is_allowed() {
            return (recorded, Ok(()));
        }
        let reason = policy::denial_message(&rctx, &decision);
        (recorded, Err(denied(principal, action, resolved, reason)))
    }

    /// What a decision in `scope` knows about the request besides who, what and on which
    /// resource: the server's clock, and from `draft` the source address and transport.
    pub(super) fn facts(&self, scope: &Scope, draft: &Draft) -> Facts {
        Facts {
            region: scope.region.clone(),
            now_ms: self.ctx.now_ms(),
            source_ip: draft.source_ip.as_deref().and_then(|i| i.parse().ok()),
            secure_transport: Some(draft.secure_transport),
        }
    }

    /// The request context of a decision of `action` on `resolved` by `principal`: the
    /// principal's and the request's keys, then `keys` (the resource's and the operation's
    /// own).
    pub(super) fn context(
        dir: &crate::identity::Directory,
        principal: &Principal,
        facts: &Facts,
        action: &str,
        resolved: &Resolved,
        keys: Keys<'_>,
    ) -> policy::RequestContext {
        let mut rctx = context::request_context(
            dir,
            principal,
            facts,
            action,
            &resolved.arn,
            &resolved.account,
        );
        for (k, v) in keys.before {
            rctx = rctx.with(k, v.iter().map(String::as_str));
        }
        if let Some(shared) = keys.shared {
            rctx = rctx.with_shared(Arc::clone(shared));
        }
        for (k, v) in keys.after {
            rctx = rctx.with(k, v.iter().map(String::as_str));
        }
        rctx
    }

    /// Every policy that takes part in a decision for `principal` on `resolved`.
    pub(crate) fn policy_set(
        &self,
        principal: &Principal,
        resolved: &Resolved,
        dir: &crate::identity::Directory,
    ) -> Result<policy::PolicySet, String> {
        let mut set = policy::PolicySet::default();
        match principal.kind {
            crate::auth::PrincipalKind::Root => {}
            crate::auth::PrincipalKind::User => {
                if let Some(u) = principal
                    .name
                    .as_deref()
                    .and_then(|n| dir.user(&principal.account_id, n))
                {
                    set.identity = Arc::clone(&u.identity_group);
                    set.boundary = u.boundary.as_ref().and_then(|b| b.compiled.clone());
                }
            }
            crate::auth::PrincipalKind::AssumedRole => {
                if let Some(r) = principal
                    .role_arn
                    .as_deref()
                    .and_then(|a| dir.role_by_arn(a))
                {
                    set.identity = Arc::clone(&r.identity_group);
                    set.boundary = r.boundary.as_ref().and_then(|b| b.compiled.clone());
                }
                if let Some(text) = principal.session.as_ref().and_then(|s| s.policy.as_deref()) {
                    let compiled = self
                        .compiled_session_policy(text)
                        .map_err(|e| format!("the session policy cannot be read: {e}"))?;
                    set.session = Some(Arc::new(policy::PolicyGroup::new(vec![compiled])));
                }
            }
        }
        if dir.management_account.as_deref() != Some(principal.account_id.as_str()) {
            if let Some(levels) = dir.scp_groups.get(&principal.account_id) {
                set.scp = Some(levels.clone());
            }
        }
        set.resource_required = resolved.resource_required;
        if let Some(p) = &resolved.compiled_policy {
            set.resource = Some(Arc::clone(p));
        } else if let Some(text) = &resolved.resource_policy {
            let kept = resolved.policy_cell.as_ref().and_then(|c| c.get());
            let compiled = match kept {
                Some(p) => Arc::clone(p),
                None => {
                    let p = self
                        .compiled_resource_policy(&resolved.arn, text)
                        .map_err(|e| format!("the stored resource policy cannot be read: {e}"))?;
                    if let Some(cell) = &resolved.policy_cell {
                        // Another thread may have kept the same policy first.
                        let _ = cell.set(Arc::clone(&p));
                    }
                    p
                }
            };
            set.resource = Some(compiled);
        }
        Ok(set)
    }
}

/// The condition keys a decision adds to the principal's and the request's, in the order
/// they are set (each overriding what was set before it): `before`, the keys of `shared`,
/// `after`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Keys<'a> {
    pub before: &'a [(String, Vec<String>)],
    pub shared: Option<&'a Arc<policy::ContextKeys>>,
    pub after: &'a [(String, Vec<String>)],
}

impl<'a> Keys<'a> {
    /// `keys`, set one by one.
    pub fn flat(keys: &'a [(String, Vec<String>)]) -> Self {
        Self {
            before: keys,
            ..Self::default()
        }
    }
}

/// AWS's AccessDeniedException for a refused `action` on `resolved`. A resource named as the
/// caller gave it (`Resolved::shown`, a secret) gets the bare form, without the reason: the
/// reason and the suffixed ARN would tell a caller who may not see the secret that it exists
/// (a resource policy's deny, a tag condition). Other resources get AWS's full message.
fn denied(
    principal: &Principal,
    action: &str,
    resolved: &Resolved,
    full_message: Option<String>,
) -> ApiError {
    ApiError::AccessDenied(match (&resolved.shown, full_message) {
        (None, Some(m)) => m,
        (shown, _) => format!(
            "User: {} is not authorized to perform: {action} on resource: {}",
            principal.arn,
            shown.as_deref().unwrap_or(&resolved.arn)
        ),
    })
}

/// A decision as the audit record's `authorization` block holds it: the effect, the reason
/// in one line, and the first deciding statement (its policy's type, id or ARN, and Sid or
/// index). An implicit deny has no deciding statement; its reason says which policy type was
/// missing.
#[derive(Debug)]
pub(super) struct Recorded {
    decision: String,
    reason: String,
    /// The deciding statement's policy type, policy id and statement; `None`: a refusal
    /// without a decision, which leaves the draft's as they were.
    deciding: Option<[Option<String>; 3]>,
}

impl Recorded {
    fn of(d: &policy::Decision) -> Self {
        let first = d.deciding.first();
        Self {
            decision: d.effect.as_str().to_owned(),
            reason: describe_decision(d),
            deciding: Some([
                first.map(|m| format!("{:?}", m.policy_type)),
                first.map(|m| m.policy_id.to_string()),
                first.map(policy::MatchedStatement::sid_or_index),
            ]),
        }
    }

    /// Into the draft's `authorization` fields.
    pub(super) fn write(self, draft: &mut audit::Draft) {
        draft.decision = Some(self.decision);
        draft.decision_reason = Some(self.reason);
        if let Some([policy_type, policy_id, statement]) = self.deciding {
            draft.deciding_policy_type = policy_type;
            draft.policy_id = policy_id;
            draft.statement = statement;
        }
    }
}

/// The decision in one line for the audit record: effect, deciding policy and statement.
fn describe_decision(d: &policy::Decision) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(96);
    // Writing to a String cannot fail.
    let _ = write!(out, "{:?}", d.reason);
    for (i, m) in d.deciding.iter().enumerate() {
        out.push_str(if i == 0 { " by " } else { ", " });
        let _ = write!(out, "{:?} {} #", m.policy_type, m.policy_id);
        match m.sid.as_deref().filter(|s| !s.is_empty()) {
            Some(sid) => out.push_str(sid),
            None => {
                let _ = write!(out, "#{}", m.statement_index);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::describe_decision;
    use crate::policy::{AllowBasis, Decision, Effect, MatchedStatement, PolicyType, Reason};

    /// The line as `format!` and `join` wrote it, held against the one-buffer writer.
    fn by_format(d: &Decision) -> String {
        let by: Vec<String> = d
            .deciding
            .iter()
            .map(|m| format!("{:?} {} #{}", m.policy_type, m.policy_id, m.sid_or_index()))
            .collect();
        if by.is_empty() {
            format!("{:?}", d.reason)
        } else {
            format!("{:?} by {}", d.reason, by.join(", "))
        }
    }

    fn matched(policy_type: PolicyType, id: &str, sid: Option<&str>, i: usize) -> MatchedStatement {
        MatchedStatement {
            policy_type,
            policy_id: Arc::from(id),
            policy_index: 0,
            level: None,
            sid: sid.map(Arc::from),
            statement_index: i,
        }
    }

    #[test]
    fn the_decision_line_is_the_formatted_one() {
        let cases = [
            (
                Effect::ImplicitDeny,
                Reason::NotAllowedBy(PolicyType::Identity),
                vec![],
            ),
            (Effect::Allow, Reason::RootInOwnAccount, vec![]),
            (
                Effect::Allow,
                Reason::Allowed(AllowBasis::IdentityAndResourcePolicy),
                vec![
                    matched(
                        PolicyType::Identity,
                        "arn:aws:iam::1:user/u#inline",
                        Some("Read"),
                        0,
                    ),
                    matched(PolicyType::Resource, "res", None, 3),
                    matched(PolicyType::Resource, "", Some(""), 12),
                ],
            ),
            (
                Effect::ExplicitDeny,
                Reason::ExplicitDeny(PolicyType::Scp),
                vec![matched(PolicyType::Scp, "p-1", Some("DenyAll"), 1)],
            ),
        ];
        for (effect, reason, deciding) in cases {
            let d = Decision {
                effect,
                reason,
                deciding,
                diagnostics: Vec::new(),
            };
            assert_eq!(describe_decision(&d), by_format(&d));
        }
    }
}
