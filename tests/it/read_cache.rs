//! The SQLite store keeps what reads resolved (a secret, its tags, its resource policy, the
//! selected version sealed, its key's state) in memory until the next write. These tests
//! read until the cache is warm, change what a decision or an answer depends on, and expect
//! the very next request after the change was acknowledged to see it: a refusal where the
//! change removed a permission (the attacker's test), an answer where it restored one (the
//! positive control), the new value, never an older one.

use serde_json::{json, Value};

use crate::common::{
    call_as, example_policies, key_for, ok, reads_follow_acknowledged_writes, user_allowing,
    version_with_stage, TestServer,
};

const ACCOUNT: &str = "111122223333";

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
    reads_follow_acknowledged_writes(&s, &s, "cache/hot", 40);
    // Labels: moving AWSCURRENT back is seen by the next read.
    let ids = ok(
        &s,
        "secretsmanager.ListSecretVersionIds",
        &json!({"SecretId": "cache/hot", "IncludeDeprecated": true}),
    );
    ok(
        &s,
        "secretsmanager.UpdateSecretVersionStage",
        &json!({"SecretId": "cache/hot", "VersionStage": "AWSCURRENT",
                "MoveToVersionId": version_with_stage(&ids, "AWSPREVIOUS"),
                "RemoveFromVersionId": version_with_stage(&ids, "AWSCURRENT")}),
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

/// BatchGetSecretValue by SecretIdList reads through the cache too: a retagged secret is
/// refused in the very next batch (the attacker's test) and allowed again once retagged back
/// (the positive control), a new value and a deletion are seen at once, and the secrets the
/// change did not touch keep being answered.
#[test]
fn a_change_decides_the_next_batch_read() {
    let (_t, dir) = example_policies();
    crate::common::write(
        &dir,
        &format!("accounts/{ACCOUNT}/users/batch-reader.json"),
        &json!({"UserName": "batch-reader", "InlinePolicies": {"p": {
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue",
                 "Resource": "*"},
                {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "kms:Decrypt"],
                 "Resource": "*",
                 "Condition": {"StringEquals": {"aws:ResourceTag/env": "dev"}}}]}}})
        .to_string(),
    );
    let s = TestServer::start_with_policies(&dir);
    for n in ["a", "b", "c"] {
        ok(
            &s,
            "secretsmanager.CreateSecret",
            &json!({"Name": format!("cache/batch/{n}"), "SecretString": format!("{n}0"),
                    "Tags": [{"Key": "env", "Value": "dev"}]}),
        );
    }
    let k = key_for(&s, &dir, ACCOUNT, "batch-reader");
    let batch = || {
        let r = call_as(
            &s,
            &k.0,
            &k.1,
            "secretsmanager.BatchGetSecretValue",
            &json!({"SecretIdList": ["cache/batch/a", "cache/batch/b", "cache/batch/c"]}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let values: Vec<(String, String)> = v["SecretValues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let name = e["Name"].as_str().unwrap().to_owned();
                (name, e["SecretString"].as_str().unwrap().to_owned())
            })
            .collect();
        let errors: Vec<(String, String)> = v["Errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let id = e["SecretId"].as_str().unwrap().to_owned();
                (id, e["ErrorCode"].as_str().unwrap().to_owned())
            })
            .collect();
        (values, errors)
    };
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    let all = vec![
        pair("cache/batch/a", "a0"),
        pair("cache/batch/b", "b0"),
        pair("cache/batch/c", "c0"),
    ];
    for _ in 0..3 {
        assert_eq!(batch(), (all.clone(), vec![]));
    }
    ok(
        &s,
        "secretsmanager.TagResource",
        &json!({"SecretId": "cache/batch/b", "Tags": [{"Key": "env", "Value": "prod"}]}),
    );
    let refused = (
        vec![pair("cache/batch/a", "a0"), pair("cache/batch/c", "c0")],
        vec![pair("cache/batch/b", "AccessDeniedException")],
    );
    assert_eq!(batch(), refused);
    assert_eq!(batch(), refused);
    ok(
        &s,
        "secretsmanager.TagResource",
        &json!({"SecretId": "cache/batch/b", "Tags": [{"Key": "env", "Value": "dev"}]}),
    );
    assert_eq!(batch(), (all.clone(), vec![]));
    ok(
        &s,
        "secretsmanager.PutSecretValue",
        &json!({"SecretId": "cache/batch/c", "SecretString": "c1"}),
    );
    assert_eq!(
        batch().0,
        vec![
            pair("cache/batch/a", "a0"),
            pair("cache/batch/b", "b0"),
            pair("cache/batch/c", "c1"),
        ]
    );
    ok(
        &s,
        "secretsmanager.DeleteSecret",
        &json!({"SecretId": "cache/batch/a", "RecoveryWindowInDays": 7}),
    );
    let (values, errors) = batch();
    assert_eq!(values.len(), 2, "{values:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "cache/batch/a");
}
