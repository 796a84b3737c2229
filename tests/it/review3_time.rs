//! Time boundaries: the end of a KMS key's waiting period and of a secret's recovery window;
//! the validity window of web identity tokens (`exp`, `nbf`, the provider's leeway) and of
//! the sessions they and AssumeRole give (`DurationSeconds`, a revocation on
//! `aws:TokenIssueTime`); grants bounded by `aws:CurrentTime` / `aws:EpochTime`.
//!
//! The server reads the system clock; a test moves a deadline into the past by writing the
//! row's date in the SQLite file (the purge job is slowed down so that it does not remove
//! the row first), and signs tokens with the times it chooses.

use std::path::Path;

use crate::common::{config_in, example_policies, now_secs, ok, urlenc, xml_field, TestServer};

/// Run `sql` on the server's SQLite store (another connection, as an operator's tool would).
fn sql(s: &TestServer, sql: &str) {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let path = s.database_url.trim_start_matches("sqlite://").to_owned();
    let mut c = diesel::SqliteConnection::establish(&path).unwrap();
    c.batch_execute(&format!("PRAGMA busy_timeout = 10000; {sql}"))
        .unwrap();
}

fn now_ms() -> i64 {
    now_secs() * 1000
}

/// A server whose purge job runs once at start and then not for an hour: a row past its
/// deadline stays in the store for the test to act on.
fn slow_purge_server() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.purge_interval_secs = 3600;
    TestServer::launch_config(cfg, dir)
}

