//! The decision algorithm (IAM.md §5): statement applicability, the explicit-deny sweep over
//! every policy type, RCP/SCP levels, same-account resource grants (§5.4), identity,
//! permissions boundary and session policies, and cross-account evaluation (§5.5).
//! Pure: returns a [`Decision`] with the deciding statements and diagnostics, never a `Result`.

use std::fmt;
use std::sync::Arc;

use super::condition::Note;
use super::context::{PrincipalType, RequestContext};
use super::index::StatementIndex;
use super::parse::{
    ActionRule, Policy, PolicyType, PrincipalEntry, PrincipalRule, ResourcePattern, ResourceRule,
    Statement, StatementEffect,
};
use super::pattern::ArnPattern;

/// Several policies of one kind with a merged statement index (build once, share).
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, Default)]
pub struct PolicyGroup {
    policies: Vec<Arc<Policy>>,
    /// `(policy, statement)` for each index id.
    refs: Vec<(u32, u32)>,
    index: StatementIndex,
}

impl PolicyGroup {
    pub fn new(policies: Vec<Arc<Policy>>) -> Self {
        let mut refs = Vec::new();
        for (pi, p) in policies.iter().enumerate() {
            for si in 0..p.statements().len() {
                refs.push((to_u32(pi), to_u32(si)));
            }
        }
        let index = StatementIndex::build(refs.iter().enumerate().filter_map(|(id, &(pi, si))| {
            let st = policies.get(pi as usize)?.statements().get(si as usize)?;
            Some((to_u32(id), st))
        }));
        Self {
            policies,
            refs,
            index,
        }
    }

    pub fn policies(&self) -> &[Arc<Policy>] {
        &self.policies
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Whether a policy of the group reads condition key `key` (lowercase).
    pub fn mentions_condition_key(&self, key: &str) -> bool {
        self.policies.iter().any(|p| p.mentions_condition_key(key))
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Every policy that takes part in one decision. Assemble per request from cached parts:
/// the identity group per principal, the resource policy per secret.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    /// The principal's identity policies (user inline + attached + groups'; or role's).
    pub identity: Arc<PolicyGroup>,
    /// The secret's resource policy.
    pub resource: Option<Arc<Policy>>,
    /// The principal's permissions boundary.
    pub boundary: Option<Arc<Policy>>,
    /// Session policies; `None` = not a session, or a role session created without one.
    /// (A federated-user session with `None` has no permissions, IAM.md §5.3 step 8.)
    pub session: Option<Arc<PolicyGroup>>,
    /// SCP levels root → OU … → account of the principal's account; `None` = no SCPs.
    pub scp: Option<Vec<Arc<PolicyGroup>>>,
    /// RCP levels of the resource's account; `None` = no RCPs.
    pub rcp: Option<Vec<Arc<PolicyGroup>>>,
    /// The resource policy must allow the request even in the resource's own account (a KMS
    /// key policy: without an applicable Allow in it, identity policies grant nothing, and
    /// the account root is not exempt). An Allow naming the account still only delegates.
    pub resource_required: bool,
}

impl PolicySet {
    /// Whether a policy of the set reads condition key `key` (lowercase): when none does,
    /// the key's value cannot change the decision, and need not be looked up.
    pub fn mentions_condition_key(&self, key: &str) -> bool {
        let groups = |g: &Option<Vec<Arc<PolicyGroup>>>| {
            g.iter().flatten().any(|g| g.mentions_condition_key(key))
        };
        self.identity.mentions_condition_key(key)
            || [&self.resource, &self.boundary]
                .into_iter()
                .flatten()
                .any(|p| p.mentions_condition_key(key))
            || self
                .session
                .as_ref()
                .is_some_and(|g| g.mentions_condition_key(key))
            || groups(&self.scp)
            || groups(&self.rcp)
    }

    /// A set with only identity policies.
    pub fn identity(policies: Vec<Arc<Policy>>) -> Self {
        Self {
            identity: Arc::new(PolicyGroup::new(policies)),
            ..Self::default()
        }
    }
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    /// Denied because nothing allowed it (or a required layer did not allow it).
    ImplicitDeny,
    /// Denied by an applicable `Deny` statement.
    ExplicitDeny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "Allow",
            Self::ImplicitDeny => "ImplicitDeny",
            Self::ExplicitDeny => "ExplicitDeny",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Allow" => Self::Allow,
            "ImplicitDeny" => Self::ImplicitDeny,
            "ExplicitDeny" => Self::ExplicitDeny,
            _ => return None,
        })
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an Allow rested on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowBasis {
    /// An identity policy (and, where present, boundary and session policies).
    IdentityPolicy,
    /// A same-account resource-policy grant naming the caller directly, or `*` (bypass).
    ResourcePolicy,
    /// A same-account resource-policy grant naming the caller's role (or federating user);
    /// boundary and session policies still applied.
    ResourcePolicyRoleGrant,
    /// Cross-account: identity side and resource policy both allowed.
    IdentityAndResourcePolicy,
}

/// Why a decision was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The account root's implicit allow in its own account.
    RootInOwnAccount,
    /// Nothing allowed the request (the policy-less `evaluate`).
    NoStatementAllowed,
    Allowed(AllowBasis),
    /// An applicable `Deny` in a policy of this type.
    ExplicitDeny(PolicyType),
    /// No policy of this type allowed the request (the layer that failed).
    NotAllowedBy(PolicyType),
}

