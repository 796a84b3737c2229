//! Refusals of callers the server does not know (no credentials, a bad signature, an unknown
//! key, a token that does not verify) are recorded one by one up to a budget per source and
//! minute; the rest of the minute is counted into one `UnauthenticatedRequestsSummarized`
//! record, so that anyone on the network cannot fill the disk the trail shares with the
//! secrets. Known callers, allowed or denied, are recorded one by one whatever their number,
//! and every caller gets the same answer either way.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{
    config_in, example_policies, key_for, ok, user_allowing, RawResponse, Signing, TestServer,
    ACCOUNT,
};
use crate::console::Browser;
use crate::review3_exhaust::trail;
use crate::review3_time::{add_issuer, token_with, web_identity};

const SUMMARY: &str = "UnauthenticatedRequestsSummarized";

/// A server believing X-Forwarded-For from 127.0.0.1 (so that a test can speak for several
/// sources), recording `per_source` refusals one by one per source and `window`.
fn server(per_source: u32, window: Duration, policies: Option<std::path::PathBuf>) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    cfg.audit_unauthenticated = strongroom::audit::unauthenticated::Limits { per_source, window };
    cfg.policies = policies;
    TestServer::launch_config(cfg, dir)
}

fn unsigned_from(s: &TestServer, source: &str) -> RawResponse {
    let body = r#"{"SecretId":"app/db"}"#;
    s.raw(
        format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-amz-json-1.1\r\n\
             x-amz-target: secretsmanager.GetSecretValue\r\nx-forwarded-for: {source}\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn signed_from(s: &TestServer, source: &str, secret: Option<&str>) -> RawResponse {
    let mut signing = Signing {
        extra_headers: vec![("x-forwarded-for".into(), source.into())],
        ..Signing::default()
    };
    if let Some(secret) = secret {
        signing.secret = secret.into();
    }
    s.call_signed(
        "secretsmanager.GetSecretValue",
        r#"{"SecretId":"app/db"}"#,
        signing,
    )
}

fn from<'a>(records: &'a [Value], source: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["sourceIPAddress"] == source)
        .collect()
}

fn summaries<'a>(records: &'a [Value], source: &str) -> Vec<&'a Value> {
    from(records, source)
        .into_iter()
        .filter(|r| r["eventName"] == SUMMARY)
        .collect()
}

/// The count a summary's reason starts with.
fn counted(summary: &Value) -> u64 {
    let reason = summary["authorization"]["reason"]
        .as_str()
        .unwrap_or_default();
    reason
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"))
}

#[test]
fn a_flood_of_refused_requests_is_recorded_up_to_its_sources_budget_then_counted() {
    let mut s = server(5, Duration::from_secs(600), None);
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &serde_json::json!({"Name": "app/db", "SecretString": "v"}),
    );
    // The attacker: every request is answered as refused, the same way to the last one.
    for _ in 0..12 {
        let r = unsigned_from(&s, "203.0.113.7");
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.error_type(), "MissingAuthenticationTokenException");
    }
    let bad_secret = "not/the/secret/000000000000000000000000";
    for _ in 0..3 {
        let r = signed_from(&s, "203.0.113.7", Some(bad_secret));
        assert_eq!(r.error_type(), "InvalidSignatureException", "{}", r.body);
    }
    // Another source keeps a budget of its own.
    for _ in 0..3 {
        let r = signed_from(&s, "198.51.100.9", Some(bad_secret));
        assert_eq!(r.error_type(), "InvalidSignatureException", "{}", r.body);
    }
    // Positive control: a known caller from the flooding source, allowed or refused, is
    // recorded every time.
    for _ in 0..8 {
        assert_eq!(signed_from(&s, "203.0.113.7", None).status, 200);
    }
    for _ in 0..4 {
        let r = s.call_signed(
            "secretsmanager.GetSecretValue",
            r#"{"SecretId":"app/missing"}"#,
            Signing {
                extra_headers: vec![("x-forwarded-for".into(), "203.0.113.7".into())],
                ..Signing::default()
            },
        );
        assert_eq!(r.error_type(), "ResourceNotFoundException");
    }
    let url = s.database_url.clone();
    // A graceful stop records what was counted.
    s.stop();
    let (records, finding) = trail(&url);
    assert_eq!(finding, None);
    let attacker = from(&records, "203.0.113.7");
    let one_by_one: Vec<&&Value> = attacker
        .iter()
        .filter(|r| r["userIdentity"].is_null() && r["eventName"] != SUMMARY)
        .collect();
    assert_eq!(one_by_one.len(), 5, "{one_by_one:?}");
    let summary = summaries(&records, "203.0.113.7");
    assert_eq!(summary.len(), 1, "{summary:?}");
    let summary = summary[0];
    assert_eq!(counted(summary), 10, "{summary}");
    assert_eq!(summary["eventSource"], "strongroom.local");
    assert_eq!(summary["eventType"], "AwsServiceEvent");
    assert_eq!(summary["errorCode"], "MissingAuthenticationTokenException");
    let reason = summary["authorization"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("MissingAuthenticationTokenException 7, InvalidSignatureException 3"),
        "{reason}"
    );
    assert!(reason.contains("GetSecretValue 10"), "{reason}");
    assert!(
        summary["requestParameters"]["startTime"].is_string(),
        "{summary}"
    );
    assert!(
        summary["requestParameters"]["endTime"].is_string(),
        "{summary}"
    );
    let known: Vec<&&Value> = attacker
        .iter()
        .filter(|r| !r["userIdentity"].is_null())
        .collect();
    assert_eq!(known.len(), 12);
    assert_eq!(
        known
            .iter()
            .filter(|r| r["errorCode"] == "ResourceNotFoundException")
            .count(),
        4
    );
    assert_eq!(from(&records, "198.51.100.9").len(), 3);
    assert!(summaries(&records, "198.51.100.9").is_empty());
}

