//! Information disclosure: what a secret value, a credential or a secret's existence can
//! leave behind in failure messages, logs, metrics and audit records, and what a caller
//! without permission can learn from the answers it gets. Each attack sits next to a
//! positive control that must still hold.

use std::path::Path;

use base64::Engine;
use serde_json::{json, Value};

use crate::common::{call_as, user_allowing, write, TestServer, ACCOUNT};

// ---------------------------------------------------------------------------------------
// Rotation: a failing function's output, as a DescribeSecret-only caller reads it.

/// A command function that prints the file `out` (what it read, in the form it read it) and
/// fails.
fn printing_function(dir: &Path, name: &str, out: &Path) {
    write(
        dir,
        &format!("accounts/{ACCOUNT}/functions/{name}.json"),
        &json!({
            "FunctionName": name,
            "Role": format!("arn:aws:iam::{ACCOUNT}:role/rotator"),
            "Kind": "command",
            "Command": ["sh", "-c", format!("cat '{}'; exit 1", out.display())],
            "TimeoutSeconds": 10,
            "MaxAttempts": 1,
            "RetryDelaySeconds": 1
        })
        .to_string(),
    );
}

fn rotator_role(dir: &Path) {
    write(
        dir,
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
}

/// Rotate `id` with `function` and wait for the attempt to fail; the `LastError` a
/// DescribeSecret-only caller reads.
fn failed_rotation_error(
    s: &TestServer,
    viewer: &(String, String),
    id: &str,
    function: &str,
) -> String {
    crate::rotation::ok(
        s,
        "RotateSecret",
        &json!({"SecretId": id, "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
                "RotationLambdaARN": format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{function}")}),
    );
    crate::rotation::wait_for(s, id, "the rotation to fail", |d| {
        d["StrongroomRotation"]["Status"] == "Failed"
    });
    let r = call_as(
        s,
        &viewer.0,
        &viewer.1,
        "secretsmanager.DescribeSecret",
        &json!({ "SecretId": id }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["StrongroomRotation"]["LastError"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A function that prints what GetSecretValue answered prints a multi-line value
/// JSON-escaped and a binary value in base64, and one that prints the value itself prints a
/// PEM's trailing newline, which the captured output loses: in none of these forms may the
/// value reach `LastError`, which DescribeSecret alone shows. Positive control: the failure
/// is still reported, with the redaction marker where the value was.
#[test]
fn a_failed_rotation_does_not_show_escaped_encoded_or_trimmed_values() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("policies");
    write(
        &dir,
        &format!("accounts/{ACCOUNT}/account.json"),
        &format!(r#"{{"AccountId":"{ACCOUNT}"}}"#),
    );
    rotator_role(&dir);
    user_allowing(&dir, ACCOUNT, "viewer", &["secretsmanager:DescribeSecret"]);

    let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCpemcanaryLINEone\n\
               pemcanaryLINEtwoQ0FOQVJZLXNlY29uZC1saW5lLW9mLWtleQ\n-----END PRIVATE KEY-----\n";
    let binary = b"binary-canary-utf8-bytes-5150";
    let b64 = base64::engine::general_purpose::STANDARD.encode(binary);
    let outputs = tmp.path().join("outputs");
    std::fs::create_dir_all(&outputs).unwrap();
    // GetSecretValue's answer, as printed by a function that prints it.
    let escaped = outputs.join("escaped.txt");
    std::fs::write(
        &escaped,
        format!(
            "GetSecretValue returned {}\nsetSecret: login refused",
            json!({"Name": "tls/key", "SecretString": pem})
        ),
    )
    .unwrap();
    let encoded = outputs.join("encoded.txt");
    std::fs::write(
        &encoded,
        format!(
            "GetSecretValue returned {}\nsetSecret: login refused",
            json!({"Name": "blob", "SecretBinary": b64})
        ),
    )
    .unwrap();
    // The value itself, last in the output.
    let raw = outputs.join("raw.txt");
    std::fs::write(&raw, format!("setSecret: login refused with key\n{pem}")).unwrap();
    printing_function(&dir, "escaped", &escaped);
    printing_function(&dir, "encoded", &encoded);
    printing_function(&dir, "raw", &raw);

    let mut cfg = crate::common::config_in(tmp.path(), None);
    cfg.policies = Some(dir.clone());
    let s = TestServer::launch_config(cfg, tempfile::tempdir().unwrap());
    let store = strongroom::config::StoreConfig {
        data_dir: tmp.path().join("data"),
        database_url: s.database_url.clone(),
        master_key_file: tmp.path().join("data/master.key"),
        read_mmap_bytes: 0,
        pg_change_check: std::time::Duration::ZERO,
    };
    let out = strongroom::cli::create_access_key(&store, &dir, ACCOUNT, "viewer").unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let viewer = (
        v["AccessKeyId"].as_str().unwrap().to_owned(),
        v["SecretAccessKey"].as_str().unwrap().to_owned(),
    );
    for (name, body) in [
        ("tls/key", json!({"SecretString": pem})),
        ("tls/key-raw", json!({"SecretString": pem})),
        ("blob", json!({"SecretBinary": b64})),
    ] {
        let mut body = body;
        body["Name"] = json!(name);
        body["ClientRequestToken"] = json!(uuid::Uuid::new_v4().to_string());
        crate::rotation::ok(&s, "CreateSecret", &body);
    }
    let mut leaked = Vec::new();
    for (id, function, canaries) in [
        (
            "tls/key",
            "escaped",
            vec!["pemcanaryLINEone", "pemcanaryLINEtwo"],
        ),
        (
            "tls/key-raw",
            "raw",
            vec!["pemcanaryLINEone", "pemcanaryLINEtwo"],
        ),
        ("blob", "encoded", vec![b64.as_str()]),
    ] {
        let error = failed_rotation_error(&s, &viewer, id, function);
        // Positive control: the failure and the function's output are reported.
        assert!(
            error.contains("exited with status 1") && error.contains("login refused"),
            "{id}: {error}"
        );
        for c in canaries {
            if error.contains(c) {
                leaked.push(format!("{id}: {error}"));
            }
        }
        assert!(error.contains("[REDACTED]"), "{id}: {error}");
    }
    // The service events recorded for the failures carry the same message.
    let events = crate::rotation::events(&s, "RotationFailed");
    for e in &events {
        let text = e.to_string();
        if text.contains("pemcanaryLINE") || text.contains(&b64) {
            leaked.push(format!("audit: {text}"));
        }
    }
    assert!(leaked.is_empty(), "{leaked:#?}");
}

// ---------------------------------------------------------------------------------------
// Canary sweep: a server process at the most verbose log level, driven through many
// operations that carry distinctive values; nothing secret may reach its log, its error
// answers, its metrics, its audit trail or its database files in clear.

const ISSUER: &str = "https://leaks.example.test";
const HMAC: &str = "CANARY-jwt-hmac-secret-2f6e1d0c9b8a7f6e";
const JWT_ROLE: &str = "arn:aws:iam::111122223333:role/jwt-reader";

/// A server process (`strongroom serve`) whose standard error is written to a file.
struct Process {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    metrics: std::net::SocketAddr,
    log: std::path::PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn serve(root: &Path, policies: &Path, dead_peer: std::net::SocketAddr) -> Process {
    let (addr, metrics) = (free_addr(), free_addr());
    let log = root.join("server.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["serve", "--data-dir"])
        .arg(root.join("data"))
        .args(["--listen", &addr.to_string()])
        .args(["--metrics-listen", &metrics.to_string()])
        .arg("--policies")
        .arg(policies)
        .args([
            "--account-id",
            ACCOUNT,
            "--regions",
            "us-east-1",
            "--console",
        ])
        .args(["--peer", &format!("eu-west-1=http://{dead_peer}")])
        .arg("--peer-allow-plain-http-loopback")
        .args(["--peer-access-key-id", "AKIAPEERLEAKS0000001"])
        .args(["--rotation-tick-ms", "200"])
        .env_remove("STRONGROOM_CONFIG")
        .env_remove("STRONGROOM_DATABASE_URL")
        .env_remove("STRONGROOM_POLICIES")
        .env("STRONGROOM_LOG", "trace")
        .env("STRONGROOM_ROOT_ACCESS_KEY_ID", crate::common::AKID)
        .env("STRONGROOM_ROOT_SECRET_ACCESS_KEY", crate::common::SECRET)
        .env("STRONGROOM_PEER_SECRET_ACCESS_KEY", PEER_SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let p = Process {
        child,
        addr,
        metrics,
        log,
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(p.addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not start: {}",
            std::fs::read_to_string(&p.log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    p
}

const PEER_SECRET: &str = "CANARY-peer-secret-key-77aa0011bb22cc33";

fn send(p: &Process, request: &[u8]) -> crate::common::RawResponse {
    crate::common::send_raw(p.addr, request)
}

/// A raw request with `headers` (an `authorization` among them, or none).
fn unsigned(target: &str, body: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: {target}\r\n"
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    req.into_bytes()
}

fn jwt_issuer(dir: &Path) {
    write(
        dir,
        &format!("accounts/{ACCOUNT}/identity-providers/leaks.hmac"),
        HMAC,
    );
    write(
        dir,
        &format!("accounts/{ACCOUNT}/identity-providers/leaks.json"),
        &format!(
            r#"{{"Issuer":"{ISSUER}","Audiences":["strongroom"],"HmacSecretFile":"leaks.hmac",
                "Algorithms":["HS256"]}}"#
        ),
    );
    write(
        dir,
        &format!("accounts/{ACCOUNT}/roles/jwt-reader.json"),
        &format!(
            r#"{{"RoleName":"jwt-reader",
              "AssumeRolePolicyDocument":{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow",
                "Principal":{{"Federated":"{ISSUER}"}},"Action":"sts:AssumeRoleWithWebIdentity"}}]}},
              "InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}}]}}}}}}"#
        ),
    );
}

fn jwt(exp_offset: i64) -> String {
    let now = crate::common::now_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": ISSUER, "aud": "strongroom", "sub": "svc:leaks",
                "exp": now + exp_offset, "iat": now - 1200}),
        &jsonwebtoken::EncodingKey::from_secret(HMAC.as_bytes()),
    )
    .unwrap()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    crate::common::files_under(dir)
        .into_iter()
        .filter(|f| {
            std::fs::read(f).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .map(|f| f.display().to_string())
        .collect()
}

/// One server at `STRONGROOM_LOG=trace`, driven through writes and reads of values, value
/// bearing requests that fail (malformed JSON, wrong types, oversize, NUL, a value sent to
/// an operation that takes none), a failing rotation, replication to a dead peer, an
/// AssumeRole session, bearer tokens good and bad, wrong signatures, the console's sign-in.
/// No value, secret access key, session token, bearer token, HMAC key, peer key or the
/// master key appears in the log, in an error answer, in the metrics, in the audit records
/// or, in clear, in any file of the data directory. Positive control: the values are read
/// back by a caller allowed to, and the log is the verbose one.
#[test]
fn no_secret_reaches_the_log_errors_metrics_audit_or_files() {
    use crate::common::{signed_query, signed_request, sts_as, urlenc, xml_field, Signing};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("policies");
    write(
        &dir,
        &format!("accounts/{ACCOUNT}/account.json"),
        &format!(r#"{{"AccountId":"{ACCOUNT}"}}"#),
    );
    rotator_role(&dir);
    user_allowing(
        &dir,
        ACCOUNT,
        "app",
        &[
            "secretsmanager:*",
            "sts:AssumeRole",
            "cloudtrail:LookupEvents",
            "lambda:InvokeFunction",
            "iam:PassRole",
        ],
    );
    write(
        &dir,
        &format!("accounts/{ACCOUNT}/roles/session.json"),
        &json!({
            "RoleName": "session",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
                 "Action": "sts:AssumeRole"}]},
            "InlinePolicies": {"p": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}]}}
        })
        .to_string(),
    );
    jwt_issuer(&dir);
    let printed = tmp.path().join("printed.txt");
    std::fs::write(&printed, "login failed with CANARY-value-string-a1b2c3d4").unwrap();
    printing_function(&dir, "noisy", &printed);
    let dead_peer = free_addr();
    let p = serve(tmp.path(), &dir, dead_peer);
    let data = tmp.path().join("data");
    let store = strongroom::config::StoreConfig {
        data_dir: data.clone(),
        database_url: format!("sqlite://{}", data.join("strongroom.db").display()),
        master_key_file: data.join("master.key"),
        read_mmap_bytes: 0,
        pg_change_check: std::time::Duration::ZERO,
    };
    let out = strongroom::cli::create_access_key(&store, &dir, ACCOUNT, "app").unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let (ak, sk) = (
        v["AccessKeyId"].as_str().unwrap().to_owned(),
        v["SecretAccessKey"].as_str().unwrap().to_owned(),
    );
    let app = Signing {
        akid: ak.clone(),
        secret: sk.clone(),
        ..Signing::default()
    };

    let string_value = "CANARY-value-string-a1b2c3d4";
    let json_value =
        json!({"username": "u", "password": "CANARY-value-password-e5f6a7b8"}).to_string();
    let binary = b"CANARY-value-binary-c9d0e1f2";
    let b64 = base64::engine::general_purpose::STANDARD.encode(binary);
    let put_value = "CANARY-value-put-13579bdf";
    let update_value = "CANARY-value-update-2468ace0";
    let bad_value = "CANARY-value-malformed-0f1e2d3c";
    let token = "CANARY-tok-00000000-0000-4000-8000-0000000000aa";

    // Every answer that is not a value read goes here, to be scanned.
    let mut answers: Vec<String> = Vec::new();
    let call = |target: &str, body: &str, s: &Signing| {
        send(&p, &signed_request(target, body.as_bytes(), s.clone()))
    };
    let expect_ok = |target: &str, body: Value, answers: &mut Vec<String>| -> Value {
        let r = call(target, &body.to_string(), &app);
        assert_eq!(r.status, 200, "{target}: {}", r.body);
        if !target.ends_with("GetSecretValue") {
            answers.push(r.body.clone());
        }
        r.json()
    };
    let new_token = || uuid::Uuid::new_v4().to_string();
    expect_ok(
        "secretsmanager.CreateSecret",
        json!({"Name": "c/string", "SecretString": string_value, "ClientRequestToken": new_token()}),
        &mut answers,
    );
    expect_ok(
        "secretsmanager.CreateSecret",
        json!({"Name": "c/json", "SecretString": json_value, "ClientRequestToken": new_token()}),
        &mut answers,
    );
    expect_ok(
        "secretsmanager.CreateSecret",
        json!({"Name": "c/binary", "SecretBinary": b64, "ClientRequestToken": new_token()}),
        &mut answers,
    );
    expect_ok(
        "secretsmanager.PutSecretValue",
        json!({"SecretId": "c/string", "SecretString": put_value, "ClientRequestToken": token}),
        &mut answers,
    );
    expect_ok(
        "secretsmanager.UpdateSecret",
        json!({"SecretId": "c/json", "SecretString": update_value, "ClientRequestToken": new_token()}),
        &mut answers,
    );
    // Positive control: the values read back.
    let got = expect_ok(
        "secretsmanager.GetSecretValue",
        json!({"SecretId": "c/string"}),
        &mut answers,
    );
    assert_eq!(got["SecretString"], put_value);
    let got = expect_ok(
        "secretsmanager.GetSecretValue",
        json!({"SecretId": "c/binary"}),
        &mut answers,
    );
    assert_eq!(got["SecretBinary"], b64.as_str());
    let r = call(
        "secretsmanager.BatchGetSecretValue",
        &json!({"SecretIdList": ["c/string", "c/json", "c/binary"]}).to_string(),
        &app,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    expect_ok(
        "secretsmanager.GetRandomPassword",
        json!({}),
        &mut Vec::new(),
    );

    // Requests carrying values that fail.
    let failing: Vec<(&str, String)> = vec![
        (
            "secretsmanager.PutSecretValue",
            format!(r#"{{"SecretId":"c/string","SecretString":"{bad_value}""#),
        ),
        (
            "secretsmanager.PutSecretValue",
            format!(r#"{{"SecretId":"c/string","SecretString":["{bad_value}"]}}"#),
        ),
        (
            "secretsmanager.PutSecretValue",
            format!(r#"{{"SecretId":"c/string","SecretString":{{"{bad_value}":1}}}}"#),
        ),
        (
            "secretsmanager.PutSecretValue",
            format!(
                r#"{{"SecretId":"c/string","SecretString":"{bad_value}","SecretString":"{bad_value}"}}"#
            ),
        ),
        (
            "secretsmanager.PutSecretValue",
            format!(r#"{{"SecretId":"c/string","SecretBinary":"{bad_value}!!"}}"#),
        ),
        (
            "secretsmanager.PutSecretValue",
            format!(
                r#"{{"SecretId":"c/string","SecretString":"{bad_value}","SecretBinary":"{b64}"}}"#
            ),
        ),
        (
            "secretsmanager.PutSecretValue",
            format!(
                r#"{{"SecretId":"c/string","SecretString":"{bad_value}{}"}}"#,
                "x".repeat(70_000)
            ),
        ),
        (
            "secretsmanager.PutSecretValue",
            format!(r#"{{"SecretId":"c/str\u0000ing","SecretString":"{bad_value}"}}"#),
        ),
        (
            "secretsmanager.PutSecretValue",
            format!(
                r#"{{"SecretId":"c/string","SecretString":"{bad_value}","ClientRequestToken":"{bad_value}-not-a-token-{}"}}"#,
                "y".repeat(80)
            ),
        ),
        (
            "secretsmanager.PutSecretValue",
            format!(
                r#"{{"SecretId":"c/missing","SecretString":"{bad_value}","ClientRequestToken":"{}"}}"#,
                new_token()
            ),
        ),
        (
            "secretsmanager.PutSecretValue",
            format!(
                r#"{{"SecretId":"c/string","SecretString":"{bad_value}","ClientRequestToken":"{token}"}}"#
            ),
        ),
        (
            "secretsmanager.CreateSecret",
            format!(
                r#"{{"Name":"c/string","SecretString":"{bad_value}","ClientRequestToken":"{}"}}"#,
                new_token()
            ),
        ),
        (
            "secretsmanager.CreateSecret",
            format!(
                r#"{{"Name":"bad name ***","SecretString":"{bad_value}","ClientRequestToken":"{}"}}"#,
                new_token()
            ),
        ),
        (
            "secretsmanager.ListSecrets",
            format!(r#"{{"MaxResults":{bad_value}}}"#),
        ),
        (
            "secretsmanager.UpdateSecret",
            format!(
                r#"{{"SecretId":"c/json","SecretString":"{bad_value}","KmsKeyId":"alias/none-such"}}"#
            ),
        ),
        (
            "secretsmanager.NoSuchOperation",
            format!(r#"{{"SecretString":"{bad_value}"}}"#),
        ),
        (
            "TrentService.CreateKey",
            format!(r#"{{"Policy":{{"SecretString":"{bad_value}"}}}}"#),
        ),
        (
            "secretsmanager.ValidateResourcePolicy",
            format!(r#"{{"ResourcePolicy":"{{\"Statement\":\"{bad_value}\"}}"}}"#),
        ),
    ];
    // A value sent to an operation that takes none is ignored, as AWS ignores unknown members.
    let r = call(
        "secretsmanager.GetSecretValue",
        &format!(r#"{{"SecretId":"c/string","SecretString":"{bad_value}"}}"#),
        &app,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for (target, body) in &failing {
        let r = call(target, body, &app);
        assert!(r.status >= 400, "{target} {body}: {}", r.body);
        answers.push(format!("{target}: {} {}", r.status, r.body));
    }

    // A failing rotation, and replication to a peer that is not there.
    expect_ok(
        "secretsmanager.RotateSecret",
        json!({"SecretId": "c/string", "ClientRequestToken": new_token(),
        "RotationLambdaARN": format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:noisy")}),
        &mut answers,
    );
    expect_ok(
        "secretsmanager.ReplicateSecretToRegions",
        json!({"SecretId": "c/json", "AddReplicaRegions": [{"Region": "eu-west-1"}]}),
        &mut answers,
    );

    // An STS session, used and misused.
    let r = send(
        &p,
        &signed_query(
            &format!(
                "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=leaks",
                urlenc(&format!("arn:aws:iam::{ACCOUNT}:role/session"))
            ),
            sts_as(&ak, &sk),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let (sak, ssk, stoken) = (
        xml_field(&r.body, "AccessKeyId"),
        xml_field(&r.body, "SecretAccessKey"),
        xml_field(&r.body, "SessionToken"),
    );
    let session = Signing {
        akid: sak.clone(),
        secret: ssk.clone(),
        session_token: Some(stoken.clone()),
        ..Signing::default()
    };
    let r = call(
        "secretsmanager.DescribeSecret",
        r#"{"SecretId":"c/string"}"#,
        &session,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut forged = stoken.clone();
    forged.insert_str(forged.len() / 2, "Zz");
    for s in [
        Signing {
            session_token: Some(forged.clone()),
            ..session.clone()
        },
        Signing {
            session_token: None,
            ..session.clone()
        },
        Signing {
            secret: format!("{ssk}x"),
            ..session.clone()
        },
        Signing {
            secret: format!("{sk}x"),
            ..app.clone()
        },
    ] {
        let r = call(
            "secretsmanager.DescribeSecret",
            r#"{"SecretId":"c/string"}"#,
            &s,
        );
        assert!(r.status >= 400, "{}", r.body);
        answers.push(r.body);
    }
    // Bearer tokens: good, expired, tampered, malformed.
    let good = jwt(600);
    let expired = jwt(-600);
    let mut tampered = good.clone();
    tampered.truncate(good.len() - 4);
    tampered.push_str("AAAA");
    for (t, ok) in [
        (good.clone(), true),
        (expired.clone(), false),
        (tampered.clone(), false),
        (format!("{HMAC}.{HMAC}"), false),
    ] {
        let r = send(
            &p,
            &unsigned(
                "secretsmanager.DescribeSecret",
                r#"{"SecretId":"c/string"}"#,
                &[
                    ("authorization", &format!("Bearer {t}")),
                    ("x-strongroom-role", JWT_ROLE),
                ],
            ),
        );
        assert_eq!(r.status == 200, ok, "{}", r.body);
        answers.push(r.body);
    }
    // The console's sign-in, with a wrong secret and the right one.
    for secret in [format!("{sk}-wrong"), sk.clone()] {
        let page = crate::common::send_raw(
            p.addr,
            b"GET /console/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        );
        let marker = "name=\"signin_token\" value=\"";
        let t = page
            .body
            .split_once(marker)
            .map(|(_, r)| r.split('"').next().unwrap_or(""))
            .unwrap_or("");
        let form = format!(
            "signin_token={}&access_key_id={}&secret_access_key={}",
            urlenc(t),
            urlenc(&ak),
            urlenc(&secret)
        );
        let r = crate::common::send_raw(p.addr, format!(
            "POST /console/signin HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}", form.len()).as_bytes());
        answers.push(format!("{:?} {}", r.headers, r.body));
    }

    // Let the rotation fail and the replication worker try the peer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let d = call(
            "secretsmanager.DescribeSecret",
            r#"{"SecretId":"c/string"}"#,
            &app,
        )
        .json();
        if d["StrongroomRotation"]["Status"] == "Failed" {
            answers.push(d.to_string());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rotation did not fail: {d}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    answers.push(
        call(
            "secretsmanager.DescribeSecret",
            r#"{"SecretId":"c/json"}"#,
            &app,
        )
        .body,
    );
    answers.push(call("secretsmanager.ListSecrets", "{}", &app).body);
    answers.push(
        call(
            "secretsmanager.ListSecretVersionIds",
            r#"{"SecretId":"c/string"}"#,
            &app,
        )
        .body,
    );
    let metrics = crate::common::send_raw(
        p.metrics,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .body;
    assert!(metrics.contains("# TYPE"), "{metrics}");
    let lookup = |next: Option<&str>| {
        let mut body = json!({"MaxResults": 50});
        if let Some(n) = next {
            body["NextToken"] = json!(n);
        }
        call(
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
            &body.to_string(),
            &Signing {
                service: "cloudtrail".into(),
                ..app.clone()
            },
        )
    };
    let mut trail = String::new();
    let mut next: Option<String> = None;
    loop {
        let r = lookup(next.as_deref());
        assert_eq!(r.status, 200, "{}", r.body);
        trail.push_str(&r.body);
        match r.json()["NextToken"].as_str() {
            Some(n) => next = Some(n.to_owned()),
            None => break,
        }
    }
    assert!(
        trail.contains("PutSecretValue") && trail.contains("AssumeRole"),
        "{trail}"
    );
    drop(p);
    let log = std::fs::read_to_string(tmp.path().join("server.log")).unwrap();
    // Positive control: the log is the verbose one.
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "{log}");

    let master: Value =
        serde_json::from_slice(&std::fs::read(data.join("master.key")).unwrap()).unwrap();
    let master_keys: Vec<String> = master["keys"]
        .as_object()
        .unwrap()
        .values()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert!(!master_keys.is_empty(), "{master}");
    let tampered_sig = tampered.rsplit('.').next().unwrap().to_owned();
    let good_sig = good.rsplit('.').next().unwrap().to_owned();
    let mut needles: Vec<(&str, String)> = vec![
        ("string value", string_value.into()),
        ("json password", "CANARY-value-password-e5f6a7b8".into()),
        ("binary value", "CANARY-value-binary".into()),
        ("binary base64", b64.clone()),
        ("put value", put_value.into()),
        ("update value", update_value.into()),
        ("malformed value", bad_value.into()),
        ("user secret key", sk.clone()),
        ("session secret key", ssk.clone()),
        ("session token", stoken.clone()),
        ("forged session token", forged.clone()),
        ("root secret key", crate::common::SECRET.into()),
        ("peer secret key", PEER_SECRET.into()),
        ("jwt hmac key", HMAC.into()),
        ("jwt signature", good_sig),
        ("tampered jwt signature", tampered_sig),
        ("expired jwt", expired.clone()),
    ];
    for k in &master_keys {
        needles.push(("master key", k.clone()));
    }
    let mut leaks = Vec::new();
    for (what, needle) in &needles {
        if log.contains(needle.as_str()) {
            let line = log
                .lines()
                .find(|l| l.contains(needle.as_str()))
                .unwrap_or_default();
            leaks.push(format!(
                "{what} in the log: {}",
                line.chars().take(600).collect::<String>()
            ));
        }
        if metrics.contains(needle.as_str()) {
            leaks.push(format!("{what} in the metrics"));
        }
        if trail.contains(needle.as_str()) {
            let record = trail
                .split("\"CloudTrailEvent\"")
                .find(|r| r.contains(needle.as_str()))
                .unwrap_or_default();
            leaks.push(format!(
                "{what} in LookupEvents: {}",
                record.chars().take(1500).collect::<String>()
            ));
        }
        for a in &answers {
            if a.contains(needle.as_str()) {
                leaks.push(format!(
                    "{what} in an answer: {}",
                    a.chars().take(600).collect::<String>()
                ));
            }
        }
        for f in files_containing(&data, needle) {
            if !(f.ends_with("master.key") && *what == "master key") {
                leaks.push(format!("{what} in the file {f}"));
            }
        }
    }
    // The token is the version's id, which answers and the database hold: not the log,
    // the metrics or the trail (which records it keyed).
    for (what, text) in [
        ("log", &log),
        ("metrics", &metrics),
        ("LookupEvents", &trail),
    ] {
        if text.contains(token) {
            leaks.push(format!("the client token in the {what}"));
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
}

// ---------------------------------------------------------------------------------------
// Existence oracles inside one account.

/// The single-secret operations, with a body naming `id`.
fn one_secret_ops(id: &str) -> Vec<(&'static str, Value)> {
    let token = || uuid::Uuid::new_v4().to_string();
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}]}}"#
    );
    vec![
        ("DescribeSecret", json!({"SecretId": id})),
        ("GetSecretValue", json!({"SecretId": id})),
        (
            "GetSecretValue",
            json!({"SecretId": id, "VersionStage": "AWSPREVIOUS"}),
        ),
        (
            "GetSecretValue",
            json!({"SecretId": id, "VersionId": "00000000-0000-4000-8000-000000000009"}),
        ),
        (
            "ListSecretVersionIds",
            json!({"SecretId": id, "IncludeDeprecated": true}),
        ),
        ("GetResourcePolicy", json!({"SecretId": id})),
        ("ListResourcePolicies", json!({"SecretId": id})),
        (
            "TagResource",
            json!({"SecretId": id, "Tags": [{"Key": "k", "Value": "v"}]}),
        ),
        ("UntagResource", json!({"SecretId": id, "TagKeys": ["k"]})),
        ("UpdateSecret", json!({"SecretId": id, "Description": "d"})),
        (
            "UpdateSecret",
            json!({"SecretId": id, "SecretString": "x", "ClientRequestToken": token()}),
        ),
        (
            "PutSecretValue",
            json!({"SecretId": id, "SecretString": "x", "ClientRequestToken": token()}),
        ),
        (
            "UpdateSecretVersionStage",
            json!({"SecretId": id, "VersionStage": "S",
            "MoveToVersionId": "00000000-0000-4000-8000-000000000009"}),
        ),
        (
            "PutResourcePolicy",
            json!({"SecretId": id, "ResourcePolicy": policy}),
        ),
        ("DeleteResourcePolicy", json!({"SecretId": id})),
        (
            "ValidateResourcePolicy",
            json!({"SecretId": id, "ResourcePolicy": policy}),
        ),
        (
            "RotateSecret",
            json!({"SecretId": id, "ClientRequestToken": token(),
            "RotationLambdaARN": format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:f")}),
        ),
        ("CancelRotateSecret", json!({"SecretId": id})),
        (
            "ReplicateSecretToRegions",
            json!({"SecretId": id, "AddReplicaRegions": [{"Region": "eu-west-1"}]}),
        ),
        (
            "RemoveRegionsFromReplication",
            json!({"SecretId": id, "RemoveReplicaRegions": ["eu-west-1"]}),
        ),
        ("StopReplicationToReplica", json!({"SecretId": id})),
        (
            "DeleteSecret",
            json!({"SecretId": id, "RecoveryWindowInDays": 7}),
        ),
        (
            "DeleteSecret",
            json!({"SecretId": id, "ForceDeleteWithoutRecovery": true}),
        ),
        ("RestoreSecret", json!({"SecretId": id})),
    ]
}

fn message_of(r: &crate::common::RawResponse) -> String {
    let v = r.json();
    v["Message"]
        .as_str()
        .or_else(|| v["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A caller of the same account allowed everything on its own secrets (`mine/*`) and
/// nothing on the others tells apart neither a live secret, one scheduled for deletion and
/// a name that does not exist (by name or by full ARN) through any single-secret operation,
/// BatchGetSecretValue or CreateSecret: every answer is the same AccessDenied, naming what
/// it was given (not allowed ListSecrets, which in AWS lists every secret of the account). Positive control: on its own secrets, live, deleted and missing answer as
/// AWS does (success, InvalidRequest, ResourceNotFound).
#[test]
fn a_caller_without_permission_cannot_tell_live_deleted_and_missing_secrets_apart() {
    let (_t, dir) = crate::common::example_policies();
    write(
        &dir,
        &format!("accounts/{ACCOUNT}/users/scoped.json"),
        &json!({"UserName": "scoped", "InlinePolicies": {"p": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:*",
             "Resource": format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:mine/*")},
            {"Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue", "Resource": "*"}]}}})
        .to_string(),
    );
    let s = TestServer::start_with_policies(&dir);
    let (k, sk) = crate::common::key_for(&s, &dir, ACCOUNT, "scoped");
    let mut arns = std::collections::HashMap::new();
    for name in ["other/live", "other/deleted", "mine/live", "mine/deleted"] {
        let c = crate::common::ok(
            &s,
            "secretsmanager.CreateSecret",
            &json!({"Name": name, "SecretString": "v"}),
        );
        arns.insert(name, c["ARN"].as_str().unwrap().to_owned());
    }
    for name in ["other/deleted", "mine/deleted"] {
        crate::common::ok(
            &s,
            "secretsmanager.DeleteSecret",
            &json!({"SecretId": name, "RecoveryWindowInDays": 7}),
        );
    }
    let as_scoped =
        |op: &str, body: &Value| call_as(&s, &k, &sk, &format!("secretsmanager.{op}"), body);
    let suffix = |arn: &str| arn[arn.len() - 7..].to_owned();
    let absent_arn = format!(
        "arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:other/absent{}",
        suffix(&arns["other/live"])
    );
    let mut wrong = Vec::new();
    // Each id of a secret the caller may not touch, against a name that exists nowhere.
    for (id, absent) in [
        ("other/live".to_owned(), "other/absent".to_owned()),
        ("other/deleted".to_owned(), "other/absent".to_owned()),
        (arns["other/live"].clone(), absent_arn.clone()),
        (arns["other/deleted"].clone(), absent_arn.clone()),
    ] {
        for ((op, body), (_, control)) in one_secret_ops(&id).iter().zip(one_secret_ops(&absent)) {
            let r = as_scoped(op, body);
            let m = as_scoped(op, &control);
            if r.error_type() != "AccessDeniedException"
                || r.error_type() != m.error_type()
                || message_of(&r).replace(id.as_str(), "ID")
                    != message_of(&m).replace(absent.as_str(), "ID")
            {
                wrong.push(format!(
                    "{op} {body}: {} {} / absent: {} {}",
                    r.status, r.body, m.status, m.body
                ));
            }
        }
    }
    // CreateSecret of a name the caller may not create.
    let create = |name: &str| {
        as_scoped(
            "CreateSecret",
            &json!({"Name": name, "SecretString": "v", "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
        )
    };
    // The ARN a denial names carries a fresh random suffix, whatever the name.
    let unsuffixed = |r: &crate::common::RawResponse, name: &str| {
        let m = message_of(r);
        match m.find(&format!("secret:{name}-")) {
            Some(i) => {
                let at = i + "secret:".len() + name.len();
                format!("{}ID{}", &m[..i], &m[at + 7..])
            }
            None => m,
        }
    };
    let control = create("other/absent");
    for name in ["other/live", "other/deleted"] {
        let r = create(name);
        if r.error_type() != "AccessDeniedException"
            || unsuffixed(&r, name) != unsuffixed(&control, "other/absent")
        {
            wrong.push(format!(
                "CreateSecret {name}: {} / absent: {}",
                r.body, control.body
            ));
        }
    }
    // BatchGetSecretValue by id.
    let r = as_scoped(
        "BatchGetSecretValue",
        &json!({"SecretIdList": ["other/live", "other/deleted", "other/absent"]}),
    );
    let shapes: Vec<(String, String)> = r.json()["Errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    let id = e["SecretId"].as_str().unwrap_or_default();
                    (
                        e["ErrorCode"].as_str().unwrap_or_default().to_owned(),
                        e["Message"].as_str().unwrap_or_default().replace(id, "ID"),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if shapes.len() != 3 || !shapes.windows(2).all(|w| w[0] == w[1]) {
        wrong.push(format!("BatchGetSecretValue: {}", r.body));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // Positive control: on its own secrets the answers are AWS's.
    let r = as_scoped("DescribeSecret", &json!({"SecretId": "mine/live"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = as_scoped("GetSecretValue", &json!({"SecretId": "mine/deleted"}));
    assert_eq!(r.error_type(), "InvalidRequestException", "{}", r.body);
    let r = as_scoped("GetSecretValue", &json!({"SecretId": "mine/absent"}));
    assert_eq!(r.error_type(), "ResourceNotFoundException", "{}", r.body);
    let r = create("mine/live");
    assert_eq!(r.error_type(), "ResourceExistsException", "{}", r.body);
}

/// A database given as a libpq connection string (which the server does not take) is
/// refused without its password being printed; the refusal still says what was wrong.
#[test]
fn a_refused_database_string_is_reported_without_its_password() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["serve", "--data-dir"])
        .arg(tmp.path().join("data"))
        .args([
            "--database-url",
            "host=db.internal user=strongroom password=CANARY-db-password-5e4d dbname=sr",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("STRONGROOM_CONFIG")
        .env_remove("STRONGROOM_POLICIES")
        .env("STRONGROOM_LOG", "trace")
        .env("STRONGROOM_ROOT_ACCESS_KEY_ID", crate::common::AKID)
        .env("STRONGROOM_ROOT_SECRET_ACCESS_KEY", crate::common::SECRET)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    // Positive control: the refusal names the setting.
    assert!(
        text.contains("database url") && text.contains("db.internal"),
        "{text}"
    );
    assert!(!text.contains("CANARY-db-password"), "{text}");
}

// ---------------------------------------------------------------------------------------
// The trail as another account reads it.

/// The CloudTrail records (parsed) of the caller's own account, newest first, as `akid`
/// reads them with LookupEvents.
fn own_trail(s: &TestServer, akid: &str, secret: &str) -> Vec<Value> {
    let r = s.call_signed(
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        &json!({"MaxResults": 50}).to_string(),
        crate::common::Signing {
            akid: akid.into(),
            secret: secret.into(),
            service: "cloudtrail".into(),
            ..crate::common::Signing::default()
        },
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap())
        .collect()
}

/// A principal of another account, refused on this account's secret (named by its full ARN,
/// by a partial ARN, or with a resource policy whose Deny decides), finds in its own
/// account's trail nothing more than the answer told it: not the secret's full ARN when it
/// gave a partial one, not which policy of this account decided or its statement, and the
/// records of an existing and of a missing secret read alike. Positive control: its own
/// trail has the records, and this account's trail names the deciding statement.
#[test]
fn another_accounts_trail_does_not_describe_this_accounts_secrets_or_policies() {
    const OTHER: &str = "444455556666";
    let (_t, dir) = crate::common::example_policies();
    user_allowing(
        &dir,
        OTHER,
        "prober",
        &["secretsmanager:*", "cloudtrail:LookupEvents"],
    );
    let s = TestServer::start_with_policies(&dir);
    let (pk, ps) = crate::common::key_for(&s, &dir, OTHER, "prober");
    let created = crate::common::ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "guarded", "SecretString": "v"}),
    );
    let arn = created["ARN"].as_str().unwrap().to_owned();
    let suffix = arn[arn.len() - 7..].to_owned();
    crate::common::ok(
        &s,
        "secretsmanager.PutResourcePolicy",
        &json!({"SecretId": "guarded", "ResourcePolicy": json!({
            "Version": "2012-10-17",
            "Statement": [{"Sid": "HomeOnlyStatementSid", "Effect": "Deny",
                "Principal": {"AWS": format!("arn:aws:iam::{OTHER}:root")},
                "Action": "secretsmanager:*", "Resource": "*"}]}).to_string()}),
    );
    let partial = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:guarded");
    let missing = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:absent{suffix}");
    let missing_partial = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:absent");
    for id in [&arn, &partial, &missing, &missing_partial] {
        let r = call_as(
            &s,
            &pk,
            &ps,
            "secretsmanager.DescribeSecret",
            &json!({ "SecretId": id }),
        );
        assert_eq!(r.error_type(), "AccessDeniedException", "{id}: {}", r.body);
    }
    let mut wrong = Vec::new();
    let records = own_trail(&s, &pk, &ps);
    let describes: Vec<&Value> = records
        .iter()
        .filter(|r| r["eventName"] == "DescribeSecret")
        .collect();
    // Positive control: the prober's account has its four records.
    assert_eq!(describes.len(), 4, "{records:#?}");
    for r in &describes {
        let text = r.to_string();
        let given = r["requestParameters"]["secretId"]
            .as_str()
            .unwrap_or_default();
        if text.contains("HomeOnlyStatementSid") || text.contains("resource-policy") {
            wrong.push(format!("the deciding policy of {given}: {text}"));
        }
        if given == partial && text.contains(&arn) {
            wrong.push(format!("the full ARN for {given}: {text}"));
        }
    }
    // An existing and a missing secret: the records differ only in the id given.
    let shape = |given: &str| {
        let r = describes
            .iter()
            .find(|r| r["requestParameters"]["secretId"] == given)
            .unwrap();
        let mut v = (*r).clone();
        for k in ["eventID", "eventTime", "requestID"] {
            v[k] = Value::Null;
        }
        v.to_string()
            .replace(&arn, "ID")
            .replace(&missing, "ID")
            .replace(&missing_partial, "PARTIAL")
            .replace(&partial, "PARTIAL")
    };
    if shape(&arn) != shape(&missing) {
        wrong.push(format!("full ARN: {} / {}", shape(&arn), shape(&missing)));
    }
    if shape(&partial) != shape(&missing_partial) {
        wrong.push(format!(
            "partial ARN: {} / {}",
            shape(&partial),
            shape(&missing_partial)
        ));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Positive control: the stored record names the deciding statement (for the operator's
    // `strongroom audit query`).
    let store = strongroom::store::Store::open(&s.database_url).unwrap();
    let rows = store
        .query_audit_blocking(&strongroom::store::rows::AuditFilter {
            limit: 1000,
            ..strongroom::store::rows::AuditFilter::default()
        })
        .unwrap();
    assert!(
        rows.iter()
            .any(|r| r.event_name == "DescribeSecret" && r.record.contains("HomeOnlyStatementSid")),
        "{rows:#?}"
    );
}
