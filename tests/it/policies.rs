//! The policy engine through the server: identity policies, groups, boundaries, tag and IP
//! conditions, explicit deny, the existence oracle, AWS's denial wording.

use std::path::Path;

use crate::common::{code, example_policies, message, mint, signed_request, Signing, TestServer};

async fn seed(s: &TestServer) -> (String, String) {
    let root = s.client();
    let a = root
        .create_secret()
        .name("payments/db")
        .secret_string("p")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("team")
                .value("payments")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let b = root
        .create_secret()
        .name("other/db")
        .secret_string("o")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("team")
                .value("other")
                .build(),
        )
        .send()
        .await
        .unwrap();
    (a.arn().unwrap().to_owned(), b.arn().unwrap().to_owned())
}

#[tokio::test]
async fn identity_policies_groups_tags_and_denial_wording() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    let (_payments, other) = seed(&s).await;
    let (akid, secret) = mint(&s, &dir, "alice");
    let alice = s.client_in("us-east-1", &akid, &secret);

    // read-only group policy: reads anywhere
    assert_eq!(
        alice
            .get_secret_value()
            .secret_id("other/db")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("o")
    );
    assert_eq!(
        alice
            .list_secrets()
            .send()
            .await
            .unwrap()
            .secret_list()
            .len(),
        2
    );
    // inline policy: writes where the secret's team tag equals alice's team tag
    alice
        .put_secret_value()
        .secret_id("payments/db")
        .secret_string("p2")
        .send()
        .await
        .unwrap();
    let e = alice
        .put_secret_value()
        .secret_id("other/db")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    assert_eq!(
        message(&e),
        "User: arn:aws:iam::111122223333:user/engineering/alice is not authorized to perform: secretsmanager:PutSecretValue on resource: arn:aws:secretsmanager:us-east-1:111122223333:secret:other/db"
    );
    assert_eq!(
        crate::common::last_reason(&s, "PutSecretValue"),
        "NotAllowedBy(Identity)"
    );
    let _ = &other;
    // nothing grants CreateSecret
    let e = alice
        .create_secret()
        .name("payments/new")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    // the value was not changed by the denied call
    assert_eq!(
        s.client()
            .get_secret_value()
            .secret_id("other/db")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("o")
    );
}

#[tokio::test]
async fn boundary_limits_and_existence_oracle() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    seed(&s).await;
    let (akid, secret) = mint(&s, &dir, "ci-bot");
    let bot = s.client_in("us-east-1", &akid, &secret);
    assert_eq!(
        bot.get_secret_value()
            .secret_id("payments/db")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("p")
    );
    let e = bot
        .get_secret_value()
        .secret_id("other/db")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    // allowed on the would-be ARN: learns it does not exist
    let e = bot
        .describe_secret()
        .secret_id("payments/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    // not allowed there: cannot learn whether it exists
    let e = bot
        .describe_secret()
        .secret_id("other/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    // the identity policy does not allow writes, and the boundary would not either
    let e = bot
        .put_secret_value()
        .secret_id("payments/db")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
}

#[tokio::test]
async fn source_ip_conditions_with_an_explicit_deny() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    seed(&s).await;
    let (akid, secret) = mint(&s, &dir, "alice");
    let body = br#"{"SecretId":"payments/db","SecretString":"from-elsewhere","ClientRequestToken":"00000000-0000-4000-8000-0000000000ff"}"#;
    let sign = || {
        signed_request(
            "secretsmanager.PutSecretValue",
            body,
            Signing {
                akid: akid.clone(),
                secret: secret.clone(),
                ..Signing::default()
            },
        )
    };
    // from 127.0.0.2: outside the office ranges, the explicit deny applies
    let r = send_from("127.0.0.2", s.addr, &sign()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_type(), "AccessDeniedException");
    assert!(
        crate::common::last_reason(&s, "PutSecretValue").starts_with("ExplicitDeny(Identity)"),
        "{}",
        r.body
    );
    // from 127.0.0.1: allowed
    let r = send_from("127.0.0.1", s.addr, &sign()).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn send_from(ip: &str, to: std::net::SocketAddr, req: &[u8]) -> crate::common::RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    let mut stream = sock.connect(to).await.unwrap();
    stream.write_all(req).await.unwrap();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf).await;
    crate::common::parse_response(&buf)
}

