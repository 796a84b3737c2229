//! Information disclosure: what a secret value, a credential or a secret's existence can
//! leave behind in failure messages, logs, metrics and audit records, and what a caller
//! without permission can learn from the answers it gets. Each attack sits next to a
//! positive control that must still hold.

use std::path::Path;

use base64::Engine;
use serde_json::{json, Value};

use crate::common::{call_as, key_for, user_allowing, write, TestServer, ACCOUNT};

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