fn create_key(s: &TestServer) -> String {
    let r = ok(s, "TrentService.CreateKey", &serde_json::json!({}));
    r["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned()
}

fn key_state(s: &TestServer, key_id: &str) -> String {
    let r = ok(
        s,
        "TrentService.DescribeKey",
        &serde_json::json!({ "KeyId": key_id }),
    );
    r["KeyMetadata"]["KeyState"].as_str().unwrap().to_owned()
}

/// Once a key's waiting period has ended the key is deleted (AWS: "you can cancel key
/// deletion while it is still in the pending deletion state"; after it, the key and the data
/// it protects are gone): CancelKeyDeletion cannot bring it back, nor so the secrets it
/// protects. A key still inside its waiting period is cancelled as before.
#[test]
fn a_key_past_its_deletion_date_cannot_be_brought_back() {
    let s = slow_purge_server();
    let gone = create_key(&s);
    let kept = create_key(&s);
    for (name, key) in [("under/gone", &gone), ("under/kept", &kept)] {
        ok(
            &s,
            "secretsmanager.CreateSecret",
            &serde_json::json!({"Name": name, "SecretString": "v", "KmsKeyId": key}),
        );
        let r = ok(
            &s,
            "TrentService.ScheduleKeyDeletion",
            &serde_json::json!({"KeyId": key, "PendingWindowInDays": 7}),
        );
        assert_eq!(r["KeyState"], "PendingDeletion");
    }
    // The waiting period of `gone` ended a second ago.
    sql(
        &s,
        &format!(
            "UPDATE kms_keys SET deletion_date = {} WHERE key_id = '{gone}'",
            now_ms() - 1000
        ),
    );

    let r = s.call(
        "TrentService.CancelKeyDeletion",
        &serde_json::json!({ "KeyId": gone }).to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_type(), "NotFoundException", "{}", r.body);
    let r = s.call(
        "TrentService.EnableKey",
        &serde_json::json!({ "KeyId": gone }).to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s.call(
        "secretsmanager.GetSecretValue",
        r#"{"SecretId":"under/gone"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(!r.body.contains("SecretString"), "{}", r.body);

    // Positive control: inside its waiting period a key comes back (Disabled, then enabled).
    ok(
        &s,
        "TrentService.CancelKeyDeletion",
        &serde_json::json!({ "KeyId": kept }),
    );
    assert_eq!(key_state(&s, &kept), "Disabled");
    ok(
        &s,
        "TrentService.EnableKey",
        &serde_json::json!({ "KeyId": kept }),
    );
    let r = ok(
        &s,
        "secretsmanager.GetSecretValue",
        &serde_json::json!({"SecretId": "under/kept"}),
    );
    assert_eq!(r["SecretString"], "v");
}

/// A secret whose recovery window has ended is deleted, whenever the purge job gets to it
/// (AWS: "at any time before the recovery window ends, you can use RestoreSecret"): a
/// RestoreSecret after its DeletionDate finds no secret, and the value stays unreadable. A
/// secret still inside its window is restored as before.
#[test]
fn a_secret_past_its_deletion_date_cannot_be_restored() {
    let s = slow_purge_server();
    for name in ["window/ended", "window/open"] {
        ok(
            &s,
            "secretsmanager.CreateSecret",
            &serde_json::json!({"Name": name, "SecretString": "v"}),
        );
        ok(
            &s,
            "secretsmanager.DeleteSecret",
            &serde_json::json!({"SecretId": name, "RecoveryWindowInDays": 7}),
        );
    }
    sql(
        &s,
        &format!(
            "UPDATE secrets SET purge_at = {} WHERE name = 'window/ended'",
            now_ms() - 1000
        ),
    );

    let r = s.call(
        "secretsmanager.RestoreSecret",
        r#"{"SecretId":"window/ended"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_type(), "ResourceNotFoundException", "{}", r.body);
    let r = s.call(
        "secretsmanager.GetSecretValue",
        r#"{"SecretId":"window/ended"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(!r.body.contains("SecretString"), "{}", r.body);

    // Positive control: inside the window the secret is restored and readable again.
    ok(
        &s,
        "secretsmanager.RestoreSecret",
        &serde_json::json!({"SecretId": "window/open"}),
    );
    let r = ok(
        &s,
        "secretsmanager.GetSecretValue",
        &serde_json::json!({"SecretId": "window/open"}),
    );
    assert_eq!(r["SecretString"], "v");
}

const HMAC: &str = "time-review-provider-hmac-0123456789abcdef";
const ROLE: &str = "arn:aws:iam::111122223333:role/ci-deployer";

/// An HS256 issuer `https://ci.example.test` (with `extra` fields in its provider file) and
/// a role its tokens for `sub` `repo:payments/api` may assume.
pub(crate) fn add_issuer(dir: &Path, extra: &str) {
    let acct = dir.join("accounts/111122223333");
    std::fs::create_dir_all(acct.join("identity-providers")).unwrap();
    std::fs::write(acct.join("identity-providers/ci.hmac"), HMAC).unwrap();
    std::fs::write(
        acct.join("identity-providers/ci.json"),
        format!(
            r#"{{"Issuer":"https://ci.example.test","Audiences":["strongroom"],"HmacSecretFile":"ci.hmac",
                "Algorithms":["HS256"]{extra}}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        acct.join("roles/ci-deployer.json"),
        r#"{"RoleName":"ci-deployer","AttachedPolicies":["arn:aws:iam::111122223333:policy/payments-app-read"],
            "AssumeRolePolicyDocument":{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
              "Principal":{"Federated":"https://ci.example.test"},"Action":"sts:AssumeRoleWithWebIdentity",
              "Condition":{"StringEquals":{"ci.example.test:sub":"repo:payments/api"}}}]}}"#,
    )
    .unwrap();
}

fn jwt(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(HMAC.as_bytes()),
    )
    .unwrap()
}

/// A token for the trusted subject, valid for ten minutes, with `changes` applied.
pub(crate) fn token_with(changes: &serde_json::Value) -> String {
    let mut c = serde_json::json!({"iss":"https://ci.example.test","aud":"strongroom",
        "sub":"repo:payments/api","exp":now_secs()+600,"iat":now_secs()});
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    jwt(&c)
}

pub(crate) fn web_identity(s: &TestServer, token: &str) -> crate::common::RawResponse {
    let form = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=build-1&WebIdentityToken={token}",
        urlenc(ROLE)
    );
    let req = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
        form.len()
    );
    s.raw(req.as_bytes())
}

