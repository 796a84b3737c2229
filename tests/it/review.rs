//! A second attacker's pass over authorization: each test is a request that must be refused,
//! next to a positive control (the caller who must still succeed).

use std::path::Path;

use crate::common::{
    call_as, example_policies, key_for, user_allowing, write, RawResponse, Signing, TestServer,
};

const HOME: &str = "111122223333";
const OTHER: &str = "444455556666";

fn start(policies: &Path) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::common::config_in(dir.path(), None);
    cfg.account_id = HOME.into();
    cfg.policies = Some(policies.to_path_buf());
    TestServer::launch_config(cfg, dir)
}

fn ok(r: RawResponse) -> serde_json::Value {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// A customer managed key of the home account with `policy` (the account's default policy
/// when `None`); returns its ARN.
fn key_with_policy(s: &TestServer, policy: Option<String>) -> String {
    let mut body = serde_json::json!({"Description": "k"});
    if let Some(p) = policy {
        body["Policy"] = p.into();
    }
    let v = ok(s.call("TrentService.CreateKey", &body.to_string()));
    v["KeyMetadata"]["Arn"].as_str().unwrap().to_owned()
}

/// A key policy: the home account administers, `OTHER` may use the key.
fn shared_key_policy() -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "home", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{HOME}:root")},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "other", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{OTHER}:root")},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"], "Resource": "*"}
        ]
    })
    .to_string()
}

/// UpdateSecret's `KmsKeyId` from another account: the key named is the one the secret's
/// account resolves and will use, so it must be the key the KMS check decided on. A key of
/// the owner's account whose policy does not share it with the caller is refused, by ARN
/// and by bare key id alike.
#[tokio::test]
async fn cross_account_update_secret_cannot_move_to_an_unshared_key() {
    let (_t, dir) = example_policies();
    user_allowing(&dir, OTHER, "outsider", &["secretsmanager:*", "kms:*"]);
    let s = start(&dir);
    let shared = key_with_policy(&s, Some(shared_key_policy()));
    let shared2 = key_with_policy(&s, Some(shared_key_policy()));
    let private = key_with_policy(&s, None);
    let private_id = private.rsplit('/').next().unwrap().to_owned();
    let arn = ok(s.call(
        "secretsmanager.CreateSecret",
        &serde_json::json!({
            "Name": "shared", "SecretString": "home-value", "KmsKeyId": shared,
            "ClientRequestToken": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        })
        .to_string(),
    ))["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(s.call(
        "secretsmanager.PutResourcePolicy",
        &serde_json::json!({
            "SecretId": "shared",
            "ResourcePolicy": serde_json::json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{OTHER}:root")},
                "Action": "secretsmanager:*", "Resource": "*"}]}).to_string()
        })
        .to_string(),
    ));
    let (k, sk) = key_for(&s, &dir, OTHER, "outsider");
    for named in [private.as_str(), private_id.as_str()] {
        let r = call_as(
            &s,
            &k,
            &sk,
            "secretsmanager.UpdateSecret",
            &serde_json::json!({"SecretId": arn, "KmsKeyId": named}),
        );
        assert_eq!(
            r.error_type(),
            "AccessDeniedException",
            "{named}: {}",
            r.body
        );
    }
    let d = ok(s.call(
        "secretsmanager.DescribeSecret",
        &serde_json::json!({"SecretId": "shared"}).to_string(),
    ));
    assert_eq!(d["KmsKeyId"], shared.as_str(), "{d}");
    // Positive control: a key of the owner that is shared with the caller.
    ok(call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.UpdateSecret",
        &serde_json::json!({"SecretId": arn, "KmsKeyId": shared2}),
    ));
    let v = ok(call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.GetSecretValue",
        &serde_json::json!({"SecretId": arn}),
    ));
    assert_eq!(v["SecretString"], "home-value");
}

