//! Review as an attacker, outside the core SigV4/JWT/replication paths: the web console, the
//! IAM policy simulator, rotation failure messages and what the audit trail records of a
//! request. Each attack sits next to a positive control that must still succeed.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::common::{
    call_as, example_policies, key_for, mint, send_raw, signed_query, sts_as, urlenc,
    user_allowing, write, xml_field, RawResponse, Signing, TestServer, ACCOUNT, AKID, SECRET,
};

const HOME: &str = "111122223333";
const OTHER: &str = "444455556666";
const LOOKUP: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents";

/// The records of `event` (newest first), as the root of the home account reads them.
fn records(s: &TestServer, event: &str) -> Vec<Value> {
    let r = call_as(
        s,
        AKID,
        SECRET,
        LOOKUP,
        &json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": event}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap())
        .collect()
}

/// An IAM Query request signed by `akid`/`secret`.
fn iam(s: &TestServer, akid: &str, secret: &str, form: &str) -> RawResponse {
    s.raw(&signed_query(
        form,
        Signing {
            akid: akid.into(),
            secret: secret.into(),
            service: "iam".into(),
            ..Signing::default()
        },
    ))
}

fn account(dir: &Path, id: &str) {
    write(
        dir,
        &format!("accounts/{id}/account.json"),
        &format!(r#"{{"AccountId":"{id}"}}"#),
    );
}

/// A user of `account` at `path` with `tags` and one inline policy of `statements`.
fn user(dir: &Path, account: &str, name: &str, path: &str, tags: Value, statements: Value) {
    write(
        dir,
        &format!("accounts/{account}/users/{name}.json"),
        &json!({
            "UserName": name,
            "Path": path,
            "Tags": tags,
            "InlinePolicies": {"p": {"Version": "2012-10-17", "Statement": statements}}
        })
        .to_string(),
    );
}

// ---------------------------------------------------------------------------------------
// Audit: what a request can make its record say.

/// A Query-protocol parameter sent twice is acted on with its first value (`Form::get`);
/// the record cannot be made to name the second: Query parameters never reach
/// `requestParameters` (only the JSON allow-list does), and `eventName` and `resources` come
/// from what was acted on.
#[test]
fn a_repeated_query_parameter_does_not_forge_the_recorded_request() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    let (ck, cs) = mint(&s, &dir, "ci-bot");
    let real = "arn:aws:iam::111122223333:role/service/payments-app";
    let decoy = "arn:aws:iam::111122223333:role/decoy-never-assumed";
    let r = s.raw(&signed_query(
        &format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=doubled&RoleArn={}&Action=GetCallerIdentity",
            urlenc(real),
            urlenc(decoy)
        ),
        sts_as(&ck, &cs),
    ));
    // Positive control: the first RoleArn is acted on.
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        xml_field(&r.body, "Arn").contains("assumed-role/payments-app/doubled"),
        "{}",
        r.body
    );
    let rec = records(&s, "AssumeRole").remove(0);
    assert_eq!(rec["eventName"], "AssumeRole", "{rec}");
    assert_eq!(rec["resources"][0]["ARN"], real, "{rec}");
    let text = rec.to_string();
    assert!(
        !text.contains("decoy-never-assumed") && !text.contains("GetCallerIdentity"),
        "the record of an AssumeRole of {real} names something else: {text}"
    );
}

