//! The simulators decide as the server does: for one principal, action, resource and
//! request, a real call, IAM's SimulatePrincipalPolicy and the decision-case runner behind
//! `strongroom policy simulate` (`policy::run_cases`) reach the same decision. What a
//! simulation cannot know about the request (the caller's address, the secret's tags) it
//! takes from the caller's `ContextEntries` (the case's `context`), as AWS's simulator does.

use std::path::Path;

use serde_json::json;

use crate::common::{
    signed_query, sts_as, urlenc, write, xml_field, RawResponse, Signing, TestServer, ACCOUNT,
};

const ORG: &str = "o-simulatetest1";
const WORKLOADS: &str = "444455556666";
const SANDBOX: &str = "555566667777";

#[derive(Clone)]
struct Who {
    akid: String,
    secret: String,
    token: Option<String>,
}

fn root() -> Who {
    Who {
        akid: crate::common::AKID.into(),
        secret: crate::common::SECRET.into(),
        token: None,
    }
}

fn pair(out: &str) -> Who {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    Who {
        akid: v["AccessKeyId"].as_str().unwrap().to_owned(),
        secret: v["SecretAccessKey"].as_str().unwrap().to_owned(),
        token: None,
    }
}

fn user_key(s: &TestServer, dir: &Path, account: &str, user: &str) -> Who {
    pair(&strongroom::cli::create_access_key(&s.store_config(), dir, account, user).unwrap())
}

fn root_key(s: &TestServer, dir: &Path, account: &str) -> Who {
    if account == ACCOUNT {
        return root();
    }
    pair(&strongroom::cli::create_root_access_key(&s.store_config(), dir, account).unwrap())
}

fn sm(s: &TestServer, who: &Who, op: &str, body: &serde_json::Value) -> RawResponse {
    s.call_signed(
        &format!("secretsmanager.{op}"),
        &body.to_string(),
        Signing {
            akid: who.akid.clone(),
            secret: who.secret.clone(),
            session_token: who.token.clone(),
            ..Signing::default()
        },
    )
}

fn account_json(dir: &Path, account: &str) {
    write(
        dir,
        &format!("accounts/{account}/account.json"),
        &format!(r#"{{"AccountId":"{account}"}}"#),
    );
}

/// The identity policy of every principal here: everything in Secrets Manager and STS, and
/// `deny`.
fn policy_with(deny: &serde_json::Value) -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["secretsmanager:*", "sts:AssumeRole"], "Resource": "*"},
        deny,
    ]})
}

fn user_with(dir: &Path, account: &str, name: &str, deny: &serde_json::Value) {
    account_json(dir, account);
    write(
        dir,
        &format!("accounts/{account}/users/{name}.json"),
        &json!({"UserName": name, "InlinePolicies": {"p": policy_with(deny)}}).to_string(),
    );
}

fn role_with(dir: &Path, account: &str, name: &str, deny: &serde_json::Value) {
    account_json(dir, account);
    write(
        dir,
        &format!("accounts/{account}/roles/{name}.json"),
        &json!({"RoleName": name,
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
                 "Action": "sts:AssumeRole"}]},
            "InlinePolicies": {"p": policy_with(deny)}})
        .to_string(),
    );
}

fn session(s: &TestServer, who: &Who, role: &str, name: &str) -> Who {
    let form = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={name}",
        urlenc(role)
    );
    let r = s.raw(&signed_query(&form, sts_as(&who.akid, &who.secret)));
    assert_eq!(r.status, 200, "{}", r.body);
    Who {
        akid: xml_field(&r.body, "AccessKeyId"),
        secret: xml_field(&r.body, "SecretAccessKey"),
        token: Some(xml_field(&r.body, "SessionToken")),
    }
}