/// CreateSecret retried on an existing name with an existing version's token compares the
/// value sent with the stored one: a caller allowed only to create secrets must not get
/// that comparison (a guess confirmed is a value read), nor decrypt with the secret's key.
#[tokio::test]
async fn create_secret_retry_is_no_value_oracle_for_other_callers() {
    let (_t, dir) = example_policies();
    user_allowing(
        &dir,
        HOME,
        "creator",
        &["secretsmanager:CreateSecret", "kms:*"],
    );
    let s = start(&dir);
    const TOKEN: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    let create = |value: &str| serde_json::json!({"Name": "pin", "SecretString": value, "ClientRequestToken": TOKEN});
    let arn = ok(s.call("secretsmanager.CreateSecret", &create("4711").to_string()))["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let (k, sk) = key_for(&s, &dir, HOME, "creator");
    let right = call_as(&s, &k, &sk, "secretsmanager.CreateSecret", &create("4711"));
    let wrong = call_as(&s, &k, &sk, "secretsmanager.CreateSecret", &create("0000"));
    assert_eq!(
        right.error_type(),
        "ResourceExistsException",
        "{}",
        right.body
    );
    assert_eq!(
        wrong.error_type(),
        "ResourceExistsException",
        "{}",
        wrong.body
    );
    assert_eq!(right.json()["Message"], wrong.json()["Message"]);
    assert!(!right.body.contains(&arn), "{}", right.body);
    // Positive control: the owner's retry of its own creation is idempotent.
    let again = ok(s.call("secretsmanager.CreateSecret", &create("4711").to_string()));
    assert_eq!(again["ARN"], arn.as_str());
    assert_eq!(again["VersionId"], TOKEN);
}

/// The operation a JSON request runs is named by `X-Amz-Target`: a signature that does not
/// cover it would let whoever holds a signed request (a log, a proxy) run another operation
/// with it (a read turned into a force delete). Every SDK signs it; unsigned, it is refused.
#[tokio::test]
async fn the_operation_header_must_be_signed() {
    let s = TestServer::start();
    ok(s.call(
        "secretsmanager.CreateSecret",
        &serde_json::json!({
            "Name": "kept", "SecretString": "v",
            "ClientRequestToken": "cccccccccccccccccccccccccccccccccccc"
        })
        .to_string(),
    ));
    let body = serde_json::json!({"SecretId": "kept", "ForceDeleteWithoutRecovery": true});
    let signed =
        crate::common::signed_json_without_target(body.to_string().as_bytes(), Signing::default());
    let text = String::from_utf8(signed).unwrap();
    let (line, rest) = text.split_once("\r\n").unwrap();
    let retargeted = format!("{line}\r\nx-amz-target: secretsmanager.DeleteSecret\r\n{rest}");
    let r = s.raw(retargeted.as_bytes());
    assert_eq!(r.error_type(), "InvalidSignatureException", "{}", r.body);
    assert!(r.body.contains("X-Amz-Target"), "{}", r.body);
    // Still there; positive control: the same request signed with its target runs.
    ok(s.call(
        "secretsmanager.DescribeSecret",
        &serde_json::json!({"SecretId": "kept"}).to_string(),
    ));
    ok(s.call("secretsmanager.DeleteSecret", &body.to_string()));
}

/// CreateAlias and DeleteAlias act on two resources, as on AWS: the alias (decided by the
/// caller's identity policies) and the key (with its key policy). A user allowed to manage
/// `alias/app-*` on any key must not create or delete `alias/prod-*`: an alias name others
/// trust (`KmsKeyId: alias/prod-db`) would then point at a key of the attacker's choosing.
#[tokio::test]
async fn alias_operations_are_authorized_on_the_alias_too() {
    let (_t, dir) = example_policies();
    write(
        &dir,
        &format!("accounts/{HOME}/users/aliaser.json"),
        &format!(
            r#"{{"UserName":"aliaser","InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":["kms:CreateAlias","kms:DeleteAlias"],"Resource":[
                  "arn:aws:kms:us-east-1:{HOME}:key/*","arn:aws:kms:us-east-1:{HOME}:alias/app-*"]}}]}}}}}}"#
        ),
    );
    let s = start(&dir);
    let key = key_with_policy(&s, None);
    ok(s.call(
        "TrentService.CreateAlias",
        &serde_json::json!({"AliasName": "alias/prod-x", "TargetKeyId": key}).to_string(),
    ));
    let (k, sk) = key_for(&s, &dir, HOME, "aliaser");
    let as_user = |target: &str, body: serde_json::Value| {
        s.call_signed(
            target,
            &body.to_string(),
            Signing {
                akid: k.clone(),
                secret: sk.clone(),
                service: "kms".into(),
                ..Signing::default()
            },
        )
    };
    let r = as_user(
        "TrentService.CreateAlias",
        serde_json::json!({"AliasName": "alias/prod-db", "TargetKeyId": key}),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    assert!(r.body.contains("alias/prod-db"), "{}", r.body);
    let r = as_user(
        "TrentService.DeleteAlias",
        serde_json::json!({"AliasName": "alias/prod-x"}),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let aliases = ok(s.call("TrentService.ListAliases", "{}"));
    let names: Vec<&str> = aliases["Aliases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["AliasName"].as_str())
        .collect();
    assert!(names.contains(&"alias/prod-x"), "{names:?}");
    assert!(!names.contains(&"alias/prod-db"), "{names:?}");
    // Positive control: the aliases the user may manage.
    ok(as_user(
        "TrentService.CreateAlias",
        serde_json::json!({"AliasName": "alias/app-db", "TargetKeyId": key}),
    ));
    ok(as_user(
        "TrentService.DeleteAlias",
        serde_json::json!({"AliasName": "alias/app-db"}),
    ));
}

/// The AWS managed key `aws/secretsmanager` cannot be disabled, scheduled for deletion,
/// re-policied or re-aliased by anyone, a user allowed `kms:*` included: every secret of the
/// account under the default key depends on it.
#[tokio::test]
async fn the_managed_key_cannot_be_tampered_with() {
    let (_t, dir) = example_policies();
    user_allowing(&dir, HOME, "keyadmin", &["kms:*"]);
    let s = start(&dir);
    ok(s.call(
        "secretsmanager.CreateSecret",
        &serde_json::json!({
            "Name": "under-default", "SecretString": "v",
            "ClientRequestToken": "dddddddddddddddddddddddddddddddddddd"
        })
        .to_string(),
    ));
    let (k, sk) = key_for(&s, &dir, HOME, "keyadmin");
    let as_user = |target: &str, body: serde_json::Value| {
        s.call_signed(
            target,
            &body.to_string(),
            Signing {
                akid: k.clone(),
                secret: sk.clone(),
                service: "kms".into(),
                ..Signing::default()
            },
        )
    };
    // Positive control: the user reads the key's metadata.
    let meta = ok(as_user(
        "TrentService.DescribeKey",
        serde_json::json!({"KeyId": "alias/aws/secretsmanager"}),
    ));
    assert_eq!(meta["KeyMetadata"]["KeyManager"], "AWS", "{meta}");
    let id = meta["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    let own = ok(as_user("TrentService.CreateKey", serde_json::json!({})));
    let own_id = own["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    for (target, body) in [
        ("TrentService.DisableKey", serde_json::json!({"KeyId": id})),
        (
            "TrentService.ScheduleKeyDeletion",
            serde_json::json!({"KeyId": id, "PendingWindowInDays": 7}),
        ),
        (
            "TrentService.PutKeyPolicy",
            serde_json::json!({"KeyId": id, "PolicyName": "default",
                "Policy": shared_key_policy(),
                "BypassPolicyLockoutSafetyCheck": true}),
        ),
        (
            "TrentService.DeleteAlias",
            serde_json::json!({"AliasName": "alias/aws/secretsmanager"}),
        ),
        (
            "TrentService.CreateAlias",
            serde_json::json!({"AliasName": "alias/aws/secretsmanager", "TargetKeyId": own_id}),
        ),
    ] {
        let r = as_user(target, body);
        assert_ne!(r.status, 200, "{target}: {}", r.body);
    }
    let after = ok(as_user(
        "TrentService.DescribeKey",
        serde_json::json!({"KeyId": "alias/aws/secretsmanager"}),
    ));
    assert_eq!(after["KeyMetadata"]["KeyId"], id.as_str());
    assert_eq!(after["KeyMetadata"]["KeyState"], "Enabled");
    let v = ok(s.call(
        "secretsmanager.GetSecretValue",
        &serde_json::json!({"SecretId": "under-default"}).to_string(),
    ));
    assert_eq!(v["SecretString"], "v");
}

const LOOKUP: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents";

fn lookup_as(s: &TestServer, akid: &str, secret: &str) -> RawResponse {
    s.call_signed(
        LOOKUP,
        &serde_json::json!({"MaxResults": 50}).to_string(),
        Signing {
            akid: akid.into(),
            secret: secret.into(),
            service: "cloudtrail".into(),
            ..Signing::default()
        },
    )
}

/// LookupEvents shows an account its own events only, needs `cloudtrail:LookupEvents`, and no
/// record carries a secret value or a ClientRequestToken in clear.
#[tokio::test]
async fn lookup_events_is_scoped_and_carries_no_values() {
    let (_t, dir) = example_policies();
    user_allowing(&dir, HOME, "no-trail", &["secretsmanager:ListSecrets"]);
    user_allowing(&dir, OTHER, "auditor", &["cloudtrail:LookupEvents"]);
    user_allowing(&dir, HOME, "home-auditor", &["cloudtrail:LookupEvents"]);
    let s = start(&dir);
    const TOKEN: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
    ok(s.call(
        "secretsmanager.CreateSecret",
        &serde_json::json!({
            "Name": "audited", "SecretString": "value-never-logged", "ClientRequestToken": TOKEN
        })
        .to_string(),
    ));
    ok(s.call(
        "secretsmanager.GetSecretValue",
        &serde_json::json!({"SecretId": "audited"}).to_string(),
    ));
    let (nk, ns) = key_for(&s, &dir, HOME, "no-trail");
    let r = lookup_as(&s, &nk, &ns);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let (ok_k, ok_s) = key_for(&s, &dir, OTHER, "auditor");
    let theirs = ok(lookup_as(&s, &ok_k, &ok_s));
    let text = theirs.to_string();
    assert!(!text.contains("audited"), "{text}");
    assert!(!text.contains(HOME), "{text}");
    // Positive control: the home account sees its events, without the value or the token.
    let (hk, hs) = key_for(&s, &dir, HOME, "home-auditor");
    let mine = ok(lookup_as(&s, &hk, &hs)).to_string();
    assert!(
        mine.contains("CreateSecret") && mine.contains("GetSecretValue"),
        "{mine}"
    );
    assert!(!mine.contains("value-never-logged"), "{mine}");
    assert!(!mine.contains(TOKEN), "{mine}");
}

/// Condition keys are case-insensitive (`aws:ResourceTag/Team` is `aws:resourcetag/team`),
/// tag keys are not: a second tag `team` next to `Team` would decide what
/// `aws:ResourceTag/Team` holds. A user kept off the `Team` tag by a (case-sensitive)
/// `aws:TagKeys` guardrail, allowed to read `Team=blue` secrets, must not turn a `Team=red`
/// secret readable by adding `team=blue`: keys differing only in case are refused.
#[tokio::test]
async fn tag_keys_differing_only_in_case_cannot_shadow_an_abac_tag() {
    let (_t, dir) = example_policies();
    write(
        &dir,
        &format!("accounts/{HOME}/users/blue.json"),
        r#"{"UserName":"blue","InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*",
             "Condition":{"StringEquals":{"aws:ResourceTag/Team":"blue"}}},
            {"Effect":"Allow","Action":"secretsmanager:TagResource","Resource":"*"},
            {"Effect":"Deny","Action":"secretsmanager:TagResource","Resource":"*",
             "Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["Team"]}}}]}}}"#,
    );
    let s = start(&dir);
    for (name, team, token) in [
        ("red-db", "red", "ffffffffffffffffffffffffffffffffffff"),
        ("blue-db", "blue", "abababababababababababababababababab"),
    ] {
        ok(s.call(
            "secretsmanager.CreateSecret",
            &serde_json::json!({
                "Name": name, "SecretString": format!("{team}-value"),
                "ClientRequestToken": token, "Tags": [{"Key": "Team", "Value": team}]
            })
            .to_string(),
        ));
    }
    let (k, sk) = key_for(&s, &dir, HOME, "blue");
    let r = call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.TagResource",
        &serde_json::json!({"SecretId": "red-db", "Tags": [{"Key": "team", "Value": "blue"}]}),
    );
    assert_eq!(r.error_type(), "InvalidParameterException", "{}", r.body);
    let r = call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.GetSecretValue",
        &serde_json::json!({"SecretId": "red-db"}),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    assert!(!r.body.contains("red-value"));
    // Two keys differing in case in one request are refused too.
    let r = s.call(
        "secretsmanager.CreateSecret",
        &serde_json::json!({
            "Name": "twice", "Tags": [{"Key": "Team", "Value": "red"}, {"Key": "TEAM", "Value": "blue"}]
        })
        .to_string(),
    );
    assert_eq!(r.error_type(), "InvalidParameterException", "{}", r.body);
    // Positive controls: another tag key, a tag's value replaced under its own key, and the
    // secret the user may read.
    ok(call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.TagResource",
        &serde_json::json!({"SecretId": "red-db", "Tags": [{"Key": "owner", "Value": "x"}]}),
    ));
    ok(s.call(
        "secretsmanager.TagResource",
        &serde_json::json!({"SecretId": "red-db", "Tags": [{"Key": "Team", "Value": "red"}]})
            .to_string(),
    ));
    let v = ok(call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.GetSecretValue",
        &serde_json::json!({"SecretId": "blue-db"}),
    ));
    assert_eq!(v["SecretString"], "blue-value");
}

