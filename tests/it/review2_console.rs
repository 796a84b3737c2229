//! The web console as an attacker sees it: what a console session stands for (the
//! principal's current policies, the request's own source address and transport, the
//! session's issue time), which cookies count as a session, and the failed sign-in throttle
//! under concurrent guesses.

use std::path::Path;

use serde_json::json;
use strongroom::console::session::{self, SessionClaims};

use crate::common::{
    call_as, config_in, key_for, user_allowing, write, TestServer, ACCOUNT, AKID, MARKER, SECRET,
};
use crate::console::{account_details, console_jwt, field, Browser, JWT_HMAC};

fn role_arn(role: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{role}")
}

/// A console server over `policies` (with the HMAC identity provider `idp.example.test`
/// declared in [`ACCOUNT`]), behind a trusted proxy at 127.0.0.1 so that each browser
/// names its own address, and one secret `prod/db` holding [`MARKER`].
fn server(policies: &Path) -> TestServer {
    user_allowing(policies, ACCOUNT, "nobody", &["sts:GetCallerIdentity"]);
    write(
        policies,
        &format!("accounts/{ACCOUNT}/identity-providers/idp.hmac"),
        JWT_HMAC,
    );
    write(
        policies,
        &format!("accounts/{ACCOUNT}/identity-providers/idp.json"),
        r#"{"Issuer":"https://idp.example.test","Audiences":["strongroom-console"],
            "HmacSecretFile":"idp.hmac","Algorithms":["HS256"]}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.console = true;
    cfg.policies = Some(policies.to_path_buf());
    cfg.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let s = TestServer::launch_config(cfg, dir);
    let r = call_as(
        &s,
        AKID,
        SECRET,
        "secretsmanager.CreateSecret",
        &json!({"Name": "prod/db", "SecretString": MARKER,
                "ClientRequestToken": "11111111-2222-3333-4444-555555555555"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    s
}

/// The role `role`: its identity policy allows listing and describing secrets (and
/// `extra` statements), its trust policy allows the provider's token of subject
/// `auditor@example.test` (and `trust_extra` statements).
fn write_role(policies: &Path, role: &str, extra: &str, trust_extra: &str) {
    write(
        policies,
        &format!("accounts/{ACCOUNT}/roles/{role}.json"),
        &format!(
            r#"{{"RoleName":"{role}",
            "InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow",
              "Action":["secretsmanager:ListSecrets","secretsmanager:DescribeSecret"],
              "Resource":"*"}}{extra}]}}}},
            "AssumeRolePolicyDocument":{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow",
              "Principal":{{"Federated":"https://idp.example.test"}},"Action":"sts:AssumeRoleWithWebIdentity",
              "Condition":{{"StringEquals":{{"idp.example.test:sub":"auditor@example.test"}}}}}}{trust_extra}]}}}}"#
        ),
    );
}