/// Which statement contributed to a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedStatement {
    pub policy_type: PolicyType,
    /// The policy's label (`Policy::with_label`, else its `Id`, else empty).
    pub policy_id: Arc<str>,
    /// Position of the policy in its list (identity/session), 0 otherwise.
    pub policy_index: usize,
    /// Organization level for SCPs/RCPs (0 = root).
    pub level: Option<usize>,
    pub sid: Option<Arc<str>>,
    pub statement_index: usize,
}

impl MatchedStatement {
    /// The Sid, or `#index`.
    pub fn sid_or_index(&self) -> String {
        match &self.sid {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => format!("#{}", self.statement_index),
        }
    }
}

impl fmt::Display for MatchedStatement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.policy_type)?;
        if let Some(l) = self.level {
            write!(f, "[level {l}]")?;
        }
        if self.policy_id.is_empty() {
            write!(f, "[{}]", self.policy_index)?;
        } else {
            write!(f, "[{}]", self.policy_id)?;
        }
        write!(f, ":{}", self.sid_or_index())
    }
}

/// Something the caller may want to log; never changes the decision by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnostic {
    /// A policy variable had no value and no default.
    UnresolvedVariable(MatchedStatement),
    /// A request value could not be read as the operator's type (comparison false).
    UnparseableRequestValue { at: MatchedStatement, key: String },
    /// An operator without `ForAnyValue:`/`ForAllValues:` met a multivalued key (no match).
    MultivaluedKeyWithoutQualifier { at: MatchedStatement, key: String },
}

/// The decision record (IAM.md §5.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub effect: Effect,
    pub reason: Reason,
    /// The statements behind the decision: the denying statements for an explicit deny,
    /// the allowing ones for an allow, empty for an implicit deny.
    pub deciding: Vec<MatchedStatement>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }

    /// The policy type that decided a denial.
    pub fn decided_by(&self) -> Option<PolicyType> {
        match self.reason {
            Reason::ExplicitDeny(t) | Reason::NotAllowedBy(t) => Some(t),
            Reason::NoStatementAllowed => Some(PolicyType::Identity),
            Reason::RootInOwnAccount | Reason::Allowed(_) => None,
        }
    }
}

/// How a resource-policy Allow named the caller (§5.4), strongest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Grant {
    /// The account: only delegates; an identity Allow is still needed.
    Account,
    /// The caller's role (or, for a federated user, the federating IAM user).
    Issuer,
    /// The exact caller or `*`: bypasses identity, boundary and session implicit denies.
    Direct,
}