fn bearer(s: &TestServer, token: &str) -> crate::common::RawResponse {
    let body = r#"{"SecretId":"payments/db"}"#;
    let req = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\nx-strongroom-role: {ROLE}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: secretsmanager.GetSecretValue\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.raw(req.as_bytes())
}

fn web_identity_server(extra: &str) -> (tempfile::TempDir, TestServer) {
    let (t, dir) = example_policies();
    add_issuer(&dir, extra);
    let s = TestServer::start_with_policies(&dir);
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &serde_json::json!({"Name": "payments/db", "SecretString": "p"}),
    );
    (t, s)
}

/// A token's `nbf` that is not a NumericDate (a string, a number too large for one, a
/// negative number) does not leave the token valid at once: it is refused, for
/// AssumeRoleWithWebIdentity and as a Bearer token alike. A numeric `nbf` in the past or
/// within the leeway is accepted.
#[test]
fn a_token_whose_not_before_is_not_a_numeric_date_is_refused() {
    let (_t, s) = web_identity_server("");
    let later = now_secs() + 3600;
    for (what, nbf) in [
        ("a number", serde_json::json!(now_secs() - 60)),
        ("within the leeway", serde_json::json!(now_secs() + 30)),
    ] {
        let token = token_with(&serde_json::json!({ "nbf": nbf }));
        let r = web_identity(&s, &token);
        assert_eq!(r.status, 200, "{what}: {}", r.body);
        assert!(r.body.contains("<Credentials>"), "{what}: {}", r.body);
        assert_eq!(bearer(&s, &token).status, 200, "{what}");
    }
    for (what, nbf) in [
        ("a number an hour ahead", serde_json::json!(later)),
        ("a string", serde_json::json!(later.to_string())),
        ("an ISO date", serde_json::json!("2099-01-01T00:00:00Z")),
        ("too large", serde_json::json!(1e300)),
        ("negative", serde_json::json!(-1)),
        ("an object", serde_json::json!({"at": later})),
        ("null", serde_json::Value::Null),
    ] {
        let token = token_with(&serde_json::json!({ "nbf": nbf }));
        let r = web_identity(&s, &token);
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert_eq!(xml_field(&r.body, "Code"), "InvalidIdentityToken", "{what}");
        assert!(!r.body.contains("<Credentials>"), "{what}: {}", r.body);
        let r = bearer(&s, &token);
        assert!(r.status == 400 || r.status == 403, "{what}: {}", r.body);
        assert!(!r.body.contains("SecretString"), "{what}: {}", r.body);
    }
}