fn add_account(dir: &Path) {
    let acct = dir.join("accounts/444455556666");
    std::fs::create_dir_all(acct.join("users")).unwrap();
    std::fs::write(acct.join("account.json"), r#"{"AccountId":"444455556666"}"#).unwrap();
    std::fs::write(
        acct.join("users/reader.json"),
        r#"{"UserName":"reader","InlinePolicies":{"read-shared":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["secretsmanager:GetSecretValue","secretsmanager:DescribeSecret"],
             "Resource":"arn:aws:secretsmanager:*:111122223333:secret:shared/*"},
            {"Effect":"Allow","Action":"kms:Decrypt","Resource":"arn:aws:kms:*:111122223333:key/*"}]}}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("accounts/111122223333/users/batcher.json"),
        r#"{"UserName":"batcher","InlinePolicies":{"batch":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"secretsmanager:BatchGetSecretValue","Resource":"*"},
            {"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:*:*:secret:payments/*"},
            {"Sid":"NotFrozen","Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*",
             "Condition":{"StringEquals":{"aws:ResourceTag/team":"frozen"}}}]}}}"#,
    )
    .unwrap();
}

#[tokio::test]
async fn cross_account_reads_need_a_resource_policy_and_a_customer_key() {
    let (_t, dir) = example_policies();
    add_account(&dir);
    let s = TestServer::start_with_policies(&dir);
    let r = s.call("TrentService.CreateKey", r#"{"Description":"shared"}"#);
    let key = r.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let root = s.client();
    let x = root
        .create_secret()
        .name("shared/x")
        .secret_string("xv")
        .kms_key_id(&key)
        .send()
        .await
        .unwrap();
    let x = x.arn().unwrap().to_owned();
    let y = root
        .create_secret()
        .name("shared/y")
        .secret_string("yv")
        .send()
        .await
        .unwrap();
    let y = y.arn().unwrap().to_owned();

    let out = strongroom::cli::create_access_key(&s.store_config(), &dir, "444455556666", "reader")
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let reader = s.client_in(
        "us-east-1",
        v["AccessKeyId"].as_str().unwrap(),
        v["SecretAccessKey"].as_str().unwrap(),
    );
    // identity allows, but the secret's account has not shared it
    let e = reader
        .get_secret_value()
        .secret_id(&x)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException", "{}", message(&e));

    let grant = |_arn: &str| {
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:user/reader"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#.to_owned()
    };
    root.put_resource_policy()
        .secret_id(&x)
        .resource_policy(grant(&x))
        .block_public_policy(true)
        .send()
        .await
        .unwrap();
    // the secret is shared, its key is not: the key's default policy only trusts its account
    let e = reader
        .get_secret_value()
        .secret_id(&x)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    assert!(
        message(&e).contains("kms:Decrypt")
            && message(&e).contains("because no resource-based policy allows"),
        "{}",
        message(&e)
    );
    let key_policy = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
        {"Sid":"Share","Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"kms:Decrypt","Resource":"*",
         "Condition":{"StringEquals":{"kms:ViaService":"secretsmanager.us-east-1.amazonaws.com"}}}]}"#;
    let r = s.call(
        "TrentService.PutKeyPolicy",
        &serde_json::json!({"KeyId": key, "Policy": key_policy}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        reader
            .get_secret_value()
            .secret_id(&x)
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("xv")
    );
    // DescribeSecret is not in the resource policy
    let e = reader
        .describe_secret()
        .secret_id(&x)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    // the AWS-managed key cannot be shared across accounts
    root.put_resource_policy()
        .secret_id(&y)
        .resource_policy(grant(&y))
        .send()
        .await
        .unwrap();
    let e = reader
        .get_secret_value()
        .secret_id(&y)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    assert_eq!(
        message(&e),
        "You can't access a secret from a different AWS account if you encrypt the secret with the default KMS service key."
    );

    // resource policy management
    let got = root
        .get_resource_policy()
        .secret_id(&x)
        .send()
        .await
        .unwrap();
    assert!(got.resource_policy().unwrap().contains("444455556666"));
    let public = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
    let e = root
        .put_resource_policy()
        .secret_id(&x)
        .resource_policy(public)
        .block_public_policy(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "PublicPolicyException");
    let v = root
        .validate_resource_policy()
        .resource_policy(public)
        .send()
        .await
        .unwrap();
    assert!(!v.policy_validation_passed());
    // refused as broad access (AWS's check name), not for some other reason
    assert!(
        v.validation_errors()
            .iter()
            .any(|e| e.check_name() == Some("BROAD_ACCESS_CHECK")),
        "{:?}",
        v.validation_errors()
    );
    let e = root
        .put_resource_policy()
        .secret_id(&x)
        .resource_policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "MalformedPolicyDocumentException");
    root.delete_resource_policy()
        .secret_id(&x)
        .send()
        .await
        .unwrap();
    assert!(root
        .get_resource_policy()
        .secret_id(&x)
        .send()
        .await
        .unwrap()
        .resource_policy()
        .is_none());
    let e = reader
        .get_secret_value()
        .secret_id(&x)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
}