#[test]
fn a_summary_is_recorded_once_its_minute_is_over_and_the_budget_starts_again() {
    let window = Duration::from_millis(400);
    let s = server(2, window, None);
    for _ in 0..6 {
        assert_eq!(
            unsigned_from(&s, "203.0.113.50").error_type(),
            "MissingAuthenticationTokenException"
        );
    }
    let url = s.database_url.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let summary = loop {
        let (records, _) = trail(&url);
        if let Some(found) = summaries(&records, "203.0.113.50").first() {
            break (*found).clone();
        }
        assert!(
            Instant::now() < deadline,
            "no summary while the server runs"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(counted(&summary), 4, "{summary}");
    // The next minute records one by one again.
    std::thread::sleep(window);
    unsigned_from(&s, "203.0.113.50");
    let (records, finding) = trail(&url);
    assert_eq!(finding, None);
    let one_by_one = from(&records, "203.0.113.50")
        .into_iter()
        .filter(|r| r["eventName"] == "GetSecretValue")
        .count();
    assert_eq!(one_by_one, 3);
}

#[test]
fn sources_share_no_budget_but_an_ipv6_slash_64_is_one_source() {
    let mut s = server(1, Duration::from_secs(600), None);
    for source in ["2001:db8:7:1::1", "2001:db8:7:1::2", "2001:db8:7:2::1"] {
        unsigned_from(&s, source);
    }
    let url = s.database_url.clone();
    s.stop();
    let (records, _) = trail(&url);
    assert_eq!(from(&records, "2001:db8:7:1::1").len(), 1);
    // The second address of the /64 was counted, into its summary (named by the first
    // address it counted).
    let second = from(&records, "2001:db8:7:1::2");
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0]["eventName"], SUMMARY);
    assert_eq!(counted(second[0]), 1);
    let other = from(&records, "2001:db8:7:2::1");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0]["eventName"], "GetSecretValue");
}

#[test]
fn with_no_budget_every_refusal_is_recorded() {
    let mut s = server(0, Duration::from_secs(60), None);
    for _ in 0..30 {
        unsigned_from(&s, "203.0.113.99");
    }
    let url = s.database_url.clone();
    s.stop();
    let (records, _) = trail(&url);
    let mine = from(&records, "203.0.113.99");
    assert_eq!(mine.len(), 30);
    assert!(summaries(&records, "203.0.113.99").is_empty());
}

