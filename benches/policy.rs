//! Authorization decisions (criterion).
//!
//! * `small`: a user with 10 identity statements (one applies) and a 2-statement resource
//!   policy on the secret.
//! * `large`: the same request with 1,000 identity statements across 25 policies (the IAM
//!   size limit keeps a policy near 40 statements) of which ≤ 10 are candidates.
//!
//! Each is measured with a prebuilt `RequestContext` (the decision alone) and with the context
//! built inside the loop (what one request costs).

#![allow(clippy::expect_used, reason = "benchmark setup")]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use strongroom::auth::Principal;
use strongroom::policy::{
    authorize, evaluate, AuthzRequest, Effect, Policy, PolicyGroup, PolicySet, PolicyType,
    PrincipalInfo, PrincipalType, RequestContext,
};

const ACCOUNT: &str = "111111111111";
const SECRET: &str = "arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-a1B2c3";
const PREFIX: &str = "arn:aws:secretsmanager:us-east-1:111111111111:secret:";

fn alice() -> PrincipalInfo {
    PrincipalInfo {
        kind: PrincipalType::User,
        arn: format!("arn:aws:iam::{ACCOUNT}:user/alice"),
        issuer_arn: None,
        account: ACCOUNT.into(),
        user_name: Some("alice".into()),
        user_id: Some("AIDAALICE0000000000".into()),
        tags: [("team".to_owned(), "blue".to_owned())]
            .into_iter()
            .collect(),
    }
}

fn context() -> RequestContext {
    RequestContext::new(alice(), "secretsmanager:GetSecretValue", SECRET, None)
        .with("aws:SourceIp", ["10.1.2.3"])
        .with("aws:SecureTransport", ["true"])
        .with("aws:CurrentTime", ["2024-06-01T12:00:00Z"])
        .with("aws:ResourceTag/team", ["blue"])
}

fn identity_policy(stmts: &[String]) -> Arc<Policy> {
    let text = format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        stmts.join(",")
    );
    Arc::new(Policy::parse(&text, PolicyType::Identity).expect("bench policy parses"))
}

fn resource_policy() -> Arc<Policy> {
    let text = format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Sid":"Account","Effect":"Allow","Principal":{{"AWS":"{ACCOUNT}"}},"Action":"secretsmanager:GetSecretValue","Resource":"*"}},
        {{"Sid":"TlsOnly","Effect":"Deny","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{{"Bool":{{"aws:SecureTransport":"false"}}}}}}]}}"#
    );
    Arc::new(Policy::parse(&text, PolicyType::Resource).expect("bench policy parses"))
}

/// Statement `i` of a filler set: never applies to `GetSecretValue` on `prod/db`.
fn filler(i: usize) -> String {
    match i % 5 {
        0 => format!(
            r#"{{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"{PREFIX}app{i}-??????"}}"#
        ),
        1 => format!(
            r#"{{"Effect":"Allow","Action":["secretsmanager:PutSecretValue","secretsmanager:UpdateSecret"],"Resource":"{PREFIX}svc{i}/*"}}"#
        ),
        2 => format!(
            r#"{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket{i}/*"}}"#
        ),
        3 => format!(
            r#"{{"Effect":"Deny","Action":"secretsmanager:DeleteSecret","Resource":"{PREFIX}keep{i}-??????"}}"#
        ),
        _ => format!(
            r#"{{"Effect":"Allow","Action":"dynamodb:GetItem","Resource":"*","Condition":{{"StringEquals":{{"aws:PrincipalTag/team":"t{i}"}}}}}}"#
        ),
    }
}

/// Statements that are candidates for the request (some apply, some do not).
fn relevant() -> Vec<String> {
    vec![
        format!(r#"{{"Sid":"ReadProd","Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"{PREFIX}prod/db-??????","Condition":{{"IpAddress":{{"aws:SourceIp":"10.0.0.0/8"}}}}}}"#),
        format!(r#"{{"Sid":"TeamTag","Effect":"Allow","Action":"secretsmanager:Get*","Resource":"{PREFIX}prod/*","Condition":{{"StringEquals":{{"aws:ResourceTag/team":"${{aws:PrincipalTag/team}}"}}}}}}"#),
        r#"{"Sid":"NoMfaNoDelete","Effect":"Deny","Action":"secretsmanager:DeleteSecret","Resource":"*","Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}}"#.to_owned(),
        r#"{"Sid":"List","Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"}"#.to_owned(),
    ]
}

fn small_set() -> PolicySet {
    let mut stmts = relevant();
    stmts.extend((0..6).map(filler));
    assert_eq!(stmts.len(), 10);
    PolicySet {
        identity: Arc::new(PolicyGroup::new(vec![identity_policy(&stmts)])),
        resource: Some(resource_policy()),
        ..PolicySet::default()
    }
}

fn large_set() -> PolicySet {
    let mut stmts: Vec<String> = (0..996).map(filler).collect();
    for (k, s) in relevant().into_iter().enumerate() {
        stmts.insert(100 + k * 250, s);
    }
    assert_eq!(stmts.len(), 1000);
    let policies: Vec<Arc<Policy>> = stmts.chunks(40).map(identity_policy).collect();
    assert_eq!(policies.len(), 25);
    PolicySet {
        identity: Arc::new(PolicyGroup::new(policies)),
        resource: Some(resource_policy()),
        ..PolicySet::default()
    }
}

fn decisions(c: &mut Criterion) {
    let ctx = context();
    let small = small_set();
    let large = large_set();
    let ds = authorize(&ctx, &small);
    let dl = authorize(&ctx, &large);
    assert_eq!(ds.effect, Effect::Allow);
    assert_eq!(ds.effect, dl.effect);
    assert_eq!(ds.deciding.len(), 2);
    assert_eq!(dl.deciding.len(), 2);

    c.bench_function("small: 10 identity + 2 resource statements", |b| {
        b.iter(|| authorize(black_box(&ctx), black_box(&small)))
    });
    c.bench_function("large: 1,000 identity + 2 resource statements", |b| {
        b.iter(|| authorize(black_box(&ctx), black_box(&large)))
    });
    c.bench_function("small, context built per request", |b| {
        b.iter(|| authorize(&context(), black_box(&small)))
    });
    c.bench_function("large, context built per request", |b| {
        b.iter(|| authorize(&context(), black_box(&large)))
    });

    let p = Principal::root(ACCOUNT, "AKIA1");
    let req = AuthzRequest {
        principal: &p,
        action: "secretsmanager:GetSecretValue",
        resource: SECRET,
        resource_account: ACCOUNT,
    };
    c.bench_function("policy-less root decision (evaluate)", |b| {
        b.iter(|| evaluate(black_box(&req)))
    });
}

criterion_group!(benches, decisions);
criterion_main!(benches);
