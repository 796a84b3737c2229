//! THE request context: every decision, a real request's or a simulation's, starts from
//! [`request_context`], so that a simulated answer is the answer a real request gets.

use std::net::IpAddr;

use crate::auth::{Principal, PrincipalKind};
use crate::identity::Directory;
use crate::policy::{PrincipalInfo, RequestContext};

/// What a decision knows about the request besides who, what and on which resource.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The region the request acts in (`aws:RequestedRegion`).
    pub region: String,
    /// The server's clock (`aws:CurrentTime`, `aws:EpochTime`), epoch milliseconds.
    pub now_ms: i64,
    /// `aws:SourceIp`: the peer, or what a trusted proxy forwarded. `None`: not known
    /// (a simulation that did not give it).
    pub source_ip: Option<IpAddr>,
    /// `aws:SecureTransport`. `None`: not known (a simulation that did not give it).
    pub secure_transport: Option<bool>,
}

/// The principal's side of the context: ARN, kind, account, user name, tags, and for a
/// role session the role as issuer.
pub fn principal_info(principal: &Principal) -> PrincipalInfo {
    let mut info = PrincipalInfo::from_auth(principal);
    info.issuer_arn = principal.role_arn.clone().or(info.issuer_arn);
    info.user_name = principal
        .name
        .clone()
        .filter(|_| principal.kind == PrincipalKind::User);
    info.tags = principal.tags.clone();
    info
}

/// The context of `principal` performing `action` on `resource` (owned by
/// `resource_account`): the principal's keys, the request's global keys
/// ([`with_request_keys`]), `aws:ViaAWSService` and `aws:PrincipalIsAWSService` (false) and
/// the session's (`aws:MultiFactorAuthPresent`, `aws:TokenIssueTime`, and for a web identity
/// session `aws:FederatedProvider`). The caller adds the resource's and the operation's own
/// keys.
pub fn request_context(
    dir: &Directory,
    principal: &Principal,
    facts: &Facts,
    action: &str,
    resource: &str,
    resource_account: &str,
) -> RequestContext {
    let rctx = RequestContext::new(
        principal_info(principal),
        action,
        resource,
        Some(resource_account),
    );
    let mut rctx = with_request_keys(
        rctx,
        dir,
        Some(&principal.account_id),
        facts,
        action,
        resource,
        resource_account,
    );
    // A principal's own signed request: AWS puts both keys in every such request's context,
    // false here (`"Bool": {"aws:ViaAWSService": "false"}` in a Deny is AWS's documented way
    // to spare only what a service does on the caller's behalf, so the key must be present).
    // A decision Secrets Manager makes on the caller's behalf (a KMS key's use) sets
    // `aws:ViaAWSService` true with its own keys.
    rctx = rctx.with_own_request_keys();
    // Temporary credentials: issued without MFA (present and false, as AWS sets it);
    // long-term access keys leave the key absent.
    if let Some(session) = &principal.session {
        rctx = rctx.with_static("aws:multifactorauthpresent", "false");
        if let Ok(t) =
            time::OffsetDateTime::from_unix_timestamp(session.created_ms.div_euclid(1000))
        {
            if let Ok(text) = t.format(&time::format_description::well_known::Rfc3339) {
                rctx = rctx.with_static("aws:tokenissuetime", &text);
            }
        }
        // A session issued for a web identity token (its issuer is the token's, a URL; STS's
        // own sessions say `sts.amazonaws.com`): the OIDC provider that authenticated it, as
        // AWS names it, of the role's account (whose provider verified the token).
        if session.issuer.starts_with("https://") || session.issuer.starts_with("http://") {
            rctx = rctx.with_static(
                "aws:federatedprovider",
                &format!(
                    "arn:aws:iam::{}:oidc-provider/{}",
                    principal.account_id,
                    crate::identity::load::federated_name(&session.issuer)
                ),
            );
        }
    }
    rctx
}

/// The keys every request has whoever makes it: region, time, source address, transport,
/// the resource's account (`aws:ResourceAccount`), the organization's (`aws:PrincipalOrgID`, `aws:PrincipalOrgPaths` for a principal of
/// `principal_account` in it, `aws:ResourceOrgID` and `aws:ResourceOrgPaths` for a resource
/// of an account in it) and `kms:CallerAccount`.
pub fn with_request_keys(
    mut rctx: RequestContext,
    dir: &Directory,
    principal_account: Option<&str>,
    facts: &Facts,
    action: &str,
    resource: &str,
    resource_account: &str,
) -> RequestContext {
    rctx = rctx.with_static("aws:requestedregion", &facts.region);
    if let Some(tls) = facts.secure_transport {
        rctx = rctx.with_secure_transport(tls);
    }
    if let Ok(now) = time::OffsetDateTime::from_unix_timestamp(facts.now_ms.div_euclid(1000)) {
        rctx = rctx.with_time(now);
    }
    if let Some(ip) = facts.source_ip {
        rctx = rctx.with_source_ip(ip);
    }
    // The account that owns the resource (a secret's, a key's): the data-perimeter guard
    // `aws:ResourceAccount` = `${aws:PrincipalAccount}` needs it. Not for `*`.
    if resource != "*" && !resource_account.is_empty() {
        rctx = rctx.with_static("aws:resourceaccount", resource_account);
    }
    if let Some(org) = &dir.org_id {
        let in_org = |account: &str| dir.in_organization(account);
        if let Some(account) = principal_account.filter(|a| in_org(a)) {
            rctx = rctx.with_static("aws:principalorgid", org);
            if let Some(path) = dir.org_paths.get(account) {
                rctx = rctx.with_static("aws:principalorgpaths", path);
            }
        }
        if resource != "*" && in_org(resource_account) {
            rctx = rctx.with_static("aws:resourceorgid", org);
            if let Some(path) = dir.org_paths.get(resource_account) {
                rctx = rctx.with_static("aws:resourceorgpaths", path);
            }
        }
    }
    if action.starts_with("kms:") {
        if let Some(account) = principal_account {
            rctx = rctx.with_static("kms:calleraccount", account);
        }
    }
    rctx
}
