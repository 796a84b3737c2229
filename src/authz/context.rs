//! THE request context: every decision, a real request's or a simulation's, starts from
//! [`request_context`], so that a simulated answer is the answer a real request gets.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::{Principal, PrincipalKind};
use crate::identity::Directory;
use crate::policy::{ContextKeys, PrincipalContext, PrincipalInfo, RequestContext};

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
    let rctx = RequestContext::for_principal(
        principal_context(principal),
        action,
        resource,
        Some(resource_account),
    );
    with_request_keys(
        rctx,
        dir,
        Some(&principal.account_id),
        facts,
        action,
        resource,
        resource_account,
    )
}

/// The principal's side of every context of `principal`: its keys, those of its own signed
/// requests and its session's. A pure function of `principal`; each thread keeps the last
/// one it built and hands it out again for an equal principal (every field compared), so
/// that the two or three decisions of a request, and a caller's next requests, share it.
pub fn principal_context(principal: &Principal) -> Arc<PrincipalContext> {
    thread_local! {
        static LAST: RefCell<Option<(Principal, Arc<PrincipalContext>)>> =
            const { RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((p, built)) = last.as_ref() {
            if p == principal {
                return Arc::clone(built);
            }
        }
        let built = Arc::new(build_principal_context(principal));
        *last = Some((principal.clone(), Arc::clone(&built)));
        built
    })
}

/// [`principal_context`], built.
fn build_principal_context(principal: &Principal) -> PrincipalContext {
    // A principal's own signed request: AWS puts both keys in every such request's context,
    // false here (`"Bool": {"aws:ViaAWSService": "false"}` in a Deny is AWS's documented way
    // to spare only what a service does on the caller's behalf, so the key must be present).
    // A decision Secrets Manager makes on the caller's behalf (a KMS key's use) sets
    // `aws:ViaAWSService` true with its own keys.
    let mut built = PrincipalContext::new(principal_info(principal)).with_own_request_keys();
    // Temporary credentials: issued without MFA (present and false, as AWS sets it);
    // long-term access keys leave the key absent.
    if let Some(session) = &principal.session {
        built = built.with_static("aws:multifactorauthpresent", "false");
        if let Ok(t) =
            time::OffsetDateTime::from_unix_timestamp(session.created_ms.div_euclid(1000))
        {
            if let Ok(text) = t.format(&time::format_description::well_known::Rfc3339) {
                built = built.with_static("aws:tokenissuetime", &text);
            }
        }
        // A session issued for a web identity token (its issuer is the token's, a URL; STS's
        // own sessions say `sts.amazonaws.com`): the OIDC provider that authenticated it, as
        // AWS names it, of the role's account (whose provider verified the token).
        if session.issuer.starts_with("https://") || session.issuer.starts_with("http://") {
            built = built.with_static(
                "aws:federatedprovider",
                &format!(
                    "arn:aws:iam::{}:oidc-provider/{}",
                    principal.account_id,
                    crate::identity::load::federated_name(&session.issuer)
                ),
            );
        }
    }
    built
}

/// The keys of `facts` (region, time, source address, transport), shared by every context
/// of the same facts. A pure function of the facts (the time to the second); each thread
/// keeps the last one it built and hands it out again for equal facts.
fn fact_keys(facts: &Facts) -> Arc<ContextKeys> {
    thread_local! {
        static LAST: RefCell<Option<(FactsKey, Arc<ContextKeys>)>> = const { RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((k, built)) = last.as_ref() {
            if k.same(facts) {
                return Arc::clone(built);
            }
        }
        let key = FactsKey {
            region: facts.region.clone(),
            second: facts.now_ms.div_euclid(1000),
            source_ip: facts.source_ip,
            secure_transport: facts.secure_transport,
        };
        let mut keys = ContextKeys::new().with_static("aws:requestedregion", &facts.region);
        if let Some(tls) = facts.secure_transport {
            keys = keys.with_secure_transport(tls);
        }
        if let Ok(now) = time::OffsetDateTime::from_unix_timestamp(key.second) {
            keys = keys.with_time(now);
        }
        if let Some(ip) = facts.source_ip {
            keys = keys.with_source_ip(ip);
        }
        let built = Arc::new(keys);
        *last = Some((key, Arc::clone(&built)));
        built
    })
}