#[derive(Debug, Default)]
struct Outcome {
    denies: Vec<MatchedStatement>,
    allows: Vec<MatchedStatement>,
    grant: Option<Grant>,
}

struct Env<'a> {
    ctx: &'a RequestContext,
    parts: Option<[&'a str; 6]>,
    has_boundary: bool,
    diagnostics: Vec<Diagnostic>,
    notes: Vec<Note>,
    scratch: Vec<u32>,
}

/// Decide one request (IAM.md §5.3).
pub fn authorize(ctx: &RequestContext, set: &PolicySet) -> Decision {
    let mut env = Env {
        ctx,
        parts: ctx.resource_parts(),
        has_boundary: set.boundary.is_some(),
        diagnostics: Vec::new(),
        notes: Vec::new(),
        scratch: Vec::new(),
    };
    let scp: Option<Vec<Outcome>> = set.scp.as_ref().map(|levels| {
        levels
            .iter()
            .enumerate()
            .map(|(l, g)| env.group(g, PolicyType::Scp, Some(l)))
            .collect()
    });
    let rcp: Option<Vec<Outcome>> = set.rcp.as_ref().map(|levels| {
        levels
            .iter()
            .enumerate()
            .map(|(l, g)| env.group(g, PolicyType::Rcp, Some(l)))
            .collect()
    });
    let resource = set
        .resource
        .as_ref()
        .map(|p| env.single(p, PolicyType::Resource));
    let identity = env.group(&set.identity, PolicyType::Identity, None);
    let boundary = set
        .boundary
        .as_ref()
        .map(|p| env.single(p, PolicyType::PermissionsBoundary));
    let session = set
        .session
        .as_ref()
        .map(|g| env.group(g, PolicyType::Session, None));
    let diagnostics = std::mem::take(&mut env.diagnostics);
    let decide = |effect, reason, deciding| Decision {
        effect,
        reason,
        deciding,
        diagnostics: diagnostics.clone(),
    };

    // 2. explicit deny sweep over every policy type
    let mut denies: Vec<MatchedStatement> = Vec::new();
    for o in scp.iter().flatten().chain(rcp.iter().flatten()) {
        denies.extend(o.denies.iter().cloned());
    }
    for o in [
        Some(&identity),
        resource.as_ref(),
        boundary.as_ref(),
        session.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        denies.extend(o.denies.iter().cloned());
    }
    if let Some(first) = denies.iter().min_by_key(|m| deny_rank(m.policy_type)) {
        let t = first.policy_type;
        denies.sort_by_key(|m| deny_rank(m.policy_type));
        return decide(Effect::ExplicitDeny, Reason::ExplicitDeny(t), denies);
    }

    // 3. RCPs, 4. SCPs: every level must allow
    for (levels, t) in [(&rcp, PolicyType::Rcp), (&scp, PolicyType::Scp)] {
        if levels.iter().flatten().any(|o| o.allows.is_empty()) {
            return decide(Effect::ImplicitDeny, Reason::NotAllowedBy(t), Vec::new());
        }
    }

    let p = ctx.principal();
    let root = p.kind == PrincipalType::Root;
    let resource_allows = resource.as_ref().map_or(&[][..], |o| o.allows.as_slice());
    let grant = resource.as_ref().and_then(|o| o.grant);
    // a key policy: nothing is allowed unless it allows (directly or by delegation)
    if set.resource_required && resource_allows.is_empty() {
        return decide(
            Effect::ImplicitDeny,
            Reason::NotAllowedBy(PolicyType::Resource),
            Vec::new(),
        );
    }
    let principal_side_applies =
        !matches!(p.kind, PrincipalType::Service | PrincipalType::Anonymous);

    if !principal_side_applies {
        // service principals and anonymous callers have only resource-policy grants
        return if resource_allows.is_empty() {
            decide(
                Effect::ImplicitDeny,
                Reason::NotAllowedBy(PolicyType::Resource),
                Vec::new(),
            )
        } else {
            decide(
                Effect::Allow,
                Reason::Allowed(AllowBasis::ResourcePolicy),
                resource_allows.to_vec(),
            )
        };
    }

    let same_account = ctx.is_same_account();
    // 5. same-account direct grant bypasses identity, boundary and session implicit denies
    if same_account && grant == Some(Grant::Direct) {
        return decide(
            Effect::Allow,
            Reason::Allowed(AllowBasis::ResourcePolicy),
            resource_allows.to_vec(),
        );
    }
    // 6. identity (a same-account grant to the caller's role counts here)
    let role_grant = same_account && grant == Some(Grant::Issuer);
    if identity.allows.is_empty() && !root && !role_grant {
        return decide(
            Effect::ImplicitDeny,
            Reason::NotAllowedBy(PolicyType::Identity),
            Vec::new(),
        );
    }
    // 7. boundary
    if let Some(b) = &boundary {
        if b.allows.is_empty() {
            return decide(
                Effect::ImplicitDeny,
                Reason::NotAllowedBy(PolicyType::PermissionsBoundary),
                Vec::new(),
            );
        }
    }
    // 8. session policies (a federated user without one has no permissions)
    let session_fails = match &session {
        Some(s) => s.allows.is_empty(),
        None => p.kind == PrincipalType::FederatedUser,
    };
    if session_fails {
        return decide(
            Effect::ImplicitDeny,
            Reason::NotAllowedBy(PolicyType::Session),
            Vec::new(),
        );
    }
    // cross-account: the resource policy must allow the caller too
    if !same_account {
        if resource_allows.is_empty() {
            return decide(
                Effect::ImplicitDeny,
                Reason::NotAllowedBy(PolicyType::Resource),
                Vec::new(),
            );
        }
        let mut deciding = identity.allows.clone();
        deciding.extend(resource_allows.iter().cloned());
        return decide(
            Effect::Allow,
            Reason::Allowed(AllowBasis::IdentityAndResourcePolicy),
            deciding,
        );
    }
    // 9. allow
    if !identity.allows.is_empty() {
        decide(
            Effect::Allow,
            Reason::Allowed(AllowBasis::IdentityPolicy),
            identity.allows,
        )
    } else if role_grant {
        decide(
            Effect::Allow,
            Reason::Allowed(AllowBasis::ResourcePolicyRoleGrant),
            resource_allows.to_vec(),
        )
    } else {
        decide(Effect::Allow, Reason::RootInOwnAccount, Vec::new())
    }
}

