//! BlockPublicPolicy / ValidateResourcePolicy checks (IAM.md §6.4), as a decidable
//! approximation of AWS's "broad access":
//!
//! A resource policy is broad iff some `Allow` statement has `Principal` `*` (or
//! `{"AWS":"*"}`) or uses `NotPrincipal`, and none of its conditions *pins* the caller. A
//! condition pins when it is positive, unqualified, without `IfExists`, one of
//! `StringEquals`, `StringEqualsIgnoreCase`, `ArnEquals`, `StringLike`, `ArnLike`, on
//! `aws:SourceArn`, `aws:SourceAccount`, `aws:SourceVpc`, `aws:SourceVpce`,
//! `aws:PrincipalAccount` or `aws:PrincipalArn`, with every value fixed: no wildcard at all for
//! plain strings, no wildcard in (or, for `StringLike`, before) the account segment for ARNs,
//! no policy variable. Behind options (default off): `aws:PrincipalOrgID` (same rule), and
//! `aws:SourceIp` with a positive `IpAddress` whose every block is at least the configured
//! prefix length (`/0` never pins). `Deny` statements never make a policy broad.

use std::sync::Arc;

use super::condition::{BaseOp, Condition, Qualifier};
use super::context::RequestContext;
use super::eval::{authorize, Effect, MatchedStatement, PolicySet};
use super::parse::{Policy, PrincipalEntry, StatementEffect};
use super::pattern::split_arn;
use super::value::parse_cidr;

/// Knobs for the broad-access check (both off by default, the conservative choice).
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublicPolicyOptions {
    /// `aws:PrincipalOrgID` equal to fixed values pins the caller.
    pub org_id_pins: bool,
    /// `aws:SourceIp` (`IpAddress`) pins when every block has at least this prefix length
    /// (IPv4, IPv6).
    pub source_ip_min_prefix: Option<(u8, u8)>,
}

/// One statement that grants broad access.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadAccess {
    pub statement_index: usize,
    pub sid: Option<String>,
    /// Why the principal is open: `principal *` or `NotPrincipal`.
    pub reason: &'static str,
}

/// The statements of `policy` that grant broad access (empty = not broad).
pub fn broad_access(policy: &Policy, opts: &PublicPolicyOptions) -> Vec<BroadAccess> {
    let vars = policy.variables_enabled();
    policy
        .statements()
        .iter()
        .filter(|st| st.effect == StatementEffect::Allow)
        .filter_map(|st| {
            let rule = st.principal.as_ref()?;
            let reason = if rule.not {
                "NotPrincipal"
            } else if rule.entries.contains(&PrincipalEntry::Any) {
                "principal *"
            } else {
                return None;
            };
            let pinned = st.conditions.iter().any(|c| pins(c, opts, vars));
            (!pinned).then(|| BroadAccess {
                statement_index: st.index,
                sid: st.sid.as_deref().map(str::to_owned),
                reason,
            })
        })
        .collect()
}

fn pins(c: &Condition, opts: &PublicPolicyOptions, vars: bool) -> bool {
    let op = c.op;
    if op.qualifier != Qualifier::None || op.if_exists {
        return false;
    }
    if vars && c.raw_values.iter().any(|v| v.contains("${")) {
        return false;
    }
    let wild = |s: &str| s.contains('*') || s.contains('?');
    if c.key == "aws:sourceip" {
        let Some((min4, min6)) = opts.source_ip_min_prefix else {
            return false;
        };
        return op.base == BaseOp::IpAddress
            && c.raw_values.iter().all(|v| {
                parse_cidr(v).is_some_and(|net| {
                    let min = match net {
                        ipnet::IpNet::V4(_) => min4,
                        ipnet::IpNet::V6(_) => min6,
                    };
                    net.prefix_len() > 0 && net.prefix_len() >= min
                })
            });
    }
    let arn_key = matches!(c.key.as_str(), "aws:sourcearn" | "aws:principalarn");
    let string_key = matches!(
        c.key.as_str(),
        "aws:sourceaccount" | "aws:sourcevpc" | "aws:sourcevpce" | "aws:principalaccount"
    ) || (opts.org_id_pins && c.key == "aws:principalorgid");
    match op.base {
        BaseOp::StringEquals | BaseOp::StringEqualsIgnoreCase if string_key || arn_key => true,
        BaseOp::StringLike if string_key => !c.raw_values.iter().any(|v| wild(v)),
        BaseOp::StringLike if arn_key => c.raw_values.iter().all(|v| {
            split_arn(v).is_some_and(|p| p.iter().take(5).all(|s| !wild(s)) && !p[4].is_empty())
        }),
        BaseOp::ArnEquals | BaseOp::ArnLike if arn_key => c
            .raw_values
            .iter()
            .all(|v| split_arn(v).is_some_and(|p| !wild(p[4]) && !p[4].is_empty())),
        _ => false,
    }
}

