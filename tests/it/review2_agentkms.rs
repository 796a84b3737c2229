//! KMS condition keys and the caching agent under attack: each test is a request that must be
//! refused next to its positive control (the caller who must still succeed).

use std::path::Path;

use serde_json::{json, Value};

use crate::agent_exec::{Agent, TOKEN};
use crate::common::{
    example_policies, key_for, write, RawResponse, Signing, TestServer, ACCOUNT, MARKER,
};

const HOME: &str = ACCOUNT;

/// A user of the home account whose inline policy is `statements`.
fn user_with(dir: &Path, name: &str, statements: &Value) {
    write(
        dir,
        &format!("accounts/{HOME}/users/{name}.json"),
        &json!({
            "UserName": name,
            "InlinePolicies": {"p": {"Version": "2012-10-17", "Statement": statements}}
        })
        .to_string(),
    );
}

fn kms_as(s: &TestServer, who: &(String, String), op: &str, body: &Value) -> RawResponse {
    s.call_signed(
        &format!("TrentService.{op}"),
        &body.to_string(),
        Signing {
            akid: who.0.clone(),
            secret: who.1.clone(),
            service: "kms".into(),
            ..Signing::default()
        },
    )
}

fn ok(r: RawResponse) -> Value {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn refused(r: &RawResponse, what: &str) {
    assert_eq!(
        r.error_type(),
        "AccessDeniedException",
        "{what}: {}",
        r.body
    );
}

/// A customer managed key of the home account with the default key policy (delegating to
/// the account's identity policies); its key id.
fn new_key(s: &TestServer) -> String {
    ok(s.call("TrentService.CreateKey", "{}"))["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Allow every KMS action, except what `deny` (statements) refuses.
fn kms_admin_except(deny: Value) -> Value {
    let mut v = vec![json!({"Effect": "Allow", "Action": "kms:*", "Resource": "*"})];
    v.extend(deny.as_array().cloned().unwrap_or_default());
    Value::Array(v)
}

/// AWS's documented guard on key deletion: a Deny on
/// `kms:ScheduleKeyDeletionPendingWindowInDays` below 30 days. The condition key carries the
/// request's waiting period, or its default (30) when the request gives none.
#[tokio::test]
async fn a_deny_on_a_short_deletion_waiting_period_refuses_it() {
    let (_t, dir) = example_policies();
    user_with(
        &dir,
        "key-admin",
        &kms_admin_except(json!([{
            "Effect": "Deny", "Action": "kms:ScheduleKeyDeletion", "Resource": "*",
            "Condition": {"NumericLessThan": {"kms:ScheduleKeyDeletionPendingWindowInDays": "30"}}
        }])),
    );
    let s = TestServer::start_with_policies(&dir);
    let admin = key_for(&s, &dir, HOME, "key-admin");
    let key = new_key(&s);
    let r = kms_as(
        &s,
        &admin,
        "ScheduleKeyDeletion",
        &json!({"KeyId": key, "PendingWindowInDays": 7}),
    );
    refused(&r, "a 7-day window");
    let meta = ok(s.call(
        "TrentService.DescribeKey",
        &json!({"KeyId": key}).to_string(),
    ));
    assert_eq!(meta["KeyMetadata"]["KeyState"], "Enabled");
    // Positive controls: 30 days given, and the default.
    ok(kms_as(
        &s,
        &admin,
        "ScheduleKeyDeletion",
        &json!({"KeyId": key, "PendingWindowInDays": 30}),
    ));
    let other = new_key(&s);
    ok(kms_as(
        &s,
        &admin,
        "ScheduleKeyDeletion",
        &json!({"KeyId": other}),
    ));
}

/// `kms:BypassPolicyLockoutSafetyCheck` carries the request's flag (false when omitted): a
/// Deny on `true` refuses CreateKey and PutKeyPolicy that skip the lockout check.
#[tokio::test]
async fn a_deny_on_bypassing_the_lockout_check_refuses_the_bypass() {
    let (_t, dir) = example_policies();
    user_with(
        &dir,
        "key-admin",
        &kms_admin_except(json!([{
            "Effect": "Deny", "Action": ["kms:CreateKey", "kms:PutKeyPolicy"], "Resource": "*",
            "Condition": {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}}
        }])),
    );
    let s = TestServer::start_with_policies(&dir);
    let admin = key_for(&s, &dir, HOME, "key-admin");
    // A policy that leaves the key to someone else only.
    let elsewhere = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
        "Action": "kms:*", "Resource": "*"}]})
    .to_string();
    let r = kms_as(
        &s,
        &admin,
        "CreateKey",
        &json!({"Policy": elsewhere, "BypassPolicyLockoutSafetyCheck": true}),
    );
    refused(&r, "CreateKey with the bypass");
    let key = new_key(&s);
    let r = kms_as(
        &s,
        &admin,
        "PutKeyPolicy",
        &json!({"KeyId": key, "PolicyName": "default", "Policy": elsewhere,
                "BypassPolicyLockoutSafetyCheck": true}),
    );
    refused(&r, "PutKeyPolicy with the bypass");
    let p = ok(s.call(
        "TrentService.GetKeyPolicy",
        &json!({"KeyId": key, "PolicyName": "default"}).to_string(),
    ));
    assert!(
        !p["Policy"].as_str().unwrap().contains("444455556666"),
        "{p}"
    );
    // Positive controls: the same calls without the bypass (the flag false, or omitted).
    let keep = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{HOME}:root")},
        "Action": "kms:*", "Resource": "*"}]})
    .to_string();
    ok(kms_as(&s, &admin, "CreateKey", &json!({"Policy": keep})));
    ok(kms_as(
        &s,
        &admin,
        "PutKeyPolicy",
        &json!({"KeyId": key, "PolicyName": "default", "Policy": keep,
                "BypassPolicyLockoutSafetyCheck": false}),
    ));
}