/// What [`fact_keys`] reads of the facts.
struct FactsKey {
    region: String,
    second: i64,
    source_ip: Option<IpAddr>,
    secure_transport: Option<bool>,
}

impl FactsKey {
    fn same(&self, facts: &Facts) -> bool {
        self.region == facts.region
            && self.second == facts.now_ms.div_euclid(1000)
            && self.source_ip == facts.source_ip
            && self.secure_transport == facts.secure_transport
    }
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
    rctx = rctx.with_shared(fact_keys(facts));
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::auth::SessionContext;

    fn user(tags: &[(&str, &str)]) -> Principal {
        let tags: BTreeMap<String, String> = tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Principal::user(
            "111111111111",
            "arn:aws:iam::111111111111:user/alice",
            "AIDA1",
            "alice",
            tags,
            "AKIA1",
        )
    }

    fn value<'a>(c: &'a RequestContext, key: &str) -> Option<Vec<&'a str>> {
        c.get(key)
            .map(|v| v.values.iter().map(String::as_str).collect())
    }

    /// The principal's side is handed out again only for an equal principal: one retagged
    /// (a reload) or another session gets its own keys at the very next decision.
    #[test]
    fn principal_side_follows_the_principal() {
        let dir = Directory::default();
        let facts = Facts {
            region: "us-east-1".to_owned(),
            now_ms: 1_714_564_800_123,
            source_ip: "192.0.2.7".parse().ok(),
            secure_transport: Some(true),
        };
        let res = "arn:aws:secretsmanager:us-east-1:111111111111:secret:x-AbCdEf";
        let ctx = |p: &Principal, facts: &Facts| {
            request_context(
                &dir,
                p,
                facts,
                "secretsmanager:GetSecretValue",
                res,
                "111111111111",
            )
        };
        let blue = user(&[("Team", "blue")]);
        let c = ctx(&blue, &facts);
        assert_eq!(value(&c, "aws:PrincipalTag/team"), Some(vec!["blue"]));
        assert_eq!(value(&c, "aws:username"), Some(vec!["alice"]));
        assert_eq!(value(&c, "aws:ViaAWSService"), Some(vec!["false"]));
        assert_eq!(value(&c, "aws:SourceIp"), Some(vec!["192.0.2.7"]));
        assert_eq!(
            value(&c, "aws:CurrentTime"),
            Some(vec!["2024-05-01T12:00:00Z"])
        );
        assert_eq!(value(&c, "aws:ResourceAccount"), Some(vec!["111111111111"]));
        assert_eq!(value(&c, "aws:MultiFactorAuthPresent"), None);
        let red = user(&[("Team", "red")]);
        assert_eq!(
            value(&ctx(&red, &facts), "aws:principaltag/team"),
            Some(vec!["red"])
        );
        assert_eq!(
            value(&ctx(&user(&[]), &facts), "aws:principaltag/team"),
            None
        );
        let mut session = blue.clone();
        session.session = Some(SessionContext {
            issuer: "https://idp.example.com".to_owned(),
            created_ms: 1_714_564_800_000,
            expires_ms: 1_714_568_400_000,
            policy: None,
        });
        let c = ctx(&session, &facts);
        assert_eq!(value(&c, "aws:MultiFactorAuthPresent"), Some(vec!["false"]));
        assert_eq!(
            value(&c, "aws:TokenIssueTime"),
            Some(vec!["2024-05-01T12:00:00Z"])
        );
        assert!(value(&c, "aws:FederatedProvider").is_some());
        assert_eq!(value(&ctx(&blue, &facts), "aws:tokenissuetime"), None);
        // Other facts, other keys: the next second, another address, no transport known.
        let later = Facts {
            now_ms: facts.now_ms + 1_000,
            source_ip: "198.51.100.1".parse().ok(),
            secure_transport: None,
            ..facts.clone()
        };
        let c = ctx(&blue, &later);
        assert_eq!(
            value(&c, "aws:CurrentTime"),
            Some(vec!["2024-05-01T12:00:01Z"])
        );
        assert_eq!(value(&c, "aws:SourceIp"), Some(vec!["198.51.100.1"]));
        assert_eq!(value(&c, "aws:SecureTransport"), None);
        let other_region = Facts {
            region: "eu-west-1".to_owned(),
            ..later
        };
        assert_eq!(
            value(&ctx(&blue, &other_region), "aws:RequestedRegion"),
            Some(vec!["eu-west-1"])
        );
    }
}
