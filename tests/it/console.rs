//! The web console (`serve --console`) over raw HTTP: sign-in, the session cookie, CSRF,
//! forged/tampered/expired cookies, and that every console action is the signed-in
//! principal's own API call (same authorization, same denial message, same audit record).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::json;
use strongroom::console::session::{self, SessionClaims};

use crate::common::{
    call_as, config_in, key_for, send_raw, send_tls, urlenc, user_allowing, RawResponse,
    TestServer, ACCOUNT, AKID, MARKER, SECRET,
};

/// A browser over raw HTTP: keeps the cookies the console sets.
pub(crate) struct Browser {
    addr: SocketAddr,
    pub(crate) tls: bool,
    pub(crate) cookies: BTreeMap<String, String>,
    /// Extra request headers (a proxy's X-Forwarded-Proto).
    pub(crate) extra: String,
}

impl Browser {
    pub(crate) fn new(s: &TestServer) -> Self {
        Self {
            addr: s.addr,
            tls: false,
            cookies: BTreeMap::new(),
            extra: String::new(),
        }
    }

    fn send(&mut self, req: String) -> RawResponse {
        let r = if self.tls {
            send_tls(self.addr, req.as_bytes())
        } else {
            send_raw(self.addr, req.as_bytes())
        };
        for (n, v) in &r.headers {
            if n.eq_ignore_ascii_case("set-cookie") {
                let pair = v.split(';').next().unwrap_or_default();
                let (name, value) = pair.split_once('=').unwrap();
                if value.is_empty() || v.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        r
    }

    fn cookie_header(&self) -> String {
        if self.cookies.is_empty() {
            return String::new();
        }
        let all: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        format!("Cookie: {}\r\n", all.join("; "))
    }

    pub(crate) fn get(&mut self, path: &str) -> RawResponse {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: console-test\r\n{}{}Connection: close\r\n\r\n",
            self.cookie_header(),
            self.extra
        );
        self.send(req)
    }

    pub(crate) fn post(&mut self, path: &str, form: &[(&str, &str)]) -> RawResponse {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlenc(v)))
            .collect();
        let body = body.join("&");
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: console-test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{}{}Connection: close\r\n\r\n{body}",
            body.len(),
            self.cookie_header(),
            self.extra
        );
        self.send(req)
    }

    /// Sign in with an access key pair; returns the sign-in answer.
    pub(crate) fn sign_in(&mut self, akid: &str, secret: &str) -> RawResponse {
        let page = self.get("/console/");
        assert_eq!(page.status, 200, "{}", page.body);
        let token = field(&page.body, "signin_token");
        self.post(
            "/console/signin",
            &[
                ("signin_token", &token),
                ("access_key_id", akid),
                ("secret_access_key", secret),
            ],
        )
    }

    pub(crate) fn session_cookie(&self) -> Option<String> {
        self.cookies
            .get(session::COOKIE)
            .or_else(|| self.cookies.get(session::COOKIE_TLS))
            .cloned()
    }
}

/// The value of the first hidden input named `name`.
pub(crate) fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let (_, rest) = html
        .split_once(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    rest.split('"').next().unwrap().to_owned()
}

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// A console server with users `reader` (may read secrets, the trail and its integrity, the
/// directory with its accounts, SCPs, identity providers and reload status, and simulate) and
/// `limited` (may list and describe, not read values), and one secret holding [`MARKER`].
pub(crate) struct Fixture {
    pub s: TestServer,
    pub(crate) _policies: tempfile::TempDir,
    pub reader: (String, String),
    pub limited: (String, String),
    pub arn: String,
}