/// `kms:RotationPeriodInDays` carries EnableKeyRotation's period (365 when omitted).
#[tokio::test]
async fn a_deny_on_a_short_rotation_period_refuses_it() {
    let (_t, dir) = example_policies();
    user_with(
        &dir,
        "key-admin",
        &kms_admin_except(json!([{
            "Effect": "Deny", "Action": "kms:EnableKeyRotation", "Resource": "*",
            "Condition": {"NumericLessThan": {"kms:RotationPeriodInDays": "180"}}
        }])),
    );
    let s = TestServer::start_with_policies(&dir);
    let admin = key_for(&s, &dir, HOME, "key-admin");
    let key = new_key(&s);
    let r = kms_as(
        &s,
        &admin,
        "EnableKeyRotation",
        &json!({"KeyId": key, "RotationPeriodInDays": 90}),
    );
    refused(&r, "a 90-day period");
    ok(kms_as(
        &s,
        &admin,
        "EnableKeyRotation",
        &json!({"KeyId": key}),
    ));
    ok(kms_as(
        &s,
        &admin,
        "EnableKeyRotation",
        &json!({"KeyId": key, "RotationPeriodInDays": 200}),
    ));
}

/// `kms:ResourceAliases` holds the aliases of the key an operation acts on: a Deny on the
/// production aliases protects the keys they name.
#[tokio::test]
async fn a_deny_on_a_keys_aliases_protects_the_key() {
    let (_t, dir) = example_policies();
    user_with(
        &dir,
        "key-admin",
        &kms_admin_except(json!([{
            "Effect": "Deny", "Action": ["kms:DisableKey", "kms:ScheduleKeyDeletion"],
            "Resource": "*",
            "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/prod-*"}}
        }])),
    );
    let s = TestServer::start_with_policies(&dir);
    let admin = key_for(&s, &dir, HOME, "key-admin");
    let prod = new_key(&s);
    let dev = new_key(&s);
    for (alias, key) in [("alias/prod-db", &prod), ("alias/dev-db", &dev)] {
        ok(s.call(
            "TrentService.CreateAlias",
            &json!({"AliasName": alias, "TargetKeyId": key}).to_string(),
        ));
    }
    refused(
        &kms_as(&s, &admin, "DisableKey", &json!({"KeyId": prod})),
        "DisableKey on the production key",
    );
    refused(
        &kms_as(&s, &admin, "ScheduleKeyDeletion", &json!({"KeyId": prod})),
        "ScheduleKeyDeletion on the production key",
    );
    ok(kms_as(&s, &admin, "DisableKey", &json!({"KeyId": dev})));
}