/// A web identity token that verifies is a known caller for its trust decision: a denial by
/// the role's trust policy is recorded every time. A token that does not verify is an
/// unknown caller's.
#[test]
fn a_verified_token_refused_by_a_trust_policy_is_recorded_every_time() {
    let (_t, dir) = example_policies();
    add_issuer(&dir, "");
    let mut s = server(1, Duration::from_secs(600), Some(dir));
    for _ in 0..3 {
        let r = web_identity(
            &s,
            &token_with(&serde_json::json!({"sub": "repo:other/app"})),
        );
        assert_eq!(r.status, 403, "{}", r.body);
    }
    let mut forged = token_with(&serde_json::json!({}));
    forged.push_str("AAAA");
    for _ in 0..3 {
        let r = web_identity(&s, &forged);
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains("InvalidIdentityToken"), "{}", r.body);
    }
    // Positive control: the trusted subject still assumes the role, and is recorded.
    let r = web_identity(&s, &token_with(&serde_json::json!({})));
    assert_eq!(r.status, 200, "{}", r.body);
    let url = s.database_url.clone();
    s.stop();
    let (records, _) = trail(&url);
    let calls: Vec<&Value> = records
        .iter()
        .filter(|r| r["eventName"] == "AssumeRoleWithWebIdentity")
        .collect();
    let decided = |d: &str| {
        calls
            .iter()
            .filter(|r| r["authorization"]["decision"] == d)
            .count()
    };
    assert_eq!(decided("ImplicitDeny"), 3, "{calls:?}");
    assert_eq!(decided("Allow"), 1, "{calls:?}");
    let unverified = calls
        .iter()
        .filter(|r| r["errorCode"] == "InvalidIdentityToken")
        .count();
    assert_eq!(unverified, 1, "{calls:?}");
    let summary: Vec<&Value> = records
        .iter()
        .filter(|r| r["eventName"] == SUMMARY)
        .collect();
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert_eq!(counted(summary[0]), 2);
    assert_eq!(summary[0]["errorCode"], "InvalidIdentityToken");
}

/// Failed web console sign-ins count the same way: the attacker's first ones are recorded one
/// by one, the rest counted; the key's owner still signs in from elsewhere, recorded.
#[test]
fn failed_console_sign_ins_are_recorded_up_to_their_sources_budget_then_counted() {
    let policies = tempfile::tempdir().unwrap();
    user_allowing(
        policies.path(),
        ACCOUNT,
        "reader",
        &["secretsmanager:ListSecrets"],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.console = true;
    cfg.policies = Some(policies.path().to_path_buf());
    cfg.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    cfg.audit_unauthenticated = strongroom::audit::unauthenticated::Limits {
        per_source: 3,
        window: Duration::from_secs(600),
    };
    let mut s = TestServer::launch_config(cfg, dir);
    let (akid, secret) = key_for(&s, policies.path(), ACCOUNT, "reader");
    let mut attacker = Browser::new(&s);
    attacker.extra = "X-Forwarded-For: 203.0.113.9\r\n".into();
    for _ in 0..10 {
        let r = attacker.sign_in(&akid, "not-the-secret-0123456789");
        assert!(r.status == 401 || r.status == 429, "{}", r.body);
    }
    let mut owner = Browser::new(&s);
    owner.extra = "X-Forwarded-For: 198.51.100.7\r\n".into();
    assert_eq!(owner.sign_in(&akid, &secret).status, 303);
    let url = s.database_url.clone();
    s.stop();
    let (records, finding) = trail(&url);
    assert_eq!(finding, None);
    let attempts = from(&records, "203.0.113.9");
    let one_by_one = attempts
        .iter()
        .filter(|r| r["eventName"] == "ConsoleLogin")
        .count();
    assert_eq!(one_by_one, 3, "{attempts:?}");
    let summary = summaries(&records, "203.0.113.9");
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert_eq!(counted(summary[0]), 7);
    let reason = summary[0]["authorization"]["reason"].as_str().unwrap();
    assert!(reason.contains("ConsoleLogin 7"), "{reason}");
    assert!(!summary[0].to_string().contains("not-the-secret"));
    let owner_logins = from(&records, "198.51.100.7");
    assert_eq!(owner_logins.len(), 1);
    assert_eq!(
        owner_logins[0]["responseElements"]["consoleLogin"],
        "Success"
    );
}