/// Poll `f` until it holds (the server reloads the principals files on its own schedule).
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A user removed from the files and declared again is a new user (as a user deleted and
/// re-created on AWS, whose access keys went with the old one): the old user's access keys,
/// still held by whoever had them, must not come back to life with the new user's rights.
#[tokio::test]
async fn a_user_declared_again_does_not_revive_old_access_keys() {
    let (_t, dir) = example_policies();
    user_allowing(&dir, HOME, "leaver", &["secretsmanager:ListSecrets"]);
    let s = start(&dir);
    let list = |k: &str, sk: &str| {
        call_as(
            &s,
            k,
            sk,
            "secretsmanager.ListSecrets",
            &serde_json::json!({}),
        )
        .status
    };
    let (old_k, old_sk) = key_for(&s, &dir, HOME, "leaver");
    assert_eq!(list(&old_k, &old_sk), 200);
    let file = dir.join(format!("accounts/{HOME}/users/leaver.json"));
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    until("the removal is in force", || list(&old_k, &old_sk) != 200);
    // Declared again (the same file), with a marker user to see the reload in force.
    std::fs::write(&file, &text).unwrap();
    user_allowing(&dir, HOME, "marker", &["secretsmanager:ListSecrets"]);
    let (mk, msk) = key_for(&s, &dir, HOME, "marker");
    until("the new files are in force", || list(&mk, &msk) == 200);
    std::thread::sleep(std::time::Duration::from_millis(5200)); // past the key cache
    let r = call_as(
        &s,
        &old_k,
        &old_sk,
        "secretsmanager.ListSecrets",
        &serde_json::json!({}),
    );
    assert_ne!(r.status, 200, "the old key works again: {}", r.body);
    // Positive control: a key made for the user declared again works.
    let (new_k, new_sk) = key_for(&s, &dir, HOME, "leaver");
    assert_eq!(list(&new_k, &new_sk), 200);
}

/// Another account's KMS key cannot be managed from this account, even when its key policy
/// shares it (KMS never allows key management across accounts), by ARN or by bare key id;
/// nor can an alias here point at it.
#[tokio::test]
async fn another_accounts_key_cannot_be_managed_or_aliased() {
    let (_t, dir) = example_policies();
    user_allowing(&dir, OTHER, "kms-admin", &["kms:*"]);
    let s = start(&dir);
    let key = key_with_policy(&s, Some(shared_key_policy()));
    let id = key.rsplit('/').next().unwrap().to_owned();
    let (k, sk) = key_for(&s, &dir, OTHER, "kms-admin");
    let as_other = |target: &str, body: serde_json::Value| {
        s.call_signed(
            target,
            &body.to_string(),
            Signing {
                akid: k.clone(),
                secret: sk.clone(),
                service: "kms".into(),
                ..Signing::default()
            },
        )
    };
    for named in [key.as_str(), id.as_str()] {
        for (target, body) in [
            (
                "TrentService.DisableKey",
                serde_json::json!({"KeyId": named}),
            ),
            (
                "TrentService.ScheduleKeyDeletion",
                serde_json::json!({"KeyId": named, "PendingWindowInDays": 7}),
            ),
            (
                "TrentService.PutKeyPolicy",
                serde_json::json!({"KeyId": named, "PolicyName": "default",
                    "Policy": shared_key_policy(), "BypassPolicyLockoutSafetyCheck": true}),
            ),
            (
                "TrentService.GetKeyPolicy",
                serde_json::json!({"KeyId": named, "PolicyName": "default"}),
            ),
            (
                "TrentService.CreateAlias",
                serde_json::json!({"AliasName": "alias/borrowed", "TargetKeyId": named}),
            ),
        ] {
            let r = as_other(target, body);
            assert_ne!(r.status, 200, "{target} {named}: {}", r.body);
        }
    }
    let meta = ok(s.call(
        "TrentService.DescribeKey",
        &serde_json::json!({"KeyId": key}).to_string(),
    ));
    assert_eq!(meta["KeyMetadata"]["KeyState"], "Enabled");
    // Positive control: the other account manages a key of its own.
    let own = ok(as_other("TrentService.CreateKey", serde_json::json!({})));
    let own_id = own["KeyMetadata"]["KeyId"].as_str().unwrap();
    ok(as_other(
        "TrentService.CreateAlias",
        serde_json::json!({"AliasName": "alias/mine", "TargetKeyId": own_id}),
    ));
    ok(as_other(
        "TrentService.DisableKey",
        serde_json::json!({"KeyId": own_id}),
    ));
}

/// Moving a secret to another key re-encrypts its labelled versions, which decrypts each
/// with the key that sealed it. A caller without `kms:Decrypt` on an old key must not get an
/// old version re-encrypted under a key it may use (label it, move the secret, read it):
/// every key that seals a labelled version is decided.
#[tokio::test]
async fn a_key_move_does_not_launder_a_version_sealed_under_a_key_the_caller_may_not_use() {
    let (_t, dir) = example_policies();
    let s = start(&dir);
    let k0 = key_with_policy(&s, None);
    let k1 = key_with_policy(&s, None);
    let k2 = key_with_policy(&s, None);
    write(
        &dir,
        &format!("accounts/{HOME}/users/operator.json"),
        &format!(
            r#"{{"UserName":"operator","InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}},
                {{"Effect":"Allow","Action":["kms:Decrypt","kms:GenerateDataKey","kms:Encrypt"],
                  "Resource":["{k1}","{k2}"]}}]}}}}}}"#
        ),
    );
    let tokens = [
        "11111111111111111111111111111111aaaa",
        "22222222222222222222222222222222aaaa",
        "33333333333333333333333333333333aaaa",
    ];
    ok(s.call(
        "secretsmanager.CreateSecret",
        &serde_json::json!({"Name": "laundry", "SecretString": "under-k0", "KmsKeyId": k0,
            "ClientRequestToken": tokens[0]})
        .to_string(),
    ));
    for (v, t) in [("second", tokens[1]), ("third", tokens[2])] {
        ok(s.call(
            "secretsmanager.PutSecretValue",
            &serde_json::json!({"SecretId": "laundry", "SecretString": v, "ClientRequestToken": t})
                .to_string(),
        ));
    }
    ok(s.call(
        "secretsmanager.UpdateSecret",
        &serde_json::json!({"SecretId": "laundry", "KmsKeyId": k1}).to_string(),
    ));
    let (k, sk) = key_for(&s, &dir, HOME, "operator");
    let call = |target: &str, body: serde_json::Value| call_as(&s, &k, &sk, target, &body);
    let first = serde_json::json!({"SecretId": "laundry", "VersionId": tokens[0]});
    until("the operator is known", || {
        call(
            "secretsmanager.GetSecretValue",
            serde_json::json!({"SecretId": "laundry"}),
        )
        .status
            == 200
    });
    let r = call("secretsmanager.GetSecretValue", first.clone());
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    // Label the old version, then move the secret to a key the operator may use.
    ok(call(
        "secretsmanager.UpdateSecretVersionStage",
        serde_json::json!({"SecretId": "laundry", "VersionStage": "AWSPENDING",
            "MoveToVersionId": tokens[0]}),
    ));
    let r = call(
        "secretsmanager.UpdateSecret",
        serde_json::json!({"SecretId": "laundry", "KmsKeyId": k2}),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    assert!(r.body.contains("kms:Decrypt"), "{}", r.body);
    let r = call("secretsmanager.GetSecretValue", first);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    assert!(!r.body.contains("under-k0"));
    // Positive control: with the old version unlabelled again, the move is the operator's.
    ok(call(
        "secretsmanager.UpdateSecretVersionStage",
        serde_json::json!({"SecretId": "laundry", "VersionStage": "AWSPENDING",
            "RemoveFromVersionId": tokens[0]}),
    ));
    ok(call(
        "secretsmanager.UpdateSecret",
        serde_json::json!({"SecretId": "laundry", "KmsKeyId": k2}),
    ));
    let v = ok(call(
        "secretsmanager.GetSecretValue",
        serde_json::json!({"SecretId": "laundry"}),
    ));
    assert_eq!(v["SecretString"], "third");
}

