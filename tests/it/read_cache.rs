//! The SQLite store keeps what reads resolved (a secret, its tags, its resource policy, the
//! selected version sealed, its key's state) in memory until the next write. These tests
//! read until the cache is warm, change what a decision or an answer depends on, and expect
//! the very next request after the change was acknowledged to see it: a refusal where the
//! change removed a permission (the attacker's test), an answer where it restored one (the
//! positive control), the new value, never an older one.

use serde_json::{json, Value};

use crate::common::{call_as, example_policies, key_for, user_allowing, TestServer};

const ACCOUNT: &str = "111122223333";

fn ok(s: &TestServer, target: &str, body: &Value) -> Value {
    let mut body = body.clone();
    if (target == "secretsmanager.CreateSecret" || target == "secretsmanager.PutSecretValue")
        && body.get("ClientRequestToken").is_none()
    {
        body["ClientRequestToken"] = json!(uuid::Uuid::new_v4().to_string());
    }
    let r = s.call(target, &body.to_string());
    assert_eq!(r.status, 200, "{target} {body}: {}", r.body);
    r.json()
}

fn allow_reader(who: &str) -> String {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/{who}")},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})
    .to_string()
}

fn deny_reader(who: &str) -> String {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/{who}")},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})
    .to_string()
}

/// Read `n` times as the given key and expect `status` each time (warming the cache).
fn read_n(s: &TestServer, k: &(String, String), id: &str, n: usize, status: u16) -> Value {
    let mut last = Value::Null;
    for _ in 0..n {
        let r = call_as(
            s,
            &k.0,
            &k.1,
            "secretsmanager.GetSecretValue",
            &json!({"SecretId": id}),
        );
        assert_eq!(r.status, status, "{}", r.body);
        last = r.json();
    }
    last
}

/// A user whose identity policy grants nothing on secrets reads only while the secret's
/// resource policy allows it: removing the policy, or replacing it with a Deny, refuses the
/// next read although the allowed reads before it were answered from a warm cache.
#[test]
fn a_resource_policy_change_decides_the_next_read() {
    let (_t, dir) = example_policies();
    user_allowing(
        &dir,
        ACCOUNT,
        "cache-reader",
        &["secretsmanager:DescribeSecret"],
    );
    let s = TestServer::start_with_policies(&dir);
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "cache/shared", "SecretString": "s3cr3t"}),
    );
    let k = key_for(&s, &dir, ACCOUNT, "cache-reader");
    // Without a resource policy: refused.
    read_n(&s, &k, "cache/shared", 2, 400);
    let put = |policy: String| {
        ok(
            &s,
            "secretsmanager.PutResourcePolicy",
            &json!({"SecretId": "cache/shared", "ResourcePolicy": policy}),
        )
    };
    put(allow_reader("cache-reader"));
    let v = read_n(&s, &k, "cache/shared", 5, 200);
    assert_eq!(v["SecretString"], "s3cr3t");
    ok(
        &s,
        "secretsmanager.DeleteResourcePolicy",
        &json!({"SecretId": "cache/shared"}),
    );
    let r = read_n(&s, &k, "cache/shared", 1, 400);
    assert_eq!(r["__type"], "AccessDeniedException", "{r}");
    // Positive control: allowed again at once.
    put(allow_reader("cache-reader"));
    read_n(&s, &k, "cache/shared", 3, 200);
    put(deny_reader("cache-reader"));
    read_n(&s, &k, "cache/shared", 1, 400);
}

/// An identity policy conditioned on a tag: retagging the secret decides the next read.
#[test]
fn a_tag_change_decides_the_next_read() {
    let (_t, dir) = example_policies();
    common_write_tag_user(&dir);
    let s = TestServer::start_with_policies(&dir);
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "cache/tagged", "SecretString": "t", "Tags": [{"Key": "env", "Value": "dev"}]}),
    );
    let k = key_for(&s, &dir, ACCOUNT, "dev-reader");
    read_n(&s, &k, "cache/tagged", 4, 200);
    ok(
        &s,
        "secretsmanager.TagResource",
        &json!({"SecretId": "cache/tagged", "Tags": [{"Key": "env", "Value": "prod"}]}),
    );
    read_n(&s, &k, "cache/tagged", 1, 400);
    ok(
        &s,
        "secretsmanager.TagResource",
        &json!({"SecretId": "cache/tagged", "Tags": [{"Key": "env", "Value": "dev"}]}),
    );
    read_n(&s, &k, "cache/tagged", 2, 200);
    ok(
        &s,
        "secretsmanager.UntagResource",
        &json!({"SecretId": "cache/tagged", "TagKeys": ["env"]}),
    );
    read_n(&s, &k, "cache/tagged", 1, 400);
}