/// Which denying policy type is reported first.
fn deny_rank(t: PolicyType) -> u8 {
    match t {
        PolicyType::Scp => 0,
        PolicyType::Rcp => 1,
        PolicyType::Identity => 2,
        PolicyType::Resource => 3,
        PolicyType::PermissionsBoundary => 4,
        PolicyType::Session => 5,
    }
}

impl Env<'_> {
    fn group(&mut self, g: &PolicyGroup, t: PolicyType, level: Option<usize>) -> Outcome {
        let mut out = Outcome::default();
        let mut ids = std::mem::take(&mut self.scratch);
        g.index.candidates(self.ctx, &mut ids);
        for &id in &ids {
            let Some(&(pi, si)) = g.refs.get(id as usize) else {
                continue;
            };
            let Some(policy) = g.policies.get(pi as usize) else {
                continue;
            };
            if let Some(st) = policy.statements().get(si as usize) {
                self.statement(policy, pi as usize, st, t, level, &mut out);
            }
        }
        self.scratch = ids;
        out
    }

    fn single(&mut self, p: &Policy, t: PolicyType) -> Outcome {
        let mut out = Outcome::default();
        let mut ids = std::mem::take(&mut self.scratch);
        p.index().candidates(self.ctx, &mut ids);
        for &id in &ids {
            if let Some(st) = p.statements().get(id as usize) {
                self.statement(p, 0, st, t, None, &mut out);
            }
        }
        self.scratch = ids;
        out
    }

    fn statement(
        &mut self,
        policy: &Policy,
        policy_index: usize,
        st: &Statement,
        t: PolicyType,
        level: Option<usize>,
        out: &mut Outcome,
    ) {
        let ctx = self.ctx;
        if !action_matches(&st.action, ctx.action_lc()) {
            return;
        }
        let mut unresolved = false;
        if !resource_matches(&st.resource, ctx, self.parts.as_ref(), &mut unresolved) {
            if unresolved {
                self.diagnostics
                    .push(Diagnostic::UnresolvedVariable(matched(
                        policy,
                        policy_index,
                        st,
                        t,
                        level,
                    )));
            }
            return;
        }
        let grant = match &st.principal {
            None => Grant::Direct,
            Some(rule) => match principal_matches(rule, ctx, self.has_boundary) {
                Some(g) => g,
                None => return,
            },
        };
        self.notes.clear();
        let mut ok = true;
        for c in &st.conditions {
            let before = self.notes.len();
            if !c.eval(ctx, &mut self.notes) {
                ok = false;
            }
            for note in self.notes.drain(before..) {
                let at = matched(policy, policy_index, st, t, level);
                self.diagnostics.push(match note {
                    Note::UnresolvedVariable => Diagnostic::UnresolvedVariable(at),
                    Note::UnparseableRequestValue => Diagnostic::UnparseableRequestValue {
                        at,
                        key: c.key_name.clone(),
                    },
                    Note::MultivaluedWithoutQualifier => {
                        Diagnostic::MultivaluedKeyWithoutQualifier {
                            at,
                            key: c.key_name.clone(),
                        }
                    }
                });
            }
            if !ok {
                break;
            }
        }
        if !ok {
            return;
        }
        let m = matched(policy, policy_index, st, t, level);
        match st.effect {
            StatementEffect::Deny => out.denies.push(m),
            StatementEffect::Allow => {
                out.allows.push(m);
                out.grant = out.grant.max(Some(grant));
            }
        }
    }
}

