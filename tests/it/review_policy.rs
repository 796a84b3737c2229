//! Policy review through the server: the action-specific condition keys of IAM.md §6.1/§6.2
//! must reach the evaluator, or a `Deny` written on them never fires. Each refusal has a
//! positive control next to it.

use std::path::Path;

use crate::common::{call_as, example_policies, key_for, write, RawResponse, TestServer};

const HOME: &str = "111122223333";

fn start(policies: &Path) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::common::config_in(dir.path(), None);
    cfg.account_id = HOME.into();
    cfg.policies = Some(policies.to_path_buf());
    TestServer::launch_config(cfg, dir)
}

/// Secrets Manager operation `op` signed with the access key `(id, secret)`.
fn sm(s: &TestServer, (k, sk): (&str, &str), op: &str, body: &serde_json::Value) -> RawResponse {
    call_as(s, k, sk, &format!("secretsmanager.{op}"), body)
}

fn ok(r: RawResponse) -> serde_json::Value {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// A user `name` of the home account whose inline policy holds `statements`.
fn user(dir: &Path, name: &str, statements: &str) {
    write(
        dir,
        &format!("accounts/{HOME}/users/{name}.json"),
        &format!(
            r#"{{"UserName":"{name}","InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[{statements}]}}}}}}"#
        ),
    );
}

fn create(s: &TestServer, name: &str, value: &str, tags: serde_json::Value) {
    ok(s.call(
        "secretsmanager.CreateSecret",
        &serde_json::json!({
            "Name": name, "SecretString": value, "Tags": tags,
            "ClientRequestToken": uuid::Uuid::new_v4().to_string()
        })
        .to_string(),
    ));
}

/// The classic ABAC guardrail: a user allowed to read `Team=blue` secrets and to tag, but
/// denied any TagResource that touches the `Team` key. TagResource must be decided with
/// `aws:TagKeys` / `aws:RequestTag/*` (IAM.md §6.1), or the user retags another team's
/// secret and reads it.
#[tokio::test]
async fn tag_resource_is_decided_with_its_request_tags() {
    let (_t, dir) = example_policies();
    user(
        &dir,
        "blue",
        r#"{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*",
            "Condition":{"StringEquals":{"aws:ResourceTag/Team":"blue"}}},
           {"Effect":"Allow","Action":"secretsmanager:TagResource","Resource":"*"},
           {"Effect":"Deny","Action":"secretsmanager:TagResource","Resource":"*",
            "Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["Team"]}}}"#,
    );
    let s = start(&dir);
    create(
        &s,
        "red-db",
        "red-value",
        serde_json::json!([{"Key": "Team", "Value": "red"}]),
    );
    let (k, sk) = key_for(&s, &dir, HOME, "blue");
    // control: another key may be tagged
    ok(sm(
        &s,
        (&k, &sk),
        "TagResource",
        &serde_json::json!({"SecretId": "red-db", "Tags": [{"Key": "owner", "Value": "x"}]}),
    ));
    let r = sm(
        &s,
        (&k, &sk),
        "TagResource",
        &serde_json::json!({"SecretId": "red-db", "Tags": [{"Key": "Team", "Value": "blue"}]}),
    );
    let read = sm(
        &s,
        (&k, &sk),
        "GetSecretValue",
        &serde_json::json!({"SecretId": "red-db"}),
    );
    assert_eq!(
        r.error_type(),
        "AccessDeniedException",
        "TagResource Team=blue was not denied ({}); GetSecretValue then answered: {}",
        r.body,
        read.body
    );
    assert_eq!(read.error_type(), "AccessDeniedException", "{}", read.body);
}

/// An allow-list on the request tags: `aws:RequestTag/env` must be `dev`.
#[tokio::test]
async fn tag_resource_allow_list_on_request_tag_values() {
    let (_t, dir) = example_policies();
    user(
        &dir,
        "tagger",
        r#"{"Effect":"Allow","Action":"secretsmanager:TagResource","Resource":"*",
            "Condition":{"StringEquals":{"aws:RequestTag/env":"dev"},
                         "ForAllValues:StringEquals":{"aws:TagKeys":["env"]}}}"#,
    );
    let s = start(&dir);
    create(&s, "t-db", "v", serde_json::json!([]));
    let (k, sk) = key_for(&s, &dir, HOME, "tagger");
    let bad = sm(
        &s,
        (&k, &sk),
        "TagResource",
        &serde_json::json!({"SecretId": "t-db", "Tags": [{"Key": "env", "Value": "prod"}]}),
    );
    assert_eq!(bad.error_type(), "AccessDeniedException", "{}", bad.body);
    // control: env=dev is what the policy allows
    let good = sm(
        &s,
        (&k, &sk),
        "TagResource",
        &serde_json::json!({"SecretId": "t-db", "Tags": [{"Key": "env", "Value": "dev"}]}),
    );
    assert_eq!(good.status, 200, "env=dev was refused: {}", good.body);
}