fn create(s: &TestServer, who: &Who, name: &str, tags: serde_json::Value) -> String {
    let r = sm(
        s,
        who,
        "CreateSecret",
        &json!({"Name": name, "SecretString": "v", "Tags": tags,
            "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
    );
    assert_eq!(r.status, 200, "{name}: {}", r.body);
    r.json()["ARN"].as_str().unwrap().to_owned()
}

/// The real call's decision, in the vectors' words.
fn served(s: &TestServer, who: &Who, arn: &str) -> &'static str {
    let r = sm(s, who, "DescribeSecret", &json!({"SecretId": arn}));
    match r.status {
        200 => "Allow",
        400 if r.error_type() == "AccessDeniedException" => "Deny",
        _ => panic!("{} {}", r.status, r.body),
    }
}

/// SimulatePrincipalPolicy of DescribeSecret on `arn` by `source`, asked by `asker` (its
/// account's root), with `entries` as ContextEntries.
fn simulated(
    s: &TestServer,
    asker: &Who,
    source: &str,
    arn: &str,
    entries: &[(&str, &str, &str)],
) -> &'static str {
    let mut form = format!(
        "Action=SimulatePrincipalPolicy&Version=2010-05-08&PolicySourceArn={}\
         &ActionNames.member.1=secretsmanager%3ADescribeSecret&ResourceArns.member.1={}",
        urlenc(source),
        urlenc(arn)
    );
    for (i, (k, v, t)) in entries.iter().enumerate() {
        let n = i + 1;
        form.push_str(&format!(
            "&ContextEntries.member.{n}.ContextKeyName={}\
             &ContextEntries.member.{n}.ContextKeyValues.member.1={}\
             &ContextEntries.member.{n}.ContextKeyType={t}",
            urlenc(k),
            urlenc(v)
        ));
    }
    let r = s.raw(&signed_query(
        &form,
        Signing {
            akid: asker.akid.clone(),
            secret: asker.secret.clone(),
            service: "iam".into(),
            ..Signing::default()
        },
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    match xml_field(&r.body, "EvalDecision").as_str() {
        "allowed" => "Allow",
        "explicitDeny" | "implicitDeny" => "Deny",
        other => panic!("{other}: {}", r.body),
    }
}

/// The decision-case runner's decision for one case (the CLI's `--cases`).
fn cased(
    kind: &str,
    principal_arn: &str,
    account: &str,
    arn: &str,
    deny: &serde_json::Value,
    context: serde_json::Value,
) -> &'static str {
    let mut principal = json!({"type": kind, "arn": principal_arn, "account": account});
    if kind == "AssumedRole" {
        let role = principal_arn
            .replace(":sts::", ":iam::")
            .replace(":assumed-role/", ":role/");
        let role = role.rsplit_once('/').unwrap().0.to_owned();
        principal["roleArn"] = json!(role);
    }
    let case = json!([{"id": "diff", "request": {"action": "secretsmanager:DescribeSecret",
        "resource": {"arn": arn}, "principal": principal, "context": context},
        "policies": {"identity": [policy_with(deny)]},
        "expected": {"decision": "Allow"}}]);
    let report = strongroom::policy::run_cases(&case.to_string());
    let c = &report.cases[0];
    assert!(c.error.is_none(), "{report}");
    if c.matched {
        "Allow"
    } else {
        "Deny"
    }
}

/// AWS's network perimeter for identities (a Deny of everything from outside the ranges
/// unless a service acts on the caller's behalf, `"Bool": {"aws:ViaAWSService": "false"}`):
/// the caller's own request from outside is refused by the server, by SimulatePrincipalPolicy
/// given the caller's address, and by a decision case giving it; from inside, allowed by all
/// three.
#[tokio::test]
async fn the_network_perimeter_is_simulated_as_the_server_decides_it() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("policies");
    let perimeter = |ranges: &[&str]| {
        json!({"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
            "NotIpAddress": {"aws:SourceIp": ranges},
            "Bool": {"aws:ViaAWSService": "false"}}})
    };
    let remote = perimeter(&["192.0.2.0/24"]);
    let office = perimeter(&["127.0.0.0/8", "::1/128"]);
    user_with(&dir, ACCOUNT, "remote", &remote);
    user_with(&dir, ACCOUNT, "office", &office);
    let s = TestServer::start_with_policies(&dir);
    let arn = create(&s, &root(), "perimeter", json!([]));
    for (name, deny, want) in [("remote", &remote, "Deny"), ("office", &office, "Allow")] {
        let who = user_key(&s, &dir, ACCOUNT, name);
        let user = format!("arn:aws:iam::{ACCOUNT}:user/{name}");
        let ip = [("aws:SourceIp", "127.0.0.1", "ip")];
        assert_eq!(served(&s, &who, &arn), want, "{name}: server");
        assert_eq!(
            simulated(&s, &root(), &user, &arn, &ip),
            want,
            "{name}: IAM"
        );
        let context = json!({"aws:SourceIp": ["127.0.0.1"]});
        assert_eq!(
            cased("User", &user, ACCOUNT, &arn, deny, context),
            want,
            "{name}: cases"
        );
    }
}

