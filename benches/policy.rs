//! One authorization decision (criterion).

use criterion::{criterion_group, criterion_main, Criterion};
use strongroom::auth::Principal;
use strongroom::policy::{evaluate, AuthzRequest};

fn decision(c: &mut Criterion) {
    let p = Principal::root("111111111111", "AKIA1");
    let req = AuthzRequest {
        principal: &p,
        action: "secretsmanager:GetSecretValue",
        resource: "arn:aws:secretsmanager:us-east-1:111111111111:secret:a-AbCdEf",
        resource_account: "111111111111",
    };
    c.bench_function("root decision", |b| {
        b.iter(|| evaluate(std::hint::black_box(&req)))
    });
}

criterion_group!(benches, decision);
criterion_main!(benches);