pub(crate) fn fixture() -> Fixture {
    let policies = tempfile::tempdir().unwrap();
    let p = policies.path();
    user_allowing(
        p,
        ACCOUNT,
        "reader",
        &[
            "secretsmanager:ListSecrets",
            "secretsmanager:DescribeSecret",
            "secretsmanager:ListSecretVersionIds",
            "secretsmanager:GetSecretValue",
            "cloudtrail:LookupEvents",
            "cloudtrail:GetTrailStatus",
            "iam:SimulatePrincipalPolicy",
            "iam:GetAccountAuthorizationDetails",
            "organizations:ListAccounts",
            "organizations:ListPolicies",
            "organizations:DescribePolicy",
            "iam:ListOpenIDConnectProviders",
            "iam:GetOpenIDConnectProvider",
            "strongroom:GetPrincipalsReloadStatus",
        ],
    );
    user_allowing(
        p,
        ACCOUNT,
        "limited",
        &[
            "secretsmanager:ListSecrets",
            "secretsmanager:DescribeSecret",
            "secretsmanager:ListSecretVersionIds",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.console = true;
    cfg.policies = Some(p.to_path_buf());
    let s = TestServer::launch_config(cfg, dir);
    let reader = key_for(&s, p, ACCOUNT, "reader");
    let limited = key_for(&s, p, ACCOUNT, "limited");
    let r = call_as(
        &s,
        AKID,
        SECRET,
        "secretsmanager.CreateSecret",
        &json!({"Name": "prod/db", "SecretString": MARKER, "Description": "the database",
                "ClientRequestToken": "11111111-2222-3333-4444-555555555555",
                "Tags": [{"Key": "team", "Value": "payments"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let arn = r.json()["ARN"].as_str().unwrap().to_owned();
    Fixture {
        s,
        _policies: policies,
        reader,
        limited,
        arn,
    }
}

/// The account's events named `name`, as root reads them through LookupEvents.
pub(crate) fn events(s: &TestServer, name: &str) -> Vec<serde_json::Value> {
    let r = call_as(
        s,
        AKID,
        SECRET,
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        &json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": name}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap())
        .collect()
}

fn path_of(f: &Fixture) -> String {
    format!("/console/secret?id={}", urlenc(&f.arn))
}

#[test]
fn the_console_is_off_unless_enabled() {
    let s = TestServer::start();
    let mut b = Browser::new(&s);
    let r = b.get("/console/");
    assert_ne!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("Sign in"), "{}", r.body);
}

#[test]
fn sign_in_find_reveal_and_see_the_read_in_the_audit_explorer() {
    let f = fixture();
    let mut b = Browser::new(&f.s);
    let page = b.get("/console/");
    let csp = page.header("content-security-policy").unwrap().to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(!page.body.contains("<script"), "{}", page.body);
    assert_eq!(page.header("cache-control"), Some("no-store"));

    let (akid, secret) = f.reader.clone();
    let r = b.sign_in(&akid, &secret);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/console/secrets"));
    let set = r
        .headers
        .iter()
        .find(|(n, v)| n.eq_ignore_ascii_case("set-cookie") && v.starts_with(session::COOKIE))
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    // Plain HTTP from a peer that is not a trusted proxy: not Secure.
    assert!(!set.contains("Secure"), "{set}");
    assert!(!set.contains(&secret), "{set}");

    // Find the secret by a tag search.
    let list = b.get("/console/secrets?key=tag-value&q=payments");
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains("prod/db") && list.body.contains("team=payments"),
        "{}",
        list.body
    );
    let none = b.get("/console/secrets?key=name&q=nothing-like-it");
    assert!(!none.body.contains("prod/db"), "{}", none.body);

    // Its page: details and versions, the value hidden.
    let page = b.get(&path_of(&f));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("the database") && page.body.contains("AWSCURRENT"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(MARKER),
        "the value is shown before it is asked for"
    );
    // Its history, from the audit trail: the creation, by root.
    assert!(page.body.contains("CreateSecret"), "{}", page.body);
    assert!(events(&f.s, "GetSecretValue").is_empty());

    // Reveal: a POST with the session's CSRF token, a GetSecretValue by the reader.
    let csrf = field(&page.body, "csrf");
    let version = field(&page.body, "version_id");
    let shown = b.post(
        "/console/secret/reveal",
        &[("csrf", &csrf), ("id", &f.arn), ("version_id", &version)],
    );
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.body.contains(MARKER), "{}", shown.body);
    let reads = events(&f.s, "GetSecretValue");
    assert_eq!(reads.len(), 1, "{reads:?}");
    let read = &reads[0];
    assert_eq!(
        read["userIdentity"]["arn"],
        format!("arn:aws:iam::{ACCOUNT}:user/reader")
    );
    assert_eq!(read["userIdentity"]["accessKeyId"], akid.as_str());
    assert_eq!(read["authorization"]["decision"], "Allow");
    assert_eq!(read["userAgent"], "console-test");
    assert!(!read.to_string().contains(MARKER));

    // The sign-in is recorded as ConsoleLogin, without the secret key.
    let logins = events(&f.s, "ConsoleLogin");
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(logins[0]["responseElements"]["consoleLogin"], "Success");
    assert_eq!(logins[0]["eventSource"], "signin.amazonaws.com");
    assert_eq!(logins[0]["eventType"], "AwsConsoleSignIn");
    assert!(!logins[0].to_string().contains(&secret));

    // The audit explorer shows the read, and its page says which statement allowed it.
    let audit = b.get("/console/audit?event_name=GetSecretValue&decision=Allow");
    assert_eq!(audit.status, 200, "{}", audit.body);
    assert!(
        audit.body.contains("GetSecretValue") && audit.body.contains("reader"),
        "{}",
        audit.body
    );
    let id = read["eventID"].as_str().unwrap();
    assert!(audit.body.contains(id), "{}", audit.body);
    let event = b.get(&format!("/console/audit/event?id={}", urlenc(id)));
    assert_eq!(event.status, 200, "{}", event.body);
    assert!(
        event.body.contains(&html_escape(&format!(
            "Allowed: statement 0 (no Sid) of the identity policy arn:aws:iam::{ACCOUNT}:user/reader:inline/p allows secretsmanager:GetSecretValue on {}",
            f.arn
        ))),
        "{}",
        event.body
    );
    assert!(!event.body.contains(MARKER));
    // Filters the one LookupEvents attribute cannot express are applied too.
    let denied_only = b.get("/console/audit?event_name=GetSecretValue&decision=ExplicitDeny");
    assert!(!denied_only.body.contains(id), "{}", denied_only.body);
    // Export of the current filter: one CloudTrail record a line.
    let export = b.get("/console/audit/export?event_name=GetSecretValue");
    assert_eq!(export.status, 200, "{}", export.body);
    let lines: Vec<serde_json::Value> = export
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{}", export.body);
    assert_eq!(lines[0]["eventID"], id);
}

#[test]
fn a_wrong_secret_is_refused_and_recorded_as_a_failed_console_login() {
    let f = fixture();
    let mut b = Browser::new(&f.s);
    let wrong = "not-the-secret-0123456789";
    let r = b.sign_in(&f.reader.0, wrong);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(b.session_cookie().is_none());
    assert!(r.body.contains("Sign-in failed"), "{}", r.body);
    let r = b.sign_in("AKIAUNKNOWN000000000", wrong);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(b.get("/console/secrets").status, 303);
    let logins = events(&f.s, "ConsoleLogin");
    // The unknown key has no account: only `strongroom audit query` shows that one.
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(logins[0]["responseElements"]["consoleLogin"], "Failure");
    assert_eq!(logins[0]["errorMessage"], "Failed authentication");
    assert_eq!(
        logins[0]["userIdentity"]["arn"],
        format!("arn:aws:iam::{ACCOUNT}:user/reader")
    );
    assert!(!logins[0].to_string().contains(wrong));
}

#[test]
fn an_address_hammering_sign_in_is_throttled_and_the_owner_still_signs_in_elsewhere() {
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
    // Behind a trusted proxy, so each browser has its own source address.
    cfg.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let s = TestServer::launch_config(cfg, dir);
    let (akid, secret) = key_for(&s, policies.path(), ACCOUNT, "reader");

    let mut attacker = Browser::new(&s);
    attacker.extra = "X-Forwarded-For: 203.0.113.9\r\n".into();
    let wrong = "not-the-secret-0123456789";
    for _ in 0..10 {
        assert_eq!(attacker.sign_in(&akid, wrong).status, 401);
    }
    // Refused without checking the credential: even the right secret does not get in.
    let r = attacker.sign_in(&akid, &secret);
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("too many failed sign-ins"), "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert!(attacker.session_cookie().is_none());
    assert_eq!(attacker.sign_in("AKIAOTHERKEY00000000", wrong).status, 429);

    // Positive control: the key's owner, from another address, signs in.
    let mut owner = Browser::new(&s);
    owner.extra = "X-Forwarded-For: 198.51.100.7\r\n".into();
    let r = owner.sign_in(&akid, &secret);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(owner.get("/console/secrets").status, 200);

    // The refusal is a failed ConsoleLogin in the key owner's trail.
    let logins = events(&s, "ConsoleLogin");
    let refused: Vec<_> = logins
        .iter()
        .filter(|e| e["errorMessage"] == "Too many failed sign-in attempts")
        .collect();
    assert_eq!(refused.len(), 1, "{logins:?}");
    assert_eq!(refused[0]["responseElements"]["consoleLogin"], "Failure");
    assert_eq!(refused[0]["sourceIPAddress"], "203.0.113.9");
    assert!(!refused[0].to_string().contains(&secret));
    assert_eq!(
        logins
            .iter()
            .filter(|e| e["responseElements"]["consoleLogin"] == "Success")
            .count(),
        1
    );
}

#[test]
fn the_integrity_page_needs_get_trail_status_and_shows_only_what_was_checked() {
    let policies = tempfile::tempdir().unwrap();
    let p = policies.path();
    user_allowing(p, ACCOUNT, "auditor", &["cloudtrail:GetTrailStatus"]);
    user_allowing(p, ACCOUNT, "looker", &["cloudtrail:LookupEvents"]);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.console = true;
    cfg.policies = Some(p.to_path_buf());
    let s = TestServer::launch_config(cfg, dir);
    let auditor = key_for(&s, p, ACCOUNT, "auditor");
    let looker = key_for(&s, p, ACCOUNT, "looker");

    // Attacker: may look up events, not read the trail's status: the API's denial.
    let mut b = Browser::new(&s);
    assert_eq!(b.sign_in(&looker.0, &looker.1).status, 303);
    let r = b.get("/console/audit/integrity");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("AccessDeniedException"), "{}", r.body);
    assert!(r.body.contains("cloudtrail:GetTrailStatus"), "{}", r.body);
    assert!(!r.body.contains("Verified at"), "{}", r.body);
    assert!(!r.body.contains("Latest signed digest"), "{}", r.body);

    // Positive control.
    let mut b = Browser::new(&s);
    assert_eq!(b.sign_in(&auditor.0, &auditor.1).status, 303);
    let r = b.get("/console/audit/integrity");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Verified at"), "{}", r.body);
    assert!(
        r.body.contains("every record checked is intact"),
        "{}",
        r.body
    );
    assert!(r.body.contains("not checked yet"), "{}", r.body);
    assert!(r.body.contains("Latest signed digest"), "{}", r.body);
    // A second view within the minute shows the same (cached) verification time.
    let again = b.get("/console/audit/integrity");
    let at = |b: &str| b.split("Verified at ").nth(1).unwrap()[..20].to_owned();
    assert_eq!(at(&r.body), at(&again.body));

    // Each view is a GetTrailStatus of the principal, allowed or denied.
    let calls = events(&s, "GetTrailStatus");
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(
        calls
            .iter()
            .filter(
                |e| e["errorCode"] == "AccessDenied" || e["errorCode"] == "AccessDeniedException"
            )
            .count(),
        1,
        "{calls:?}"
    );
}

#[test]
fn a_sign_in_without_the_forms_token_is_refused() {
    let f = fixture();
    let mut b = Browser::new(&f.s);
    // Login CSRF: a cross-site form has neither the token cookie nor its value.
    let r = b.post(
        "/console/signin",
        &[
            ("access_key_id", &f.reader.0),
            ("secret_access_key", &f.reader.1),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(b.session_cookie().is_none());
    b.get("/console/");
    let r = b.post(
        "/console/signin",
        &[
            ("signin_token", "0000"),
            ("access_key_id", &f.reader.0),
            ("secret_access_key", &f.reader.1),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(b.session_cookie().is_none());
}

#[test]
fn state_changing_forms_need_this_sessions_csrf_token() {
    let f = fixture();
    let mut other = Browser::new(&f.s);
    assert_eq!(other.sign_in(&f.reader.0, &f.reader.1).status, 303);
    let others_csrf = field(&other.get(&path_of(&f)).body, "csrf");

    let mut b = Browser::new(&f.s);
    assert_eq!(b.sign_in(&f.reader.0, &f.reader.1).status, 303);
    let page = b.get(&path_of(&f));
    let csrf = field(&page.body, "csrf");
    assert_ne!(csrf, others_csrf);
    let mut wrong = csrf.clone();
    wrong.replace_range(0..1, if csrf.starts_with('0') { "1" } else { "0" });
    for token in ["", wrong.as_str(), others_csrf.as_str()] {
        let mut form = vec![("id", f.arn.as_str())];
        if !token.is_empty() {
            form.push(("csrf", token));
        }
        let r = b.post("/console/secret/reveal", &form);
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(!r.body.contains(MARKER));
        let r = b.post("/console/signout", &form);
        assert_eq!(r.status, 403, "{}", r.body);
        let r = b.post(
            "/console/simulate",
            &[("csrf", token), ("principal", "x"), ("actions", "a:b")],
        );
        assert_eq!(r.status, 403, "{}", r.body);
    }
    // Nothing was read, and the session was not signed out.
    assert!(events(&f.s, "GetSecretValue").is_empty());
    assert_eq!(b.get("/console/secrets").status, 200);
    // Positive control: the right token works.
    let r = b.post("/console/secret/reveal", &[("csrf", &csrf), ("id", &f.arn)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(MARKER));
}

#[test]
fn forged_tampered_and_foreign_cookies_are_refused() {
    let f = fixture();
    let mut b = Browser::new(&f.s);
    let r = b.get("/console/secrets");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/console/"));
    assert_eq!(b.sign_in(&f.reader.0, &f.reader.1).status, 303);
    let good = b.session_cookie().unwrap();
    assert_eq!(b.get("/console/secrets").status, 200);

    let mut flipped = good.clone().into_bytes();
    let mid = flipped.len() / 2;
    flipped[mid] = if flipped[mid] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    // Sealed by another server's master key, for root.
    let foreign = session::seal(
        &strongroom::kms::Keyring::new(strongroom::crypto::master::MasterKeyring::generate()),
        &SessionClaims::new(AKID, "us-east-1", crate::common::now_secs() * 1000),
    )
    .unwrap();
    let attempts = [
        "forged".to_owned(),
        flipped,
        foreign,
        good[..good.len() - 4].to_owned(),
        format!("{good}AAAA"),
    ];
    for bad in attempts {
        let mut m = Browser::new(&f.s);
        m.cookies.insert(session::COOKIE.to_owned(), bad.clone());
        let r = m.get("/console/secrets");
        assert_eq!(r.status, 303, "{bad}: {}", r.body);
        assert!(!r.body.contains("prod/db"));
        let r = m.get(&path_of(&f));
        assert_eq!(r.status, 303, "{bad}");
    }
    // An STS session token is not a console session either (another purpose's seal).
}

#[test]
fn expired_sessions_are_refused() {
    let f = fixture();
    let (_store, keyring) = strongroom::server::open(&f.s.store_config()).unwrap();
    let now = crate::common::now_secs() * 1000;
    let mut claims = SessionClaims::new(&f.reader.0, "us-east-1", now - session::SESSION_MS - 1);
    let expired = session::seal(&keyring, &claims).unwrap();
    let mut m = Browser::new(&f.s);
    m.cookies.insert(session::COOKIE.to_owned(), expired);
    assert_eq!(m.get("/console/secrets").status, 303);
    // Positive control: the same sealing, unexpired, is a session.
    claims.expires_ms = now + 60_000;
    let live = session::seal(&keyring, &claims).unwrap();
    let mut b = Browser::new(&f.s);
    b.cookies.insert(session::COOKIE.to_owned(), live);
    assert_eq!(b.get("/console/secrets").status, 200);
}

#[test]
fn a_limited_user_is_refused_with_the_apis_denial_message() {
    let f = fixture();
    let (akid, secret) = f.limited.clone();
    // What the API answers this user.
    let api = call_as(
        &f.s,
        &akid,
        &secret,
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": f.arn}),
    );
    assert_eq!(api.error_type(), "AccessDeniedException", "{}", api.body);
    let api_message = api.json()["Message"].as_str().unwrap().to_owned();

    let mut b = Browser::new(&f.s);
    assert_eq!(b.sign_in(&akid, &secret).status, 303);
    // What its policies allow: list and describe.
    let page = b.get(&path_of(&f));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("the database"));
    // Its history needs cloudtrail:LookupEvents, which it does not have.
    assert!(
        page.body.contains("Not shown: AccessDeniedException"),
        "{}",
        page.body
    );
    let csrf = field(&page.body, "csrf");
    let r = b.post("/console/secret/reveal", &[("csrf", &csrf), ("id", &f.arn)]);
    assert!(!r.body.contains(MARKER), "{}", r.body);
    assert!(
        r.body.contains(&html_escape(&format!(
            "AccessDeniedException: {api_message}"
        ))),
        "{}\n---\n{api_message}",
        r.body
    );
    // The refusal is the limited user's own denied GetSecretValue.
    let reads = events(&f.s, "GetSecretValue");
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(reads
        .iter()
        .all(|e| e["errorCode"] == "AccessDeniedException"));
    assert!(reads
        .iter()
        .all(|e| e["userIdentity"]["arn"] == format!("arn:aws:iam::{ACCOUNT}:user/limited")));
    // The audit explorer needs cloudtrail:LookupEvents, which it does not have.
    let audit = b.get("/console/audit");
    assert!(
        audit.body.contains("AccessDeniedException"),
        "{}",
        audit.body
    );
    assert!(!audit.body.contains("ConsoleLogin"), "{}", audit.body);
}

#[test]
fn sign_out_ends_the_session() {
    let f = fixture();
    let mut b = Browser::new(&f.s);
    assert_eq!(b.sign_in(&f.reader.0, &f.reader.1).status, 303);
    let cookie = b.session_cookie().unwrap();
    let csrf = field(&b.get("/console/secrets").body, "csrf");
    let r = b.post("/console/signout", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(b.session_cookie().is_none());
    assert_eq!(b.get("/console/secrets").status, 303);
    // The signed-out cookie, replayed, is refused too.
    let mut replay = Browser::new(&f.s);
    replay.cookies.insert(session::COOKIE.to_owned(), cookie);
    assert_eq!(replay.get("/console/secrets").status, 303);
}

#[test]
fn the_simulator_answers_as_a_real_request_is_decided() {
    let f = fixture();
    let mut b = Browser::new(&f.s);
    assert_eq!(b.sign_in(AKID, SECRET).status, 303);
    let csrf = field(&b.get("/console/simulate").body, "csrf");
    for (user, decision) in [("reader", "allowed"), ("limited", "implicitDeny")] {
        let r = b.post(
            "/console/simulate",
            &[
                ("csrf", &csrf),
                ("principal", &format!("arn:aws:iam::{ACCOUNT}:user/{user}")),
                ("actions", "secretsmanager:GetSecretValue"),
                ("resources", &f.arn),
            ],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.body.contains(&format!(">{decision}<")),
            "{user}: {}",
            r.body
        );
    }
    // A principal without iam:SimulatePrincipalPolicy gets IAM's denial.
    let mut l = Browser::new(&f.s);
    assert_eq!(l.sign_in(&f.limited.0, &f.limited.1).status, 303);
    let csrf = field(&l.get("/console/simulate").body, "csrf");
    let r = l.post(
        "/console/simulate",
        &[
            ("csrf", &csrf),
            ("principal", &format!("arn:aws:iam::{ACCOUNT}:user/reader")),
            ("actions", "secretsmanager:GetSecretValue"),
        ],
    );
    assert!(r.body.contains("AccessDenied"), "{}", r.body);
}

#[test]
fn the_cookie_is_secure_over_tls_and_behind_a_trusted_tls_proxy() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.console = true;
    cfg.tls = Some((root.join("cert.pem"), root.join("key.pem")));
    let s = TestServer::launch_config(cfg, dir);
    let mut b = Browser::new(&s);
    b.tls = true;
    let r = b.sign_in(AKID, SECRET);
    assert_eq!(r.status, 303, "{}", r.body);
    let set = r.header("set-cookie").unwrap().to_owned();
    let all: Vec<&String> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v)
        .collect();
    let session = all
        .iter()
        .find(|v| v.starts_with(session::COOKIE_TLS))
        .unwrap_or_else(|| panic!("{set} {all:?}"));
    assert!(
        session.contains("; Secure") && session.contains("Path=/;"),
        "{session}"
    );
    assert_eq!(b.get("/console/secrets").status, 200);

    // Plain HTTP from a trusted proxy that terminated TLS.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.console = true;
    cfg.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let s = TestServer::launch_config(cfg, dir);
    let mut b = Browser::new(&s);
    b.extra = "X-Forwarded-Proto: https\r\n".into();
    let r = b.sign_in(AKID, SECRET);
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("set-cookie")
            && v.starts_with(session::COOKIE_TLS)
            && v.contains("; Secure")));
}

/// `strongroom audit query` with the data dir of `s`.
fn audit_query(s: &TestServer, args: &[&str]) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["audit", "query", "--format", "jsonl"])
        .args(args)
        .arg("--data-dir")
        .arg(s.data_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(records: &[serde_json::Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["eventID"].as_str().unwrap().to_owned())
        .collect()
}

/// The CLI's query takes the LookupEvents attributes as filters (together), and answers as
/// the console's export of the same filter does.
#[test]
fn audit_query_the_api_and_the_console_answer_alike() {
    let f = fixture();
    for (akid, secret) in [&f.reader, &f.limited] {
        let mut b = Browser::new(&f.s);
        assert_eq!(b.sign_in(akid, secret).status, 303);
        let csrf = field(&b.get(&path_of(&f)).body, "csrf");
        b.post("/console/secret/reveal", &[("csrf", &csrf), ("id", &f.arn)]);
    }
    let reader_akid = f.reader.0.as_str();
    let filters = [
        "--event-name",
        "GetSecretValue",
        "--user-name",
        "reader",
        "--access-key-id",
        reader_akid,
        "--read-only",
        "true",
        "--event-source",
        "secretsmanager.amazonaws.com",
        "--resource-type",
        "AWS::SecretsManager::Secret",
        "--account",
        ACCOUNT,
    ];
    let cli = audit_query(&f.s, &filters);
    assert_eq!(cli.len(), 1, "{cli:?}");
    assert_eq!(cli[0]["userIdentity"]["userName"], "reader");
    assert!(cli[0]["errorCode"].is_null());

    // The console's export of the same filter.
    let mut b = Browser::new(&f.s);
    assert_eq!(b.sign_in(&f.reader.0, &f.reader.1).status, 303);
    let export = b.get(&format!(
        "/console/audit/export?event_name=GetSecretValue&user=reader&access_key={}&read_only=true&event_source=secretsmanager.amazonaws.com&resource_type={}",
        urlenc(reader_akid),
        urlenc("AWS::SecretsManager::Secret")
    ));
    let console: Vec<serde_json::Value> = export
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ids(&console), ids(&cli));
    // And LookupEvents, by one attribute at a time, agrees.
    let api: Vec<serde_json::Value> = events(&f.s, "GetSecretValue")
        .into_iter()
        .filter(|r| r["userIdentity"]["userName"] == "reader")
        .collect();
    assert_eq!(ids(&api), ids(&cli));

    // Each filter narrows: another user, writes only, another source, another key.
    let limited = audit_query(
        &f.s,
        &["--event-name", "GetSecretValue", "--user-name", "limited"],
    );
    assert_eq!(limited.len(), 1, "{limited:?}");
    assert_eq!(limited[0]["errorCode"], "AccessDeniedException");
    assert!(audit_query(
        &f.s,
        &["--event-name", "GetSecretValue", "--read-only", "false"]
    )
    .is_empty());
    assert!(audit_query(
        &f.s,
        &[
            "--event-name",
            "GetSecretValue",
            "--event-source",
            "kms.amazonaws.com"
        ]
    )
    .is_empty());
    assert!(audit_query(
        &f.s,
        &[
            "--event-name",
            "GetSecretValue",
            "--access-key-id",
            &f.limited.0,
            "--user-name",
            "reader"
        ]
    )
    .is_empty());
    assert!(audit_query(
        &f.s,
        &[
            "--event-name",
            "GetSecretValue",
            "--account",
            "999999999999"
        ]
    )
    .is_empty());
    let logins = audit_query(
        &f.s,
        &[
            "--event-name",
            "ConsoleLogin",
            "--event-source",
            "signin.amazonaws.com",
        ],
    );
    assert_eq!(logins.len(), 3, "{logins:?}");
}

pub(crate) const JWT_HMAC: &str = "console-provider-hmac-secret-0123456789abcdef";

pub(crate) fn console_jwt(sub: &str, exp: i64) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": "https://idp.example.test", "aud": "strongroom-console", "sub": sub,
                "exp": exp, "iat": crate::common::now_secs()}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_HMAC.as_bytes()),
    )
    .unwrap()
}