/// `exp` is honoured with the provider's leeway (60 s unless declared) and no more: a token
/// expired 30 s ago passes, one expired 90 s ago does not; with `LeewaySeconds` 0 the one
/// expired 30 s ago is refused too. A fractional `exp` is a NumericDate like any other.
#[test]
fn a_token_is_refused_once_expired_beyond_the_leeway() {
    let (_t, s) = web_identity_server("");
    let at = |exp: serde_json::Value| token_with(&serde_json::json!({ "exp": exp }));
    for (what, exp) in [
        ("30 s ago", serde_json::json!(now_secs() - 30)),
        ("fractional", serde_json::json!(now_secs() as f64 + 600.5)),
    ] {
        let r = web_identity(&s, &at(exp.clone()));
        assert_eq!(r.status, 200, "{what}: {}", r.body);
        assert_eq!(bearer(&s, &at(exp)).status, 200, "{what}");
    }
    for (what, exp) in [
        ("90 s ago", serde_json::json!(now_secs() - 90)),
        (
            "a string",
            serde_json::json!((now_secs() + 600).to_string()),
        ),
        ("negative", serde_json::json!(-1)),
        ("null", serde_json::Value::Null),
    ] {
        let r = web_identity(&s, &at(exp.clone()));
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert!(!r.body.contains("<Credentials>"), "{what}: {}", r.body);
        let r = bearer(&s, &at(exp));
        assert!(r.status == 400 || r.status == 403, "{what}: {}", r.body);
    }

    let (_t0, strict) = web_identity_server(r#","LeewaySeconds":0"#);
    let r = web_identity(&strict, &at(serde_json::json!(now_secs() - 30)));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = web_identity(&strict, &at(serde_json::json!(now_secs() + 600)));
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A provider's `LeewaySeconds` is at most five minutes: a file declaring more (which
/// would accept tokens expired for as long) or a number the clock arithmetic cannot take is
/// refused when loading; five minutes is accepted.
#[test]
fn a_provider_leeway_longer_than_five_minutes_is_refused_when_loading() {
    for leeway in ["301", "100000000", "18446744073709551615"] {
        let (_t, dir) = example_policies();
        add_issuer(&dir, &format!(r#","LeewaySeconds":{leeway}"#));
        let errors = strongroom::identity::load_dir(&dir).unwrap_err();
        assert!(
            errors.iter().any(|e| e.path == "$.LeewaySeconds"),
            "{leeway}: {errors:?}"
        );
    }
    // Positive control: five minutes, honoured.
    let (_t, s) = web_identity_server(r#","LeewaySeconds":300"#);
    let r = web_identity(
        &s,
        &token_with(&serde_json::json!({"exp": now_secs() - 240})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = web_identity(
        &s,
        &token_with(&serde_json::json!({"exp": now_secs() - 400})),
    );
    assert_eq!(r.status, 400, "{}", r.body);
}

/// `t` (epoch seconds) as RFC 3339 at `offset` hours from UTC (`Z` for 0), with a fraction.
fn iso_at(t: i64, offset_hours: i8, fraction: bool) -> String {
    let offset = time::UtcOffset::from_hms(offset_hours, 0, 0).unwrap();
    let dt = time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .to_offset(offset);
    let base = dt
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]"
        ))
        .unwrap();
    let frac = if fraction { ".250" } else { "" };
    let zone = if offset_hours == 0 {
        "Z".to_owned()
    } else {
        format!("{offset_hours:+03}:00")
    };
    format!("{base}{frac}{zone}")
}

/// Role `name` whose sessions may list secrets and assume roles of the account, unless
/// issued before `cutoff` (AWS's "revoke active sessions" statement, a Deny of everything on
/// `DateLessThan aws:TokenIssueTime`).
fn revocable_role(dir: &Path, name: &str, cutoff: &str) {
    crate::common::write(
        dir,
        &format!("accounts/{}/roles/{name}.json", crate::common::ACCOUNT),
        &format!(
            r#"{{"RoleName":"{name}",
                "AssumeRolePolicyDocument":{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow",
                    "Principal":{{"AWS":"arn:aws:iam::{acct}:root"}},"Action":"sts:AssumeRole"}}]}},
                "InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                    {{"Effect":"Allow","Action":["secretsmanager:ListSecrets","sts:AssumeRole"],"Resource":"*"}},
                    {{"Effect":"Deny","Action":"*","Resource":"*",
                      "Condition":{{"DateLessThan":{{"aws:TokenIssueTime":"{cutoff}"}}}}}}]}}}}}}"#,
            acct = crate::common::ACCOUNT
        ),
    );
}