/// Wait until the directory in force answers GetAccountAuthorizationDetails with `needle`.
fn wait_for_directory(s: &TestServer, needle: &str) {
    for _ in 0..150 {
        if account_details(s, AKID, SECRET).body.contains(needle) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the directory never showed {needle}");
}

/// A browser whose requests come, through the trusted proxy, from `ip` (over TLS at the
/// proxy when `tls`).
fn browser_from(s: &TestServer, ip: &str, tls: bool) -> Browser {
    let mut b = Browser::new(s);
    b.extra = format!("X-Forwarded-For: {ip}\r\n");
    if tls {
        b.extra.push_str("X-Forwarded-Proto: https\r\n");
    }
    b
}

/// Sign in with a web identity token of subject `auditor@example.test` for `role`.
fn jwt_sign_in(b: &mut Browser, role: &str) -> u16 {
    let token = console_jwt("auditor@example.test", crate::common::now_secs() + 600);
    let page = b.get("/console/");
    assert_eq!(page.status, 200, "{}", page.body);
    let t = field(&page.body, "signin_token");
    let role = role_arn(role);
    b.post(
        "/console/signin/jwt",
        &[
            ("signin_token", t.as_str()),
            ("web_identity_token", token.as_str()),
            ("role_arn", role.as_str()),
        ],
    )
    .status
}

/// A trust policy's conditions on the request (`aws:SourceIp`, `aws:SecureTransport`) are
/// decided with the sign-in request's own address and transport, as for a `Bearer` request:
/// a Deny on an address range refuses a sign-in from it, and a Deny of requests in clear
/// does not refuse one over TLS.
#[test]
fn a_web_identity_sign_in_meets_the_trust_policys_conditions_on_the_request() {
    let policies = tempfile::tempdir().unwrap();
    let p = policies.path();
    let s = server(p);
    write_role(
        p,
        "auditor",
        "",
        r#",{"Effect":"Deny","Principal":"*","Action":"sts:AssumeRoleWithWebIdentity",
             "Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}"#,
    );
    write_role(
        p,
        "tls-only",
        "",
        r#",{"Effect":"Deny","Principal":"*","Action":"sts:AssumeRoleWithWebIdentity",
             "Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#,
    );
    wait_for_directory(&s, "role/auditor");
    wait_for_directory(&s, "role/tls-only");

    // Attacker: from the denied range.
    let mut attacker = browser_from(&s, "203.0.113.9", false);
    assert_eq!(jwt_sign_in(&mut attacker, "auditor"), 401);
    assert!(attacker.session_cookie().is_none());
    assert_eq!(attacker.get("/console/secrets").status, 303);
    // Attacker: in clear, for the role that refuses it.
    let mut clear = browser_from(&s, "198.51.100.7", false);
    assert_eq!(jwt_sign_in(&mut clear, "tls-only"), 401);
    assert!(clear.session_cookie().is_none());

    // Positive controls: from elsewhere; over TLS.
    let mut owner = browser_from(&s, "198.51.100.7", false);
    assert_eq!(jwt_sign_in(&mut owner, "auditor"), 303);
    let list = owner.get("/console/secrets");
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("prod/db"), "{}", list.body);
    let mut tls = browser_from(&s, "198.51.100.7", true);
    assert_eq!(jwt_sign_in(&mut tls, "tls-only"), 303);
    assert_eq!(tls.get("/console/secrets").status, 200);

    // The token is verified again on every request, with that request's address.
    let cookie = owner.session_cookie().unwrap();
    let mut moved = browser_from(&s, "203.0.113.9", false);
    moved
        .cookies
        .insert(session::COOKIE.to_owned(), cookie.clone());
    assert_eq!(moved.get("/console/secrets").status, 303);
    let mut stayed = browser_from(&s, "198.51.100.7", false);
    stayed.cookies.insert(session::COOKIE.to_owned(), cookie);
    assert_eq!(stayed.get("/console/secrets").status, 200);
}

/// A console web identity session was issued at its sign-in: a policy revoking the role's
/// sessions issued before a time (`aws:TokenIssueTime`, AWS's "revoke active sessions")
/// refuses it, while a session signed in after that time is allowed.
#[test]
fn a_web_identity_console_session_is_revoked_by_a_deny_on_older_token_issue_times() {
    let policies = tempfile::tempdir().unwrap();
    let p = policies.path();
    let s = server(p);
    write_role(p, "auditor", "", "");
    wait_for_directory(&s, "role/auditor");

    let mut old = browser_from(&s, "198.51.100.7", false);
    assert_eq!(jwt_sign_in(&mut old, "auditor"), 303);
    let list = old.get("/console/secrets");
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("prod/db"), "{}", list.body);

    // Revoke the sessions issued before the next whole second.
    let cutoff = crate::common::now_secs() + 1;
    let cutoff_text = time::OffsetDateTime::from_unix_timestamp(cutoff)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    write_role(
        p,
        "auditor",
        &format!(
            r#",{{"Sid":"RevokeOlderSessions","Effect":"Deny","Action":"*","Resource":"*",
                 "Condition":{{"DateLessThan":{{"aws:TokenIssueTime":"{cutoff_text}"}}}}}}"#
        ),
        "",
    );
    wait_for_directory(&s, "RevokeOlderSessions");
    while crate::common::now_secs() <= cutoff {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // Attacker: the session signed in before the cutoff.
    let list = old.get("/console/secrets");
    assert!(!list.body.contains("prod/db"), "{}", list.body);
    assert!(list.body.contains("AccessDeniedException"), "{}", list.body);

    // Positive control: a sign-in after the cutoff.
    let mut new = browser_from(&s, "198.51.100.7", false);
    assert_eq!(jwt_sign_in(&mut new, "auditor"), 303);
    let list = new.get("/console/secrets");
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("prod/db"), "{}", list.body);
}

