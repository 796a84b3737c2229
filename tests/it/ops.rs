//! Running it: the metrics and health listener (`--metrics-listen`) and request-rate quotas
//! (`--quotas`, `[quota_groups]`).

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::json;

use crate::common::{config_in, send_raw, signed_request, Signing, TestServer};

/// A free port on 127.0.0.1 for the metrics listener (the API listener's port is 0).
fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn get(addr: SocketAddr, path: &str) -> crate::common::RawResponse {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    send_raw(addr, req.as_bytes())
}

fn start(metrics: Option<SocketAddr>, quota_groups: &[(&str, f64)]) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.metrics_listen = metrics.map(|a| a.to_string());
    let groups: HashMap<String, f64> = quota_groups
        .iter()
        .map(|(g, r)| ((*g).to_owned(), *r))
        .collect();
    cfg.quotas = strongroom::quota::QuotaConfig::resolve(None, &groups, &HashMap::new()).unwrap();
    TestServer::launch_config(cfg, dir)
}

/// The value of the series whose line starts with `series` (name and labels as exposed).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[test]
fn metrics_count_requests_by_operation_outcome_and_code_on_their_own_listener() {
    let maddr = free_addr();
    let s = start(Some(maddr), &[]);
    let r = s.call(
        "secretsmanager.CreateSecret",
        &json!({"Name": "m/one", "SecretString": "v", "ClientRequestToken": uuid::Uuid::new_v4().to_string()}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.call(
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "m/missing"}).to_string(),
    );
    assert_eq!(r.error_type(), "ResourceNotFoundException");
    // A made-up operation name does not make a series of its own.
    let r = s.call("secretsmanager.MadeUpOperation123", "{}");
    assert_eq!(r.status, 400);

    let m = get(maddr, "/metrics");
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let t = &m.body;
    assert_eq!(
        sample(t, "strongroom_request_duration_seconds_count{operation=\"CreateSecret\",outcome=\"success\",service=\"secretsmanager\"}"),
        1.0,
        "{t}"
    );
    assert_eq!(
        sample(t, "strongroom_user_errors_total{code=\"ResourceNotFoundException\",operation=\"GetSecretValue\",service=\"secretsmanager\"}"),
        1.0,
        "{t}"
    );
    assert_eq!(
        sample(t, "strongroom_user_errors_total{code=\"UnknownOperationException\",operation=\"other\",service=\"secretsmanager\"}"),
        1.0,
        "{t}"
    );
    assert!(!t.contains("MadeUpOperation123"));
    assert!(
        t.contains("strongroom_policy_decisions_total{effect=\"Allow\""),
        "{t}"
    );
    assert!(t.contains("strongroom_audit_queue_depth "), "{t}");
    // Nothing refused beyond a source's budget.
    assert_eq!(
        sample(t, "strongroom_audit_unauthenticated_counted_total"),
        0.0,
        "{t}"
    );
    assert!(
        sample(t, "strongroom_audit_group_commit_duration_seconds_count") >= 1.0,
        "{t}"
    );
    assert!(
        t.contains("strongroom_store_pool_connections{pool=\"read\"}"),
        "{t}"
    );
    // No secret value in the exposition.
    assert!(!t.contains("\"v\""));

    // Never on the API port.
    let api = get(s.addr, "/metrics");
    assert_ne!(api.status, 200);
    assert!(!api.body.contains("strongroom_request_duration_seconds"));
}

#[test]
fn health_and_readiness_probes_answer_on_the_metrics_listener() {
    let maddr = free_addr();
    let s = start(Some(maddr), &[]);
    let h = get(maddr, "/healthz");
    assert_eq!(h.status, 200);
    let r = get(maddr, "/readyz");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"status": "ready", "checks": {"store": "ok", "audit": "ok", "principals": "ok"}})
    );
    drop(s);
}

#[test]
fn no_metrics_listener_by_default() {
    let s = start(None, &[]);
    let r = s.call("secretsmanager.ListSecrets", "{}");
    assert_eq!(r.status, 200);
    assert_ne!(get(s.addr, "/metrics").status, 200);
}