fn matched(
    policy: &Policy,
    policy_index: usize,
    st: &Statement,
    t: PolicyType,
    level: Option<usize>,
) -> MatchedStatement {
    MatchedStatement {
        policy_type: t,
        policy_id: Arc::clone(policy.label_arc()),
        policy_index,
        level,
        sid: st.sid.clone(),
        statement_index: st.index,
    }
}

/// The condition keys (as the policies write them, each once, sorted) that a statement of
/// `set` applying to the request's action and resource reads and that `ctx` does not hold:
/// IAM's simulator reports them as `MissingContextValues`, the facts a reviewer must supply
/// for the result to say what a real request would get. Keys read only inside values (policy
/// variables) are not listed.
pub fn missing_context_keys(ctx: &RequestContext, set: &PolicySet) -> Vec<String> {
    let parts = ctx.resource_parts();
    let mut policies: Vec<&Arc<Policy>> = Vec::new();
    policies.extend(set.identity.policies());
    policies.extend(set.resource.iter());
    policies.extend(set.boundary.iter());
    if let Some(g) = &set.session {
        policies.extend(g.policies());
    }
    for levels in [&set.scp, &set.rcp].into_iter().flatten() {
        for g in levels {
            policies.extend(g.policies());
        }
    }
    let mut out: Vec<String> = Vec::new();
    for p in policies {
        for st in p.statements() {
            let mut unresolved = false;
            if !action_matches(&st.action, ctx.action_lc())
                || !resource_matches(&st.resource, ctx, parts.as_ref(), &mut unresolved)
            {
                continue;
            }
            for c in &st.conditions {
                if ctx.get(&c.key).is_none()
                    && !out.iter().any(|k| k.eq_ignore_ascii_case(&c.key_name))
                {
                    out.push(c.key_name.clone());
                }
            }
        }
    }
    out.sort();
    out
}