/// Sign-in with a JWT of a declared provider: a web identity session of the role the trust
/// policy lets the token assume, with that role's permissions only; a token the trust policy
/// refuses, a token of another key, and an expired token are refused.
#[test]
fn sign_in_with_a_web_identity_token() {
    let f = fixture();
    let p = f._policies.path();
    crate::common::write(
        p,
        &format!("accounts/{ACCOUNT}/identity-providers/idp.hmac"),
        JWT_HMAC,
    );
    crate::common::write(
        p,
        &format!("accounts/{ACCOUNT}/identity-providers/idp.json"),
        r#"{"Issuer":"https://idp.example.test","Audiences":["strongroom-console"],
            "HmacSecretFile":"idp.hmac","Algorithms":["HS256"]}"#,
    );
    crate::common::write(
        p,
        &format!("accounts/{ACCOUNT}/roles/auditor.json"),
        r#"{"RoleName":"auditor",
            "InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
              "Action":["secretsmanager:ListSecrets","secretsmanager:DescribeSecret","cloudtrail:LookupEvents"],
              "Resource":"*"}]}},
            "AssumeRolePolicyDocument":{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
              "Principal":{"Federated":"https://idp.example.test"},"Action":"sts:AssumeRoleWithWebIdentity",
              "Condition":{"StringEquals":{"idp.example.test:sub":"auditor@example.test"}}}]}}"#,
    );
    // The server reloads the directory on its own; wait for the role to be known.
    let role = format!("arn:aws:iam::{ACCOUNT}:role/auditor");
    let now = crate::common::now_secs();
    let good = console_jwt("auditor@example.test", now + 600);
    let sign_in = |b: &mut Browser, token: &str| {
        let page = b.get("/console/");
        let t = field(&page.body, "signin_token");
        b.post(
            "/console/signin/jwt",
            &[
                ("signin_token", &t),
                ("web_identity_token", token),
                ("role_arn", &role),
            ],
        )
    };
    // Waited for through the API, not by failing console sign-ins (which are throttled).
    for _ in 0..100 {
        if account_details(&f.s, AKID, SECRET)
            .body
            .contains("role/auditor")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut b = Browser::new(&f.s);
    let r = sign_in(&mut b, &good);
    assert_eq!(r.status, 303, "{}", r.body);
    let list = b.get("/console/secrets");
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("prod/db"));
    assert!(list.body.contains("assumed-role/auditor/"), "{}", list.body);
    // The role's permissions only: no GetSecretValue.
    let csrf = field(&b.get(&path_of(&f)).body, "csrf");
    let shown = b.post("/console/secret/reveal", &[("csrf", &csrf), ("id", &f.arn)]);
    assert!(!shown.body.contains(MARKER));
    assert!(
        shown.body.contains("AccessDeniedException"),
        "{}",
        shown.body
    );
    let logins = events(&f.s, "ConsoleLogin");
    let ok = logins
        .iter()
        .find(|l| l["responseElements"]["consoleLogin"] == "Success")
        .unwrap();
    assert_eq!(ok["userIdentity"]["type"], "AssumedRole");
    assert!(!ok.to_string().contains(&good));

    // Refused: a subject the trust policy does not name, another key, an expired token.
    let other_sub = console_jwt("mallory@example.test", now + 600);
    let other_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": "https://idp.example.test", "aud": "strongroom-console",
                "sub": "auditor@example.test", "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-key-0123456789abcdef0123456789"),
    )
    .unwrap();
    let expired = console_jwt("auditor@example.test", now - 120);
    for bad in [other_sub, other_key, expired.clone()] {
        let mut m = Browser::new(&f.s);
        let r = sign_in(&mut m, &bad);
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(m.session_cookie().is_none());
        assert_eq!(m.get("/console/secrets").status, 303);
    }

    // A session whose token has expired since is over, though the session itself is not.
    let (_store, keyring) = strongroom::server::open(&f.s.store_config()).unwrap();
    let with_token = |token: &str| {
        let mut c = SessionClaims::new("", "us-east-1", now * 1000);
        c.web_identity = Some(session::WebIdentity {
            token: token.to_owned(),
            role_arn: Some(role.clone()),
        });
        let mut m = Browser::new(&f.s);
        m.cookies.insert(
            session::COOKIE.to_owned(),
            session::seal(&keyring, &c).unwrap(),
        );
        m.get("/console/secrets").status
    };
    assert_eq!(with_token(&expired), 303);
    assert_eq!(with_token(&good), 200);
}

