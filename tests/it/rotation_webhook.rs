//! Rotation through `webhook` functions: a receiver in the test (TLS with the test CA's
//! certificate) checks each POST's HMAC signature and timestamp, then does the step by
//! calling the server back with the execution role's credentials from the body.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::common::{config_in, send_raw, signed_request, write, Signing, TestServer, ACCOUNT};
use crate::rotation::{describe, events, ok, stages_of, token, wait_for};

const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/rotator";
const KEY: &str = "receiver-key-0123456789abcdef0123456789abcdef";
const WRONG_KEY: &str = "not-the-receiver-key-0123456789abcdef01234567";
const NEW_PASSWORD: &str = "webhook-rotated-password-42";

fn fn_arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}")
}

fn tls_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls")
}

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    body: Value,
    signed: bool,
}

/// The receiver: a TLS listener on 127.0.0.1 that accepts a POST only with a valid
/// `X-Strongroom-Signature` (key [`KEY`]) over a fresh `X-Strongroom-Timestamp`.
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn server_tls() -> Arc<rustls::ServerConfig> {
    let certs: Vec<_> = rustls_pemfile::certs(
        &mut std::fs::read(tls_dir().join("cert.pem"))
            .unwrap()
            .as_slice(),
    )
    .map(Result::unwrap)
    .collect();
    let key = rustls_pemfile::private_key(
        &mut std::fs::read(tls_dir().join("key.pem")).unwrap().as_slice(),
    )
    .unwrap()
    .unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    )
}

fn listen() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    l
}