/// Every page is decided with the principal's policies and key as they are now: narrowing
/// the user's policy, deactivating its key or removing the user takes effect on the
/// session's next page.
#[test]
fn a_key_session_follows_its_users_current_policies_key_and_existence() {
    let policies = tempfile::tempdir().unwrap();
    let p = policies.path();
    user_allowing(
        p,
        ACCOUNT,
        "alice",
        &[
            "secretsmanager:ListSecrets",
            "secretsmanager:GetSecretValue",
        ],
    );
    user_allowing(p, ACCOUNT, "bob", &["secretsmanager:ListSecrets"]);
    user_allowing(p, ACCOUNT, "carol", &["secretsmanager:ListSecrets"]);
    let s = server(p);
    let alice = key_for(&s, p, ACCOUNT, "alice");
    let bob = key_for(&s, p, ACCOUNT, "bob");
    let carol = key_for(&s, p, ACCOUNT, "carol");
    let arn = call_as(
        &s,
        AKID,
        SECRET,
        "secretsmanager.DescribeSecret",
        &json!({"SecretId": "prod/db"}),
    )
    .json()["ARN"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut a = Browser::new(&s);
    assert_eq!(a.sign_in(&alice.0, &alice.1).status, 303);
    let csrf = field(&a.get("/console/secrets").body, "csrf");
    // Positive control: the value is shown while the policy allows it.
    let shown = a.post("/console/secret/reveal", &[("csrf", &csrf), ("id", &arn)]);
    assert!(shown.body.contains(MARKER), "{}", shown.body);

    // The policy narrowed: the same session no longer reads the value.
    user_allowing(p, ACCOUNT, "alice", &["secretsmanager:ListSecrets"]);
    let mut refused = false;
    for _ in 0..150 {
        let r = a.post("/console/secret/reveal", &[("csrf", &csrf), ("id", &arn)]);
        if !r.body.contains(MARKER) {
            assert!(r.body.contains("AccessDeniedException"), "{}", r.body);
            refused = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(refused, "the narrowed policy never applied to the session");

    let mut b = Browser::new(&s);
    assert_eq!(b.sign_in(&bob.0, &bob.1).status, 303);
    let mut c = Browser::new(&s);
    assert_eq!(c.sign_in(&carol.0, &carol.1).status, 303);
    assert_eq!(b.get("/console/secrets").status, 200);
    assert_eq!(c.get("/console/secrets").status, 200);

    // Bob's key deactivated, Carol removed from the directory: both sessions end.
    strongroom::cli::change_access_key(
        &s.store_config(),
        &bob.0,
        strongroom::cli::KeyChange::Deactivate,
    )
    .unwrap();
    std::fs::remove_file(p.join(format!("accounts/{ACCOUNT}/users/carol.json"))).unwrap();
    let ended = |br: &mut Browser| {
        (0..150).any(|_| {
            let st = br.get("/console/secrets").status;
            if st != 303 {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            st == 303
        })
    };
    assert!(ended(&mut b), "a deactivated key's session went on");
    assert!(ended(&mut c), "a removed user's session went on");
    // A session ended so stays ended, and a new sign-in is refused.
    assert_eq!(b.get("/console/secrets").status, 303);
    assert_eq!(Browser::new(&s).sign_in(&bob.0, &bob.1).status, 401);
}

/// Over TLS the session is the `__Host-` cookie only (no Domain, Path=/, Secure: another
/// host of the site cannot set it); a cookie of the plain name, which a sibling host or a
/// network attacker can plant, is not a session there. Nor is a planted sign-in token
/// cookie of the plain name accepted over TLS.
#[test]
fn over_tls_only_host_prefixed_cookies_are_taken() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.console = true;
    cfg.tls = Some((root.join("cert.pem"), root.join("key.pem")));
    let s = TestServer::launch_config(cfg, dir);
    let (_store, keyring) = strongroom::server::open(&s.store_config()).unwrap();
    // The attacker's own session (here: root's), which it can hold legitimately.
    let planted = session::seal(
        &keyring,
        &SessionClaims::new(AKID, "us-east-1", crate::common::now_secs() * 1000),
    )
    .unwrap();

    // Attacker: the planted cookie under the plain name.
    let mut victim = Browser::new(&s);
    victim.tls = true;
    victim
        .cookies
        .insert(session::COOKIE.to_owned(), planted.clone());
    assert_eq!(victim.get("/console/secrets").status, 303);

    // Attacker: a planted sign-in token cookie and the matching form token (login CSRF
    // from a sibling host).
    let mut forged = Browser::new(&s);
    forged.tls = true;
    forged.cookies.insert(
        session::PRE_COOKIE.to_owned(),
        "0123456789abcdef".to_owned(),
    );
    let r = forged.post(
        "/console/signin",
        &[
            ("signin_token", "0123456789abcdef"),
            ("access_key_id", AKID),
            ("secret_access_key", SECRET),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(forged.session_cookie().is_none());

    // Positive controls: the prefixed cookie is a session, and the sign-in page's own token
    // cookie (prefixed, Secure, Path=/) signs in.
    let mut ok = Browser::new(&s);
    ok.tls = true;
    ok.cookies.insert(session::COOKIE_TLS.to_owned(), planted);
    assert_eq!(ok.get("/console/secrets").status, 200);
    let mut fresh = Browser::new(&s);
    fresh.tls = true;
    let page = fresh.get("/console/");
    let pre = page
        .headers
        .iter()
        .find(|(n, v)| n.eq_ignore_ascii_case("set-cookie") && v.contains("signin"))
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(
        pre.starts_with("__Host-") && pre.contains("; Secure") && pre.contains("Path=/;"),
        "{pre}"
    );
    assert_eq!(fresh.sign_in(AKID, SECRET).status, 303);
    assert_eq!(fresh.get("/console/secrets").status, 200);
}

/// Failed sign-ins sent all at once from one address are held to the address's limit: no
/// more than the limit have their credential checked.
#[test]
fn concurrent_failed_sign_ins_are_held_to_the_addresss_limit() {
    let policies = tempfile::tempdir().unwrap();
    let p = policies.path();
    user_allowing(p, ACCOUNT, "reader", &["secretsmanager:ListSecrets"]);
    let s = server(p);
    let (akid, secret) = key_for(&s, p, ACCOUNT, "reader");
    let wrong = "not-the-secret-0123456789";
    let n = 40;
    // Each attempt's form, fetched first.
    let mut attempts: Vec<(Browser, String)> = (0..n)
        .map(|_| {
            let mut b = browser_from(&s, "203.0.113.9", false);
            let t = field(&b.get("/console/").body, "signin_token");
            (b, t)
        })
        .collect();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let statuses: Vec<u16> = std::thread::scope(|sc| {
        let handles: Vec<_> = attempts
            .iter_mut()
            .map(|(b, t)| {
                let barrier = barrier.clone();
                let akid = akid.clone();
                sc.spawn(move || {
                    barrier.wait();
                    b.post(
                        "/console/signin",
                        &[
                            ("signin_token", t.as_str()),
                            ("access_key_id", akid.as_str()),
                            ("secret_access_key", wrong),
                        ],
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let checked = statuses.iter().filter(|st| **st == 401).count();
    let refused = statuses.iter().filter(|st| **st == 429).count();
    assert_eq!(checked + refused, n, "{statuses:?}");
    assert!(checked <= 10, "{checked} credentials checked: {statuses:?}");
    // The address stays refused, even with the right secret.
    let mut again = browser_from(&s, "203.0.113.9", false);
    assert_eq!(again.sign_in(&akid, &secret).status, 429);

    // Positive control: the owner, from another address, signs in.
    let mut owner = browser_from(&s, "198.51.100.7", false);
    assert_eq!(owner.sign_in(&akid, &secret).status, 303);
    assert_eq!(owner.get("/console/secrets").status, 200);
}

/// A session sealed for a region this server does not serve (by another server under the
/// same master key, or before the served regions changed) is not a session here.
#[test]
fn a_session_of_a_region_not_served_here_is_refused() {
    let policies = tempfile::tempdir().unwrap();
    let s = server(policies.path());
    let (_store, keyring) = strongroom::server::open(&s.store_config()).unwrap();
    let now = crate::common::now_secs() * 1000;
    let in_region = |region: &str| {
        let mut b = Browser::new(&s);
        b.cookies.insert(
            session::COOKIE.to_owned(),
            session::seal(&keyring, &SessionClaims::new(AKID, region, now)).unwrap(),
        );
        b.get("/console/secrets")
    };
    let r = in_region("eu-west-1");
    assert_eq!(r.status, 303, "{}", r.body);
    // Positive control: the served region.
    let r = in_region("us-east-1");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("prod/db"), "{}", r.body);
}