/// The lock-out check: the statement of `policy` (as the secret's resource policy) that
/// would explicitly deny the caller `PutResourcePolicy` or `DeleteResourcePolicy`.
pub fn would_lock_out(policy: &Arc<Policy>, ctx: &RequestContext) -> Option<MatchedStatement> {
    let set = PolicySet {
        resource: Some(Arc::clone(policy)),
        ..PolicySet::default()
    };
    [
        "secretsmanager:PutResourcePolicy",
        "secretsmanager:DeleteResourcePolicy",
    ]
    .iter()
    .find_map(|a| {
        let d = authorize(&ctx.with_action(a), &set);
        (d.effect == Effect::ExplicitDeny)
            .then(|| d.deciding.into_iter().next())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::context::PrincipalInfo;
    use crate::policy::parse::PolicyType;

    fn broad(stmt: &str) -> bool {
        broad_with(stmt, &PublicPolicyOptions::default())
    }

    fn broad_with(stmt: &str, opts: &PublicPolicyOptions) -> bool {
        let text = format!(r#"{{"Version":"2012-10-17","Statement":[{stmt}]}}"#);
        let p = Policy::parse(&text, PolicyType::Resource).unwrap();
        !broad_access(&p, opts).is_empty()
    }

    #[test]
    fn broad_definition() {
        let base = r#""Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*""#;
        assert!(broad(&format!(r#"{{{base},"Principal":"*"}}"#)));
        assert!(broad(&format!(r#"{{{base},"Principal":{{"AWS":"*"}}}}"#)));
        assert!(!broad(&format!(
            r#"{{{base},"Principal":{{"AWS":"222222222222"}}}}"#
        )));
        assert!(!broad(
            r#"{"Effect":"Deny","Action":"secretsmanager:*","Resource":"*","Principal":"*"}"#
        ));
        let cond = |c: &str| format!(r#"{{{base},"Principal":"*","Condition":{c}}}"#);
        assert!(!broad(&cond(
            r#"{"StringEquals":{"aws:SourceAccount":"111111111111"}}"#
        )));
        assert!(!broad(&cond(
            r#"{"StringEquals":{"aws:PrincipalAccount":["111111111111","222222222222"]}}"#
        )));
        assert!(!broad(&cond(
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111111111111:role/*"}}"#
        )));
        assert!(broad(&cond(
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/x"}}"#
        )));
        assert!(broad(&cond(
            r#"{"StringLike":{"aws:PrincipalArn":"arn:aws:*:role/x"}}"#
        )));
        assert!(broad(&cond(
            r#"{"StringLike":{"aws:SourceVpce":"vpce-*"}}"#
        )));
        assert!(!broad(&cond(
            r#"{"StringLike":{"aws:SourceVpce":"vpce-1"}}"#
        )));
        assert!(broad(&cond(
            r#"{"StringEqualsIfExists":{"aws:SourceAccount":"111111111111"}}"#
        )));
        assert!(broad(&cond(
            r#"{"ForAnyValue:StringEquals":{"aws:SourceAccount":"111111111111"}}"#
        )));
        assert!(broad(&cond(
            r#"{"StringNotEquals":{"aws:SourceAccount":"111111111111"}}"#
        )));
        assert!(broad(&cond(
            r#"{"StringEquals":{"aws:SourceAccount":"${aws:PrincipalAccount}"}}"#
        )));
        assert!(broad(&cond(
            r#"{"StringEquals":{"aws:PrincipalOrgID":"o-123"}}"#
        )));
        assert!(broad(&cond(
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#
        )));
        let opts = PublicPolicyOptions {
            org_id_pins: true,
            source_ip_min_prefix: Some((8, 32)),
        };
        assert!(!broad_with(
            &cond(r#"{"StringEquals":{"aws:PrincipalOrgID":"o-123"}}"#),
            &opts
        ));
        assert!(!broad_with(
            &cond(r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#),
            &opts
        ));
        assert!(broad_with(
            &cond(r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#),
            &opts
        ));
        assert!(broad_with(
            &cond(r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","::/0"]}}"#),
            &opts
        ));
    }

    #[test]
    fn lock_out() {
        let p = Arc::new(
            Policy::parse(
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoMore","Effect":"Deny","Principal":"*","Action":"secretsmanager:*ResourcePolicy","Resource":"*"}]}"#,
                PolicyType::Resource,
            )
            .unwrap(),
        );
        let ctx = RequestContext::new(
            PrincipalInfo::root("111111111111"),
            "secretsmanager:PutResourcePolicy",
            "arn:aws:secretsmanager:us-east-1:111111111111:secret:a-AbCdEf",
            None,
        );
        assert_eq!(
            would_lock_out(&p, &ctx).map(|m| m.sid_or_index()),
            Some("NoMore".into())
        );
        let ok = Arc::new(
            Policy::parse(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#,
                PolicyType::Resource,
            )
            .unwrap(),
        );
        assert!(would_lock_out(&ok, &ctx).is_none());
    }
}
