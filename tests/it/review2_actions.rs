//! Each operation is decided with the condition keys AWS's Service Authorization Reference
//! lists for its action: a `Deny` a security team writes on a documented key must apply, and
//! an `Allow` written on it (as AWS's own examples do) must let the request. Each refusal has
//! its positive control next to it.

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

fn denied(r: &RawResponse) {
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
}

/// A user `name` of the home account with tags `tags` whose inline policy holds `statements`.
fn user(dir: &Path, name: &str, tags: &str, statements: &str) {
    write(
        dir,
        &format!("accounts/{HOME}/users/{name}.json"),
        &format!(
            r#"{{"UserName":"{name}","Tags":{tags},"InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[{statements}]}}}}}}"#
        ),
    );
}

fn token() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A customer managed key (default key policy: the account's IAM policies decide), with
/// `alias`: its id and ARN.
fn new_key(s: &TestServer, alias: &str) -> (String, String) {
    let r = s.call("TrentService.CreateKey", r#"{"Description":"k"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let m = &r.json()["KeyMetadata"];
    let (id, arn) = (
        m["KeyId"].as_str().unwrap().to_owned(),
        m["Arn"].as_str().unwrap().to_owned(),
    );
    let r = s.call(
        "TrentService.CreateAlias",
        &serde_json::json!({"AliasName": alias, "TargetKeyId": id}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    (id, arn)
}

fn eventually(call: impl Fn() -> RawResponse, done: impl Fn(&RawResponse) -> bool) -> RawResponse {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = call();
        if done(&r) || std::time::Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `secretsmanager:KmsKeyArn` (CreateSecret, UpdateSecret) is the ARN of the key the
/// request's `KmsKeyId` names, however it names it: a `Deny` on a key's ARN refuses a
/// request naming that key by its alias, its id or its ARN, and not one naming another key.
#[tokio::test]
async fn the_kms_key_arn_a_request_names_is_decided_whatever_form_names_it() {
    let (_t, dir) = example_policies();
    let s = start(&dir);
    let (other_id, _) = new_key(&s, "alias/team");
    let (held_id, held_arn) = new_key(&s, "alias/held");
    user(
        &dir,
        "keyed",
        "{}",
        &format!(
            r#"{{"Effect":"Allow","Action":["secretsmanager:CreateSecret","secretsmanager:UpdateSecret",
                "kms:GenerateDataKey","kms:Decrypt","kms:Encrypt"],"Resource":"*"}},
               {{"Effect":"Deny","Action":["secretsmanager:CreateSecret","secretsmanager:UpdateSecret"],"Resource":"*",
                "Condition":{{"ArnEquals":{{"secretsmanager:KmsKeyArn":"{held_arn}"}}}}}}"#
        ),
    );
    let (k, sk) = key_for(&s, &dir, HOME, "keyed");
    let create = |name: &str, key: &str, value: bool| {
        let mut body = serde_json::json!({"Name": name, "KmsKeyId": key});
        if value {
            body["SecretString"] = "v".into();
            body["ClientRequestToken"] = token().into();
        }
        sm(&s, (&k, &sk), "CreateSecret", &body)
    };
    // Positive control (once the server has loaded the user written after it started).
    let r = eventually(|| create("kms/ok", "alias/team", true), |r| r.status == 200);
    ok(r);
    ok(create("kms/ok-by-id", &other_id, false));
    for (i, named) in ["alias/held", held_id.as_str(), held_arn.as_str()]
        .into_iter()
        .enumerate()
    {
        for value in [true, false] {
            denied(&create(&format!("kms/held-{i}-{value}"), named, value));
        }
    }
    // UpdateSecret moving a secret to the key is refused; to another key it is not.
    denied(&sm(
        &s,
        (&k, &sk),
        "UpdateSecret",
        &serde_json::json!({"SecretId": "kms/ok", "KmsKeyId": "alias/held"}),
    ));
    ok(sm(
        &s,
        (&k, &sk),
        "UpdateSecret",
        &serde_json::json!({"SecretId": "kms/ok", "KmsKeyId": other_id}),
    ));
    let d = ok(s.call("secretsmanager.DescribeSecret", r#"{"SecretId":"kms/ok"}"#));
    assert!(
        !d["KmsKeyId"]
            .as_str()
            .unwrap_or_default()
            .contains(&held_id),
        "{d}"
    );
}

/// CreateSecret is decided with its tags as the new secret's (`aws:ResourceTag/k`,
/// `secretsmanager:ResourceTag/k`), as AWS's ABAC tutorial relies on: a guardrail denying
/// every action on `classification=restricted` secrets refuses creating one, and the
/// tutorial's policy (allow when the resource's tags match the principal's) lets a creation
/// tagged as the principal is and refuses one tagged otherwise.
#[tokio::test]
async fn create_secret_is_decided_with_its_tags_as_the_new_secrets_tags() {
    let (_t, dir) = example_policies();
    user(
        &dir,
        "guarded",
        "{}",
        r#"{"Effect":"Allow","Action":["secretsmanager:CreateSecret","secretsmanager:TagResource"],"Resource":"*"},
           {"Effect":"Deny","Action":"secretsmanager:*","Resource":"*",
            "Condition":{"StringEquals":{"aws:ResourceTag/classification":"restricted"}}},
           {"Effect":"Deny","Action":"secretsmanager:*","Resource":"*",
            "Condition":{"StringEquals":{"secretsmanager:ResourceTag/tier":"crown-jewel"}}}"#,
    );
    user(
        &dir,
        "peg-eng",
        r#"{"access-project":"peg","access-team":"eng"}"#,
        r#"{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*",
            "Condition":{
              "StringEquals":{"aws:ResourceTag/access-project":"${aws:PrincipalTag/access-project}",
                              "aws:ResourceTag/access-team":"${aws:PrincipalTag/access-team}"},
              "ForAllValues:StringEquals":{"aws:TagKeys":["access-project","access-team","Name"]},
              "StringEqualsIfExists":{"aws:RequestTag/access-project":"${aws:PrincipalTag/access-project}",
                                      "aws:RequestTag/access-team":"${aws:PrincipalTag/access-team}"}}}"#,
    );
    let s = start(&dir);
    let create = |who: (&str, &str), name: &str, tags: serde_json::Value| {
        sm(
            &s,
            who,
            "CreateSecret",
            &serde_json::json!({"Name": name, "SecretString": "v", "Tags": tags,
                                "ClientRequestToken": token()}),
        )
    };
    let (k, sk) = key_for(&s, &dir, HOME, "guarded");
    ok(create(
        (&k, &sk),
        "g/internal",
        serde_json::json!([{"Key": "classification", "Value": "internal"}]),
    ));
    denied(&create(
        (&k, &sk),
        "g/restricted",
        serde_json::json!([{"Key": "classification", "Value": "restricted"}]),
    ));
    denied(&create(
        (&k, &sk),
        "g/jewel",
        serde_json::json!([{"Key": "tier", "Value": "crown-jewel"}]),
    ));
    let (k, sk) = key_for(&s, &dir, HOME, "peg-eng");
    ok(create(
        (&k, &sk),
        "test-access-peg-eng",
        serde_json::json!([{"Key": "access-project", "Value": "peg"},
                           {"Key": "access-team", "Value": "eng"},
                           {"Key": "Name", "Value": "x"}]),
    ));
    denied(&create(
        (&k, &sk),
        "test-access-uni-eng",
        serde_json::json!([{"Key": "access-project", "Value": "uni"},
                           {"Key": "access-team", "Value": "eng"}]),
    ));
    denied(&create(
        (&k, &sk),
        "test-access-untagged",
        serde_json::json!([]),
    ));
    let r = s.call(
        "secretsmanager.DescribeSecret",
        r#"{"SecretId":"g/restricted"}"#,
    );
    assert_eq!(r.error_type(), "ResourceNotFoundException", "{}", r.body);
}

/// A managed external secret's type: `secretsmanager:Type` (the request's, CreateSecret and
/// UpdateSecret) and `secretsmanager:resource/Type` (the secret's, every action on it,
/// BatchGetSecretValue's per-secret reads included).
#[tokio::test]
async fn a_secrets_type_is_decided_on_create_and_on_every_use() {
    let (_t, dir) = example_policies();
    user(
        &dir,
        "typed",
        "{}",
        r#"{"Effect":"Allow","Action":["secretsmanager:CreateSecret","secretsmanager:GetSecretValue",
             "secretsmanager:BatchGetSecretValue","secretsmanager:DescribeSecret"],"Resource":"*"},
           {"Effect":"Deny","Action":"secretsmanager:CreateSecret","Resource":"*",
            "Condition":{"StringEquals":{"secretsmanager:Type":"SalesforceClientCredentials"}}},
           {"Effect":"Deny","Action":["secretsmanager:GetSecretValue","secretsmanager:DescribeSecret"],"Resource":"*",
            "Condition":{"StringEquals":{"secretsmanager:resource/Type":"SalesforceClientCredentials"}}}"#,
    );
    let s = start(&dir);
    for (name, ty) in [
        ("t/plain", None),
        ("t/salesforce", Some("SalesforceClientCredentials")),
    ] {
        let mut body =
            serde_json::json!({"Name": name, "SecretString": "v", "ClientRequestToken": token()});
        if let Some(t) = ty {
            body["Type"] = t.into();
        }
        ok(s.call("secretsmanager.CreateSecret", &body.to_string()));
    }
    let (k, sk) = key_for(&s, &dir, HOME, "typed");
    let create = |name: &str, ty: &str| {
        sm(
            &s,
            (&k, &sk),
            "CreateSecret",
            &serde_json::json!({"Name": name, "Type": ty}),
        )
    };
    ok(create("t/mine", "OtherPartnerType"));
    denied(&create("t/mine-sf", "SalesforceClientCredentials"));
    let read = |id: &str| {
        sm(
            &s,
            (&k, &sk),
            "GetSecretValue",
            &serde_json::json!({"SecretId": id}),
        )
    };
    ok(read("t/plain"));
    denied(&read("t/salesforce"));
    denied(&sm(
        &s,
        (&k, &sk),
        "DescribeSecret",
        &serde_json::json!({"SecretId": "t/salesforce"}),
    ));
    let r = ok(sm(
        &s,
        (&k, &sk),
        "BatchGetSecretValue",
        &serde_json::json!({"SecretIdList": ["t/plain", "t/salesforce"]}),
    ));
    let read: Vec<&str> = r["SecretValues"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["Name"].as_str())
        .collect();
    assert_eq!(read, ["t/plain"], "{r}");
    assert_eq!(r["Errors"][0]["ErrorCode"], "AccessDeniedException", "{r}");
}

/// A role of the home account tagged `tags`, trusting the account (its principals' own
/// policies decide who may assume it).
fn role(dir: &Path, name: &str, tags: &str) {
    write(
        dir,
        &format!("accounts/{HOME}/roles/{name}.json"),
        &format!(
            r#"{{"RoleName":"{name}","Tags":{tags},"AssumeRolePolicyDocument":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{HOME}:root"}},"Action":"sts:AssumeRole"}}]}}}}"#
        ),
    );
}

/// `AssumeRole` of `role` by the access key `(k, sk)`.
fn assume(s: &TestServer, (k, sk): (&str, &str), role: &str) -> RawResponse {
    s.raw(&crate::common::signed_query(
        &format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=probe",
            crate::common::urlenc(&format!("arn:aws:iam::{HOME}:role/{role}"))
        ),
        crate::common::sts_as(k, sk),
    ))
}