fn action_matches(rule: &ActionRule, action_lc: &str) -> bool {
    match rule {
        ActionRule::Action(ps) => ps.iter().any(|p| p.matches(action_lc)),
        ActionRule::NotAction(ps) => !ps.iter().any(|p| p.matches(action_lc)),
    }
}

fn resource_matches(
    rule: &ResourceRule,
    ctx: &RequestContext,
    parts: Option<&[&str; 6]>,
    unresolved: &mut bool,
) -> bool {
    let resource = ctx.resource();
    let one = |p: &ResourcePattern, unresolved: &mut bool| match p {
        ResourcePattern::Static(a) => a.matches_full(resource, parts),
        ResourcePattern::Dyn(t) => match t.resolve_toks(ctx) {
            Some(toks) => ArnPattern::from_toks(toks).matches_parts(parts),
            None => {
                // an unresolved variable makes the entry match nothing
                *unresolved = true;
                false
            }
        },
    };
    match rule {
        ResourceRule::Resource(ps) => ps.iter().any(|p| one(p, unresolved)),
        ResourceRule::NotResource(ps) => !ps.iter().any(|p| one(p, unresolved)),
    }
}

/// The strongest way one of `entries` names the caller (IAM.md §2.4), if any.
fn best_grant(entries: &[PrincipalEntry], ctx: &RequestContext) -> Option<Grant> {
    let p = ctx.principal();
    let mut best = None;
    for e in entries {
        let g = match e {
            PrincipalEntry::Any => Some(Grant::Direct),
            PrincipalEntry::Account(a) => (*a == p.account
                && !matches!(p.kind, PrincipalType::Service | PrincipalType::Anonymous))
            .then_some(if p.kind == PrincipalType::Root {
                Grant::Direct
            } else {
                Grant::Account
            }),
            PrincipalEntry::Arn(arn) => {
                if *arn == p.arn {
                    Some(Grant::Direct)
                } else if p.issuer_arn.as_deref() == Some(arn.as_str())
                    && matches!(
                        p.kind,
                        PrincipalType::AssumedRole | PrincipalType::FederatedUser
                    )
                {
                    Some(Grant::Issuer)
                } else {
                    None
                }
            }
            PrincipalEntry::Service(s) => {
                (p.kind == PrincipalType::Service && *s == p.arn).then_some(Grant::Direct)
            }
            PrincipalEntry::Federated(_) | PrincipalEntry::CanonicalUser(_) => None,
        };
        best = best.max(g);
        if best == Some(Grant::Direct) {
            break;
        }
    }
    best
}