fn common_write_tag_user(dir: &std::path::Path) {
    crate::common::write(
        dir,
        &format!("accounts/{ACCOUNT}/users/dev-reader.json"),
        &json!({"UserName": "dev-reader", "InlinePolicies": {"p": {
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "kms:Decrypt"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:ResourceTag/env": "dev"}}}]}}})
        .to_string(),
    );
}

/// Disabling the secret's KMS key fails the next read; enabling it restores reads; a secret
/// scheduled for deletion is refused at once and readable again once restored.
#[test]
fn key_state_and_deletion_decide_the_next_read() {
    let s = TestServer::start();
    let key = ok(&s, "TrentService.CreateKey", &json!({}));
    let key_id = key["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "cache/kms", "SecretString": "k", "KmsKeyId": key_id}),
    );
    let get = || {
        s.call(
            "secretsmanager.GetSecretValue",
            r#"{"SecretId":"cache/kms"}"#,
        )
    };
    for _ in 0..4 {
        assert_eq!(get().status, 200);
    }
    ok(&s, "TrentService.DisableKey", &json!({"KeyId": key_id}));
    let r = get();
    assert_eq!(r.error_type(), "DecryptionFailure", "{}", r.body);
    ok(&s, "TrentService.EnableKey", &json!({"KeyId": key_id}));
    assert_eq!(get().status, 200);
    assert_eq!(get().status, 200);
    ok(
        &s,
        "secretsmanager.DeleteSecret",
        &json!({"SecretId": "cache/kms", "RecoveryWindowInDays": 7}),
    );
    let r = get();
    assert_eq!(r.error_type(), "InvalidRequestException", "{}", r.body);
    ok(
        &s,
        "secretsmanager.RestoreSecret",
        &json!({"SecretId": "cache/kms"}),
    );
    assert_eq!(get().json()["SecretString"], "k");
}

/// Readers hammer a secret while a writer puts new values: every read after a write was
/// acknowledged returns that value or a newer one, and no reader ever sees a value older
/// than one it saw before.
#[test]
fn reads_never_go_back_behind_an_acknowledged_write() {
    let s = std::sync::Arc::new(TestServer::start());
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "cache/hot", "SecretString": "0"}),
    );
    // The last value whose PutSecretValue was acknowledged.
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (s, acked, stop) = (s.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = 0_i64;
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let floor = acked.load(std::sync::atomic::Ordering::SeqCst);
                    let r = s.call(
                        "secretsmanager.GetSecretValue",
                        r#"{"SecretId":"cache/hot"}"#,
                    );
                    assert_eq!(r.status, 200, "{}", r.body);
                    let v: i64 = r.json()["SecretString"].as_str().unwrap().parse().unwrap();
                    assert!(v >= floor, "read {v} after {floor} was acknowledged");
                    assert!(v >= seen, "read {v} after reading {seen}");
                    seen = v;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for n in 1..=40_i64 {
        ok(
            &s,
            "secretsmanager.PutSecretValue",
            &json!({"SecretId": "cache/hot", "SecretString": n.to_string()}),
        );
        acked.store(n, std::sync::atomic::Ordering::SeqCst);
        let r = s.call(
            "secretsmanager.GetSecretValue",
            r#"{"SecretId":"cache/hot"}"#,
        );
        assert_eq!(r.json()["SecretString"], n.to_string());
        // A few reads between writes, so the cache fills before the next one.
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    // Labels: moving AWSCURRENT back is seen by the next read.
    let ids = ok(
        &s,
        "secretsmanager.ListSecretVersionIds",
        &json!({"SecretId": "cache/hot", "IncludeDeprecated": true}),
    );
    let versions = ids["Versions"].as_array().unwrap();
    let current = versions
        .iter()
        .find(|v| {
            v["VersionStages"]
                .as_array()
                .unwrap()
                .contains(&json!("AWSCURRENT"))
        })
        .unwrap()["VersionId"]
        .clone();
    let previous = versions
        .iter()
        .find(|v| {
            v["VersionStages"]
                .as_array()
                .unwrap()
                .contains(&json!("AWSPREVIOUS"))
        })
        .unwrap()["VersionId"]
        .clone();
    ok(
        &s,
        "secretsmanager.UpdateSecretVersionStage",
        &json!({"SecretId": "cache/hot", "VersionStage": "AWSCURRENT",
                "MoveToVersionId": previous, "RemoveFromVersionId": current}),
    );
    let r = s.call(
        "secretsmanager.GetSecretValue",
        r#"{"SecretId":"cache/hot"}"#,
    );
    assert_eq!(r.json()["SecretString"], "39");
}

/// A write made behind the server's back (another connection to the SQLite file: a CLI
/// command, another process) is seen by the next read too: the store asks SQLite whether
/// another connection committed before it serves anything cached.
#[test]
fn a_write_by_another_connection_decides_the_next_read() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let (_t, dir) = example_policies();
    user_allowing(
        &dir,
        ACCOUNT,
        "cache-reader",
        &["secretsmanager:DescribeSecret"],
    );
    let s = TestServer::start_with_policies(&dir);
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "cache/outside", "SecretString": "o"}),
    );
    ok(
        &s,
        "secretsmanager.PutResourcePolicy",
        &json!({"SecretId": "cache/outside", "ResourcePolicy": allow_reader("cache-reader")}),
    );
    let k = key_for(&s, &dir, ACCOUNT, "cache-reader");
    read_n(&s, &k, "cache/outside", 5, 200);
    let db = s.data_dir().join("strongroom.db");
    assert!(db.exists(), "{}", db.display());
    let mut c = diesel::SqliteConnection::establish(db.to_str().unwrap()).unwrap();
    c.batch_execute(
        "PRAGMA busy_timeout = 10000; \
         UPDATE secrets SET resource_policy = NULL WHERE name = 'cache/outside'",
    )
    .unwrap();
    let r = read_n(&s, &k, "cache/outside", 1, 400);
    assert_eq!(r["__type"], "AccessDeniedException", "{r}");
}