/// A JSON member sent twice is refused before anything is decided, so the operation and its
/// record cannot read different values (serde's derive refuses duplicate fields).
#[test]
fn a_repeated_json_member_is_refused_not_recorded_differently() {
    let s = TestServer::start();
    for name in ["dup/a", "dup/b"] {
        crate::common::ok(
            &s,
            "secretsmanager.CreateSecret",
            &json!({"Name": name, "SecretString": "v"}),
        );
    }
    // Positive control.
    let r = s.call("secretsmanager.DescribeSecret", r#"{"SecretId":"dup/a"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.call(
        "secretsmanager.DescribeSecret",
        r#"{"SecretId":"dup/a","SecretId":"dup/b"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_type(), "SerializationException", "{}", r.body);
    let rec = records(&s, "DescribeSecret").remove(0);
    assert_eq!(rec["errorCode"], "SerializationException", "{rec}");
}

// ---------------------------------------------------------------------------------------
// The IAM policy simulator (also the console's simulator page).

/// SimulatePrincipalPolicy decides `iam:SimulatePrincipalPolicy` on the PolicySourceArn as
/// given, so the user simulated must be the one that whole ARN (with its path) names: a
/// caller allowed to simulate the users under `/contractors/` must not simulate another user
/// of the account by writing their name under that path.
#[test]
fn simulating_a_user_under_a_forged_path_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    account(dir, HOME);
    user(
        dir,
        HOME,
        "prober",
        "/contractors/",
        json!({}),
        json!([{"Effect": "Allow", "Action": "iam:SimulatePrincipalPolicy",
                "Resource": format!("arn:aws:iam::{HOME}:user/contractors/*")}]),
    );
    user(
        dir,
        HOME,
        "bob",
        "/contractors/",
        json!({}),
        json!([{"Effect": "Allow", "Action": "secretsmanager:ListSecrets", "Resource": "*"}]),
    );
    user(
        dir,
        HOME,
        "alice",
        "/engineering/",
        json!({}),
        json!([{"Sid": "AlicePayroll", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                "Resource": format!("arn:aws:secretsmanager:us-east-1:{HOME}:secret:payroll/*")}]),
    );
    let s = TestServer::start_with_policies(dir);
    let (pk, ps) = key_for(&s, dir, HOME, "prober");
    let simulate = |arn: &str| {
        iam(
            &s,
            &pk,
            &ps,
            &format!(
                "Action=SimulatePrincipalPolicy&Version=2010-05-08&PolicySourceArn={}&ActionNames.member.1=secretsmanager%3AGetSecretValue&ResourceArns.member.1={}",
                urlenc(arn),
                urlenc(&format!("arn:aws:secretsmanager:us-east-1:{HOME}:secret:payroll/db-AbCdEf"))
            ),
        )
    };
    // Positive control: a user under /contractors/.
    let r = simulate(&format!("arn:aws:iam::{HOME}:user/contractors/bob"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("implicitDeny"), "{}", r.body);
    // Alice by her own ARN: refused.
    let r = simulate(&format!("arn:aws:iam::{HOME}:user/engineering/alice"));
    assert_eq!(r.status, 403, "{}", r.body);
    // Alice under a path the caller may simulate: no such user there.
    let r = simulate(&format!("arn:aws:iam::{HOME}:user/contractors/alice"));
    assert_ne!(
        r.status, 200,
        "alice (/engineering/) simulated through /contractors/alice: {}",
        r.body
    );
    assert!(!r.body.contains("allowed"), "{}", r.body);
}

/// SimulateCustomPolicy is authorized only as `iam:SimulateCustomPolicy` in the caller's own
/// account: its `CallerArn` must not bring in the tags (or organization keys) of a user of
/// another account, or a caller could probe them with conditions on `aws:PrincipalTag/...`.
#[test]
fn simulate_custom_policy_does_not_read_another_accounts_user() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    account(dir, HOME);
    account(dir, OTHER);
    user(
        dir,
        OTHER,
        "alice",
        "/",
        json!({"clearance": "top-secret"}),
        json!([{"Effect": "Allow", "Action": "secretsmanager:ListSecrets", "Resource": "*"}]),
    );
    user_allowing(dir, HOME, "prober", &["iam:SimulateCustomPolicy"]);
    let s = TestServer::start_with_policies(dir);
    let (pk, ps) = key_for(&s, dir, HOME, "prober");
    let policy = urlenc(
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue", "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalTag/clearance": "top-secret"}}}]})
        .to_string(),
    );
    let simulate = |caller: &str| {
        iam(
            &s,
            &pk,
            &ps,
            &format!(
                "Action=SimulateCustomPolicy&Version=2010-05-08&PolicyInputList.member.1={policy}&ActionNames.member.1=secretsmanager%3AGetSecretValue&CallerArn={}",
                urlenc(caller)
            ),
        )
    };
    // Positive control: the simulation runs; a user that does not exist has no tags.
    let r = simulate(&format!("arn:aws:iam::{OTHER}:user/nobody"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<EvalDecision>implicitDeny</EvalDecision>"),
        "{}",
        r.body
    );
    // The probe: another account's user must not lend its tags to the simulation.
    let r = simulate(&format!("arn:aws:iam::{OTHER}:user/alice"));
    assert!(
        !r.body.contains("<EvalDecision>allowed</EvalDecision>"),
        "a principal of {HOME} learnt the clearance tag of a user of {OTHER}: {}",
        r.body
    );
}

// ---------------------------------------------------------------------------------------
// Rotation: what a failed step tells a caller allowed only DescribeSecret.

/// `StrongroomRotation.LastError` is visible with `secretsmanager:DescribeSecret` alone: a
/// function's output naming a value nested in the secret's JSON, or a number in it, must be
/// redacted as the whole value and its top-level strings are.
#[test]
fn a_failed_rotation_does_not_show_nested_or_numeric_values_to_describe_callers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("policies");
    account(&dir, ACCOUNT);
    write(
        &dir,
        &format!("accounts/{ACCOUNT}/roles/rotator.json"),
        &json!({
            "RoleName": "rotator",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
                 "Action": "sts:AssumeRole"}]},
            "InlinePolicies": {"rotation": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}]}}
        })
        .to_string(),
    );
    // A function that fails, printing what a careless function prints: the values it read.
    write(
        &dir,
        &format!("accounts/{ACCOUNT}/functions/leaky.json"),
        &json!({
            "FunctionName": "leaky",
            "Role": format!("arn:aws:iam::{ACCOUNT}:role/rotator"),
            "Kind": "command",
            "Command": ["sh", "-c",
                "echo login failed: top-level-pass-1717 nested-db-pass-4242 pin 98765432; exit 1"],
            "TimeoutSeconds": 10,
            "MaxAttempts": 1,
            "RetryDelaySeconds": 1
        })
        .to_string(),
    );
    user_allowing(&dir, ACCOUNT, "viewer", &["secretsmanager:DescribeSecret"]);
    let mut cfg = crate::common::config_in(tmp.path(), None);
    cfg.policies = Some(dir.clone());
    let s = TestServer::launch_config(cfg, tempfile::tempdir().unwrap());
    let data = tmp.path().join("data");
    let store = strongroom::config::StoreConfig {
        data_dir: data.clone(),
        database_url: s.database_url.clone(),
        master_key_file: data.join("master.key"),
        read_mmap_bytes: 0,
        pg_change_check: std::time::Duration::ZERO,
    };
    let out = strongroom::cli::create_access_key(&store, &dir, ACCOUNT, "viewer").unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let (vk, vs) = (
        v["AccessKeyId"].as_str().unwrap().to_owned(),
        v["SecretAccessKey"].as_str().unwrap().to_owned(),
    );
    crate::rotation::ok(
        &s,
        "CreateSecret",
        &json!({"Name": "app/nested", "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
                "SecretString": json!({"password": "top-level-pass-1717",
                                       "db": {"password": "nested-db-pass-4242"},
                                       "pin": 98_765_432}).to_string()}),
    );
    crate::rotation::ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/nested", "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
                "RotationLambdaARN": format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:leaky")}),
    );
    crate::rotation::wait_for(&s, "app/nested", "the rotation to fail", |d| {
        d["StrongroomRotation"]["Status"] == "Failed"
    });
    let r = call_as(
        &s,
        &vk,
        &vs,
        "secretsmanager.DescribeSecret",
        &json!({"SecretId": "app/nested"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let error = r.json()["StrongroomRotation"]["LastError"]
        .as_str()
        .unwrap()
        .to_owned();
    // Positive control: the top-level member is redacted.
    assert!(
        error.contains("[REDACTED]") && !error.contains("top-level-pass-1717"),
        "{error}"
    );
    assert!(
        !error.contains("nested-db-pass-4242") && !error.contains("98765432"),
        "a DescribeSecret-only caller reads values of the secret in LastError: {error}"
    );
}

// ---------------------------------------------------------------------------------------
// The web console: what a secret's metadata, a caller's headers and a link can put in a page.

/// A browser over raw HTTP that keeps the console's cookies.
struct Browser {
    addr: std::net::SocketAddr,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new(s: &TestServer) -> Self {
        Self {
            addr: s.addr,
            cookies: BTreeMap::new(),
        }
    }

    fn send(&mut self, req: &str) -> RawResponse {
        let r = send_raw(self.addr, req.as_bytes());
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
        let all: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        if all.is_empty() {
            String::new()
        } else {
            format!("Cookie: {}\r\n", all.join("; "))
        }
    }

    fn get(&mut self, path: &str) -> RawResponse {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\n{}Connection: close\r\n\r\n",
            self.cookie_header()
        );
        self.send(&req)
    }

    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> RawResponse {
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlenc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n{body}",
            body.len(),
            self.cookie_header()
        );
        self.send(&req)
    }

    fn sign_in(&mut self, akid: &str, secret: &str) {
        let page = self.get("/console/");
        assert_eq!(page.status, 200, "{}", page.body);
        let token = hidden(&page.body, "signin_token");
        let r = self.post(
            "/console/signin",
            &[
                ("signin_token", &token),
                ("access_key_id", akid),
                ("secret_access_key", secret),
            ],
        );
        assert_eq!(r.status, 303, "{}", r.body);
    }
}

