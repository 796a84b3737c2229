//! Attacker review of replication: the peer-facing StrongroomApplyReplicaChange (who may
//! apply what, to which secret), the KMS decisions of ReplicateSecretToRegions, promotion,
//! and what each side of a cross-account replica may do. Each attack has its positive
//! control.

use std::path::{Path, PathBuf};

use aws_sdk_secretsmanager as sm;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::{
    call_as, code, key_for, user_allowing, write, RawResponse, Signing, TestServer, ACCOUNT, AKID,
    SECRET,
};

const APPLY: &str = "secretsmanager.StrongroomApplyReplicaChange";
const OTHER_ACCOUNT: &str = "444455556666";
const V1: &str = "11111111-1111-4111-8111-111111111111";
const V2: &str = "22222222-2222-4222-8222-222222222222";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The peer's principals: `replicator` (the action on `*`), `app-replicator` (narrowed to
/// primaries `app/*` of us-east-1 by `strongroom:PrimaryArn`), and `xrepl`, a replication
/// principal of another account.
fn peer_policies() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policies");
    write(
        &p,
        &format!("accounts/{ACCOUNT}/account.json"),
        &format!(r#"{{"AccountId":"{ACCOUNT}"}}"#),
    );
    write(
        &p,
        &format!("accounts/{ACCOUNT}/users/replicator.json"),
        r#"{"UserName":"replicator","InlinePolicies":{"apply":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"strongroom:ApplyReplicaChange","Resource":"*"}]}}}"#,
    );
    write(
        &p,
        &format!("accounts/{ACCOUNT}/users/app-replicator.json"),
        r#"{"UserName":"app-replicator","InlinePolicies":{"apply":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"strongroom:ApplyReplicaChange","Resource":"*",
             "Condition":{"StringLike":{"strongroom:PrimaryArn":"arn:aws:secretsmanager:us-east-1:*:secret:app/*"}}}]}}}"#,
    );
    write(
        &p,
        &format!("accounts/{OTHER_ACCOUNT}/account.json"),
        &format!(r#"{{"AccountId":"{OTHER_ACCOUNT}"}}"#),
    );
    write(
        &p,
        &format!("accounts/{OTHER_ACCOUNT}/users/xrepl.json"),
        r#"{"UserName":"xrepl","InlinePolicies":{"apply":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"strongroom:ApplyReplicaChange","Resource":"*"}]}}}"#,
    );
    (dir, p)
}

fn start_server(regions: &[&str], policies: &Path) -> TestServer {
    TestServer::start_configured(None, regions, None, Some(policies.to_path_buf()))
}

fn signed(k: &(String, String), region: &str) -> Signing {
    Signing {
        akid: k.0.clone(),
        secret: k.1.clone(),
        region: region.into(),
        ..Signing::default()
    }
}

fn root_in(region: &str) -> Signing {
    Signing {
        region: region.into(),
        ..Signing::default()
    }
}

/// A change of primary `arn` shipping one version `vid` with `value` under AWSCURRENT.
fn change(arn: &str, seq: i64, name: &str, vid: &str, value: &str) -> Value {
    json!({
        "PrimaryArn": arn,
        "Seq": seq,
        "Secret": {
            "Name": name, "LastChangedAt": seq, "TagList": false, "Tags": [],
            "Stages": {"AWSCURRENT": vid},
            "Versions": [{"VersionId": vid, "CreatedAt": seq, "ValueKind": "S", "Value": b64(value)}]
        }
    })
}

fn apply(s: &TestServer, body: &Value, as_: Signing) -> RawResponse {
    s.call_signed(APPLY, &body.to_string(), as_)
}

async fn value_of(c: &sm::Client, id: &str) -> Option<String> {
    match c.get_secret_value().secret_id(id).send().await {
        Ok(v) => v.secret_string().map(str::to_owned),
        Err(e) => {
            assert_eq!(code(&e), "ResourceNotFoundException", "{e:?}");
            None
        }
    }
}