/// The key's properties as condition keys: `kms:KeyOrigin`, `kms:KeySpec`, `kms:KeyUsage` and
/// `kms:MultiRegion` carry CreateKey's request (with their defaults) and, on an operation on a
/// key, the key's own. An organization that requires imported key material refuses
/// `AWS_KMS`-origin keys; a statement that allows only symmetric keys still allows them.
#[tokio::test]
async fn a_deny_on_a_key_property_applies_to_create_key_and_to_the_key() {
    let (_t, dir) = example_policies();
    user_with(
        &dir,
        "byok-only",
        &kms_admin_except(json!([{
            "Effect": "Deny", "Action": ["kms:CreateKey", "kms:DisableKey"], "Resource": "*",
            "Condition": {"StringEquals": {"kms:KeyOrigin": "AWS_KMS"}}
        }])),
    );
    user_with(
        &dir,
        "symmetric-only",
        &json!([{
            "Effect": "Allow", "Action": ["kms:CreateKey", "kms:DisableKey"], "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT",
                                 "kms:KeyUsage": "ENCRYPT_DECRYPT"},
                "Bool": {"kms:MultiRegion": "false"}
            }
        }]),
    );
    let s = TestServer::start_with_policies(&dir);
    let admin = key_for(&s, &dir, HOME, "byok-only");
    refused(&kms_as(&s, &admin, "CreateKey", &json!({})), "CreateKey");
    let key = new_key(&s);
    refused(
        &kms_as(&s, &admin, "DisableKey", &json!({"KeyId": key})),
        "DisableKey",
    );
    // Positive control: allowed only for symmetric, single-Region encryption keys.
    let sym = key_for(&s, &dir, HOME, "symmetric-only");
    ok(kms_as(&s, &sym, "CreateKey", &json!({})));
    ok(kms_as(
        &s,
        &sym,
        "CreateKey",
        &json!({"KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT"}),
    ));
    ok(kms_as(&s, &sym, "DisableKey", &json!({"KeyId": key})));
}

/// `kms:RequestAlias` holds the alias a DescribeKey names the key by.
#[tokio::test]
async fn a_deny_on_the_requested_alias_refuses_describe_key_by_that_alias() {
    let (_t, dir) = example_policies();
    user_with(
        &dir,
        "reader",
        &kms_admin_except(json!([{
            "Effect": "Deny", "Action": "kms:DescribeKey", "Resource": "*",
            "Condition": {"StringLike": {"kms:RequestAlias": "alias/secret-*"}}
        }])),
    );
    let s = TestServer::start_with_policies(&dir);
    let reader = key_for(&s, &dir, HOME, "reader");
    let key = new_key(&s);
    ok(s.call(
        "TrentService.CreateAlias",
        &json!({"AliasName": "alias/secret-key", "TargetKeyId": key}).to_string(),
    ));
    for named in [
        "alias/secret-key".to_owned(),
        format!("arn:aws:kms:us-east-1:{HOME}:alias/secret-key"),
    ] {
        refused(
            &kms_as(&s, &reader, "DescribeKey", &json!({"KeyId": named})),
            &named,
        );
    }
    ok(kms_as(&s, &reader, "DescribeKey", &json!({"KeyId": key})));
}