/// The value of the first hidden input named `name`.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let (_, rest) = html
        .split_once(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    rest.split('"').next().unwrap().to_owned()
}

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "<img src=x onerror=alert(2)>";

/// Markup in a secret's description, in a caller's User-Agent (shown on the audit event
/// page) and in a link's query (the simulator's `principal`) is shown as text, never run.
#[test]
fn markup_from_secrets_callers_and_links_is_escaped_in_console_pages() {
    let f = crate::console::fixture();
    let s = &f.s;
    // A description with markup, written by a caller whose User-Agent has markup too.
    let body = json!({"Name": "xss/probe", "SecretString": "v",
        "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
        "Description": format!("desc {SCRIPT} \"><b>bold</b>")});
    let r = s.call_signed(
        "secretsmanager.CreateSecret",
        &body.to_string(),
        Signing {
            extra_headers: vec![("user-agent".into(), format!("agent {IMG}"))],
            ..Signing::default()
        },
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let arn = r.json()["ARN"].as_str().unwrap().to_owned();
    let event_id = records(s, "CreateSecret")
        .into_iter()
        .find(|r| {
            r["userAgent"]
                .as_str()
                .is_some_and(|u| u.contains("onerror"))
        })
        .expect("the CreateSecret with the hostile User-Agent is recorded")["eventID"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut b = Browser::new(s);
    b.sign_in(&f.reader.0, &f.reader.1);
    let pages = [
        ("list", b.get("/console/secrets?key=name&q=xss")),
        (
            "secret",
            b.get(&format!("/console/secret?id={}", urlenc(&arn))),
        ),
        (
            "event",
            b.get(&format!("/console/audit/event?id={}", urlenc(&event_id))),
        ),
        (
            "simulate",
            b.get(&format!(
                "/console/simulate?principal={}",
                urlenc(&format!("\"><svg onload=alert(3)>{SCRIPT}"))
            )),
        ),
    ];
    for (name, p) in &pages {
        assert_eq!(p.status, 200, "{name}: {}", p.body);
        for raw in [SCRIPT, IMG, "<b>bold", "<svg"] {
            assert!(
                !p.body.contains(raw),
                "{name}: `{raw}` reached the page unescaped: {}",
                p.body
            );
        }
        assert!(
            p.header("content-security-policy")
                .is_some_and(|c| c.contains("script-src 'self'")),
            "{name}"
        );
    }
    // Positive control: the text is there, escaped.
    assert!(
        pages[0].1.body.contains("&#60;script&#62;alert(1)"),
        "{}",
        pages[0].1.body
    );
    assert!(
        pages[2].1.body.contains("&#60;img src=x"),
        "{}",
        pages[2].1.body
    );
    assert!(pages[3].1.body.contains("&#60;svg"), "{}", pages[3].1.body);
}

// ---------------------------------------------------------------------------------------
// Rotation: which function a RotationLambdaARN runs.

/// `lambda:InvokeFunction` is decided on the whole RotationLambdaARN, so a built-in must be
/// named by the ARN's function field, not by a qualifier after it: a qualified ARN under a
/// function name the caller may invoke
/// (`function:team-a-x:SecretsManagerRDSPostgreSQLRotationSingleUser`) must not start the
/// template's built-in with its execution role.
#[test]
fn a_qualified_lambda_arn_does_not_reach_a_builtin_the_caller_may_not_invoke() {
    const TEMPLATE: &str = "SecretsManagerRDSPostgreSQLRotationSingleUser";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    account(dir, HOME);
    for role in ["rotator", TEMPLATE] {
        write(
            dir,
            &format!("accounts/{HOME}/roles/{role}.json"),
            &json!({
                "RoleName": role,
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{HOME}:root")},
                     "Action": "sts:AssumeRole"}]},
                "InlinePolicies": {"rotation": {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}]}}
            })
            .to_string(),
        );
    }
    write(
        dir,
        &format!("accounts/{HOME}/functions/team-a-rot.json"),
        &json!({"FunctionName": "team-a-rot", "Role": format!("arn:aws:iam::{HOME}:role/rotator"),
                "Kind": "command", "Command": ["sh", "-c", "exit 1"], "TimeoutSeconds": 5,
                "MaxAttempts": 1, "RetryDelaySeconds": 1})
        .to_string(),
    );
    user(
        dir,
        HOME,
        "teama",
        "/",
        json!({}),
        json!([
            {"Effect": "Allow", "Action": "secretsmanager:RotateSecret", "Resource": "*"},
            {"Effect": "Allow", "Action": "lambda:InvokeFunction",
             "Resource": format!("arn:aws:lambda:us-east-1:{HOME}:function:team-a-*")}
        ]),
    );
    let s = TestServer::start_with_policies(dir);
    let (tk, ts) = key_for(&s, dir, HOME, "teama");
    let rotate = |secret: &str, arn: &str| {
        crate::common::ok(
            &s,
            "secretsmanager.CreateSecret",
            &json!({"Name": secret, "SecretString": "v"}),
        );
        call_as(
            &s,
            &tk,
            &ts,
            "secretsmanager.RotateSecret",
            &json!({"SecretId": secret, "RotationLambdaARN": arn,
                    "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
        )
    };
    let lambda = |rest: &str| format!("arn:aws:lambda:us-east-1:{HOME}:function:{rest}");
    // Positive control: the team's own function.
    let r = rotate("team-a/one", &lambda("team-a-rot"));
    assert_eq!(r.status, 200, "{}", r.body);
    // The built-in by its own ARN: not the caller's to invoke.
    let r = rotate("team-a/two", &lambda(TEMPLATE));
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    // The built-in behind a qualifier of an invokable name.
    let r = rotate("team-a/three", &lambda(&format!("team-a-x:{TEMPLATE}")));
    if r.status == 200 {
        // What ran: the built-in (its own error about the value), as the template's role.
        let d = crate::rotation::wait_for(&s, "team-a/three", "a failed attempt", |d| {
            d["StrongroomRotation"]["LastError"].is_string()
        });
        panic!(
            "a qualified ARN under team-a-* started the built-in {TEMPLATE}: {}",
            d["StrongroomRotation"]["LastError"]
        );
    }
}