/// A session issued before its role's revocation time is refused, whatever form the policy
/// gives that time (an offset, a fraction, epoch seconds, a date alone): its calls and the
/// AssumeRole by which it would chain to a fresh session alike. A session issued after the
/// revocation time works and chains.
#[test]
fn a_session_issued_before_its_roles_revocation_time_is_refused() {
    use crate::common::{assume_role, signed_query, sts_as, user_allowing, Signing, ACCOUNT};
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("policies");
    user_allowing(&dir, ACCOUNT, "ci", &["sts:AssumeRole"]);
    let now = now_secs();
    let tomorrow = time::OffsetDateTime::from_unix_timestamp(now + 2 * 86400)
        .unwrap()
        .date()
        .to_string();
    let revoked = [
        ("offset", iso_at(now + 3600, 5, false)),
        ("negative-offset", iso_at(now + 3600, -8, false)),
        ("fraction", iso_at(now + 60, 0, true)),
        ("epoch", (now + 3600).to_string()),
        ("date-only", tomorrow),
    ];
    for (name, cutoff) in &revoked {
        revocable_role(&dir, name, cutoff);
    }
    revocable_role(&dir, "current", &iso_at(now - 3600, 5, false));
    revocable_role(&dir, "current-epoch", &(now - 3600).to_string());
    let s = TestServer::start_with_policies(&dir);
    let (akid, secret) = crate::common::key_for(&s, &dir, ACCOUNT, "ci");
    let role_arn = |name: &str| format!("arn:aws:iam::{ACCOUNT}:role/{name}");
    let as_session = |session: &(String, String, String), target: &str| {
        s.call_signed(
            target,
            "{}",
            Signing {
                akid: session.0.clone(),
                secret: session.1.clone(),
                session_token: Some(session.2.clone()),
                ..Signing::default()
            },
        )
    };
    let chain = |session: &(String, String, String), role: &str| {
        s.raw(&signed_query(
            &format!(
                "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=again",
                urlenc(&role_arn(role))
            ),
            Signing {
                session_token: Some(session.2.clone()),
                ..sts_as(&session.0, &session.1)
            },
        ))
    };
    for name in ["current", "current-epoch"] {
        let session = assume_role(&s, &akid, &secret, &role_arn(name), "s1");
        let r = as_session(&session, "secretsmanager.ListSecrets");
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let r = chain(&session, name);
        assert_eq!(r.status, 200, "{name}: {}", r.body);
    }
    for (name, cutoff) in &revoked {
        let session = assume_role(&s, &akid, &secret, &role_arn(name), "s1");
        let r = as_session(&session, "secretsmanager.ListSecrets");
        assert_eq!(r.status, 400, "{name} ({cutoff}): {}", r.body);
        assert_eq!(
            r.error_type(),
            "AccessDeniedException",
            "{name}: {}",
            r.body
        );
        let r = chain(&session, name);
        assert_eq!(r.status, 403, "{name} ({cutoff}): {}", r.body);
        assert!(!r.body.contains("<Credentials>"), "{name}: {}", r.body);
    }
}

/// AssumeRoleWithWebIdentity's `DurationSeconds` is 900 to the role's MaxSessionDuration
/// (3600 by default), and the session lasts what was asked, no more.
#[test]
fn a_web_identity_session_lasts_what_was_asked_within_its_bounds() {
    let (_t, s) = web_identity_server("");
    let token = token_with(&serde_json::json!({"exp": now_secs() + 7200}));
    let ask = |duration: &str| {
        let form = format!(
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=build-2&WebIdentityToken={token}&DurationSeconds={duration}",
            urlenc(ROLE)
        );
        let req = format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
            form.len()
        );
        s.raw(req.as_bytes())
    };
    for duration in ["899", "3601", "43200", "-900", "9223372036854775807"] {
        let r = ask(duration);
        assert_eq!(r.status, 400, "{duration}: {}", r.body);
        assert!(r.body.contains("DurationSeconds"), "{duration}: {}", r.body);
        assert!(!r.body.contains("<Credentials>"), "{duration}: {}", r.body);
    }
    for duration in [900_i64, 3600] {
        let before = now_secs();
        let r = ask(&duration.to_string());
        assert_eq!(r.status, 200, "{duration}: {}", r.body);
        let expiration = time::OffsetDateTime::parse(
            &xml_field(&r.body, "Expiration"),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp();
        assert!(
            (before + duration..=now_secs() + duration).contains(&expiration),
            "{duration}: {expiration} vs {before}"
        );
    }
}