#[test]
fn an_over_quota_call_is_throttled_audited_and_counted() {
    let maddr = free_addr();
    // One CreateSecret per second per account and region; reads unlimited.
    let s = start(Some(maddr), &[("create", 1.0)]);
    let body = |n: &str| {
        json!({"Name": n, "SecretString": "v", "ClientRequestToken": uuid::Uuid::new_v4().to_string()})
            .to_string()
    };
    let r = s.call("secretsmanager.CreateSecret", &body("q/one"));
    assert_eq!(r.status, 200, "{}", r.body);
    // An unauthenticated caller is refused for its signature, not counted against the quota.
    let bad = Signing {
        secret: "wrong".into(),
        ..Signing::default()
    };
    let r = s.raw(&signed_request(
        "secretsmanager.CreateSecret",
        body("q/bad").as_bytes(),
        bad,
    ));
    assert_eq!(r.error_type(), "InvalidSignatureException");
    let r = s.call("secretsmanager.CreateSecret", &body("q/two"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"__type": "ThrottlingException", "Message": "Rate exceeded"})
    );
    assert!(r.header("x-amzn-RequestId").is_some());
    // Other groups are not limited.
    let r = s.call(
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "q/one"}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Audited, naming the caller.
    let lookup = s.raw(&signed_request(
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "CreateSecret"}]})
            .to_string()
            .as_bytes(),
        Signing {
            service: "cloudtrail".into(),
            ..Signing::default()
        },
    ));
    assert_eq!(lookup.status, 200, "{}", lookup.body);
    let events = lookup.json()["Events"].as_array().unwrap().clone();
    let throttled: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap())
        .filter(|e: &serde_json::Value| e["errorCode"] == "ThrottlingException")
        .collect();
    assert_eq!(throttled.len(), 1, "{events:?}");
    assert_eq!(throttled[0]["errorMessage"], "Rate exceeded");
    assert_eq!(
        throttled[0]["userIdentity"]["accountId"],
        crate::common::ACCOUNT
    );

    // Counted.
    let t = get(maddr, "/metrics").body;
    assert_eq!(
        sample(
            &t,
            "strongroom_throttled_requests_total{operation=\"CreateSecret\"}"
        ),
        1.0,
        "{t}"
    );
    assert_eq!(
        sample(&t, "strongroom_request_duration_seconds_count{operation=\"CreateSecret\",outcome=\"throttled\",service=\"secretsmanager\"}"),
        1.0,
        "{t}"
    );

    // The bucket refills: a second later the call succeeds.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = s.call("secretsmanager.CreateSecret", &body("q/two"));
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A rotation's service events are counted, and a rotation marked failed after its last
/// attempt too (the alert an operator sets: `increase(strongroom_rotations_failed_total[1h]) > 0`).
#[test]
fn rotation_events_and_failed_rotations_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let policies = tmp.path().join("policies");
    let account = crate::common::ACCOUNT;
    crate::common::write(
        &policies,
        &format!("accounts/{account}/account.json"),
        &format!(r#"{{"AccountId":"{account}"}}"#),
    );
    crate::common::write(
        &policies,
        &format!("accounts/{account}/roles/rotator.json"),
        &json!({"RoleName": "rotator", "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "sts:AssumeRole"}]}})
        .to_string(),
    );
    crate::common::write(
        &policies,
        &format!("accounts/{account}/functions/broken.json"),
        &json!({"FunctionName": "broken", "Role": format!("arn:aws:iam::{account}:role/rotator"),
                "Kind": "command", "Command": ["false"], "MaxAttempts": 1})
        .to_string(),
    );
    let maddr = free_addr();
    let mut cfg = config_in(tmp.path(), None);
    cfg.metrics_listen = Some(maddr.to_string());
    cfg.policies = Some(policies);
    let s = TestServer::launch_config(cfg, tempfile::tempdir().unwrap());
    let r = s.call(
        "secretsmanager.CreateSecret",
        &json!({"Name": "m/rot", "SecretString": "v", "ClientRequestToken": uuid::Uuid::new_v4().to_string()}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.call(
        "secretsmanager.RotateSecret",
        &json!({"SecretId": "m/rot", "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
                "RotationLambdaARN": format!("arn:aws:lambda:us-east-1:{account}:function:broken")})
        .to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let m = get(maddr, "/metrics");
        if sample(&m.body, "strongroom_rotations_failed_total") >= 1.0 {
            assert_eq!(
                sample(
                    &m.body,
                    "strongroom_rotation_events_total{event=\"RotationStarted\"}"
                ),
                1.0
            );
            assert_eq!(
                sample(
                    &m.body,
                    "strongroom_rotation_events_total{event=\"RotationFailed\"}"
                ),
                1.0
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", m.body);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The failed rotation is the oldest one not completed: its age shows until it is cleared.
    let overdue = |want_positive: bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let m = get(maddr, "/metrics");
            let v = sample(&m.body, "strongroom_rotation_oldest_overdue_seconds");
            if (v > 0.0) == want_positive {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "{}", m.body);
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    assert!(overdue(true) > 0.0);
    let r = s.call(
        "secretsmanager.CancelRotateSecret",
        &json!({"SecretId": "m/rot"}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(overdue(false), 0.0);
}