/// PutSecretValue with the token of an existing version compares the value sent with the
/// stored one, which decrypts it: a write-only caller (`kms:GenerateDataKey`, no
/// `kms:Decrypt`) must not get that comparison, a guess confirmed being a value read.
#[tokio::test]
async fn a_reused_token_is_no_value_oracle_for_a_write_only_caller() {
    let (_t, dir) = example_policies();
    let s = start(&dir);
    let key = key_with_policy(&s, None);
    write(
        &dir,
        &format!("accounts/{HOME}/users/writer.json"),
        &format!(
            r#"{{"UserName":"writer","InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":["secretsmanager:PutSecretValue","secretsmanager:UpdateSecret"],"Resource":"*"}},
                {{"Effect":"Allow","Action":"kms:GenerateDataKey","Resource":"{key}"}}]}}}}}}"#
        ),
    );
    const TOKEN: &str = "44444444444444444444444444444444aaaa";
    ok(s.call(
        "secretsmanager.CreateSecret",
        &serde_json::json!({"Name": "pin", "SecretString": "4711", "KmsKeyId": key,
            "ClientRequestToken": TOKEN})
        .to_string(),
    ));
    let (k, sk) = key_for(&s, &dir, HOME, "writer");
    let put = |value: &str, token: &str| {
        call_as(
            &s,
            &k,
            &sk,
            "secretsmanager.PutSecretValue",
            &serde_json::json!({"SecretId": "pin", "SecretString": value,
                "ClientRequestToken": token}),
        )
    };
    // Positive control (also: the writer is known to the server): a new version.
    until("the writer is known", || {
        put("1234", "55555555555555555555555555555555aaaa").status == 200
    });
    for guess in ["4711", "0000"] {
        let r = put(guess, TOKEN);
        assert_eq!(
            r.error_type(),
            "AccessDeniedException",
            "{guess}: {}",
            r.body
        );
        assert!(r.body.contains("kms:Decrypt"), "{}", r.body);
        let r = call_as(
            &s,
            &k,
            &sk,
            "secretsmanager.UpdateSecret",
            &serde_json::json!({"SecretId": "pin", "SecretString": guess,
                "ClientRequestToken": TOKEN}),
        );
        assert_eq!(
            r.error_type(),
            "AccessDeniedException",
            "{guess}: {}",
            r.body
        );
    }
    // The owner's retry is idempotent.
    ok(s.call(
        "secretsmanager.PutSecretValue",
        &serde_json::json!({"SecretId": "pin", "SecretString": "4711", "ClientRequestToken": TOKEN})
            .to_string(),
    ));
}