/// A user of the default account allowed GetSecretValue under `condition` only.
fn user_allowed_when(dir: &Path, name: &str, condition: &serde_json::Value) {
    crate::common::write(
        dir,
        &format!("accounts/{}/users/{name}.json", crate::common::ACCOUNT),
        &serde_json::json!({"UserName": name, "InlinePolicies": {"p": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                           "Resource": "*", "Condition": condition}]}}})
        .to_string(),
    );
}

/// A grant bounded in time by `aws:CurrentTime` / `aws:EpochTime` allows nothing once its
/// end has passed or before its start, whatever form the policy writes the time in (an
/// offset, a fraction, epoch seconds, a date alone); inside its window it allows.
#[test]
fn a_time_bounded_grant_allows_only_inside_its_window() {
    use crate::common::{call_as, key_for, ACCOUNT};
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("policies");
    crate::common::write(
        &dir,
        &format!("accounts/{ACCOUNT}/account.json"),
        &format!(r#"{{"AccountId":"{ACCOUNT}"}}"#),
    );
    let now = now_secs();
    let day_after_tomorrow = time::OffsetDateTime::from_unix_timestamp(now + 2 * 86400)
        .unwrap()
        .date()
        .to_string();
    let outside = [
        (
            "ended-offset",
            serde_json::json!({"DateLessThan": {"aws:CurrentTime": iso_at(now - 60, 5, false)}}),
        ),
        (
            "ended-epoch",
            serde_json::json!({"DateLessThan": {"aws:EpochTime": (now - 60).to_string()}}),
        ),
        (
            "ended-fraction",
            serde_json::json!({"DateLessThanEquals": {"aws:CurrentTime": iso_at(now - 2, 0, true)}}),
        ),
        (
            "not-begun-offset",
            serde_json::json!({"DateGreaterThan": {"aws:CurrentTime": iso_at(now + 3600, -8, false)}}),
        ),
        (
            "not-begun-date",
            serde_json::json!({"DateGreaterThanEquals": {"aws:CurrentTime": day_after_tomorrow}}),
        ),
        (
            "equals-another-second",
            serde_json::json!({"DateEquals": {"aws:EpochTime": (now - 3600).to_string()}}),
        ),
    ];
    let inside = [
        (
            "window",
            serde_json::json!({"DateGreaterThan": {"aws:CurrentTime": iso_at(now - 3600, 0, true)},
                               "DateLessThan": {"aws:EpochTime": (now + 3600).to_string()}}),
        ),
        (
            "window-offset",
            serde_json::json!({"DateLessThan": {"aws:CurrentTime": iso_at(now + 3600, 14, false)},
                               "DateGreaterThan": {"aws:CurrentTime": iso_at(now - 3600, -12, false)}}),
        ),
    ];
    for (name, condition) in outside.iter().chain(inside.iter()) {
        user_allowed_when(&dir, name, condition);
    }
    let s = TestServer::start_with_policies(&dir);
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &serde_json::json!({"Name": "windowed/db", "SecretString": "w"}),
    );
    let get = |name: &str| {
        let (akid, secret) = key_for(&s, &dir, ACCOUNT, name);
        call_as(
            &s,
            &akid,
            &secret,
            "secretsmanager.GetSecretValue",
            &serde_json::json!({"SecretId": "windowed/db"}),
        )
    };
    for (name, condition) in &inside {
        let r = get(name);
        assert_eq!(r.status, 200, "{name} {condition}: {}", r.body);
    }
    for (name, condition) in &outside {
        let r = get(name);
        assert_eq!(r.status, 400, "{name} {condition}: {}", r.body);
        assert_eq!(
            r.error_type(),
            "AccessDeniedException",
            "{name}: {}",
            r.body
        );
    }
}
