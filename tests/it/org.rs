//! An organization declared with the principals: service control policies through the real
//! server (explicit deny, allow-list, the management account exempt) and `aws:PrincipalOrgID`
//! in a resource policy across the organization's accounts.

use std::path::Path;

use crate::common::{code, example_policies, message, TestServer};

const ORG: &str = "o-strongroomtest1";
const MEMBER: &str = "444455556666";
const OUTSIDER: &str = "777788889999";
/// A member account placed at the organization's root, outside every OU.
const AT_ROOT: &str = "555566667777";

/// A user with full Secrets Manager rights and kms:Decrypt (identity side never the limit).
fn power_user(dir: &Path, account: &str, name: &str) {
    let acct = dir.join(format!("accounts/{account}"));
    std::fs::create_dir_all(acct.join("users")).unwrap();
    if !acct.join("account.json").exists() {
        std::fs::write(
            acct.join("account.json"),
            format!(r#"{{"AccountId":"{account}"}}"#),
        )
        .unwrap();
    }
    std::fs::write(
        acct.join(format!("users/{name}.json")),
        format!(
            r#"{{"UserName":"{name}","InlinePolicies":{{"all":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":["secretsmanager:*","kms:Decrypt","kms:GenerateDataKey","kms:Encrypt"],"Resource":"*"}}]}}}}}}"#
        ),
    )
    .unwrap();
}

/// The organization: the management account and, in OU `workloads`, one member account.
/// The root has AWS's default `FullAWSAccess` and `deny-delete` (every member inherits the
/// deny); the OU has nothing attached (as if `FullAWSAccess`); the member account has the
/// allow-list `secrets-read-create` instead of `FullAWSAccess`, so what it does not list is
/// not allowed there.
fn add_org(dir: &Path) {
    power_user(dir, "111122223333", "ops");
    power_user(dir, MEMBER, "dev");
    std::fs::write(
        dir.join(format!("accounts/{MEMBER}/users/auditor.json")),
        r#"{"UserName":"auditor","InlinePolicies":{"sim":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"iam:SimulatePrincipalPolicy","Resource":"*"}]}}}"#,
    )
    .unwrap();
    power_user(dir, OUTSIDER, "stranger");
    power_user(dir, AT_ROOT, "admin");
    let org = dir.join("organization");
    std::fs::create_dir_all(org.join("scps")).unwrap();
    std::fs::write(
        org.join("scps/FullAWSAccess.json"),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    )
    .unwrap();
    std::fs::write(
        org.join("scps/deny-delete.json"),
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoDeletes","Effect":"Deny",
            "Action":"secretsmanager:DeleteSecret","Resource":"*"}]}"#,
    )
    .unwrap();
    std::fs::write(
        org.join("scps/secrets-read-create.json"),
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"AllowList","Effect":"Allow","Action":[
            "secretsmanager:Get*","secretsmanager:Describe*","secretsmanager:List*",
            "secretsmanager:CreateSecret","secretsmanager:DeleteSecret","kms:*","iam:Simulate*"],"Resource":"*"}]}"#,
    )
    .unwrap();
    std::fs::write(
        org.join("organization.json"),
        format!(
            r#"{{"Id":"{ORG}","ManagementAccount":"111122223333",
                "Root":{{"Name":"Root","Id":"r-ab12","Policies":["FullAWSAccess","deny-delete"],
                  "Accounts":[{{"AccountId":"111122223333"}},{{"AccountId":"{AT_ROOT}"}}],
                  "OrganizationalUnits":[{{"Name":"workloads","Id":"ou-ab12-workload1",
                    "Accounts":[{{"AccountId":"{MEMBER}","Policies":["secrets-read-create"]}}]}}]}}}}"#
        ),
    )
    .unwrap();
}