/// A narrowed replication principal (`strongroom:PrimaryArn` = us-east-1 `app/*`) names an
/// allowed primary ARN but ships another secret's name, with ForceOverwrite: the peer must
/// not let it replace the standalone `prod/db` (outside what it may replicate).
#[tokio::test]
async fn a_narrowed_replication_principal_cannot_overwrite_another_name() {
    let (_t, policies) = peer_policies();
    let peer = start_server(&["eu-west-1"], &policies);
    let root = peer.client_in("eu-west-1", AKID, SECRET);
    root.create_secret()
        .name("prod/db")
        .secret_string("precious")
        .send()
        .await
        .unwrap();
    let narrow = key_for(&peer, &policies, ACCOUNT, "app-replicator");
    let allowed_arn = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/x-AbCdEf");

    // Positive control: its own name under an allowed ARN applies.
    let ok = change(
        &allowed_arn.replace("app/x-", "app/y-"),
        1,
        "app/y",
        V1,
        "mine",
    );
    let r = apply(&peer, &ok, signed(&narrow, "eu-west-1"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(value_of(&root, "app/y").await.as_deref(), Some("mine"));

    // Attack: the allowed ARN, the name prod/db, ForceOverwrite.
    let mut attack = change(&allowed_arn, 1, "prod/db", V2, "forged");
    attack["ForceOverwrite"] = json!(true);
    let r = apply(&peer, &attack, signed(&narrow, "eu-west-1"));
    assert_eq!(
        value_of(&root, "prod/db").await.as_deref(),
        Some("precious"),
        "prod/db was replaced through a change of app/x (answer {}: {})",
        r.status,
        r.body
    );
    assert_ne!(r.status, 200, "{}", r.body);
}

/// The same mismatch without ForceOverwrite: a secret named outside `app/*` must not be
/// created by a principal narrowed to `app/*`.
#[tokio::test]
async fn a_narrowed_replication_principal_cannot_create_another_name() {
    let (_t, policies) = peer_policies();
    let peer = start_server(&["eu-west-1"], &policies);
    let root = peer.client_in("eu-west-1", AKID, SECRET);
    let narrow = key_for(&peer, &policies, ACCOUNT, "app-replicator");
    let allowed_arn = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/z-AbCdEf");
    let r = apply(
        &peer,
        &change(&allowed_arn, 1, "prod/new", V1, "planted"),
        signed(&narrow, "eu-west-1"),
    );
    assert_eq!(
        value_of(&root, "prod/new").await,
        None,
        "a secret named prod/new was planted by a principal narrowed to app/* (answer {}: {})",
        r.status,
        r.body
    );
    // Positive control: the matching name is applied.
    let r = apply(
        &peer,
        &change(&allowed_arn, 1, "app/z", V1, "planted"),
        signed(&narrow, "eu-west-1"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The replication principal "can read nothing on the peer" (README): it must not be able to
/// ship a resource policy granting itself GetSecretValue on a replica whose value it never
/// had (values left out as already held) and then read that value.
#[tokio::test]
async fn a_replication_principal_cannot_grant_itself_read_on_a_replica() {
    let (_t, policies) = peer_policies();
    let peer = start_server(&["eu-west-1"], &policies);
    let root = peer.client_in("eu-west-1", AKID, SECRET);
    let replicator = key_for(&peer, &policies, ACCOUNT, "replicator");
    let narrow = key_for(&peer, &policies, ACCOUNT, "app-replicator");
    let arn = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/victim-AbCdEf");
    // The primary's delivery (through the principal configured on the primary).
    let r = apply(
        &peer,
        &change(&arn, 1, "app/victim", V1, "the-real-value"),
        signed(&replicator, "eu-west-1"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        value_of(&root, "app/victim").await.as_deref(),
        Some("the-real-value")
    );
    let nc = peer.client_in("eu-west-1", &narrow.0, &narrow.1);
    let e = nc
        .get_secret_value()
        .secret_id("app/victim")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    // Attack by the narrowed principal, which never saw the value: the value left out as
    // held, and a resource policy letting it read.
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/app-replicator")},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]});
    let attack = json!({
        "PrimaryArn": arn, "Seq": 2,
        "Secret": {"Name": "app/victim", "LastChangedAt": 2, "TagList": false, "Tags": [],
            "ResourcePolicy": policy.to_string(),
            "Stages": {"AWSCURRENT": V1},
            "Versions": [{"VersionId": V1, "CreatedAt": 1, "ValueKind": "S", "ValueOmitted": true}]}
    });
    let r = apply(&peer, &attack, signed(&narrow, "eu-west-1"));
    let read = nc.get_secret_value().secret_id("app/victim").send().await;
    assert!(
        read.is_err(),
        "the replication principal read the replica's value {:?} after shipping a policy (apply answered {}: {})",
        read.ok().and_then(|v| v.secret_string().map(str::to_owned)),
        r.status,
        r.body
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    // Positive control: a primary's policy granting someone else is carried to the replica.
    let mut carried = attack.clone();
    carried["Seq"] = json!(3);
    carried["Secret"]["ResourcePolicy"] = json!(json!({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/auditor")},
        "Action": "secretsmanager:DescribeSecret", "Resource": "*"}]})
    .to_string());
    let r = apply(&peer, &carried, signed(&narrow, "eu-west-1"));
    assert_eq!(r.status, 200, "{}", r.body);
    let d = root
        .describe_secret()
        .secret_id("app/victim")
        .send()
        .await
        .unwrap();
    assert_eq!(d.name(), Some("app/victim"));
    assert!(nc
        .get_secret_value()
        .secret_id("app/victim")
        .send()
        .await
        .is_err());
}

/// A peer that also serves a secret's primary region: a change claiming that a local primary
/// is a remote one must not rewrite (or delete) the local replica of that primary.
#[tokio::test]
async fn a_change_cannot_claim_a_primary_region_this_server_serves() {
    let (_t, policies) = peer_policies();
    let peer = start_server(&["eu-west-1", "eu-west-2"], &policies);
    let eu2 = peer.client_in("eu-west-2", AKID, SECRET);
    let eu1 = peer.client_in("eu-west-1", AKID, SECRET);
    let replicator = key_for(&peer, &policies, ACCOUNT, "replicator");
    let local_arn = eu2
        .create_secret()
        .name("local")
        .secret_string("real")
        .add_replica_regions(
            sm::types::ReplicaRegionType::builder()
                .region("eu-west-1")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    assert_eq!(value_of(&eu1, "local").await.as_deref(), Some("real"));

    // Positive control: a change of a primary in a region this server does not serve.
    let remote = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:remote-AbCdEf");
    let r = apply(
        &peer,
        &change(&remote, 1, "remote", V1, "r"),
        signed(&replicator, "eu-west-1"),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Attack: the local primary's own ARN, as if it were a peer's.
    let r = apply(
        &peer,
        &change(&local_arn, 1, "local", V2, "forged"),
        signed(&replicator, "eu-west-1"),
    );
    let seen = value_of(&eu1, "local").await;
    assert_eq!(
        seen.as_deref(),
        Some("real"),
        "the local replica of eu-west-2's primary was rewritten by a peer change (answer {}: {})",
        r.status,
        r.body
    );
    let mut delete = json!({"PrimaryArn": local_arn, "Seq": 2, "Delete": true});
    delete["ForceOverwrite"] = json!(false);
    let r = apply(&peer, &delete, signed(&replicator, "eu-west-1"));
    assert_eq!(
        value_of(&eu1, "local").await.as_deref(),
        Some("real"),
        "the local replica was deleted by a peer change (answer {}: {})",
        r.status,
        r.body
    );
}

/// Replays, out-of-order changes, another primary region for the same replica, a change or
/// deletion aimed at a standalone secret, another account's principal and a primary in the
/// peer's own region: each refused or ignored, the replica unchanged.
#[tokio::test]
async fn forged_peer_changes_are_refused_or_ignored() {
    let (_t, policies) = peer_policies();
    let peer = start_server(&["eu-west-1"], &policies);
    let root = peer.client_in("eu-west-1", AKID, SECRET);
    let replicator = key_for(&peer, &policies, ACCOUNT, "replicator");
    let as_repl = || signed(&replicator, "eu-west-1");
    let arn = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/ord-AbCdEf");
    let r = apply(&peer, &change(&arn, 5, "app/ord", V1, "five"), as_repl());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["Applied"], true);
    // An older change, arriving late: acknowledged, not applied.
    let r = apply(&peer, &change(&arn, 3, "app/ord", V2, "three"), as_repl());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["Applied"], false, "{}", r.body);
    assert_eq!(value_of(&root, "app/ord").await.as_deref(), Some("five"));
    // The same replica ARN claimed by a primary of another region (with or without
    // ForceOverwrite, as a change or a deletion): refused.
    let other = arn.replace(":us-east-1:", ":us-west-2:");
    let mut forced = change(&other, 9, "app/ord", V2, "hijack");
    let r = apply(&peer, &forced, as_repl());
    assert_eq!(r.error_type(), "InvalidRequestException", "{}", r.body);
    forced["ForceOverwrite"] = json!(true);
    let r = apply(&peer, &forced, as_repl());
    assert_eq!(r.error_type(), "InvalidRequestException", "{}", r.body);
    let r = apply(
        &peer,
        &json!({"PrimaryArn": other, "Seq": 10, "Delete": true, "ForceOverwrite": true}),
        as_repl(),
    );
    assert_eq!(r.error_type(), "InvalidRequestException", "{}", r.body);
    assert_eq!(value_of(&root, "app/ord").await.as_deref(), Some("five"));
    // A standalone secret of the peer, named by its own ARN as a replica's: refused without
    // ForceOverwrite, and never deleted by a deletion (even with ForceOverwrite).
    let own = root
        .create_secret()
        .name("standalone")
        .secret_string("mine")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let as_primary = own.replace(":eu-west-1:", ":us-east-1:");
    let r = apply(
        &peer,
        &change(&as_primary, 1, "standalone", V2, "x"),
        as_repl(),
    );
    assert_eq!(r.error_type(), "InvalidRequestException", "{}", r.body);
    let r = apply(
        &peer,
        &json!({"PrimaryArn": as_primary, "Seq": 2, "Delete": true, "ForceOverwrite": true}),
        as_repl(),
    );
    assert_eq!(r.error_type(), "InvalidRequestException", "{}", r.body);
    assert_eq!(value_of(&root, "standalone").await.as_deref(), Some("mine"));
    // Another account's replication principal: refused for this account's secrets.
    let xrepl = key_for(&peer, &policies, OTHER_ACCOUNT, "xrepl");
    let r = apply(
        &peer,
        &change(&arn, 50, "app/ord", V2, "x-acct"),
        signed(&xrepl, "eu-west-1"),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    // A primary "in" the peer's own region.
    let here = arn.replace(":us-east-1:", ":eu-west-1:");
    let r = apply(&peer, &change(&here, 51, "app/ord", V2, "here"), as_repl());
    assert_eq!(r.error_type(), "InvalidParameterException", "{}", r.body);
    assert_eq!(value_of(&root, "app/ord").await.as_deref(), Some("five"));
    // The root of the peer's account is not refused (positive control of the path).
    let r = apply(
        &peer,
        &change(&arn, 60, "app/ord", V2, "sixty"),
        root_in("eu-west-1"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(value_of(&root, "app/ord").await.as_deref(), Some("sixty"));
}

/// Put `policy` as `key`'s key policy (root, in `region`).
fn put_key_policy(s: &TestServer, region: &str, key: &str, policy: &Value) {
    let r = s.call_signed(
        "TrentService.PutKeyPolicy",
        &json!({"KeyId": key, "PolicyName": "default", "Policy": policy.to_string()}).to_string(),
        root_in(region),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

fn create_key(s: &TestServer, region: &str) -> String {
    let r = s.call_signed(
        "TrentService.CreateKey",
        r#"{"Description":"replica key"}"#,
        root_in(region),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["KeyMetadata"]["Arn"].as_str().unwrap().to_owned()
}

/// A key policy delegating to IAM, plus `extra` statements.
fn key_policy(extra: Value) -> Value {
    let mut st = vec![json!({"Sid": "iam", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
        "Action": "kms:*", "Resource": "*"})];
    if let Value::Array(more) = extra {
        st.extend(more);
    }
    json!({"Version": "2012-10-17", "Statement": st})
}

/// AWS: "To encrypt the replicated secret with a KMS key other than aws/secretsmanager, you
/// need kms:GenerateDataKey and kms:Encrypt to the key." A key policy denying the caller
/// kms:Encrypt must refuse the replication.
#[tokio::test]
async fn replicating_under_a_key_needs_kms_encrypt_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    user_allowing(&policies, ACCOUNT, "dev", &["secretsmanager:*", "kms:*"]);
    let s = start_server(&["us-east-1", "eu-west-1"], &policies);
    let root = s.client_in("us-east-1", AKID, SECRET);
    let eu1 = s.client_in("eu-west-1", AKID, SECRET);
    let no_encrypt = create_key(&s, "eu-west-1");
    put_key_policy(
        &s,
        "eu-west-1",
        &no_encrypt,
        &key_policy(json!([{"Sid": "noenc", "Effect": "Deny",
            "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/dev")},
            "Action": "kms:Encrypt", "Resource": "*"}])),
    );
    let open = create_key(&s, "eu-west-1");
    for n in ["enc-a", "enc-b"] {
        root.create_secret()
            .name(n)
            .secret_string("v")
            .send()
            .await
            .unwrap();
    }
    let dev = key_for(&s, &policies, ACCOUNT, "dev");
    let replicate = |name: &str, key: &str| {
        call_as(
            &s,
            &dev.0,
            &dev.1,
            "secretsmanager.ReplicateSecretToRegions",
            &json!({"SecretId": name, "AddReplicaRegions": [{"Region": "eu-west-1", "KmsKeyId": key}]}),
        )
    };
    // Positive control: a key the caller may use.
    let r = replicate("enc-a", &open);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(value_of(&eu1, "enc-a").await.as_deref(), Some("v"));
    // Attack: kms:Encrypt denied by the key policy.
    let r = replicate("enc-b", &no_encrypt);
    assert_eq!(
        value_of(&eu1, "enc-b").await,
        None,
        "replicated under a key that denies the caller kms:Encrypt (answer {}: {})",
        r.status,
        r.body
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
}

/// The replica region's key is decided for the secret it will seal: the replica (its ARN in
/// that region), not the primary. A key policy denying the caller the key for eu-west-1's
/// `prod/*` secrets must refuse replicating `prod/db` into eu-west-1 under it.
#[tokio::test]
async fn a_replica_keys_decision_names_the_replicas_arn() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    user_allowing(&policies, ACCOUNT, "dev", &["secretsmanager:*", "kms:*"]);
    let s = start_server(&["us-east-1", "eu-west-1"], &policies);
    let root = s.client_in("us-east-1", AKID, SECRET);
    let eu1 = s.client_in("eu-west-1", AKID, SECRET);
    let key = create_key(&s, "eu-west-1");
    put_key_policy(
        &s,
        "eu-west-1",
        &key,
        &key_policy(json!([{"Sid": "noprod", "Effect": "Deny",
            "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/dev")},
            "Action": ["kms:GenerateDataKey", "kms:Encrypt"], "Resource": "*",
            "Condition": {"ArnLike": {"kms:EncryptionContext:SecretARN":
                format!("arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:prod/*")}}}])),
    );
    for n in ["prod/db", "dev/db"] {
        root.create_secret()
            .name(n)
            .secret_string("v")
            .send()
            .await
            .unwrap();
    }
    let dev = key_for(&s, &policies, ACCOUNT, "dev");
    let replicate = |name: &str| {
        call_as(
            &s,
            &dev.0,
            &dev.1,
            "secretsmanager.ReplicateSecretToRegions",
            &json!({"SecretId": name, "AddReplicaRegions": [{"Region": "eu-west-1", "KmsKeyId": key}]}),
        )
    };
    // Control of the key policy: dev writing a value of eu-west-1's prod/other under the
    // key (the context names that eu-west-1 ARN) is refused.
    eu1.create_secret()
        .name("prod/other")
        .secret_string("x")
        .kms_key_id(&key)
        .send()
        .await
        .unwrap();
    let r = s.call_signed(
        "secretsmanager.PutSecretValue",
        &json!({"SecretId": "prod/other", "SecretString": "y",
            "ClientRequestToken": uuid::Uuid::new_v4().to_string()})
        .to_string(),
        signed(&dev, "eu-west-1"),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    // Positive control: dev/db is not covered by the deny.
    let r = replicate("dev/db");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(value_of(&eu1, "dev/db").await.as_deref(), Some("v"));
    let r = replicate("prod/db");
    assert_eq!(
        value_of(&eu1, "prod/db").await,
        None,
        "eu-west-1's prod/db was sealed under a key whose policy denies it to the caller (answer {}: {})",
        r.status,
        r.body
    );
}

/// Reading through a replica: its resource policy and tags are the primary's, so a Deny
/// added on the primary (resource policy, or a tag a Deny is conditioned on) reaches the
/// replica at once; the reader is refused in both regions, the root still reads.
#[tokio::test]
async fn a_deny_added_on_the_primary_reaches_its_replica() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    write(
        &policies,
        &format!("accounts/{ACCOUNT}/users/reader.json"),
        r#"{"UserName":"reader","InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["secretsmanager:GetSecretValue","secretsmanager:DescribeSecret","kms:Decrypt"],"Resource":"*"},
            {"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*",
             "Condition":{"StringEquals":{"aws:ResourceTag/class":"restricted"}}}]}}}"#,
    );
    write(
        &policies,
        &format!("accounts/{ACCOUNT}/account.json"),
        &format!(r#"{{"AccountId":"{ACCOUNT}"}}"#),
    );
    let s = start_server(&["us-east-1", "eu-west-1"], &policies);
    let root = s.client_in("us-east-1", AKID, SECRET);
    let eu1 = s.client_in("eu-west-1", AKID, SECRET);
    let reader = key_for(&s, &policies, ACCOUNT, "reader");
    let r_us = s.client_in("us-east-1", &reader.0, &reader.1);
    let r_eu = s.client_in("eu-west-1", &reader.0, &reader.1);
    for n in ["by-policy", "by-tag"] {
        root.create_secret()
            .name(n)
            .secret_string("v")
            .add_replica_regions(
                sm::types::ReplicaRegionType::builder()
                    .region("eu-west-1")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        // Positive control: readable in both regions.
        assert_eq!(value_of(&r_us, n).await.as_deref(), Some("v"));
        assert_eq!(value_of(&r_eu, n).await.as_deref(), Some("v"));
    }
    let deny = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/reader")},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]});
    root.put_resource_policy()
        .secret_id("by-policy")
        .resource_policy(deny.to_string())
        .send()
        .await
        .unwrap();
    root.tag_resource()
        .secret_id("by-tag")
        .tags(
            sm::types::Tag::builder()
                .key("class")
                .value("restricted")
                .build(),
        )
        .send()
        .await
        .unwrap();
    for n in ["by-policy", "by-tag"] {
        for c in [&r_us, &r_eu] {
            let e = c.get_secret_value().secret_id(n).send().await.unwrap_err();
            assert_eq!(code(&e), "AccessDeniedException", "{n}: {e:?}");
        }
        assert_eq!(value_of(&eu1, n).await.as_deref(), Some("v"));
    }
}

/// StopReplicationToReplica is decided on the replica's ARN, in its region: a caller allowed
/// it on the primary's ARN only cannot promote the replica (nor reach it from the primary's
/// region); a caller allowed on the replica promotes it; the promoted secret then follows
/// nothing, and replicating again without ForceOverwriteReplicaSecret leaves it as it is.
#[tokio::test]
async fn promotion_is_decided_on_the_replica_and_is_not_recaptured() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    write(
        &policies,
        &format!("accounts/{ACCOUNT}/account.json"),
        &format!(r#"{{"AccountId":"{ACCOUNT}"}}"#),
    );
    for (user, region) in [("east", "us-east-1"), ("west", "eu-west-1")] {
        write(
            &policies,
            &format!("accounts/{ACCOUNT}/users/{user}.json"),
            &format!(
                r#"{{"UserName":"{user}","InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":"secretsmanager:StopReplicationToReplica",
                  "Resource":"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:*"}}]}}}}}}"#
            ),
        );
    }
    let s = start_server(&["us-east-1", "eu-west-1"], &policies);
    let root = s.client_in("us-east-1", AKID, SECRET);
    let eu1 = s.client_in("eu-west-1", AKID, SECRET);
    let arn = root
        .create_secret()
        .name("promo")
        .secret_string("v1")
        .add_replica_regions(
            sm::types::ReplicaRegionType::builder()
                .region("eu-west-1")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let replica_arn = arn.replace(":us-east-1:", ":eu-west-1:");
    let stop = |k: &(String, String), region: &str, id: &str| {
        s.call_signed(
            "secretsmanager.StopReplicationToReplica",
            &json!({ "SecretId": id }).to_string(),
            signed(k, region),
        )
    };
    let east = key_for(&s, &policies, ACCOUNT, "east");
    let west = key_for(&s, &policies, ACCOUNT, "west");
    let r = stop(&east, "eu-west-1", "promo");
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    // From the primary's region, the replica's ARN names nothing there.
    let r = stop(&east, "us-east-1", &replica_arn);
    assert_ne!(r.status, 200, "{}", r.body);
    let r = stop(&east, "us-east-1", "promo");
    assert_eq!(r.error_type(), "InvalidRequestException", "{}", r.body);
    let d = root
        .describe_secret()
        .secret_id("promo")
        .send()
        .await
        .unwrap();
    assert_eq!(d.replication_status().len(), 1, "{d:?}");
    // Positive control.
    let r = stop(&west, "eu-west-1", "promo");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ARN"], replica_arn.as_str());
    eu1.put_secret_value()
        .secret_id("promo")
        .secret_string("west-own")
        .send()
        .await
        .unwrap();
    root.put_secret_value()
        .secret_id("promo")
        .secret_string("v2")
        .send()
        .await
        .unwrap();
    assert_eq!(value_of(&eu1, "promo").await.as_deref(), Some("west-own"));
    let out = root
        .replicate_secret_to_regions()
        .secret_id("promo")
        .add_replica_regions(
            sm::types::ReplicaRegionType::builder()
                .region("eu-west-1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.replication_status()[0].status(),
        Some(&sm::types::StatusType::Failed)
    );
    assert_eq!(value_of(&eu1, "promo").await.as_deref(), Some("west-own"));
    // The promoted secret is writable on its own, so it is no replica any more.
    let d = eu1
        .describe_secret()
        .secret_id("promo")
        .send()
        .await
        .unwrap();
    assert_eq!(d.primary_region(), None, "{d:?}");
}

/// `op` (a Secrets Manager operation, or `TrentService.*`) signed as `k` in `region`.
fn call_in(
    s: &TestServer,
    k: &(String, String),
    region: &str,
    op: &str,
    body: &Value,
) -> RawResponse {
    let target = if op.starts_with("TrentService.") {
        op.to_owned()
    } else {
        format!("secretsmanager.{op}")
    };
    s.call_signed(&target, &body.to_string(), signed(k, region))
}

/// [`call_in`], which must succeed; its answer.
fn ok_in(s: &TestServer, k: &(String, String), region: &str, op: &str, body: &Value) -> Value {
    let res = call_in(s, k, region, op, body);
    assert_eq!(res.status, 200, "{op}: {}", res.body);
    res.json()
}

/// In `region`: the primary `name` (account `p`, value `value`) and account `r`'s replica
/// `replica_name` of it under a key of `r`'s whose policy lets the primary's account (and
/// the accounts `also_encrypt`) encrypt with it, not yet associated. Their ARNs, and the
/// key's.
fn cross_account_pair(
    s: &TestServer,
    (p, r): (&(String, String), &(String, String)),
    region: &str,
    (name, value, replica_name): (&str, &str, &str),
    also_encrypt: &[&str],
) -> (String, String, String) {
    let primary = ok_in(
        s,
        p,
        region,
        "CreateSecret",
        &json!({"Name": name, "SecretString": value,
            "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let rkey = ok_in(s, r, region, "TrentService.CreateKey", &json!({}))["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut statements = vec![
        json!({"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{OTHER_ACCOUNT}:root")},
            "Action": "kms:*", "Resource": "*"}),
        json!({"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
            "Action": "kms:Encrypt", "Resource": "*"}),
    ];
    for a in also_encrypt {
        statements.push(
            json!({"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{a}:root")},
            "Action": "kms:Encrypt", "Resource": "*"}),
        );
    }
    let kp = json!({"Version": "2012-10-17", "Statement": statements});
    ok_in(
        s,
        r,
        region,
        "TrentService.PutKeyPolicy",
        &json!({"KeyId": rkey, "Policy": kp.to_string()}),
    );
    let replica = ok_in(
        s,
        r,
        region,
        "CreateSecret",
        &json!({"Name": replica_name, "KmsKeyId": rkey, "CrossAccountPrimaryARN": primary}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    (primary, replica, rkey)
}

/// `p` associates its `primary` with the cross-account `replica` (in `region`).
fn associate(s: &TestServer, p: &(String, String), region: &str, primary: &str, replica: &str) {
    ok_in(
        s,
        p,
        region,
        "AssociateCrossAccountReplica",
        &json!({"SecretId": primary, "CrossAccountReplicaARN": replica,
            "ReplicaRestriction": "NoRestriction"}),
    );
}

/// Cross-account: the primary's account gets nothing on the replica but acceptance (no read,
/// no describe, no promotion, no policy); a third account cannot associate its own primary
/// with it; the replica's account cannot write it before promotion (the writes not covered
/// by cross_account_replica.rs), and reads it (positive control).
#[test]
fn cross_account_replica_parties_get_only_their_part() {
    const OUTSIDER: &str = "777788889999";
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    user_allowing(&policies, ACCOUNT, "padmin", &["secretsmanager:*", "kms:*"]);
    user_allowing(
        &policies,
        OTHER_ACCOUNT,
        "radmin",
        &["secretsmanager:*", "kms:*"],
    );
    user_allowing(
        &policies,
        OUTSIDER,
        "oadmin",
        &["secretsmanager:*", "kms:*"],
    );
    let s = start_server(&["us-east-1", "eu-west-1"], &policies);
    let p = key_for(&s, &policies, ACCOUNT, "padmin");
    let r = key_for(&s, &policies, OTHER_ACCOUNT, "radmin");
    let o = key_for(&s, &policies, OUTSIDER, "oadmin");
    let call = |k: &(String, String), op: &str, body: Value| call_in(&s, k, "us-east-1", op, &body);
    let ok = |k: &(String, String), op: &str, body: Value| ok_in(&s, k, "us-east-1", op, &body);
    let (primary, replica, rkey) = cross_account_pair(
        &s,
        (&p, &r),
        "us-east-1",
        ("xp", "primary-value", "xr"),
        &[OUTSIDER],
    );
    // A third account's primary cannot take the replica (it names another primary), before
    // or after the association.
    let outsider_primary = ok(
        &o,
        "CreateSecret",
        json!({"Name": "op", "SecretString": "outsider-value",
            "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let steal = json!({"SecretId": outsider_primary, "CrossAccountReplicaARN": replica,
        "ReplicaRestriction": "NoRestriction"});
    let res = call(&o, "AssociateCrossAccountReplica", steal.clone());
    assert_ne!(res.status, 200, "{}", res.body);
    let assoc = json!({"SecretId": primary, "CrossAccountReplicaARN": replica,
        "ReplicaRestriction": "NoRestriction"});
    ok(&p, "AssociateCrossAccountReplica", assoc);
    let res = call(&o, "AssociateCrossAccountReplica", steal);
    assert_ne!(res.status, 200, "{}", res.body);
    // Positive control: the replica's account reads the primary's value.
    let read = ok(&r, "GetSecretValue", json!({"SecretId": replica}));
    assert_eq!(read["SecretString"], "primary-value");
    // The primary's account: nothing but acceptance.
    for (op, body) in [
        ("GetSecretValue", json!({"SecretId": replica})),
        ("DescribeSecret", json!({"SecretId": replica})),
        ("GetResourcePolicy", json!({"SecretId": replica})),
        ("StopReplicationToReplica", json!({"SecretId": replica})),
        (
            "PutResourcePolicy",
            json!({"SecretId": replica, "ResourcePolicy": "{\"Version\":\"2012-10-17\",\"Statement\":[]}"}),
        ),
        (
            "UpdateSecret",
            json!({"SecretId": replica, "KmsKeyId": rkey}),
        ),
    ] {
        let res = call(&p, op, body);
        assert_eq!(
            res.error_type(),
            "AccessDeniedException",
            "{op}: {}",
            res.body
        );
    }
    // The replica's account: no write before promotion.
    for (op, body) in [
        (
            "PutResourcePolicy",
            json!({"SecretId": replica, "ResourcePolicy": format!(
                "{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\"Principal\":{{\"AWS\":\"arn:aws:iam::{OUTSIDER}:root\"}},\"Action\":\"secretsmanager:GetSecretValue\",\"Resource\":\"*\"}}]}}")}),
        ),
        (
            "TagResource",
            json!({"SecretId": replica, "Tags": [{"Key": "k", "Value": "v"}]}),
        ),
        (
            "UntagResource",
            json!({"SecretId": replica, "TagKeys": ["k"]}),
        ),
        ("RestoreSecret", json!({"SecretId": replica})),
        ("CancelRotateSecret", json!({"SecretId": replica})),
        (
            "ReplicateSecretToRegions",
            json!({"SecretId": replica, "AddReplicaRegions": [{"Region": "eu-west-1"}]}),
        ),
        (
            "RemoveRegionsFromReplication",
            json!({"SecretId": replica, "RemoveReplicaRegions": ["eu-west-1"]}),
        ),
        (
            "AssociateCrossAccountReplica",
            json!({"SecretId": replica, "CrossAccountReplicaARN": primary}),
        ),
    ] {
        let res = call(&r, op, body);
        assert_eq!(
            res.error_type(),
            "InvalidParameterException",
            "{op}: {}",
            res.body
        );
    }
    let pol = ok(&r, "GetResourcePolicy", json!({"SecretId": replica}));
    assert!(
        pol["ResourcePolicy"]
            .as_str()
            .unwrap_or_default()
            .contains("AcceptCrossAccountReplication"),
        "{pol}"
    );
    // The outsider reads nothing of either secret.
    for id in [&primary, &replica] {
        let res = call(&o, "GetSecretValue", json!({ "SecretId": id }));
        assert_eq!(res.error_type(), "AccessDeniedException", "{}", res.body);
    }
}

/// ForceOverwriteReplicaSecret replaces a secret holding the name in the replica region, but
/// never one that is itself replicated: that includes a primary associated with a
/// cross-account replica (which DeleteSecret refuses to delete until it is disassociated).
#[test]
fn force_overwrite_spares_a_primary_with_a_cross_account_replica() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    user_allowing(&policies, ACCOUNT, "padmin", &["secretsmanager:*", "kms:*"]);
    user_allowing(
        &policies,
        OTHER_ACCOUNT,
        "radmin",
        &["secretsmanager:*", "kms:*"],
    );
    let s = start_server(&["us-east-1", "eu-west-1"], &policies);
    let p = key_for(&s, &policies, ACCOUNT, "padmin");
    let r = key_for(&s, &policies, OTHER_ACCOUNT, "radmin");
    let call = |k: &(String, String), region: &str, op: &str, body: Value| {
        call_in(&s, k, region, op, &body)
    };
    let ok =
        |k: &(String, String), region: &str, op: &str, body: Value| ok_in(&s, k, region, op, &body);
    let eu = "eu-west-1";
    // In eu-west-1: the primary `shared`, associated with account B's replica.
    let (target, replica, _) =
        cross_account_pair(&s, (&p, &r), eu, ("shared", "eu-value", "b-copy"), &[]);
    associate(&s, &p, eu, &target, &replica);
    // DeleteSecret refuses it (the guard the overwrite must respect).
    let res = call(
        &p,
        eu,
        "DeleteSecret",
        json!({"SecretId": "shared", "ForceDeleteWithoutRecovery": true}),
    );
    assert_eq!(
        res.error_type(),
        "InvalidParameterException",
        "{}",
        res.body
    );
    // Positive control: a plain secret of the same kind is overwritten.
    ok(
        &p,
        eu,
        "CreateSecret",
        json!({"Name": "plain", "SecretString": "eu-plain",
            "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
    );
    for n in ["plain", "shared"] {
        ok(
            &p,
            "us-east-1",
            "CreateSecret",
            json!({"Name": n, "SecretString": "us-value",
                "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
        );
    }
    let force = |name: &str| {
        ok(
            &p,
            "us-east-1",
            "ReplicateSecretToRegions",
            json!({"SecretId": name, "AddReplicaRegions": [{"Region": eu}],
                "ForceOverwriteReplicaSecret": true}),
        )
    };
    let out = force("plain");
    assert_eq!(out["ReplicationStatus"][0]["Status"], "InSync", "{out}");
    // Attack: the overwrite of the associated primary.
    let out = force("shared");
    let still = call(&p, eu, "DescribeSecret", json!({"SecretId": target}));
    assert_eq!(
        still.status, 200,
        "the associated primary was deleted by ForceOverwriteReplicaSecret (replication answered {out}); its replica: {}",
        ok(&r, eu, "DescribeSecret", json!({"SecretId": replica}))["CrossAccountPrimary"]
    );
    assert_eq!(out["ReplicationStatus"][0]["Status"], "Failed", "{out}");
    assert_eq!(
        still.json()["CrossAccountReplicas"][0]["ReplicaSecretARN"],
        replica.as_str()
    );
}

/// The peer's side of the same rule: a delivery with ForceOverwrite must not replace a
/// primary of the peer's region that is associated with a cross-account replica.
#[tokio::test]
async fn a_forced_peer_change_spares_a_primary_with_a_cross_account_replica() {
    let (_t, policies) = peer_policies();
    user_allowing(&policies, ACCOUNT, "padmin", &["secretsmanager:*", "kms:*"]);
    user_allowing(
        &policies,
        OTHER_ACCOUNT,
        "radmin",
        &["secretsmanager:*", "kms:*"],
    );
    let peer = start_server(&["eu-west-1"], &policies);
    let replicator = key_for(&peer, &policies, ACCOUNT, "replicator");
    let p = key_for(&peer, &policies, ACCOUNT, "padmin");
    let r = key_for(&peer, &policies, OTHER_ACCOUNT, "radmin");
    let eu = "eu-west-1";
    let ok = |k: &(String, String), op: &str, body: Value| ok_in(&peer, k, eu, op, &body);
    let (target, replica, _) =
        cross_account_pair(&peer, (&p, &r), eu, ("shared", "eu-value", "b-copy"), &[]);
    associate(&peer, &p, eu, &target, &replica);
    // Positive control: a plain secret is replaced by a forced delivery.
    ok(
        &p,
        "CreateSecret",
        json!({"Name": "plain", "SecretString": "eu-plain",
            "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
    );
    let mut plain = change(
        &format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:plain-AbCdEf"),
        1,
        "plain",
        V1,
        "from-primary",
    );
    plain["ForceOverwrite"] = json!(true);
    let res = apply(&peer, &plain, signed(&replicator, eu));
    assert_eq!(res.status, 200, "{}", res.body);
    // Attack.
    let mut shared = change(
        &format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:shared-AbCdEf"),
        1,
        "shared",
        V1,
        "from-primary",
    );
    shared["ForceOverwrite"] = json!(true);
    let res = apply(&peer, &shared, signed(&replicator, eu));
    let still = peer.call_signed(
        "secretsmanager.DescribeSecret",
        &json!({ "SecretId": target }).to_string(),
        signed(&p, eu),
    );
    assert_eq!(
        still.status, 200,
        "the associated primary was replaced by a forced peer change (apply answered {}: {})",
        res.status, res.body
    );
}

/// CreateSecret's key decision must carry the new
/// secret's ARN as `kms:EncryptionContext:SecretARN`, as PutSecretValue's does: a key policy
/// denying the caller the key for `prod/*` secrets refuses both.
#[tokio::test]
async fn create_secret_key_decision_names_the_new_secrets_arn() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    user_allowing(&policies, ACCOUNT, "dev", &["secretsmanager:*", "kms:*"]);
    let s = start_server(&["us-east-1"], &policies);
    let key = create_key(&s, "us-east-1");
    put_key_policy(
        &s,
        "us-east-1",
        &key,
        &key_policy(json!([{"Sid": "noprod", "Effect": "Deny",
            "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/dev")},
            "Action": ["kms:GenerateDataKey", "kms:Encrypt"], "Resource": "*",
            "Condition": {"ArnLike": {"kms:EncryptionContext:SecretARN":
                format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/*")}}}])),
    );
    let dev = key_for(&s, &policies, ACCOUNT, "dev");
    let create = |name: &str| {
        call_as(
            &s,
            &dev.0,
            &dev.1,
            "secretsmanager.CreateSecret",
            &json!({"Name": name, "SecretString": "x", "KmsKeyId": key,
                "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
        )
    };
    // Positive control.
    let r = create("dev/a");
    assert_eq!(r.status, 200, "{}", r.body);
    // PutSecretValue on a prod/* secret under the key is refused (the condition works).
    s.client()
        .create_secret()
        .name("prod/a")
        .secret_string("x")
        .kms_key_id(&key)
        .send()
        .await
        .unwrap();
    let r = call_as(
        &s,
        &dev.0,
        &dev.1,
        "secretsmanager.PutSecretValue",
        &json!({"SecretId": "prod/a", "SecretString": "y",
            "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let r = create("prod/b");
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
}
