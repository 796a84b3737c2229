//! Property tests over randomly generated policy sets and requests:
//! * an applicable `Deny` always wins, whatever policy type it is added to;
//! * adding `Allow` statements never changes an `ExplicitDeny`;
//! * removing an `Allow`-only identity or resource policy never grants (removing a `Deny`, a
//!   boundary or an SCP can grant, by design, so those are not part of the property);
//! * the statement index finds the same decision as a linear scan;
//! * the glob matcher agrees with a naive recursive matcher.

use std::sync::Arc;

use proptest::prelude::*;

use super::context::{PrincipalInfo, PrincipalType, RequestContext};
use super::eval::{authorize, Effect, PolicyGroup, PolicySet};
use super::parse::{Policy, PolicyType};
use super::pattern::tests::naive;
use super::pattern::Pattern;

const A: &str = "111111111111";
const SECRET: &str = "arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-a1B2c3";

fn principals() -> Vec<PrincipalInfo> {
    let user = |acct: &str, name: &str| PrincipalInfo {
        kind: PrincipalType::User,
        arn: format!("arn:aws:iam::{acct}:user/{name}"),
        issuer_arn: None,
        account: acct.into(),
        user_name: Some(name.into()),
        user_id: Some(format!("AIDA{name}")),
        tags: [("team".to_owned(), "blue".to_owned())]
            .into_iter()
            .collect(),
    };
    vec![
        user(A, "alice"),
        user("222222222222", "bob"),
        PrincipalInfo {
            kind: PrincipalType::AssumedRole,
            arn: format!("arn:aws:sts::{A}:assumed-role/app/s1"),
            issuer_arn: Some(format!("arn:aws:iam::{A}:role/app")),
            account: A.into(),
            user_name: None,
            user_id: Some("AROAAPP:s1".into()),
            tags: Default::default(),
        },
        PrincipalInfo::root(A),
    ]
}

const ACTIONS: [&str; 4] = [
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:ListSecrets",
    "s3:GetObject",
];
const RESOURCES: [&str; 4] = [
    SECRET,
    "arn:aws:secretsmanager:us-east-1:111111111111:secret:dev/x-Zz9Yy8",
    "arn:aws:secretsmanager:us-east-1:222222222222:secret:shared-Qq1Ww2",
    "*",
];
const ACTION_PATTERNS: [&str; 6] = [
    "\"*\"",
    "\"secretsmanager:*\"",
    "\"secretsmanager:Get*\"",
    "\"SecretsManager:getsecretvalue\"",
    "[\"s3:*\",\"secretsmanager:Put*\"]",
    "\"secretsmanager:?istSecrets\"",
];
const RESOURCE_PATTERNS: [&str; 6] = [
    "\"*\"",
    "\"arn:aws:secretsmanager:*\"",
    "\"arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/*\"",
    "\"arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-??????\"",
    "\"arn:aws:secretsmanager:us-east-1:*:secret:*-Qq1Ww2\"",
    "\"arn:aws:secretsmanager:us-east-1:111111111111:secret:dev/x\"",
];
const CONDITIONS: [&str; 8] = [
    "",
    r#","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
    r#","Condition":{"StringNotEquals":{"aws:PrincipalTag/team":"blue"}}"#,
    r#","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}"#,
    r#","Condition":{"ForAnyValue:StringLike":{"aws:TagKeys":"e*"}}"#,
    r#","Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}"#,
    r#","Condition":{"StringEquals":{"aws:username":"${aws:username}"}}"#,
    r#","Condition":{"Null":{"aws:SourceIp":"true"}}"#,
];
const PRINCIPALS: [&str; 5] = [
    "\"*\"",
    "{\"AWS\":\"111111111111\"}",
    "{\"AWS\":\"arn:aws:iam::111111111111:user/alice\"}",
    "{\"AWS\":\"arn:aws:iam::111111111111:role/app\"}",
    "{\"AWS\":[\"arn:aws:sts::111111111111:assumed-role/app/s1\",\"222222222222\"]}",
];

#[derive(Debug, Clone)]
struct St {
    allow: bool,
    not_action: bool,
    action: usize,
    not_resource: bool,
    resource: usize,
    condition: usize,
    principal: usize,
}