#[tokio::test]
async fn key_policies_decide_every_use_of_a_customer_key() {
    let (_t, dir) = example_policies();
    add_account(&dir);
    let s = TestServer::start_with_policies(&dir);
    let r = s.call("TrentService.CreateKey", r#"{"Description":"payments"}"#);
    let key = r.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_arn = r.json()["KeyMetadata"]["Arn"].as_str().unwrap().to_owned();
    // a new key's default policy delegates to its account
    let r = s.call(
        "TrentService.GetKeyPolicy",
        &serde_json::json!({"KeyId": key, "PolicyName": "default"}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["PolicyName"], "default");
    let doc: serde_json::Value =
        serde_json::from_str(r.json()["Policy"].as_str().unwrap()).unwrap();
    assert_eq!(
        doc["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::111122223333:root"
    );
    let r = s.call(
        "TrentService.GetKeyPolicy",
        &serde_json::json!({"KeyId": key, "PolicyName": "other"}).to_string(),
    );
    assert_eq!(r.error_type(), "NotFoundException", "{}", r.body);

    let root = s.client();
    root.create_secret()
        .name("payments/k")
        .secret_string("kv")
        .kms_key_id(&key)
        .send()
        .await
        .unwrap();
    let (akid, secret) = mint(&s, &dir, "batcher");
    let batcher = s.client_in("us-east-1", &akid, &secret);
    // same account: the key policy delegates, and batcher's identity policies lack kms:Decrypt
    let e = batcher
        .get_secret_value()
        .secret_id("payments/k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    assert!(
        message(&e).contains(&format!(
            "kms:Decrypt on resource: {key_arn} because no identity-based policy allows"
        )),
        "{}",
        message(&e)
    );
    // a statement naming batcher grants without an identity policy
    let direct = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
        {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/batcher"},"Action":"kms:Decrypt","Resource":"*"}]}"#;
    let put = |policy: &str, bypass: bool| {
        s.call(
            "TrentService.PutKeyPolicy",
            &serde_json::json!({"KeyId": key, "Policy": policy, "BypassPolicyLockoutSafetyCheck": bypass})
                .to_string(),
        )
    };
    assert_eq!(put(direct, false).status, 200);
    let got = batcher
        .get_secret_value()
        .secret_id("payments/k")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("kv"));
    // batcher may read but not write: PutSecretValue needs kms:GenerateDataKey too
    // (and secretsmanager:PutSecretValue, which batcher lacks: that is decided first)
    let e = batcher
        .put_secret_value()
        .secret_id("payments/k")
        .secret_string("nv")
        .send()
        .await
        .unwrap_err();
    assert!(
        message(&e).contains("secretsmanager:PutSecretValue"),
        "{}",
        message(&e)
    );

    // policies that would lock the caller out are refused unless bypassed
    let only_batcher = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/batcher"},"Action":"kms:Decrypt","Resource":"*"}]}"#;
    let r = put(only_batcher, false);
    assert_eq!(
        r.error_type(),
        "MalformedPolicyDocumentException",
        "{}",
        r.body
    );
    assert!(r
        .body
        .contains("will not allow you to update the key policy"));
    let r = put(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#,
        false,
    );
    assert_eq!(
        r.error_type(),
        "MalformedPolicyDocumentException",
        "{}",
        r.body
    );
    assert_eq!(put(only_batcher, true).status, 200);
    // now not even the account root may use or manage the key
    let r = s.call(
        "TrentService.DescribeKey",
        &serde_json::json!({"KeyId": key}).to_string(),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    assert!(r
        .body
        .contains("because no resource-based policy allows the kms:DescribeKey action"));
    let e = root
        .put_secret_value()
        .secret_id("payments/k")
        .secret_string("nv")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    assert!(
        message(&e).contains("kms:GenerateDataKey"),
        "{}",
        message(&e)
    );
    // batcher still reads
    assert!(batcher
        .get_secret_value()
        .secret_id("payments/k")
        .send()
        .await
        .is_ok());
}

#[tokio::test]
async fn batch_get_authorizes_each_secret() {
    let (_t, dir) = example_policies();
    add_account(&dir);
    let s = TestServer::start_with_policies(&dir);
    seed(&s).await;
    let (akid, secret) = mint(&s, &dir, "batcher");
    let c = s.client_in("us-east-1", &akid, &secret);
    let out = c
        .batch_get_secret_value()
        .secret_id_list("payments/db")
        .secret_id_list("other/db")
        .send()
        .await
        .unwrap();
    assert_eq!(out.secret_values().len(), 1);
    assert_eq!(out.secret_values()[0].name(), Some("payments/db"));
    assert_eq!(out.errors().len(), 1);
    assert_eq!(out.errors()[0].error_code(), Some("AccessDeniedException"));

    // each secret is decided with its own tags and its own key's policy
    let root = s.client();
    root.create_secret()
        .name("payments/frozen")
        .secret_string("f")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("team")
                .value("frozen")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let r = s.call("TrentService.CreateKey", r#"{"Description":"batch"}"#);
    let key = r.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    root.create_secret()
        .name("payments/cmk")
        .secret_string("k")
        .kms_key_id(&key)
        .send()
        .await
        .unwrap();
    let out = c
        .batch_get_secret_value()
        .secret_id_list("payments/db")
        .secret_id_list("payments/frozen")
        .secret_id_list("payments/cmk")
        .send()
        .await
        .unwrap();
    assert_eq!(out.secret_values().len(), 1);
    let errors: std::collections::BTreeMap<&str, &str> = out
        .errors()
        .iter()
        .map(|e| (e.secret_id().unwrap(), e.message().unwrap()))
        .collect();
    assert!(
        errors["payments/frozen"].ends_with("secret:payments/frozen"),
        "{errors:?}"
    );
    assert!(
        errors["payments/cmk"].contains("kms:Decrypt")
            && errors["payments/cmk"].contains("Access to KMS is not allowed"),
        "{errors:?}"
    );
}

#[tokio::test]
async fn sessions_carry_multi_factor_auth_present_false() {
    let (_t, dir) = example_policies();
    let role_file = dir.join("accounts/111122223333/roles/payments-app.json");
    let mut role: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&role_file).unwrap()).unwrap();
    role["InlinePolicies"] = serde_json::json!({"require-mfa": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue",
         "Resource": "arn:aws:secretsmanager:*:*:secret:payments/mfa-*",
         "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}}}]}});
    std::fs::write(&role_file, role.to_string()).unwrap();
    let s = TestServer::start_with_policies(&dir);
    let root = s.client();
    for name in ["payments/db", "payments/mfa-only"] {
        root.create_secret()
            .name(name)
            .secret_string("v")
            .send()
            .await
            .unwrap();
    }
    let (akid, secret) = mint(&s, &dir, "ci-bot");
    let (akid, secret, token) = crate::common::assume_role(
        &s,
        &akid,
        &secret,
        "arn:aws:iam::111122223333:role/service/payments-app",
        "mfa-test",
    );
    let session = Signing {
        akid,
        secret,
        session_token: Some(token),
        ..Signing::default()
    };
    let get = |id: &str| {
        s.raw(&signed_request(
            "secretsmanager.GetSecretValue",
            format!(r#"{{"SecretId":"{id}"}}"#).as_bytes(),
            session.clone(),
        ))
    };
    assert_eq!(get("payments/db").status, 200);
    // a session was issued without MFA: the key is present and false
    let r = get("payments/mfa-only");
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    assert!(
        crate::common::last_reason(&s, "GetSecretValue").starts_with("ExplicitDeny(Identity)"),
        "{}",
        r.body
    );
}