/// A role whose policy denies what is done without MFA (`"Bool":
/// {"aws:MultiFactorAuthPresent": "false"}`): its sessions (issued without MFA) are refused
/// by the server and by SimulatePrincipalPolicy on the role; a Deny of sessions issued after
/// a time in the future (`aws:TokenIssueTime`) refuses neither.
#[tokio::test]
async fn a_role_is_simulated_as_its_sessions_are_decided() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("policies");
    let no_mfa = json!({"Effect": "Deny", "Action": "*", "Resource": "*",
        "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}}});
    let future = json!({"Effect": "Deny", "Action": "*", "Resource": "*",
        "Condition": {"DateGreaterThan": {"aws:TokenIssueTime": "2999-01-01T00:00:00Z"}}});
    let issued = json!({"Effect": "Deny", "Action": "*", "Resource": "*",
        "Condition": {"Null": {"aws:TokenIssueTime": "true"}}});
    role_with(&dir, ACCOUNT, "needs-mfa", &no_mfa);
    role_with(&dir, ACCOUNT, "revoked-later", &future);
    role_with(&dir, ACCOUNT, "sessions-only", &issued);
    let nothing = json!({"Effect": "Deny", "Action": "iam:CreateUser", "Resource": "*"});
    user_with(&dir, ACCOUNT, "caller", &nothing);
    let s = TestServer::start_with_policies(&dir);
    let arn = create(&s, &root(), "mfa", json!([]));
    let caller = user_key(&s, &dir, ACCOUNT, "caller");
    for (name, want) in [
        ("needs-mfa", "Deny"),
        ("revoked-later", "Allow"),
        ("sessions-only", "Allow"),
    ] {
        let role = format!("arn:aws:iam::{ACCOUNT}:role/{name}");
        let who = session(&s, &caller, &role, "sim");
        assert_eq!(served(&s, &who, &arn), want, "{name}: server");
        assert_eq!(
            simulated(&s, &root(), &role, &arn, &[]),
            want,
            "{name}: IAM"
        );
    }
}

/// Organization keys: a Deny of resources outside the caller's OU (`aws:ResourceOrgPaths`)
/// and of callers outside the organization (`aws:PrincipalOrgID`, sparing AWS services with
/// `aws:PrincipalIsAWSService`) are decided alike by the server and by
/// SimulatePrincipalPolicy; the decision-case runner agrees when the case gives the
/// organization keys, and does not refuse on `aws:PrincipalIsAWSService` alone.
#[tokio::test]
async fn organization_perimeters_are_simulated_as_the_server_decides_them() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("policies");
    account_json(&dir, ACCOUNT);
    let own_ou = format!("{ORG}/r-sim1/ou-sim1-sandbox01/*");
    let fence = json!({"Effect": "Deny", "Action": "secretsmanager:*", "Resource": "*",
        "Condition": {"ForAnyValue:StringNotLike": {"aws:ResourceOrgPaths": own_ou}}});
    let org_only = json!({"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
        "StringNotEqualsIfExists": {"aws:PrincipalOrgID": ORG},
        "BoolIfExists": {"aws:PrincipalIsAWSService": "false"}}});
    user_with(&dir, SANDBOX, "fenced", &fence);
    user_with(&dir, SANDBOX, "member", &org_only);
    account_json(&dir, WORKLOADS);
    write(
        &dir,
        "organization/scps/FullAWSAccess.json",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    );
    write(
        &dir,
        "organization/organization.json",
        &format!(
            r#"{{"Id":"{ORG}","ManagementAccount":"{ACCOUNT}",
                "Root":{{"Name":"Root","Id":"r-sim1","Policies":["FullAWSAccess"],
                  "Accounts":[{{"AccountId":"{ACCOUNT}"}}],
                  "OrganizationalUnits":[
                    {{"Name":"workloads","Id":"ou-sim1-workload1","Accounts":[{{"AccountId":"{WORKLOADS}"}}]}},
                    {{"Name":"sandbox","Id":"ou-sim1-sandbox01","Accounts":[{{"AccountId":"{SANDBOX}"}}]}}]}}}}"#
        ),
    );
    let msg = strongroom::cli::validate_policies(&dir).unwrap();
    assert!(msg.contains("OK"), "{msg}");
    let s = TestServer::start_with_policies(&dir);
    let grant = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{SANDBOX}:root")},
        "Action": "secretsmanager:DescribeSecret", "Resource": "*"}]});
    let workloads_root = root_key(&s, &dir, WORKLOADS);
    let theirs = create(&s, &workloads_root, "fence/theirs", json!([]));
    let r = sm(
        &s,
        &workloads_root,
        "PutResourcePolicy",
        &json!({"SecretId": theirs, "ResourcePolicy": grant.to_string()}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let sandbox_root = root_key(&s, &dir, SANDBOX);
    let ours = create(&s, &sandbox_root, "fence/ours", json!([]));
    let fenced = user_key(&s, &dir, SANDBOX, "fenced");
    let member = user_key(&s, &dir, SANDBOX, "member");
    let fenced_arn = format!("arn:aws:iam::{SANDBOX}:user/fenced");
    let member_arn = format!("arn:aws:iam::{SANDBOX}:user/member");
    for (who, arn_of, arn, want) in [
        (&fenced, &fenced_arn, &ours, "Allow"),
        (&fenced, &fenced_arn, &theirs, "Deny"),
        (&member, &member_arn, &ours, "Allow"),
    ] {
        assert_eq!(served(&s, who, arn), want, "{arn_of} on {arn}: server");
        assert_eq!(
            simulated(&s, &sandbox_root, arn_of, arn, &[]),
            want,
            "{arn_of} on {arn}: IAM"
        );
    }
    // the decision cases, given the organization keys the server has
    let ours_path = format!("{ORG}/r-sim1/ou-sim1-sandbox01/");
    let theirs_path = format!("{ORG}/r-sim1/ou-sim1-workload1/");
    let cases = [
        (
            &fence,
            &ours,
            json!({"aws:ResourceOrgPaths": [ours_path]}),
            "Allow",
        ),
        (
            &fence,
            &theirs,
            json!({"aws:ResourceOrgPaths": [theirs_path]}),
            "Deny",
        ),
        (
            &org_only,
            &ours,
            json!({"aws:PrincipalOrgID": [ORG]}),
            "Allow",
        ),
    ];
    for (deny, arn, context, want) in cases {
        assert_eq!(
            cased("User", &fenced_arn, SANDBOX, arn, deny, context),
            want,
            "{arn}: cases"
        );
    }
}

/// A Deny on the secret's tag: the server reads the tag; SimulatePrincipalPolicy and the
/// decision cases decide alike when given it (`aws:ResourceTag/env`), as AWS's simulator
/// must be given a resource's tags.
#[tokio::test]
async fn a_deny_on_a_resource_tag_is_simulated_with_the_tag_given() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("policies");
    let prod = json!({"Effect": "Deny", "Action": "secretsmanager:*", "Resource": "*",
        "Condition": {"StringEquals": {"aws:ResourceTag/env": "prod"}}});
    user_with(&dir, ACCOUNT, "dev", &prod);
    let s = TestServer::start_with_policies(&dir);
    let tagged = create(
        &s,
        &root(),
        "tagged",
        json!([{"Key": "env", "Value": "prod"}]),
    );
    let plain = create(
        &s,
        &root(),
        "plain",
        json!([{"Key": "env", "Value": "dev"}]),
    );
    let dev = user_key(&s, &dir, ACCOUNT, "dev");
    let dev_arn = format!("arn:aws:iam::{ACCOUNT}:user/dev");
    for (arn, env, want) in [(&tagged, "prod", "Deny"), (&plain, "dev", "Allow")] {
        assert_eq!(served(&s, &dev, arn), want, "{arn}: server");
        let entries = [("aws:ResourceTag/env", env, "string")];
        assert_eq!(
            simulated(&s, &root(), &dev_arn, arn, &entries),
            want,
            "{arn}: IAM"
        );
        let context = json!({"aws:ResourceTag/env": [env]});
        assert_eq!(
            cased("User", &dev_arn, ACCOUNT, arn, &prod, context),
            want,
            "{arn}: cases"
        );
    }
}