impl St {
    fn json(&self, with_principal: bool) -> String {
        let principal = if with_principal {
            format!(",\"Principal\":{}", PRINCIPALS[self.principal])
        } else {
            String::new()
        };
        format!(
            r#"{{"Effect":"{}"{principal},"{}":{},"{}":{}{}}}"#,
            if self.allow { "Allow" } else { "Deny" },
            if self.not_action {
                "NotAction"
            } else {
                "Action"
            },
            ACTION_PATTERNS[self.action],
            if self.not_resource {
                "NotResource"
            } else {
                "Resource"
            },
            RESOURCE_PATTERNS[self.resource],
            CONDITIONS[self.condition],
        )
    }
}

fn st() -> impl Strategy<Value = St> {
    (
        any::<bool>(),
        prop::bool::weighted(0.15),
        0..ACTION_PATTERNS.len(),
        prop::bool::weighted(0.15),
        0..RESOURCE_PATTERNS.len(),
        0..CONDITIONS.len(),
        0..PRINCIPALS.len(),
    )
        .prop_map(
            |(allow, not_action, action, not_resource, resource, condition, principal)| St {
                allow,
                not_action,
                action,
                not_resource,
                resource,
                condition,
                principal,
            },
        )
}

fn doc(sts: &[St], with_principal: bool) -> String {
    let body: Vec<String> = sts.iter().map(|s| s.json(with_principal)).collect();
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        body.join(",")
    )
}

fn policy(sts: &[St], kind: PolicyType) -> Arc<Policy> {
    let text = doc(sts, matches!(kind, PolicyType::Resource));
    Arc::new(Policy::parse(&text, kind).unwrap())
}

#[derive(Debug, Clone)]
struct Spec {
    identity: Vec<Vec<St>>,
    resource: Option<Vec<St>>,
    boundary: Option<Vec<St>>,
    session: Option<Vec<Vec<St>>>,
    scp: Option<Vec<Vec<St>>>,
    principal: usize,
    action: usize,
    resource_arn: usize,
    ip: Option<bool>,
    tag_keys: Option<Vec<&'static str>>,
}

fn stmts(max: usize) -> impl Strategy<Value = Vec<St>> {
    prop::collection::vec(st(), 1..=max)
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec(stmts(3), 0..3),
        prop::option::of(stmts(3)),
        prop::option::weighted(0.25, stmts(2)),
        prop::option::weighted(0.25, prop::collection::vec(stmts(2), 1..3)),
        prop::option::weighted(0.25, prop::collection::vec(stmts(2), 1..3)),
        0..4usize,
        0..ACTIONS.len(),
        0..RESOURCES.len(),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::subsequence(
            vec!["env", "team", "cost"],
            0..=3,
        )),
    )
        .prop_map(
            |(
                identity,
                resource,
                boundary,
                session,
                scp,
                principal,
                action,
                resource_arn,
                ip,
                tag_keys,
            )| Spec {
                identity,
                resource,
                boundary,
                session,
                scp,
                principal,
                action,
                resource_arn,
                ip,
                tag_keys,
            },
        )
}

impl Spec {
    fn ctx(&self) -> RequestContext {
        let p = principals().swap_remove(self.principal);
        let mut c =
            RequestContext::new(p, ACTIONS[self.action], RESOURCES[self.resource_arn], None);
        if let Some(inside) = self.ip {
            c = c.with(
                "aws:SourceIp",
                [if inside { "10.1.2.3" } else { "192.0.2.1" }],
            );
        }
        if let Some(keys) = &self.tag_keys {
            c = c.with_typed(
                "aws:TagKeys",
                super::context::KeyType::ArrayOfString,
                keys.iter().map(|k| (*k).to_owned()).collect(),
            );
        }
        c
    }

    fn set(&self) -> PolicySet {
        let group = |ps: &[Vec<St>], kind| {
            Arc::new(PolicyGroup::new(
                ps.iter().map(|s| policy(s, kind)).collect(),
            ))
        };
        PolicySet {
            identity: group(&self.identity, PolicyType::Identity),
            resource: self
                .resource
                .as_ref()
                .map(|s| policy(s, PolicyType::Resource)),
            boundary: self
                .boundary
                .as_ref()
                .map(|s| policy(s, PolicyType::PermissionsBoundary)),
            session: self
                .session
                .as_ref()
                .map(|ps| group(ps, PolicyType::Session)),
            scp: self.scp.as_ref().map(|ls| {
                ls.iter()
                    .map(|l| group(std::slice::from_ref(l), PolicyType::Scp))
                    .collect()
            }),
            rcp: None,
            resource_required: false,
        }
    }

    fn decide(&self) -> Effect {
        authorize(&self.ctx(), &self.set()).effect
    }
}