fn start_receiver(listener: TcpListener, server: SocketAddr) -> Receiver {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
    let config = server_tls();
    let thread = std::thread::spawn(move || {
        while !stop2.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((tcp, _)) => {
                    tcp.set_nonblocking(false).unwrap();
                    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let answer = match read_request(&mut tls) {
                        Some((path, headers, body)) => {
                            handle(&seen2, server, path, &headers, &body)
                        }
                        None => (400, "unreadable request".to_owned()),
                    };
                    let _ = tls.write_all(
                        format!(
                            "HTTP/1.1 {} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                            answer.0,
                            answer.1.len(),
                            answer.1
                        )
                        .as_bytes(),
                    );
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    });
    Receiver {
        seen,
        stop,
        thread: Some(thread),
    }
}

type Headers = Vec<(String, String)>;

fn read_request(r: &mut impl Read) -> Option<(String, Headers, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = r.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers: Headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")?
        .1
        .parse()
        .ok()?;
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = r.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((path, headers, body))
}

/// What a receiver does to authenticate a call: the signature over "<timestamp>.<body>",
/// compared in constant time, and a timestamp within 5 minutes.
fn verify(headers: &Headers, body: &[u8]) -> bool {
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let (Some(ts), Some(sig)) = (get("x-strongroom-timestamp"), get("x-strongroom-signature"))
    else {
        return false;
    };
    let Ok(t) = ts.parse::<i64>() else {
        return false;
    };
    if (crate::common::now_secs() - t).abs() > 300 {
        return false;
    }
    let Some(hex_sig) = sig.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

fn handle(
    seen: &Mutex<Vec<Seen>>,
    server: SocketAddr,
    path: String,
    headers: &Headers,
    body: &[u8],
) -> (u16, String) {
    let signed = verify(headers, body);
    let event: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    seen.lock().unwrap().push(Seen {
        path,
        body: event.clone(),
        signed,
    });
    if !signed {
        // A careless receiver echoing what it got: the server must redact it.
        return (
            401,
            format!(
                "signature mismatch; got credentials {}",
                event["Credentials"]["SecretAccessKey"]
            ),
        );
    }
    let Some(creds) = event.get("Credentials") else {
        // Without credentials this receiver can only acknowledge (testSecret).
        return (200, "ok".into());
    };
    let signing = || Signing {
        akid: creds["AccessKeyId"].as_str().unwrap().to_owned(),
        secret: creds["SecretAccessKey"].as_str().unwrap().to_owned(),
        session_token: Some(creds["SessionToken"].as_str().unwrap().to_owned()),
        ..Signing::default()
    };
    let call = |op: &str, b: Value| {
        send_raw(
            server,
            &signed_request(
                &format!("secretsmanager.{op}"),
                b.to_string().as_bytes(),
                signing(),
            ),
        )
    };
    let (arn, tok) = (&event["SecretId"], &event["ClientRequestToken"]);
    let r = match event["Step"].as_str().unwrap_or_default() {
        "createSecret" => call(
            "PutSecretValue",
            json!({"SecretId": arn, "ClientRequestToken": tok,
                   "SecretString": json!({"username": "app", "password": NEW_PASSWORD}).to_string(),
                   "VersionStages": ["AWSPENDING"], "RotationToken": event["RotationToken"]}),
        ),
        "finishSecret" => {
            let d = call("DescribeSecret", json!({"SecretId": arn})).json();
            let current = d["VersionIdsToStages"]
                .as_object()
                .unwrap()
                .iter()
                .find(|(_, s)| s.to_string().contains("AWSCURRENT"))
                .map(|(v, _)| v.clone())
                .unwrap();
            call(
                "UpdateSecretVersionStage",
                json!({"SecretId": arn, "VersionStage": "AWSCURRENT",
                       "MoveToVersionId": tok, "RemoveFromVersionId": current}),
            )
        }
        _ => return (200, "ok".into()),
    };
    if r.status == 200 {
        (200, "ok".into())
    } else {
        (500, format!("callback failed: {}", r.body))
    }
}

/// The principals directory: the rotator role and three webhook functions on `receiver`:
/// `hook` (the receiver's key, credentials included), `hook-wrong-key` (another key,
/// credentials included, one attempt) and `hook-no-creds` (the receiver's key, no
/// credentials).
fn policies(dir: &Path, receiver: SocketAddr) -> PathBuf {
    let policies = dir.join("policies");
    write(
        &policies,
        &format!("accounts/{ACCOUNT}/account.json"),
        &format!(r#"{{"AccountId":"{ACCOUNT}"}}"#),
    );
    write(
        &policies,
        &format!("accounts/{ACCOUNT}/roles/rotator.json"),
        &json!({
            "RoleName": "rotator",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
                 "Action": "sts:AssumeRole"}]},
            "InlinePolicies": {"rotation": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": [
                    "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"],
                 "Resource": "*"}]}}
        })
        .to_string(),
    );
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("right.key"), format!("{KEY}\n")).unwrap();
    std::fs::write(keys.join("wrong.key"), WRONG_KEY).unwrap();
    for (name, key, creds, path) in [
        ("hook", "right.key", true, "/rotate?tenant=a"),
        ("hook-wrong-key", "wrong.key", true, "/wrong"),
        ("hook-no-creds", "right.key", false, "/nocreds"),
    ] {
        write(
            &policies,
            &format!("accounts/{ACCOUNT}/functions/{name}.json"),
            &json!({
                "FunctionName": name,
                "Role": ROLE_ARN,
                "Kind": "webhook",
                "Url": format!("https://127.0.0.1:{}{path}", receiver.port()),
                "TlsCaFile": tls_dir().join("ca.pem"),
                "SigningKeyFile": keys.join(key),
                "IncludeCredentials": creds,
                "TimeoutSeconds": 10,
                "MaxAttempts": 1,
                "RetryDelaySeconds": 1
            })
            .to_string(),
        );
    }
    policies
}

