//! Resource policies, KMS key policies and cross-account access under attack: each test is a
//! request that must be refused next to its positive control (the caller who must still
//! succeed), all through the server (principals directory, SigV4, the secret's and the key's
//! stored policies).

use std::path::Path;

use serde_json::{json, Value};

use crate::common::{
    assume_role, example_policies, key_for, user_allowing, write, RawResponse, Signing, TestServer,
    ACCOUNT,
};

const HOME: &str = ACCOUNT;
const OTHER: &str = "444455556666";
const THIRD: &str = "777788889999";

/// Credentials of a caller: long-term keys, or a session's with its token.
struct Caller {
    akid: String,
    secret: String,
    token: Option<String>,
}

fn user(s: &TestServer, dir: &Path, account: &str, name: &str) -> Caller {
    let (akid, secret) = key_for(s, dir, account, name);
    Caller {
        akid,
        secret,
        token: None,
    }
}

fn session(s: &TestServer, by: &Caller, role: &str, name: &str) -> Caller {
    let (akid, secret, token) = assume_role(s, &by.akid, &by.secret, role, name);
    Caller {
        akid,
        secret,
        token: Some(token),
    }
}

/// A Secrets Manager call as `c`.
fn sm(s: &TestServer, c: &Caller, op: &str, body: &Value) -> RawResponse {
    s.call_signed(
        &format!("secretsmanager.{op}"),
        &body.to_string(),
        Signing {
            akid: c.akid.clone(),
            secret: c.secret.clone(),
            session_token: c.token.clone(),
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

/// A call as the home account's root.
fn home(s: &TestServer, target: &str, body: &Value) -> Value {
    ok(s.call(target, &body.to_string()))
}

fn doc(statements: &Value) -> String {
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

/// A customer managed key of the home account whose policy is the home account's
/// administration statement plus `extra`; its ARN.
fn key(s: &TestServer, extra: &Value) -> String {
    let mut statements = vec![json!({
        "Sid": "Admin", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{HOME}:root")},
        "Action": "kms:*", "Resource": "*"
    })];
    statements.extend(extra.as_array().cloned().unwrap_or_default());
    let v = home(
        s,
        "TrentService.CreateKey",
        &json!({"Description": "k", "Policy": doc(&Value::Array(statements))}),
    );
    v["KeyMetadata"]["Arn"].as_str().unwrap().to_owned()
}

/// A home secret `name` (under `key`, or the managed key) with resource policy `policy`
/// (statements); its ARN.
fn secret(s: &TestServer, name: &str, key: Option<&str>, policy: Option<&Value>) -> String {
    let mut body = json!({
        "Name": name, "SecretString": format!("{name}-value"),
        "ClientRequestToken": uuid::Uuid::new_v4().to_string()
    });
    if let Some(k) = key {
        body["KmsKeyId"] = k.into();
    }
    let arn = home(s, "secretsmanager.CreateSecret", &body)["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    if let Some(p) = policy {
        home(
            s,
            "secretsmanager.PutResourcePolicy",
            &json!({"SecretId": arn, "ResourcePolicy": doc(p)}),
        );
    }
    arn
}

fn read(s: &TestServer, c: &Caller, arn: &str) -> RawResponse {
    sm(s, c, "GetSecretValue", &json!({"SecretId": arn}))
}

fn value(r: RawResponse) -> String {
    ok(r)["SecretString"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A user of `account` with no policy at all.
fn bare_user(dir: &Path, account: &str, name: &str) {
    if !dir
        .join(format!("accounts/{account}/account.json"))
        .exists()
    {
        write(
            dir,
            &format!("accounts/{account}/account.json"),
            &format!(r#"{{"AccountId":"{account}"}}"#),
        );
    }
    write(
        dir,
        &format!("accounts/{account}/users/{name}.json"),
        &format!(r#"{{"UserName":"{name}"}}"#),
    );
}

/// Role `name` of `account`, assumable by `account`'s user `by`, allowing `actions`.
fn role(dir: &Path, account: &str, name: &str, by: &str, actions: &[&str]) {
    let actions = serde_json::to_string(actions).unwrap();
    write(
        dir,
        &format!("accounts/{account}/roles/{name}.json"),
        &format!(
            r#"{{"RoleName":"{name}",
                "AssumeRolePolicyDocument":{{"Version":"2012-10-17","Statement":[
                    {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:user/{by}"}},"Action":"sts:AssumeRole"}}]}},
                "InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                    {{"Effect":"Allow","Action":{actions},"Resource":"*"}}]}}}}}}"#
        ),
    );
}

fn share_with(principal: &str, actions: &Value) -> Value {
    json!([{
        "Effect": "Allow", "Principal": {"AWS": principal},
        "Action": actions, "Resource": "*"
    }])
}

/// Another account reading a shared secret under a key whose policy lets everyone decrypt:
/// the key policy is only the key's side; the caller's own account must allow `kms:Decrypt`
/// too, as it must allow `secretsmanager:GetSecretValue`.
#[tokio::test]
async fn a_cross_account_read_needs_kms_decrypt_in_the_callers_own_policies() {
    let (_t, dir) = example_policies();
    user_allowing(&dir, OTHER, "sm-only", &["secretsmanager:GetSecretValue"]);
    user_allowing(&dir, OTHER, "kms-only", &["kms:Decrypt"]);
    user_allowing(
        &dir,
        OTHER,
        "both",
        &["secretsmanager:GetSecretValue", "kms:Decrypt"],
    );
    let s = TestServer::start_with_policies(&dir);
    let k = key(
        &s,
        &json!([{"Sid": "Everyone", "Effect": "Allow", "Principal": "*",
                 "Action": "kms:Decrypt", "Resource": "*"}]),
    );
    let arn = secret(
        &s,
        "shared/open-key",
        Some(&k),
        Some(&share_with(OTHER, &json!("secretsmanager:GetSecretValue"))),
    );
    let r = read(&s, &user(&s, &dir, OTHER, "sm-only"), &arn);
    refused(&r, "no kms:Decrypt in the caller's account");
    assert!(r.body.contains("kms:Decrypt"), "{}", r.body);
    refused(
        &read(&s, &user(&s, &dir, OTHER, "kms-only"), &arn),
        "no secretsmanager:GetSecretValue in the caller's account",
    );
    assert_eq!(
        value(read(&s, &user(&s, &dir, OTHER, "both"), &arn)),
        "shared/open-key-value"
    );
}

/// A key policy open to `*` but pinned to its own account by `kms:CallerAccount` (the shape
/// of the AWS managed key's policy) serves none of another account's principals, whatever
/// the secret's resource policy and the caller's policies allow; it serves its own account's
/// principals without an identity policy for the key.
#[tokio::test]
async fn a_key_policy_pinned_by_caller_account_serves_only_that_account() {
    let (_t, dir) = example_policies();
    user_allowing(
        &dir,
        OTHER,
        "both",
        &["secretsmanager:GetSecretValue", "kms:*"],
    );
    user_allowing(&dir, HOME, "sm-reader", &["secretsmanager:GetSecretValue"]);
    let s = TestServer::start_with_policies(&dir);
    let k = key(
        &s,
        &json!([{"Sid": "ThisAccount", "Effect": "Allow", "Principal": {"AWS": "*"},
                 "Action": "kms:Decrypt", "Resource": "*",
                 "Condition": {"StringEquals": {"kms:CallerAccount": HOME}}}]),
    );
    let arn = secret(
        &s,
        "shared/pinned-key",
        Some(&k),
        Some(&share_with(OTHER, &json!("secretsmanager:GetSecretValue"))),
    );
    refused(
        &read(&s, &user(&s, &dir, OTHER, "both"), &arn),
        "another account under a key pinned to its own",
    );
    assert_eq!(
        value(read(&s, &user(&s, &dir, HOME, "sm-reader"), &arn)),
        "shared/pinned-key-value"
    );
}

/// A key shared with another account only for the secrets `kms:EncryptionContext:SecretARN`
/// names opens those and no other secret under the same key.
#[tokio::test]
async fn a_key_policy_limited_by_encryption_context_opens_only_the_secrets_it_names() {
    let (_t, dir) = example_policies();
    user_allowing(
        &dir,
        OTHER,
        "both",
        &["secretsmanager:GetSecretValue", "kms:Decrypt"],
    );
    let s = TestServer::start_with_policies(&dir);
    let k = key(
        &s,
        &json!([{"Sid": "TeamA", "Effect": "Allow", "Principal": {"AWS": OTHER},
                 "Action": "kms:Decrypt", "Resource": "*",
                 "Condition": {"StringLike": {"kms:EncryptionContext:SecretARN":
                     format!("arn:aws:secretsmanager:us-east-1:{HOME}:secret:team-a/*")}}}]),
    );
    let grant = share_with(OTHER, &json!("secretsmanager:GetSecretValue"));
    let a = secret(&s, "team-a/db", Some(&k), Some(&grant));
    let b = secret(&s, "team-b/db", Some(&k), Some(&grant));
    let other = user(&s, &dir, OTHER, "both");
    refused(
        &read(&s, &other, &b),
        "a secret the key policy does not name",
    );
    assert_eq!(value(read(&s, &other, &a)), "team-a/db-value");
}

/// A resource policy naming another account's role admits that role's sessions (with the
/// role's own permissions), not the account's users nor another role's sessions.
#[tokio::test]
async fn a_resource_policy_naming_a_role_of_another_account_admits_its_sessions_only() {
    let (_t, dir) = example_policies();
    let rights = ["secretsmanager:GetSecretValue", "kms:Decrypt"];
    user_allowing(
        &dir,
        OTHER,
        "assumer",
        &[
            "sts:AssumeRole",
            "secretsmanager:GetSecretValue",
            "kms:Decrypt",
        ],
    );
    role(&dir, OTHER, "reader", "assumer", &rights);
    role(&dir, OTHER, "writer", "assumer", &rights);
    role(&dir, OTHER, "narrow", "assumer", &["kms:Decrypt"]);
    let s = TestServer::start_with_policies(&dir);
    let k = key(
        &s,
        &json!([{"Sid": "Other", "Effect": "Allow", "Principal": {"AWS": OTHER},
                 "Action": "kms:Decrypt", "Resource": "*"}]),
    );
    let mut policy = share_with(
        &format!("arn:aws:iam::{OTHER}:role/reader"),
        &json!("secretsmanager:GetSecretValue"),
    );
    policy.as_array_mut().unwrap().extend(
        share_with(
            &format!("arn:aws:iam::{OTHER}:role/narrow"),
            &json!("secretsmanager:GetSecretValue"),
        )
        .as_array()
        .cloned()
        .unwrap(),
    );
    let arn = secret(&s, "shared/for-a-role", Some(&k), Some(&policy));
    let assumer = user(&s, &dir, OTHER, "assumer");
    refused(&read(&s, &assumer, &arn), "a user of the role's account");
    let writer = session(
        &s,
        &assumer,
        &format!("arn:aws:iam::{OTHER}:role/writer"),
        "sess-w",
    );
    refused(&read(&s, &writer, &arn), "a session of another role");
    // named, but its own permissions do not allow the read
    let narrow = session(
        &s,
        &assumer,
        &format!("arn:aws:iam::{OTHER}:role/narrow"),
        "sess-n",
    );
    refused(
        &read(&s, &narrow, &arn),
        "a named role without the permission",
    );
    let reader = session(
        &s,
        &assumer,
        &format!("arn:aws:iam::{OTHER}:role/reader"),
        "sess-r",
    );
    assert_eq!(value(read(&s, &reader, &arn)), "shared/for-a-role-value");
}

/// Naming an account in a resource policy (`A` or `arn:aws:iam::A:root`) only delegates to
/// that account's own policies: in the secret's account a user without an identity policy
/// is refused, and another account's user named by ARN still needs its own account's allow.
/// A same-account user named by ARN needs nothing more.
#[tokio::test]
async fn naming_an_account_in_a_resource_policy_only_delegates() {
    let (_t, dir) = example_policies();
    bare_user(&dir, HOME, "nobody");
    bare_user(&dir, OTHER, "stranger");
    let s = TestServer::start_with_policies(&dir);
    let get = json!("secretsmanager:GetSecretValue");
    let nobody = user(&s, &dir, HOME, "nobody");
    for (i, principal) in [HOME.to_owned(), format!("arn:aws:iam::{HOME}:root")]
        .iter()
        .enumerate()
    {
        let arn = secret(
            &s,
            &format!("acct/{i}"),
            None,
            Some(&share_with(principal, &get)),
        );
        refused(&read(&s, &nobody, &arn), principal);
    }
    let arn = secret(
        &s,
        "acct/user",
        None,
        Some(&share_with(
            &format!("arn:aws:iam::{HOME}:user/nobody"),
            &get,
        )),
    );
    assert_eq!(value(read(&s, &nobody, &arn)), "acct/user-value");

    // across accounts, a principal named exactly still needs its own account's allow
    let k = key(
        &s,
        &json!([{"Sid": "Stranger", "Effect": "Allow",
                 "Principal": {"AWS": format!("arn:aws:iam::{OTHER}:user/stranger")},
                 "Action": "kms:Decrypt", "Resource": "*"}]),
    );
    let arn = secret(
        &s,
        "acct/stranger",
        Some(&k),
        Some(&share_with(
            &format!("arn:aws:iam::{OTHER}:user/stranger"),
            &get,
        )),
    );
    refused(
        &read(&s, &user(&s, &dir, OTHER, "stranger"), &arn),
        "named across accounts without an identity policy",
    );
}

/// The positive control of the test above, apart so that the directory differs: the same
/// user given an identity policy reads.
#[tokio::test]
async fn another_accounts_user_named_exactly_reads_with_its_own_allow() {
    let (_t, dir) = example_policies();
    user_allowing(
        &dir,
        OTHER,
        "stranger",
        &["secretsmanager:GetSecretValue", "kms:Decrypt"],
    );
    let s = TestServer::start_with_policies(&dir);
    let k = key(
        &s,
        &json!([{"Sid": "Stranger", "Effect": "Allow",
                 "Principal": {"AWS": format!("arn:aws:iam::{OTHER}:user/stranger")},
                 "Action": "kms:Decrypt", "Resource": "*"}]),
    );
    let arn = secret(
        &s,
        "acct/stranger",
        Some(&k),
        Some(&share_with(
            &format!("arn:aws:iam::{OTHER}:user/stranger"),
            &json!("secretsmanager:GetSecretValue"),
        )),
    );
    assert_eq!(
        value(read(&s, &user(&s, &dir, OTHER, "stranger"), &arn)),
        "acct/stranger-value"
    );
}

/// Another account granted reads only reaches none of the policy operations on the secret
/// (by its ARN), and the stored policy is unchanged.
#[tokio::test]
async fn a_read_grant_to_another_account_reaches_no_policy_operation() {
    let (_t, dir) = example_policies();
    user_allowing(&dir, OTHER, "admin", &["secretsmanager:*", "kms:*"]);
    let s = TestServer::start_with_policies(&dir);
    let k = key(
        &s,
        &json!([{"Sid": "Other", "Effect": "Allow", "Principal": {"AWS": OTHER},
                 "Action": "kms:Decrypt", "Resource": "*"}]),
    );
    let grant = share_with(OTHER, &json!("secretsmanager:GetSecretValue"));
    let arn = secret(&s, "shared/read-only", Some(&k), Some(&grant));
    let admin = user(&s, &dir, OTHER, "admin");
    let takeover = doc(&share_with(OTHER, &json!("secretsmanager:*")));
    for (op, body) in [
        (
            "PutResourcePolicy",
            json!({"SecretId": arn, "ResourcePolicy": takeover}),
        ),
        ("GetResourcePolicy", json!({"SecretId": arn})),
        ("DeleteResourcePolicy", json!({"SecretId": arn})),
        ("ListResourcePolicies", json!({"SecretId": arn})),
        (
            "ValidateResourcePolicy",
            json!({"SecretId": arn, "ResourcePolicy": takeover}),
        ),
    ] {
        refused(&sm(&s, &admin, op, &body), op);
    }
    let stored = home(
        &s,
        "secretsmanager.GetResourcePolicy",
        &json!({"SecretId": arn}),
    );
    let stored: Value = serde_json::from_str(stored["ResourcePolicy"].as_str().unwrap()).unwrap();
    assert_eq!(stored["Statement"], grant);
    assert_eq!(value(read(&s, &admin, &arn)), "shared/read-only-value");
}

/// A policy open to `*` but pinned to one account (`aws:PrincipalAccount`) or to one
/// account's role (`aws:PrincipalArn`) passes BlockPublicPolicy, and admits only what it
/// pins: a third account with every permission of its own is refused.
#[tokio::test]
async fn a_pinned_policy_admits_only_the_pinned_principals() {
    let (_t, dir) = example_policies();
    let all = ["secretsmanager:*", "kms:*", "sts:AssumeRole"];
    user_allowing(&dir, OTHER, "admin", &all);
    user_allowing(&dir, THIRD, "admin", &all);
    role(&dir, OTHER, "app", "admin", &all);
    role(&dir, THIRD, "app", "admin", &all);
    let s = TestServer::start_with_policies(&dir);
    let k = key(
        &s,
        &json!([{"Sid": "Any", "Effect": "Allow", "Principal": "*",
                 "Action": "kms:Decrypt", "Resource": "*"}]),
    );
    let by_account = json!([{
        "Effect": "Allow", "Principal": "*", "Action": "secretsmanager:GetSecretValue",
        "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalAccount": OTHER}}
    }]);
    let by_role = json!([{
        "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "secretsmanager:GetSecretValue",
        "Resource": "*",
        "Condition": {"ArnLike": {"aws:PrincipalArn": format!("arn:aws:iam::{OTHER}:role/*")}}
    }]);
    let mut arns = Vec::new();
    for (name, policy) in [("pinned/account", &by_account), ("pinned/role", &by_role)] {
        let arn = secret(&s, name, Some(&k), None);
        home(
            &s,
            "secretsmanager.PutResourcePolicy",
            &json!({"SecretId": arn, "ResourcePolicy": doc(policy), "BlockPublicPolicy": true}),
        );
        arns.push(arn);
    }
    let third = user(&s, &dir, THIRD, "admin");
    let third_app = session(
        &s,
        &third,
        &format!("arn:aws:iam::{THIRD}:role/app"),
        "sess-x",
    );
    let other = user(&s, &dir, OTHER, "admin");
    let other_app = session(
        &s,
        &other,
        &format!("arn:aws:iam::{OTHER}:role/app"),
        "sess-x",
    );
    for arn in &arns {
        refused(&read(&s, &third, arn), "a third account's user");
        refused(&read(&s, &third_app, arn), "a third account's role session");
        assert!(value(read(&s, &other_app, arn)).ends_with("-value"));
    }
    assert_eq!(value(read(&s, &other, &arns[0])), "pinned/account-value");
    refused(
        &read(&s, &other, &arns[1]),
        "a user, not a role, of the pinned account",
    );
}

/// BlockPublicPolicy refuses a policy open to `*` whose only conditions are on keys the
/// caller chooses or that do not name who calls (tags, user agent, names, transport, time,
/// addresses without the option), on set or `IfExists` forms that pass when the key is
/// absent, on negations, or with wildcards in the account; an account listed next to `*`
/// does not narrow `*`. The same policies without BlockPublicPolicy are stored.
#[tokio::test]
async fn block_public_policy_refuses_conditions_that_do_not_pin_the_caller() {
    let s = TestServer::start();
    let arn = secret(&s, "public/target", None, None);
    let open = |principal: Value, condition: Value| {
        doc(&json!([{
            "Effect": "Allow", "Principal": principal, "Action": "secretsmanager:GetSecretValue",
            "Resource": "*", "Condition": condition
        }]))
    };
    let star = || json!("*");
    let cases = [
        open(json!({"AWS": [OTHER, "*"]}), json!({})),
        open(
            star(),
            json!({"StringEquals": {"aws:PrincipalTag/team": "payments"}}),
        ),
        open(
            star(),
            json!({"StringEquals": {"aws:RequestTag/team": "payments"}}),
        ),
        open(
            star(),
            json!({"StringEquals": {"aws:ResourceTag/team": "payments"}}),
        ),
        open(
            star(),
            json!({"StringEquals": {"aws:UserAgent": "internal-tool/1.0"}}),
        ),
        open(star(), json!({"StringEquals": {"aws:username": "alice"}})),
        open(star(), json!({"StringLike": {"aws:userid": "AIDA*"}})),
        open(star(), json!({"Bool": {"aws:SecureTransport": "true"}})),
        open(
            star(),
            json!({"DateLessThan": {"aws:CurrentTime": "2999-01-01T00:00:00Z"}}),
        ),
        open(star(), json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
        open(
            star(),
            json!({"StringEquals": {"aws:ResourceAccount": HOME}}),
        ),
        open(
            star(),
            json!({"StringEquals": {"secretsmanager:SecretId": arn}}),
        ),
        open(star(), json!({"StringLike": {"aws:PrincipalAccount": "*"}})),
        open(
            star(),
            json!({"StringLike": {"aws:PrincipalAccount": "4444????6666"}}),
        ),
        open(
            star(),
            json!({"StringNotEquals": {"aws:PrincipalAccount": THIRD}}),
        ),
        open(
            star(),
            json!({"StringEqualsIfExists": {"aws:PrincipalAccount": OTHER}}),
        ),
        open(
            star(),
            json!({"ForAllValues:StringEquals": {"aws:PrincipalAccount": OTHER}}),
        ),
        open(
            star(),
            json!({"ForAnyValue:StringLike": {"aws:PrincipalArn": format!("arn:aws:iam::{OTHER}:*")}}),
        ),
        open(star(), json!({"Null": {"aws:PrincipalAccount": "false"}})),
        open(
            star(),
            json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/app"}}),
        ),
        open(
            star(),
            json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::4444555566??:root"}}),
        ),
        open(
            star(),
            json!({"ArnNotLike": {"aws:PrincipalArn": format!("arn:aws:iam::{THIRD}:*")}}),
        ),
        open(
            star(),
            json!({"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*"}}),
        ),
        open(
            star(),
            json!({"StringLike": {"aws:PrincipalArn": "*:root"}}),
        ),
        open(
            star(),
            json!({"ArnEquals": {"aws:SourceArn": "arn:aws:s3:::bucket"}}),
        ),
        open(
            star(),
            json!({"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}),
        ),
        open(
            star(),
            json!({"StringEquals": {"aws:PrincipalAccount": "${aws:PrincipalAccount}"}}),
        ),
    ];
    for policy in &cases {
        let r = s.call(
            "secretsmanager.PutResourcePolicy",
            &json!({"SecretId": arn, "ResourcePolicy": policy, "BlockPublicPolicy": true})
                .to_string(),
        );
        assert_eq!(
            r.error_type(),
            "PublicPolicyException",
            "{policy}: {}",
            r.body
        );
        let v = home(
            &s,
            "secretsmanager.ValidateResourcePolicy",
            &json!({"SecretId": arn, "ResourcePolicy": policy}),
        );
        assert_eq!(v["PolicyValidationPassed"], false, "{policy}: {v}");
    }
    let stored = home(
        &s,
        "secretsmanager.GetResourcePolicy",
        &json!({"SecretId": arn}),
    );
    assert!(stored.get("ResourcePolicy").is_none(), "{stored}");
    // positive controls: pinned, or not opened to `*` at all
    for policy in [
        open(
            star(),
            json!({"StringEquals": {"aws:PrincipalAccount": OTHER}}),
        ),
        open(
            star(),
            json!({"StringEquals": {"aws:PrincipalAccount": OTHER},
                            "StringEqualsIfExists": {"aws:UserAgent": "x"}}),
        ),
        open(
            json!({"AWS": [OTHER, format!("arn:aws:iam::{THIRD}:root")]}),
            json!({}),
        ),
        doc(&json!([
            {"Effect": "Deny", "Principal": "*", "Action": "secretsmanager:*", "Resource": "*",
             "Condition": {"StringNotEquals": {"aws:PrincipalAccount": HOME}}},
            {"Effect": "Allow", "Principal": {"AWS": HOME}, "Action": "secretsmanager:*", "Resource": "*"}
        ])),
    ] {
        home(
            &s,
            "secretsmanager.PutResourcePolicy",
            &json!({"SecretId": arn, "ResourcePolicy": policy, "BlockPublicPolicy": true}),
        );
    }
    // without BlockPublicPolicy the broad policy is stored (AWS's default)
    home(
        &s,
        "secretsmanager.PutResourcePolicy",
        &json!({"SecretId": arn, "ResourcePolicy": cases[1]}),
    );
}

const APPLY: &str = "secretsmanager.StrongroomApplyReplicaChange";

/// A peer serving eu-west-1 whose principals are `replicator` (ApplyReplicaChange on
/// everything) and `app-replicator` (the same, narrowed to us-east-1 primaries `app/*`).
fn replication_peer() -> (tempfile::TempDir, TestServer) {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("policies");
    write(
        &p,
        &format!("accounts/{HOME}/account.json"),
        &format!(r#"{{"AccountId":"{HOME}"}}"#),
    );
    write(
        &p,
        &format!("accounts/{HOME}/users/replicator.json"),
        r#"{"UserName":"replicator","InlinePolicies":{"apply":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"strongroom:ApplyReplicaChange","Resource":"*"}]}}}"#,
    );
    write(
        &p,
        &format!("accounts/{HOME}/users/app-replicator.json"),
        r#"{"UserName":"app-replicator","InlinePolicies":{"apply":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"strongroom:ApplyReplicaChange","Resource":"*",
             "Condition":{"StringLike":{"strongroom:PrimaryArn":"arn:aws:secretsmanager:us-east-1:*:secret:app/*"}}}]}}}"#,
    );
    let s = TestServer::start_configured(None, &["eu-west-1"], None, Some(p.clone()));
    // keep the directory with the server
    let keys = (
        user(&s, &p, HOME, "replicator"),
        user(&s, &p, HOME, "app-replicator"),
    );
    std::fs::write(
        t.path().join("keys.json"),
        json!([[keys.0.akid, keys.0.secret], [keys.1.akid, keys.1.secret]]).to_string(),
    )
    .unwrap();
    (t, s)
}

fn peer_keys(t: &tempfile::TempDir) -> (Caller, Caller) {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(t.path().join("keys.json")).unwrap())
            .unwrap();
    let caller = |i: usize| Caller {
        akid: v[i][0].as_str().unwrap().to_owned(),
        secret: v[i][1].as_str().unwrap().to_owned(),
        token: None,
    };
    (caller(0), caller(1))
}

fn in_eu(s: &TestServer, c: &Caller, target: &str, body: &Value) -> RawResponse {
    s.call_signed(
        target,
        &body.to_string(),
        Signing {
            akid: c.akid.clone(),
            secret: c.secret.clone(),
            session_token: c.token.clone(),
            region: "eu-west-1".into(),
            ..Signing::default()
        },
    )
}

/// A replication principal may not ship a resource policy that grants it access to the
/// replica, and a grant whose conditions fail only while the change is checked (keys of the
/// later read such as `secretsmanager:VersionStage`, which the check does not have) is
/// such a grant: the principal must still not read the value it never shipped.
#[tokio::test]
async fn a_replication_principal_cannot_ship_a_grant_conditioned_on_the_later_read() {
    use base64::Engine as _;
    let (t, peer) = replication_peer();
    let (replicator, narrow) = peer_keys(&t);
    let arn = format!("arn:aws:secretsmanager:us-east-1:{HOME}:secret:app/victim-AbCdEf");
    let vid = "11111111-1111-4111-8111-111111111111";
    let change = |seq: i64, policy: Option<String>, value: Option<&str>| {
        let mut version = json!({"VersionId": vid, "CreatedAt": 1, "ValueKind": "S"});
        match value {
            Some(v) => {
                version["Value"] = base64::engine::general_purpose::STANDARD.encode(v).into();
            }
            None => version["ValueOmitted"] = true.into(),
        }
        let mut secret = json!({"Name": "app/victim", "LastChangedAt": seq, "TagList": false,
            "Tags": [], "Stages": {"AWSCURRENT": vid}, "Versions": [version]});
        if let Some(p) = policy {
            secret["ResourcePolicy"] = p.into();
        }
        json!({"PrimaryArn": arn, "Seq": seq, "Secret": secret})
    };
    ok(in_eu(
        &peer,
        &replicator,
        APPLY,
        &change(1, None, Some("the-real-value")),
    ));
    let me = format!("arn:aws:iam::{HOME}:user/app-replicator");
    let grant = |condition: &Value| {
        json!({
            "Effect": "Allow", "Principal": {"AWS": me}, "Action": "secretsmanager:GetSecretValue",
            "Resource": "*", "Condition": condition
        })
    };
    let stage = json!({"StringEquals": {"secretsmanager:VersionStage": "AWSCURRENT"}});
    let policies = [
        json!([grant(&stage)]),
        json!([grant(
            &json!({"Null": {"secretsmanager:VersionStage": "false"}})
        )]),
        json!([grant(
            &json!({"ForAnyValue:StringLike": {"secretsmanager:VersionStage": "*"}})
        )]),
        json!([grant(
            &json!({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"},
                             "StringEquals": {"secretsmanager:VersionStage": "AWSCURRENT"}})
        )]),
        json!([grant(
            &json!({"StringEquals": {"aws:PrincipalAccount": "${secretsmanager:VersionStage}"}})
        )]),
        // an unconditional grant, cut by a Deny that holds only while the change is checked
        json!([grant(&json!({})), {
            "Effect": "Deny", "Principal": "*", "Action": "secretsmanager:GetSecretValue",
            "Resource": "*", "Condition": {"Null": {"secretsmanager:VersionStage": "true"}}
        }]),
    ];
    for (i, statements) in policies.iter().enumerate() {
        let policy = doc(statements);
        let seq = 2 + i64::try_from(i).unwrap();
        let r = in_eu(&peer, &narrow, APPLY, &change(seq, Some(policy), None));
        let read = in_eu(
            &peer,
            &narrow,
            "secretsmanager.GetSecretValue",
            &json!({"SecretId": "app/victim"}),
        );
        assert!(
            !read.body.contains("the-real-value"),
            "{statements}: the replication principal read the value (apply answered {}: {})",
            r.status,
            r.body
        );
        refused(&r, &statements.to_string());
    }
    // Positive controls: a grant to another principal, conditioned alike, and a grant to
    // `*` pinned to another account are carried; neither lets the principal read.
    let policy = doc(&json!([{
        "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{HOME}:user/auditor")},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*", "Condition": stage
    }, {
        "Effect": "Allow", "Principal": "*", "Action": "secretsmanager:GetSecretValue",
        "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalAccount": OTHER}}
    }]));
    ok(in_eu(
        &peer,
        &narrow,
        APPLY,
        &change(10, Some(policy), None),
    ));
    refused(
        &in_eu(
            &peer,
            &narrow,
            "secretsmanager.GetSecretValue",
            &json!({"SecretId": "app/victim"}),
        ),
        "the carried policy",
    );
}