/// The agent's SSRF token is accepted whole, in a configured header only (the header's name
/// in any case): not empty, not a prefix or an extension of it, not in the query string, not
/// in another header.
#[tokio::test]
async fn the_agent_accepts_the_ssrf_token_whole_in_a_configured_header_only() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    server
        .client()
        .create_secret()
        .name("app/token")
        .secret_string(MARKER)
        .send()
        .await
        .unwrap();
    let agent = Agent::start(&server, dir.path(), "");
    let q = "/secretsmanager/get?secretId=app%2Ftoken";
    let prefix = &TOKEN[..TOKEN.len() - 1];
    let longer = format!("{TOKEN}x");
    let bearer = format!("Bearer {TOKEN}");
    for (what, path, headers) in [
        (
            "an empty token",
            q.to_owned(),
            vec![("X-Aws-Parameters-Secrets-Token", "")],
        ),
        (
            "a prefix",
            q.to_owned(),
            vec![("X-Aws-Parameters-Secrets-Token", prefix)],
        ),
        (
            "an extension",
            q.to_owned(),
            vec![("X-Aws-Parameters-Secrets-Token", longer.as_str())],
        ),
        (
            "another header",
            q.to_owned(),
            vec![("Authorization", bearer.as_str())],
        ),
        (
            "a longer header name",
            q.to_owned(),
            vec![("X-Aws-Parameters-Secrets-Token-2", TOKEN)],
        ),
        (
            "the query string",
            format!("{q}&X-Aws-Parameters-Secrets-Token={TOKEN}"),
            vec![],
        ),
        (
            "the path form without a header",
            "/v1/app%2Ftoken".to_owned(),
            vec![],
        ),
    ] {
        let r = agent.get(&path, &headers);
        assert_eq!(r.status, 403, "{what}: {}", r.body);
        assert!(!r.body.contains(MARKER), "{what}");
    }
    // Positive control: the header's name in another case.
    let r = agent.get(q, &[("x-aws-parameters-secrets-token", TOKEN)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["SecretString"], MARKER);
}

/// An entry past its TTL is not served when Strongroom answers an error that is not
/// transient: a secret deleted since is a 400, not the old value.
#[tokio::test]
async fn the_agent_serves_no_expired_entry_after_a_client_error() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    server
        .client()
        .create_secret()
        .name("app/gone")
        .secret_string(MARKER)
        .send()
        .await
        .unwrap();
    let agent = Agent::start(&server, dir.path(), "ttl_seconds = 1\n");
    let q = "/secretsmanager/get?secretId=app/gone";
    assert_eq!(agent.value(q), MARKER, "served while the secret exists");
    server
        .client()
        .delete_secret()
        .secret_id("app/gone")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let r = agent.get_with_token(q);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_type(), "ResourceNotFoundException");
    assert!(!r.body.contains(MARKER));
}

/// The path form takes the secret id as the path spells it: a `+` (valid in a secret name)
/// stays a `+`.
#[tokio::test]
async fn the_agent_path_form_keeps_a_plus_in_the_secret_name() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    server
        .client()
        .create_secret()
        .name("app/a+b")
        .secret_string(MARKER)
        .send()
        .await
        .unwrap();
    let agent = Agent::start(&server, dir.path(), "");
    assert_eq!(agent.value("/v1/app/a+b"), MARKER);
    assert_eq!(agent.value("/v1/app%2Fa%2Bb"), MARKER);
    assert_eq!(
        agent.value("/secretsmanager/get?secretId=app%2Fa%2Bb"),
        MARKER
    );
}