fn client_for(
    s: &TestServer,
    dir: &Path,
    account: &str,
    user: &str,
) -> aws_sdk_secretsmanager::Client {
    let out = strongroom::cli::create_access_key(&s.store_config(), dir, account, user).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    s.client_in(
        "us-east-1",
        v["AccessKeyId"].as_str().unwrap(),
        v["SecretAccessKey"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn service_control_policies_bind_member_accounts_not_the_management_account() {
    let (_t, dir) = example_policies();
    add_org(&dir);
    let msg = strongroom::cli::validate_policies(&dir).unwrap();
    assert!(msg.contains("OK"), "{msg}");
    let s = TestServer::start_with_policies(&dir);
    let dev = client_for(&s, &dir, MEMBER, "dev");
    let ops = client_for(&s, &dir, "111122223333", "ops");

    // the member account: what the allow-list names works
    let created = dev
        .create_secret()
        .name("team/db")
        .secret_string("v1")
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap().to_owned();
    assert!(arn.contains(&format!(":{MEMBER}:secret:team/db-")), "{arn}");
    assert_eq!(
        dev.get_secret_value()
            .secret_id("team/db")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("v1")
    );
    // the root's SCP denies deletes explicitly, though the allow-list and the identity allow it
    let e = dev
        .delete_secret()
        .secret_id("team/db")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    assert_eq!(
        message(&e),
        format!(
            "User: arn:aws:iam::{MEMBER}:user/dev is not authorized to perform: secretsmanager:DeleteSecret on resource: arn:aws:secretsmanager:us-east-1:{MEMBER}:secret:team/db"
        )
    );
    // what the allow-list does not name is implicitly denied by the SCPs
    let e = dev
        .put_secret_value()
        .secret_id("team/db")
        .secret_string("v2")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    assert_eq!(
        message(&e),
        format!(
            "User: arn:aws:iam::{MEMBER}:user/dev is not authorized to perform: secretsmanager:PutSecretValue on resource: arn:aws:secretsmanager:us-east-1:{MEMBER}:secret:team/db"
        )
    );

    // the policy simulator sees the same SCPs (and says so in OrganizationsDecisionDetail);
    // it simulates principals of the caller's own account only (the management account's
    // root is refused a member's user)
    let auditor =
        strongroom::cli::create_access_key(&s.store_config(), &dir, MEMBER, "auditor").unwrap();
    let auditor: serde_json::Value = serde_json::from_str(&auditor).unwrap();
    let sim_as = |signing: crate::common::Signing, user: &str, action: &str| {
        let form = format!(
            "Action=SimulatePrincipalPolicy&Version=2010-05-08&PolicySourceArn=arn%3Aaws%3Aiam%3A%3A{MEMBER}%3Auser%2F{user}&ActionNames.member.1=secretsmanager%3A{action}&ResourceArns.member.1={}",
            crate::common::urlenc(&arn)
        );
        s.raw(&crate::common::signed_query(&form, signing))
    };
    let root = crate::common::Signing {
        service: "iam".into(),
        ..crate::common::Signing::default()
    };
    let r = sim_as(root, "dev", "DeleteSecret");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("<Code>AccessDenied</Code>"), "{}", r.body);
    let member = crate::common::Signing {
        service: "iam".into(),
        akid: auditor["AccessKeyId"].as_str().unwrap().to_owned(),
        secret: auditor["SecretAccessKey"].as_str().unwrap().to_owned(),
        ..crate::common::Signing::default()
    };
    let sim = |user: &str, action: &str| sim_as(member.clone(), user, action);
    let r = sim("dev", "DeleteSecret");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<EvalDecision>explicitDeny</EvalDecision>"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("<AllowedByOrganizations>false</AllowedByOrganizations>"),
        "{}",
        r.body
    );
    let r = sim("dev", "GetSecretValue");
    assert!(
        r.body.contains("<EvalDecision>allowed</EvalDecision>"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("<AllowedByOrganizations>true</AllowedByOrganizations>"),
        "{}",
        r.body
    );

    // the management account: SCPs never apply to it
    ops.create_secret()
        .name("mgmt/db")
        .secret_string("m1")
        .send()
        .await
        .unwrap();
    ops.put_secret_value()
        .secret_id("mgmt/db")
        .secret_string("m2")
        .send()
        .await
        .unwrap();
    ops.delete_secret()
        .secret_id("mgmt/db")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    // nor to its root user
    let root = s.client();
    root.create_secret()
        .name("root/db")
        .secret_string("r")
        .send()
        .await
        .unwrap();
    root.delete_secret()
        .secret_id("root/db")
        .send()
        .await
        .unwrap();

    // an account outside the organization is not bound either
    let stranger = client_for(&s, &dir, OUTSIDER, "stranger");
    stranger
        .create_secret()
        .name("own/db")
        .secret_string("o")
        .send()
        .await
        .unwrap();
    stranger
        .put_secret_value()
        .secret_id("own/db")
        .secret_string("o2")
        .send()
        .await
        .unwrap();
    stranger
        .delete_secret()
        .secret_id("own/db")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn principal_org_id_shares_a_secret_with_the_organization_only() {
    let (_t, dir) = example_policies();
    add_org(&dir);
    let s = TestServer::start_with_policies(&dir);
    let root = s.client();
    let r = s.call("TrentService.CreateKey", r#"{"Description":"org-shared"}"#);
    let key = r.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Sid":"Owner","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:root"}},"Action":"kms:*","Resource":"*"}},
        {{"Sid":"Org","Effect":"Allow","Principal":{{"AWS":"*"}},"Action":"kms:Decrypt","Resource":"*",
          "Condition":{{"StringEquals":{{"aws:PrincipalOrgID":"{ORG}"}}}}}}]}}"#
    );
    let r = s.call(
        "TrentService.PutKeyPolicy",
        &serde_json::json!({"KeyId": key, "Policy": key_policy}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let arn = root
        .create_secret()
        .name("shared/org")
        .secret_string("org-value")
        .kms_key_id(&key)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"*"}},
            "Action":"secretsmanager:GetSecretValue","Resource":"*",
            "Condition":{{"StringEquals":{{"aws:PrincipalOrgID":"{ORG}"}}}}}}]}}"#
    );
    root.put_resource_policy()
        .secret_id(&arn)
        .resource_policy(policy)
        .block_public_policy(false)
        .send()
        .await
        .unwrap();

    // a member account of the organization reads it by ARN
    let dev = client_for(&s, &dir, MEMBER, "dev");
    let v = dev
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}", message(&e)));
    assert_eq!(v.secret_string(), Some("org-value"));
    // an account outside the organization does not
    let stranger = client_for(&s, &dir, OUTSIDER, "stranger");
    let e = stranger
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException", "{}", message(&e));
    assert!(
        message(&e).starts_with(&format!(
            "User: arn:aws:iam::{OUTSIDER}:user/stranger is not authorized"
        )),
        "{}",
        message(&e)
    );

    // aws:PrincipalOrgPaths: only principals under the `workloads` OU
    let by_path = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"*"}},
            "Action":"secretsmanager:GetSecretValue","Resource":"*",
            "Condition":{{"ForAnyValue:StringLike":{{"aws:PrincipalOrgPaths":"{ORG}/r-ab12/ou-ab12-workload1/*"}}}}}}]}}"#
    );
    root.put_resource_policy()
        .secret_id(&arn)
        .resource_policy(by_path)
        .block_public_policy(false)
        .send()
        .await
        .unwrap();
    assert!(dev.get_secret_value().secret_id(&arn).send().await.is_ok());
    // a member account at the root, outside the OU: in the organization, not on the path
    let admin = client_for(&s, &dir, AT_ROOT, "admin");
    let e = admin
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException", "{}", message(&e));
    assert!(
        message(&e).ends_with(&format!("on resource: {arn}")),
        "{}",
        message(&e)
    );
    assert!(stranger
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .is_err());
}

#[test]
fn organization_files_are_validated() {
    let (_t, dir) = example_policies();
    add_org(&dir);
    let org = dir.join("organization/organization.json");
    std::fs::write(
        &org,
        format!(
            r#"{{"Id":"o-BAD","ManagementAccount":"12",
                "Root":{{"Id":"root-1","Policies":["missing"],
                  "Accounts":[{{"AccountId":"{MEMBER}"}},{{"AccountId":"{MEMBER}"}},{{"AccountId":"x"}}]}}}}"#
        ),
    )
    .unwrap();
    let err = strongroom::cli::validate_policies(&dir).unwrap_err();
    for want in [
        "organization.json: $.Id",
        "organization.json: $.ManagementAccount",
        "organization.json: $.Root.Policies[0]",
        "organization.json: $.Root.Accounts[1]",
        "organization.json: $.Root.Accounts[2].AccountId",
        "organization.json: $.Root.Id",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    // an SCP must be a valid policy document
    std::fs::write(
        dir.join("organization/scps/deny-delete.json"),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Resource":"*"}]}"#,
    )
    .unwrap();
    let err = strongroom::cli::validate_policies(&dir).unwrap_err();
    assert!(err.contains("deny-delete.json"), "{err}");
}