fn create(s: &TestServer, name: &str) -> String {
    ok(
        s,
        "CreateSecret",
        &json!({"Name": name, "ClientRequestToken": token(),
                "SecretString": r#"{"username":"app","password":"original-password-1"}"#}),
    )["VersionId"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_webhook_function_rotates_with_signed_calls_and_a_wrong_key_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = listen();
    let policies = policies(tmp.path(), listener.local_addr().unwrap());
    let mut cfg = config_in(tmp.path(), None);
    cfg.policies = Some(policies);
    let s = TestServer::launch_config(cfg, tempfile::tempdir().unwrap());
    let receiver = start_receiver(listener, s.addr);

    // The receiver's key: the four steps, signed, each with the role's credentials.
    let first = create(&s, "app/hook");
    let t = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/hook", "ClientRequestToken": t,
                "RotationLambdaARN": fn_arn("hook"), "RotationRules": {"AutomaticallyAfterDays": 30}}),
    );
    let d = wait_for(&s, "app/hook", "the rotation to finish", |d| {
        d.get("LastRotatedDate").is_some() && d.get("StrongroomRotation").is_none()
    });
    assert_eq!(stages_of(&d, &t), ["AWSCURRENT"], "{d}");
    assert_eq!(stages_of(&d, &first), ["AWSPREVIOUS"], "{d}");
    let value: Value = serde_json::from_str(
        ok(&s, "GetSecretValue", &json!({"SecretId": "app/hook"}))["SecretString"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(value["password"], NEW_PASSWORD);
    let seen = receiver.seen.lock().unwrap().clone();
    let steps: Vec<&str> = seen
        .iter()
        .map(|c| c.body["Step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["createSecret", "setSecret", "testSecret", "finishSecret"]
    );
    let secret_keys: Vec<String> = seen
        .iter()
        .map(|c| {
            c.body["Credentials"]["SecretAccessKey"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for c in &seen {
        assert!(c.signed, "{c:?}");
        assert_eq!(c.path, "/rotate?tenant=a");
        assert_eq!(c.body["ClientRequestToken"], t.as_str());
        assert!(c.body["SecretId"]
            .as_str()
            .unwrap()
            .contains(":secret:app/hook-"));
        assert!(c.body["RotationToken"].as_str().unwrap().len() >= 36);
        assert_eq!(c.body["Region"], "us-east-1");
        assert_eq!(c.body["Endpoint"], s.endpoint().trim_end_matches('/'));
    }
    receiver.seen.lock().unwrap().clear();

    // Another key: the receiver refuses the call, the rotation fails at once (one attempt)
    // with the receiver's answer, redacted; AWSCURRENT is untouched.
    let before = ok(&s, "GetSecretValue", &json!({"SecretId": "app/hook"}));
    let t2 = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/hook", "ClientRequestToken": t2,
                "RotationLambdaARN": fn_arn("hook-wrong-key")}),
    );
    let d = wait_for(&s, "app/hook", "the rotation to fail", |d| {
        d["StrongroomRotation"]["Status"] == "Failed"
    });
    let err = d["StrongroomRotation"]["LastError"].as_str().unwrap();
    assert!(err.contains("during createSecret step"), "{err}");
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(err.contains("signature mismatch"), "{err}");
    assert!(err.contains("[REDACTED]"), "{err}");
    let refused = receiver.seen.lock().unwrap().clone();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(!refused[0].signed);
    let leaked = refused[0].body["Credentials"]["SecretAccessKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!err.contains(&leaked), "{err}");
    let after = ok(&s, "GetSecretValue", &json!({"SecretId": "app/hook"}));
    assert_eq!(after["VersionId"], before["VersionId"]);
    assert_eq!(after["SecretString"], before["SecretString"]);
    assert_eq!(stages_of(&d, &t), ["AWSCURRENT"], "{d}");
    let failed = events(&s, "RotationFailed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(
        failed[0]["userIdentity"],
        json!({"accountId": ACCOUNT, "invokedBy": "secretsmanager.amazonaws.com"})
    );

    // Without the opt-in the body is the Lambda event alone (a test rotation, which needs
    // no callback).
    ok(&s, "CancelRotateSecret", &json!({"SecretId": "app/hook"}));
    let d = describe(&s, "app/hook");
    let stale: Vec<String> = d["VersionIdsToStages"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, st)| st.to_string().contains("AWSPENDING"))
        .map(|(v, _)| v.clone())
        .collect();
    for v in stale {
        ok(
            &s,
            "UpdateSecretVersionStage",
            &json!({"SecretId": "app/hook", "VersionStage": "AWSPENDING", "RemoveFromVersionId": v}),
        );
    }
    receiver.seen.lock().unwrap().clear();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/hook", "ClientRequestToken": token(),
                "RotationLambdaARN": fn_arn("hook-no-creds"), "RotateImmediately": false,
                "RotationRules": {"AutomaticallyAfterDays": 30}}),
    );
    wait_for(&s, "app/hook", "the test rotation to finish", |d| {
        d.get("StrongroomRotation").is_none()
    });
    let plain = receiver.seen.lock().unwrap().clone();
    assert_eq!(plain.len(), 1, "{plain:?}");
    assert!(plain[0].signed);
    assert_eq!(plain[0].path, "/nocreds");
    let mut members: Vec<&String> = plain[0].body.as_object().unwrap().keys().collect();
    members.sort();
    assert_eq!(
        members,
        ["ClientRequestToken", "RotationToken", "SecretId", "Step"]
    );
    assert_eq!(plain[0].body["Step"], "testSecret");
    assert_eq!(events(&s, "TestRotationSucceeded").len(), 1);

    // Nothing secret in the trail: no signing key, no session key, no value.
    let mut trail = Vec::new();
    for name in [
        "RotateSecret",
        "RotationStarted",
        "RotationSucceeded",
        "RotationFailed",
        "TestRotationStarted",
        "TestRotationSucceeded",
        "PutSecretValue",
        "UpdateSecretVersionStage",
        "DescribeSecret",
    ] {
        trail.extend(events(&s, name));
    }
    assert!(trail.len() > 8);
    let text = serde_json::to_string(&trail).unwrap();
    for secret in [KEY, WRONG_KEY, NEW_PASSWORD, leaked.as_str()]
        .into_iter()
        .chain(secret_keys.iter().map(String::as_str))
    {
        assert!(!text.contains(secret), "the trail holds a secret");
    }
    drop(receiver);
}