/// AssumeRole is decided with the role's tags (`iam:ResourceTag/k`, `aws:ResourceTag/k`, the
/// Role resource's keys): a guardrail denying the assumption of `privileged` roles refuses
/// it, and AWS's ABAC tutorial's policy (assume `access-*` roles whose project tag is the
/// user's) lets the matching role and not another.
#[tokio::test]
async fn assume_role_is_decided_with_the_roles_tags() {
    let (_t, dir) = example_policies();
    role(&dir, "ops-admin", r#"{"privileged":"true"}"#);
    role(&dir, "app-reader", r#"{"privileged":"false"}"#);
    role(&dir, "break-glass", r#"{"tier":"0"}"#);
    role(&dir, "access-peg", r#"{"access-project":"peg"}"#);
    role(&dir, "access-uni", r#"{"access-project":"uni"}"#);
    user(
        &dir,
        "dev",
        "{}",
        r#"{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"},
           {"Effect":"Deny","Action":"sts:AssumeRole","Resource":"*",
            "Condition":{"StringEquals":{"iam:ResourceTag/privileged":"true"}}},
           {"Effect":"Deny","Action":"sts:AssumeRole","Resource":"*",
            "Condition":{"StringEquals":{"aws:ResourceTag/tier":"0"}}}"#,
    );
    user(
        &dir,
        "arnav",
        r#"{"access-project":"peg"}"#,
        &format!(
            r#"{{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::{HOME}:role/access-*",
                "Condition":{{"StringEquals":{{"iam:ResourceTag/access-project":"${{aws:PrincipalTag/access-project}}"}}}}}}"#
        ),
    );
    let s = start(&dir);
    let dev = key_for(&s, &dir, HOME, "dev");
    let dev = (dev.0.as_str(), dev.1.as_str());
    let r = assume(&s, dev, "app-reader");
    assert_eq!(r.status, 200, "{}", r.body);
    for privileged in ["ops-admin", "break-glass"] {
        let r = assume(&s, dev, privileged);
        assert_eq!(r.status, 403, "{privileged}: {}", r.body);
        assert!(r.body.contains("AccessDenied"), "{}", r.body);
    }
    let arnav = key_for(&s, &dir, HOME, "arnav");
    let arnav = (arnav.0.as_str(), arnav.1.as_str());
    let r = assume(&s, arnav, "access-peg");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = assume(&s, arnav, "access-uni");
    assert_eq!(r.status, 403, "{}", r.body);
}

/// Organizations' ListPolicies and DescribePolicy are decided with `organizations:PolicyType`
/// (the listed type; the described policy's): a management-account principal denied reading
/// service control policies is refused both, one allowed only them reads them, and
/// ListAccounts (no such key) is unaffected.
#[tokio::test]
async fn organization_policy_reads_are_decided_with_the_policy_type() {
    let (_t, dir) = example_policies();
    write(
        &dir,
        "organization/scps/FullAWSAccess.json",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    );
    write(
        &dir,
        "organization/organization.json",
        &format!(
            r#"{{"Id":"o-strongroomtest1","ManagementAccount":"{HOME}",
                "Root":{{"Name":"Root","Id":"r-ab12","Policies":["FullAWSAccess"],
                  "Accounts":[{{"AccountId":"{HOME}"}}]}}}}"#
        ),
    );
    user(
        &dir,
        "no-scps",
        "{}",
        r#"{"Effect":"Allow","Action":["organizations:ListPolicies","organizations:DescribePolicy",
             "organizations:ListAccounts"],"Resource":"*"},
           {"Effect":"Deny","Action":["organizations:ListPolicies","organizations:DescribePolicy"],"Resource":"*",
            "Condition":{"StringEquals":{"organizations:PolicyType":"SERVICE_CONTROL_POLICY"}}}"#,
    );
    user(
        &dir,
        "scp-reader",
        "{}",
        r#"{"Effect":"Allow","Action":["organizations:ListPolicies","organizations:DescribePolicy"],"Resource":"*",
            "Condition":{"StringEquals":{"organizations:PolicyType":"SERVICE_CONTROL_POLICY"}}}"#,
    );
    let s = start(&dir);
    let org = |who: (&str, &str), op: &str, body: serde_json::Value| {
        call_as(
            &s,
            who.0,
            who.1,
            &format!("AWSOrganizationsV20161128.{op}"),
            &body,
        )
    };
    let list = serde_json::json!({"Filter": "SERVICE_CONTROL_POLICY"});
    let describe = serde_json::json!({"PolicyId": "FullAWSAccess"});
    let (k, sk) = key_for(&s, &dir, HOME, "no-scps");
    ok(org((&k, &sk), "ListAccounts", serde_json::json!({})));
    denied(&org((&k, &sk), "ListPolicies", list.clone()));
    denied(&org((&k, &sk), "DescribePolicy", describe.clone()));
    let (k, sk) = key_for(&s, &dir, HOME, "scp-reader");
    let r = ok(org((&k, &sk), "ListPolicies", list));
    assert_eq!(r["Policies"][0]["Id"], "FullAWSAccess", "{r}");
    let r = ok(org((&k, &sk), "DescribePolicy", describe));
    assert!(r["Policy"]["Content"].as_str().is_some(), "{r}");
}