/// `kms:ResourceAliases` in the decisions Secrets Manager makes on the caller's behalf: a
/// Deny on `kms:Decrypt` for keys with a production alias refuses reading a secret under such
/// a key, and a Deny on `kms:GenerateDataKey` refuses sealing a value under one named by id.
#[tokio::test]
async fn a_deny_on_a_keys_aliases_applies_to_reads_and_writes_through_secrets_manager() {
    let (_t, dir) = example_policies();
    user_with(
        &dir,
        "app",
        &json!([
            {"Effect": "Allow", "Action": ["secretsmanager:*", "kms:*"], "Resource": "*"},
            {"Effect": "Deny", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
             "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/prod-*"}}}
        ]),
    );
    let s = TestServer::start_with_policies(&dir);
    let app = key_for(&s, &dir, HOME, "app");
    let prod = new_key(&s);
    let dev = new_key(&s);
    for (alias, key) in [("alias/prod-db", &prod), ("alias/dev-db", &dev)] {
        ok(s.call(
            "TrentService.CreateAlias",
            &json!({"AliasName": alias, "TargetKeyId": key}).to_string(),
        ));
    }
    for (name, key) in [("db/prod", &prod), ("db/dev", &dev)] {
        ok(s.call(
            "secretsmanager.CreateSecret",
            &json!({"Name": name, "SecretString": MARKER, "KmsKeyId": key,
                    "ClientRequestToken": uuid::Uuid::new_v4().to_string()})
            .to_string(),
        ));
    }
    let sm = |op: &str, body: Value| {
        s.call_signed(
            &format!("secretsmanager.{op}"),
            &body.to_string(),
            Signing {
                akid: app.0.clone(),
                secret: app.1.clone(),
                ..Signing::default()
            },
        )
    };
    let r = sm("GetSecretValue", json!({"SecretId": "db/prod"}));
    refused(&r, "a read under the production key");
    assert!(!r.body.contains(MARKER));
    let r = sm(
        "CreateSecret",
        json!({"Name": "db/prod2", "SecretString": "v", "KmsKeyId": prod,
               "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
    );
    refused(&r, "a write under the production key named by id");
    // BatchGetSecretValue's per-secret decisions too: the production secret is an error
    // entry, the other one is read.
    let b = ok(sm(
        "BatchGetSecretValue",
        json!({"SecretIdList": ["db/prod", "db/dev"]}),
    ));
    let values = b["SecretValues"].as_array().unwrap();
    assert_eq!(values.len(), 1, "{b}");
    assert_eq!(values[0]["Name"], "db/dev", "{b}");
    assert_eq!(b["Errors"][0]["SecretId"], "db/prod", "{b}");
    // Positive controls: the same under the other key.
    let v = ok(sm("GetSecretValue", json!({"SecretId": "db/dev"})));
    assert_eq!(v["SecretString"], MARKER);
    ok(sm(
        "CreateSecret",
        json!({"Name": "db/dev2", "SecretString": "v", "KmsKeyId": dev,
               "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
    ));
}

/// Secrets Manager's decisions on a key carry `kms:EncryptionContextKeys` (`SecretARN`,
/// `SecretVersionId`), as its requests to KMS do: the usual guard refusing KMS requests
/// without an encryption context (`Null` … `true`) lets reads through, and a Deny on those
/// context keys refuses them.
#[tokio::test]
async fn key_decisions_carry_the_encryption_context_keys() {
    let (_t, dir) = example_policies();
    user_with(
        &dir,
        "guarded",
        &json!([
            {"Effect": "Allow", "Action": ["secretsmanager:*", "kms:*"], "Resource": "*"},
            {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*",
             "Condition": {"Null": {"kms:EncryptionContextKeys": "true"}}}
        ]),
    );
    user_with(
        &dir,
        "fenced",
        &json!([
            {"Effect": "Allow", "Action": ["secretsmanager:*", "kms:*"], "Resource": "*"},
            {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*",
             "Condition": {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "SecretVersionId"}}}
        ]),
    );
    let s = TestServer::start_with_policies(&dir);
    let key = new_key(&s);
    ok(s.call(
        "secretsmanager.CreateSecret",
        &json!({"Name": "ctx/db", "SecretString": MARKER, "KmsKeyId": key,
                "ClientRequestToken": uuid::Uuid::new_v4().to_string()})
        .to_string(),
    ));
    let get = |user: &str| {
        let k = key_for(&s, &dir, HOME, user);
        s.call_signed(
            "secretsmanager.GetSecretValue",
            &json!({"SecretId": "ctx/db"}).to_string(),
            Signing {
                akid: k.0,
                secret: k.1,
                ..Signing::default()
            },
        )
    };
    let v = ok(get("guarded"));
    assert_eq!(v["SecretString"], MARKER);
    refused(&get("fenced"), "a read whose context has SecretVersionId");
}