fn deny_all() -> St {
    St {
        allow: false,
        not_action: false,
        action: 0,
        not_resource: false,
        resource: 0,
        condition: 0,
        principal: 0,
    }
}

fn has_deny(sts: &[St]) -> bool {
    sts.iter().any(|s| !s.allow)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, max_global_rejects: 100_000, ..ProptestConfig::default() })]

    #[test]
    fn an_applicable_deny_always_wins(s in spec(), target in 0..5usize) {
        let mut s = s;
        match target {
            0 => s.identity.push(vec![deny_all()]),
            1 => s.resource.get_or_insert_with(Vec::new).push(deny_all()),
            2 => s.boundary.get_or_insert_with(Vec::new).push(deny_all()),
            3 => s.session.get_or_insert_with(Vec::new).push(vec![deny_all()]),
            _ => s.scp.get_or_insert_with(Vec::new).push(vec![deny_all()]),
        }
        prop_assert_eq!(s.decide(), Effect::ExplicitDeny);
    }

    #[test]
    fn adding_allows_never_changes_an_explicit_deny(s in spec(), extra in stmts(3), target in 0..3usize) {
        prop_assume!(s.decide() == Effect::ExplicitDeny);
        let allows: Vec<St> = extra.into_iter().map(|mut x| { x.allow = true; x }).collect();
        let mut s = s;
        match target {
            0 => s.identity.push(allows),
            1 => s.resource.get_or_insert_with(Vec::new).extend(allows),
            _ => if let Some(b) = &mut s.boundary { b.extend(allows) } else { s.identity.push(allows) },
        }
        prop_assert_eq!(s.decide(), Effect::ExplicitDeny);
    }

    #[test]
    fn removing_an_allow_only_policy_never_grants(s in spec(), which in 0..4usize) {
        prop_assume!(s.decide() != Effect::Allow);
        let mut t = s.clone();
        if which < t.identity.len() {
            prop_assume!(!has_deny(&t.identity[which]));
            t.identity.remove(which);
        } else {
            prop_assume!(t.resource.as_ref().is_some_and(|r| !has_deny(r)));
            t.resource = None;
        }
        prop_assert_ne!(t.decide(), Effect::Allow);
    }

    #[test]
    fn index_agrees_with_a_linear_scan(
        ps in prop::collection::vec(stmts(6), 4..8),
        principal in 0..3usize, action in 0..ACTIONS.len(), resource_arn in 0..RESOURCES.len(),
    ) {
        // identity-only sets: the decision is Deny if any policy denies, else Allow if any
        // allows; each single policy (≤ 16 statements) is scanned linearly
        let s = Spec { identity: ps.clone(), resource: None, boundary: None, session: None, scp: None,
                       principal, action, resource_arn, ip: Some(true), tag_keys: Some(vec!["env"]) };
        prop_assume!(ps.iter().map(Vec::len).sum::<usize>() > 16);
        let whole = s.decide();
        let singles: Vec<Effect> = ps.iter().map(|p| Spec { identity: vec![p.clone()], ..s.clone() }.decide()).collect();
        let expect = if singles.contains(&Effect::ExplicitDeny) {
            Effect::ExplicitDeny
        } else if singles.contains(&Effect::Allow) {
            Effect::Allow
        } else {
            Effect::ImplicitDeny
        };
        prop_assert_eq!(whole, expect);
    }

    #[test]
    fn glob_agrees_with_naive(p in "[ab*?é]{0,10}", s in "[abé]{0,12}") {
        let pc: Vec<char> = p.chars().collect();
        let sc: Vec<char> = s.chars().collect();
        prop_assert_eq!(Pattern::glob(&p).matches(&s), naive(&pc, &sc), "pattern {:?} input {:?}", p, s);
    }

    #[test]
    fn glob_agrees_with_naive_on_matching_inputs(parts in prop::collection::vec(("[ab]{0,3}", "[ab]{0,3}", 0..3u8), 0..5)) {
        // build an input that is likely to match: literal runs with random fillers for wildcards
        let mut p = String::new();
        let mut s = String::new();
        for (lit, fill, w) in parts {
            p.push_str(&lit);
            s.push_str(&lit);
            match w {
                0 => { p.push('*'); s.push_str(&fill); }
                1 => { p.push('?'); s.push('a'); }
                _ => {}
            }
        }
        let pc: Vec<char> = p.chars().collect();
        let sc: Vec<char> = s.chars().collect();
        prop_assert!(naive(&pc, &sc));
        prop_assert!(Pattern::glob(&p).matches(&s), "pattern {:?} input {:?}", p, s);
    }
}