/// UntagResource is decided with `aws:TagKeys` (the keys removed).
#[tokio::test]
async fn untag_resource_is_decided_with_its_tag_keys() {
    let (_t, dir) = example_policies();
    user(
        &dir,
        "untagger",
        r#"{"Effect":"Allow","Action":"secretsmanager:UntagResource","Resource":"*"},
           {"Effect":"Deny","Action":"secretsmanager:UntagResource","Resource":"*",
            "Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["Team"]}}}"#,
    );
    let s = start(&dir);
    create(
        &s,
        "u-db",
        "v",
        serde_json::json!([{"Key": "Team", "Value": "red"}, {"Key": "owner", "Value": "x"}]),
    );
    let (k, sk) = key_for(&s, &dir, HOME, "untagger");
    ok(sm(
        &s,
        (&k, &sk),
        "UntagResource",
        &serde_json::json!({"SecretId": "u-db", "TagKeys": ["owner"]}),
    ));
    let r = sm(
        &s,
        (&k, &sk),
        "UntagResource",
        &serde_json::json!({"SecretId": "u-db", "TagKeys": ["Team"]}),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
}

/// DeleteSecret is decided with `secretsmanager:ForceDeleteWithoutRecovery` and
/// `secretsmanager:RecoveryWindowInDays` (IAM.md §6.2).
#[tokio::test]
async fn delete_secret_is_decided_with_its_recovery_keys() {
    let (_t, dir) = example_policies();
    user(
        &dir,
        "deleter",
        r#"{"Effect":"Allow","Action":"secretsmanager:DeleteSecret","Resource":"*"},
           {"Effect":"Deny","Action":"secretsmanager:DeleteSecret","Resource":"*",
            "Condition":{"Bool":{"secretsmanager:ForceDeleteWithoutRecovery":"true"}}},
           {"Effect":"Deny","Action":"secretsmanager:DeleteSecret","Resource":"*",
            "Condition":{"NumericLessThan":{"secretsmanager:RecoveryWindowInDays":"30"}}}"#,
    );
    let s = start(&dir);
    create(&s, "d1", "v", serde_json::json!([]));
    create(&s, "d2", "v", serde_json::json!([]));
    create(&s, "d3", "v", serde_json::json!([]));
    let (k, sk) = key_for(&s, &dir, HOME, "deleter");
    let force = sm(
        &s,
        (&k, &sk),
        "DeleteSecret",
        &serde_json::json!({"SecretId": "d1", "ForceDeleteWithoutRecovery": true}),
    );
    let short = sm(
        &s,
        (&k, &sk),
        "DeleteSecret",
        &serde_json::json!({"SecretId": "d2", "RecoveryWindowInDays": 7}),
    );
    // control: a 30-day window is allowed
    let long = sm(
        &s,
        (&k, &sk),
        "DeleteSecret",
        &serde_json::json!({"SecretId": "d3", "RecoveryWindowInDays": 30}),
    );
    assert_eq!(long.status, 200, "{}", long.body);
    assert_eq!(
        (force.error_type(), short.error_type()),
        (
            "AccessDeniedException".to_owned(),
            "AccessDeniedException".to_owned()
        ),
        "force: {} / 7 days: {}",
        force.body,
        short.body
    );
}

/// GetSecretValue is decided with `secretsmanager:VersionStage` (IAM.md §6.2): a caller
/// denied the previous version must not read it by asking for AWSPREVIOUS.
#[tokio::test]
async fn get_secret_value_is_decided_with_its_version_stage() {
    let (_t, dir) = example_policies();
    user(
        &dir,
        "reader",
        r#"{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"},
           {"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*",
            "Condition":{"StringEquals":{"secretsmanager:VersionStage":"AWSPREVIOUS"}}}"#,
    );
    let s = start(&dir);
    create(&s, "v-db", "old", serde_json::json!([]));
    ok(s.call(
        "secretsmanager.PutSecretValue",
        &serde_json::json!({
            "SecretId": "v-db", "SecretString": "new",
            "ClientRequestToken": uuid::Uuid::new_v4().to_string()
        })
        .to_string(),
    ));
    let (k, sk) = key_for(&s, &dir, HOME, "reader");
    let cur = ok(sm(
        &s,
        (&k, &sk),
        "GetSecretValue",
        &serde_json::json!({"SecretId": "v-db"}),
    ));
    assert_eq!(cur["SecretString"], "new");
    let prev = sm(
        &s,
        (&k, &sk),
        "GetSecretValue",
        &serde_json::json!({"SecretId": "v-db", "VersionStage": "AWSPREVIOUS"}),
    );
    assert_eq!(prev.error_type(), "AccessDeniedException", "{}", prev.body);
}

/// UpdateSecret is decided with `secretsmanager:Description` / `KmsKeyId` (IAM.md §6.1).
#[tokio::test]
async fn update_secret_is_decided_with_its_request_keys() {
    let (_t, dir) = example_policies();
    user(
        &dir,
        "updater",
        r#"{"Effect":"Allow","Action":"secretsmanager:UpdateSecret","Resource":"*"},
           {"Effect":"Deny","Action":"secretsmanager:UpdateSecret","Resource":"*",
            "Condition":{"Null":{"secretsmanager:Description":"false"}}}"#,
    );
    let s = start(&dir);
    create(&s, "up-db", "v", serde_json::json!([]));
    let (k, sk) = key_for(&s, &dir, HOME, "updater");
    ok(sm(
        &s,
        (&k, &sk),
        "UpdateSecret",
        &serde_json::json!({
            "SecretId": "up-db", "SecretString": "v2",
            "ClientRequestToken": uuid::Uuid::new_v4().to_string()
        }),
    ));
    let r = sm(
        &s,
        (&k, &sk),
        "UpdateSecret",
        &serde_json::json!({"SecretId": "up-db", "Description": "changed"}),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
}

/// BatchGetSecretValue reads each secret's AWSCURRENT, and each per-secret GetSecretValue
/// decision carries `secretsmanager:VersionStage` = `AWSCURRENT`: a reader allowed only the
/// current version (`StringEquals`, as AWS's own example writes it) reads through a batch, and
/// one denied the current version does not.
#[tokio::test]
async fn batch_reads_are_decided_as_reads_of_the_current_version() {
    let (_t, dir) = example_policies();
    user(
        &dir,
        "current-only",
        r#"{"Effect":"Allow","Action":"secretsmanager:BatchGetSecretValue","Resource":"*"},
           {"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*",
            "Condition":{"StringEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}}"#,
    );
    user(
        &dir,
        "no-current",
        r#"{"Effect":"Allow","Action":["secretsmanager:BatchGetSecretValue","secretsmanager:GetSecretValue"],"Resource":"*"},
           {"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*",
            "Condition":{"StringEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}}"#,
    );
    let s = start(&dir);
    create(&s, "b-db", "batch-value", serde_json::json!([]));
    let batch = serde_json::json!({"SecretIdList": ["b-db"]});
    let (k, sk) = key_for(&s, &dir, HOME, "current-only");
    let r = ok(sm(&s, (&k, &sk), "BatchGetSecretValue", &batch));
    assert_eq!(r["SecretValues"][0]["SecretString"], "batch-value", "{r}");
    let (k, sk) = key_for(&s, &dir, HOME, "no-current");
    let r = ok(sm(&s, (&k, &sk), "BatchGetSecretValue", &batch));
    assert_eq!(r["SecretValues"].as_array().map(Vec::len), Some(0), "{r}");
    assert_eq!(r["Errors"][0]["ErrorCode"], "AccessDeniedException", "{r}");
}