/// A webhook's URL must be https (plain http only to 127.0.0.1 with the opt-in), its key
/// referenced by a file or an environment variable (never inline) and long enough.
#[test]
fn webhook_files_are_checked_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let policies = policies(tmp.path(), "127.0.0.1:9".parse().unwrap());
    let f = |name: &str, extra: Value| {
        let mut v = json!({"FunctionName": name, "Role": ROLE_ARN, "Kind": "webhook",
                           "SigningKeyFile": tmp.path().join("keys/right.key")});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        write(
            &policies,
            &format!("accounts/{ACCOUNT}/functions/{name}.json"),
            &v.to_string(),
        );
    };
    let load = || {
        strongroom::identity::load_dir(&policies)
            .err()
            .map(|e| {
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };
    // With the opt-in, plain http to 127.0.0.1 loads.
    f(
        "plain-ok",
        json!({"Url": "http://127.0.0.1:9/hook", "AllowPlainHttpLoopback": true}),
    );
    assert_eq!(load(), "");
    f("plain", json!({"Url": "http://127.0.0.1:9/hook"}));
    let e = load();
    assert!(e.contains("plain.json") && e.contains("$.Url"), "{e}");
    assert!(e.contains("must be an https:// URL"), "{e}");
    f(
        "plain",
        json!({"Url": "http://10.1.2.3:9/hook", "AllowPlainHttpLoopback": true}),
    );
    assert!(load().contains("$.Url"));
    f(
        "plain",
        json!({"Url": "https://hooks.example.com/x", "SigningKeyFile": null, "SigningKey": KEY}),
    );
    let e = load();
    assert!(e.contains("SigningKey"), "{e}");
    f(
        "plain",
        json!({"Url": "https://hooks.example.com/x", "SigningKeyFile": null}),
    );
    assert!(load().contains("exactly one of `SigningKeyFile` and `SigningKeyEnv`"));
    std::fs::write(tmp.path().join("keys/short.key"), "short").unwrap();
    f(
        "plain",
        json!({"Url": "https://hooks.example.com/x", "SigningKeyFile": tmp.path().join("keys/short.key")}),
    );
    let e = load();
    assert!(e.contains("32 bytes at least"), "{e}");
    assert!(!e.contains("short\n") && !e.contains(KEY), "{e}");
    f(
        "plain",
        json!({"Url": "https://hooks.example.com/x", "SigningKeyFile": null,
               "SigningKeyEnv": "STRONGROOM_TEST_UNSET_WEBHOOK_KEY"}),
    );
    assert!(load().contains("`STRONGROOM_TEST_UNSET_WEBHOOK_KEY` is not set"));
    f(
        "plain",
        json!({"Url": "https://hooks.example.com/x", "Command": ["/bin/true"]}),
    );
    assert!(load().contains("a webhook function has no `Command`"));
    std::fs::remove_file(policies.join(format!("accounts/{ACCOUNT}/functions/plain.json")))
        .unwrap();
    assert_eq!(load(), "");
    // Loaded functions never print their key.
    let dir = strongroom::identity::load_dir(&policies).unwrap();
    let printed = format!("{dir:?}");
    assert!(!printed.contains(KEY) && printed.contains("SigningKey([REDACTED])"));
}