/// GetAccountAuthorizationDetails answered as `akid`.
pub(crate) fn account_details(s: &TestServer, akid: &str, secret: &str) -> RawResponse {
    s.raw(&crate::common::signed_query(
        "Action=GetAccountAuthorizationDetails&Version=2010-05-08",
        crate::common::Signing {
            akid: akid.into(),
            secret: secret.into(),
            service: "iam".into(),
            ..crate::common::Signing::default()
        },
    ))
}

/// The principals directory, read-only, through IAM's GetAccountAuthorizationDetails: the
/// API needs `iam:GetAccountAuthorizationDetails`, and the console page is that call.
#[test]
fn the_principals_directory_is_read_through_get_account_authorization_details() {
    let f = fixture();
    let p = f._policies.path();
    crate::common::write(
        p,
        &format!("accounts/{ACCOUNT}/groups/auditors.json"),
        r#"{"GroupName":"auditors","InlinePolicies":{"trail":{"Version":"2012-10-17",
            "Statement":[{"Sid":"ReadTrail","Effect":"Allow","Action":"cloudtrail:LookupEvents","Resource":"*"}]}}}"#,
    );
    crate::common::write(
        p,
        &format!("accounts/{ACCOUNT}/users/carol.json"),
        r#"{"UserName":"carol","Groups":["auditors"],"InlinePolicies":{"own":{"Version":"2012-10-17",
            "Statement":[{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"}]}}}"#,
    );
    // The server reloads the directory on its own: wait for carol.
    let mut r = account_details(&f.s, AKID, SECRET);
    for _ in 0..100 {
        if r.body.contains("<UserName>carol</UserName>") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        r = account_details(&f.s, AKID, SECRET);
    }
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<UserName>reader</UserName>"), "{}", r.body);
    // carol's own inline policy is hers; the group's is the group's.
    // carol's member, from its ARN (its first element) to its inline policies (its last).
    let from = r
        .body
        .find(&format!("<Arn>arn:aws:iam::{ACCOUNT}:user/carol</Arn>"))
        .unwrap();
    let to = from + r.body[from..].find("</UserPolicyList>").unwrap();
    let carol = r.body[from..to].to_owned();
    assert!(carol.contains("<PolicyName>own</PolicyName>"), "{carol}");
    assert!(!carol.contains("<PolicyName>trail</PolicyName>"), "{carol}");
    assert!(carol.contains("<member>auditors</member>"), "{carol}");
    assert!(
        r.body.contains("<GroupName>auditors</GroupName>"),
        "{}",
        r.body
    );
    // Documents are URL-encoded, as IAM answers them.
    assert!(r.body.contains("%22ReadTrail%22"), "{}", r.body);

    // Without iam:GetAccountAuthorizationDetails: refused, and recorded.
    let denied = account_details(&f.s, &f.limited.0, &f.limited.1);
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(
        denied.body.contains("iam:GetAccountAuthorizationDetails"),
        "{}",
        denied.body
    );

    // The console page is the same call.
    let mut b = Browser::new(&f.s);
    assert_eq!(b.sign_in(AKID, SECRET).status, 303);
    let page = b.get("/console/principals");
    assert_eq!(page.status, 200, "{}", page.body);
    for want in [
        "carol",
        "auditors",
        "reader",
        "Inline policy trail",
        "ReadTrail",
    ] {
        assert!(page.body.contains(want), "{want}: {}", page.body);
    }
    assert!(
        page.body.contains("/console/simulate?principal=arn"),
        "{}",
        page.body
    );
    let mut l = Browser::new(&f.s);
    assert_eq!(l.sign_in(&f.limited.0, &f.limited.1).status, 303);
    let refused = l.get("/console/principals");
    assert!(
        refused.body.contains("AccessDenied: User: "),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains("carol"), "{}", refused.body);
    let events: Vec<serde_json::Value> = events(&f.s, "GetAccountAuthorizationDetails");
    assert!(
        events
            .iter()
            .any(|e| e["userIdentity"]["type"] == "Root" && e["errorCode"].is_null()),
        "{events:?}"
    );
    assert!(events
        .iter()
        .any(|e| e["errorCode"] == "AccessDenied" && e["userIdentity"]["userName"] == "limited"));
}

/// The integrity page verifies against the digests the server keeps outside the database
/// (`--audit-digest-dir`), as `audit verify --anchor` does: the newest records cut together
/// with the digests that covered them, which the database alone cannot show, are reported.
#[test]
fn the_integrity_page_reads_the_digest_directory() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let policies = tempfile::tempdir().unwrap();
    let p = policies.path();
    user_allowing(p, ACCOUNT, "auditor", &["cloudtrail:GetTrailStatus"]);
    let root = tempfile::tempdir().unwrap();
    let digests = root.path().join("digests");
    let make = || {
        let mut cfg = config_in(root.path(), None);
        cfg.console = true;
        cfg.policies = Some(p.to_path_buf());
        cfg.audit_digest_dir = Some(digests.clone());
        cfg
    };
    let mut s = TestServer::launch_config(make(), tempfile::tempdir().unwrap());
    for _ in 0..3 {
        assert_eq!(s.call("secretsmanager.ListSecrets", "{}").status, 200);
    }
    s.stop();
    assert_eq!(crate::common::files_under(&digests).len(), 1);
    let open_page = || {
        let s = TestServer::launch_config(make(), tempfile::tempdir().unwrap());
        let out = strongroom::cli::create_access_key(&make().store, p, ACCOUNT, "auditor").unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let auditor = (
            v["AccessKeyId"].as_str().unwrap().to_owned(),
            v["SecretAccessKey"].as_str().unwrap().to_owned(),
        );
        let mut b = Browser::new(&s);
        assert_eq!(b.sign_in(&auditor.0, &auditor.1).status, 303);
        let r = b.get("/console/audit/integrity");
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    };
    // Positive control: the trail as the digests say.
    let body = open_page();
    assert!(body.contains("every record checked is intact"), "{body}");
    // The tail and the digest that covered it cut from the database.
    let db = root.path().join("data/strongroom.db");
    let chain = strongroom::store::audit_chain_path(db.to_str().unwrap());
    let mut c = diesel::SqliteConnection::establish(&chain).unwrap();
    c.batch_execute(
        "PRAGMA busy_timeout = 5000; DELETE FROM audit_events WHERE seq > 1; DELETE FROM audit_digests;",
    )
    .unwrap();
    drop(c);
    // The lookup index is derived: without it, the server builds it again from the chain
    // as it is, and only the digests kept outside tell.
    let index = strongroom::store::audit_index_path(db.to_str().unwrap());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{index}{suffix}"));
    }
    let body = open_page();
    assert!(!body.contains("every record checked is intact"), "{body}");
    assert!(body.contains("tampering found"), "{body}");
}