/// Whether the statement's principal element covers the caller, and how.
fn principal_matches(
    rule: &PrincipalRule,
    ctx: &RequestContext,
    has_boundary: bool,
) -> Option<Grant> {
    if !rule.not {
        return best_grant(&rule.entries, ctx);
    }
    // NotPrincipal: applies unless every identity in the caller's chain is listed
    // (exact ARN, role ARN for sessions, account). A principal with a permissions boundary
    // is never excluded (IAM.md §1.3).
    if has_boundary {
        return Some(Grant::Account);
    }
    let p = ctx.principal();
    let listed = |want: &dyn Fn(&PrincipalEntry) -> bool| rule.entries.iter().any(want);
    if listed(&|e| *e == PrincipalEntry::Any) {
        return None;
    }
    let exact = listed(
        &|e| matches!(e, PrincipalEntry::Arn(a) | PrincipalEntry::Service(a) if *a == p.arn),
    ) || (p.kind == PrincipalType::Root
        && listed(&|e| matches!(e, PrincipalEntry::Account(a) if *a == p.account)));
    let account = matches!(p.kind, PrincipalType::Service)
        || listed(&|e| matches!(e, PrincipalEntry::Account(a) if *a == p.account));
    let issuer = match (p.kind, &p.issuer_arn) {
        (PrincipalType::AssumedRole, Some(role)) => {
            listed(&|e| matches!(e, PrincipalEntry::Arn(a) if a == role))
        }
        _ => true,
    };
    if exact && account && issuer {
        None
    } else {
        Some(Grant::Account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::context::PrincipalInfo;

    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-a1B2c3";

    fn parse(kind: PolicyType, stmts: &str) -> Arc<Policy> {
        let text = format!(r#"{{"Version":"2012-10-17","Statement":[{stmts}]}}"#);
        Arc::new(Policy::parse(&text, kind).unwrap().with_label("p"))
    }

    fn session() -> PrincipalInfo {
        PrincipalInfo {
            kind: PrincipalType::AssumedRole,
            arn: "arn:aws:sts::111111111111:assumed-role/app/s1".into(),
            issuer_arn: Some("arn:aws:iam::111111111111:role/app".into()),
            account: "111111111111".into(),
            user_name: None,
            user_id: None,
            tags: Default::default(),
        }
    }

    #[test]
    fn reasons_and_deciding_statements() {
        let ctx = RequestContext::new(session(), "secretsmanager:GetSecretValue", SECRET, None);
        let grant = parse(
            PolicyType::Resource,
            r#"{"Sid":"Role","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:role/app"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}"#,
        );
        let set = PolicySet {
            resource: Some(Arc::clone(&grant)),
            ..PolicySet::default()
        };
        let d = authorize(&ctx, &set);
        assert_eq!(
            d.reason,
            Reason::Allowed(AllowBasis::ResourcePolicyRoleGrant)
        );
        assert_eq!(d.deciding.len(), 1);
        assert_eq!(d.deciding[0].to_string(), "resource[p]:Role");
        assert_eq!(d.decided_by(), None);

        let mut set = PolicySet::identity(vec![parse(
            PolicyType::Identity,
            r#"{"Effect":"Deny","Action":"secretsmanager:*","Resource":"*"},{"Sid":"X","Effect":"Deny","Action":"*","Resource":"*"}"#,
        )]);
        set.scp = Some(vec![Arc::new(PolicyGroup::new(vec![parse(
            PolicyType::Scp,
            r#"{"Effect":"Deny","Action":"*","Resource":"*"}"#,
        )]))]);
        let d = authorize(&ctx, &set);
        assert_eq!(d.reason, Reason::ExplicitDeny(PolicyType::Scp));
        let names: Vec<String> = d.deciding.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            ["scp[level 0][p]:#0", "identity[p]:#0", "identity[p]:X"]
        );
    }

    #[test]
    fn diagnostics_are_reported() {
        let ctx = RequestContext::new(session(), "secretsmanager:GetSecretValue", SECRET, None)
            .with("aws:TagKeys", ["a"])
            .with("aws:SourceIp", ["not-an-ip"]);
        let set = PolicySet::identity(vec![parse(
            PolicyType::Identity,
            r#"{"Effect":"Allow","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:${aws:username}/*"},
               {"Effect":"Allow","Action":"secretsmanager:*","Resource":"*","Condition":{"StringEquals":{"aws:TagKeys":"a"}}},
               {"Effect":"Allow","Action":"secretsmanager:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}"#,
        )]);
        let d = authorize(&ctx, &set);
        assert_eq!(d.effect, Effect::ImplicitDeny);
        assert!(matches!(
            d.diagnostics[0],
            Diagnostic::UnresolvedVariable(_)
        ));
        assert!(
            matches!(&d.diagnostics[1], Diagnostic::MultivaluedKeyWithoutQualifier { key, .. } if key == "aws:TagKeys")
        );
        assert!(
            matches!(&d.diagnostics[2], Diagnostic::UnparseableRequestValue { key, .. } if key == "aws:SourceIp")
        );
    }
}
