//! Wire fidelity with AWS: error bodies, name validation, request tokens and the default
//! key's cross-account refusal, each checked with AWS's exact code and message.

use crate::common::TestServer;

/// `{"__type": ..., "Message": ...}` exactly, as AWS's JSON 1.1 services answer.
fn assert_aws_error(r: &crate::common::RawResponse, code: &str, message: &str) {
    assert_eq!(r.status, 400, "{}", r.body);
    let v = r.json();
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {}", r.body));
    assert_eq!(obj.len(), 2, "{}", r.body);
    assert_eq!(v["__type"], code, "{}", r.body);
    assert_eq!(v["Message"], message, "{}", r.body);
}

#[test]
fn error_bodies_carry_capital_message_in_every_service() {
    let s = TestServer::start();
    let r = s.call("secretsmanager.GetSecretValue", r#"{"SecretId":"missing"}"#);
    assert_aws_error(
        &r,
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret.",
    );
    let r = s.call("TrentService.DescribeKey", r#"{"KeyId":"alias/missing"}"#);
    assert_eq!(r.error_type(), "NotFoundException", "{}", r.body);
    assert!(r.json()["Message"].is_string(), "{}", r.body);
    assert!(r.json().get("message").is_none(), "{}", r.body);
    let r = s.call(
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        r#"{"MaxResults":0}"#,
    );
    assert_aws_error(
        &r,
        "InvalidMaxResultsException",
        "Value for MaxResults must be between 1 and 50.",
    );
    // Errors met before the service is known (authentication) have the same shape.
    let unknown = crate::common::Signing {
        akid: "AKIAUNKNOWN000000000".into(),
        ..crate::common::Signing::default()
    };
    let r = s.call_signed("secretsmanager.ListSecrets", "{}", unknown);
    assert_aws_error(
        &r,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    );
}

/// The SDK reads the modeled `Message` member.
#[tokio::test]
async fn sdk_reads_the_modeled_message() {
    let s = TestServer::start();
    let e = s
        .client()
        .describe_secret()
        .secret_id("missing")
        .send()
        .await
        .unwrap_err();
    let svc = e.into_service_error();
    assert!(svc.is_resource_not_found_exception());
    assert_eq!(
        aws_sdk_secretsmanager::error::ProvideErrorMetadata::message(&svc),
        Some("Secrets Manager can't find the specified secret.")
    );
}

const INVALID_NAME: &str = "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!";

/// Every operation that takes a Name or SecretId refuses a name with a character outside
/// AWS's set before looking anything up; a force delete of such a name is no success.
#[test]
fn invalid_names_are_validation_errors_on_every_operation() {
    let s = TestServer::start();
    let ok = s.call(
        "secretsmanager.CreateSecret",
        r#"{"Name":"wire/ok","SecretString":"v","ClientRequestToken":"00000000-0000-4000-8000-000000000001"}"#,
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    let arn = ok.json()["ARN"].as_str().unwrap().to_owned();
    let bad_ids = [
        "bad name".to_owned(),
        "wire/ok ".to_owned(),
        "tab\there".to_owned(),
        "semi;colon".to_owned(),
        "ünïcode".to_owned(),
        // a valid ARN form whose name part is invalid
        arn.replace("wire/ok", "wire ok"),
        format!("{arn}:extra"),
    ];
    let token = r#""ClientRequestToken":"00000000-0000-4000-8000-000000000002""#;
    for id in &bad_ids {
        let id = serde_json::to_string(id).unwrap();
        for (op, body) in [
            (
                "CreateSecret",
                format!(r#"{{"Name":{id},"SecretString":"v",{token}}}"#),
            ),
            ("DescribeSecret", format!(r#"{{"SecretId":{id}}}"#)),
            ("GetSecretValue", format!(r#"{{"SecretId":{id}}}"#)),
            (
                "PutSecretValue",
                format!(r#"{{"SecretId":{id},"SecretString":"v",{token}}}"#),
            ),
            (
                "UpdateSecret",
                format!(r#"{{"SecretId":{id},"Description":"d"}}"#),
            ),
            ("DeleteSecret", format!(r#"{{"SecretId":{id}}}"#)),
            (
                "DeleteSecret",
                format!(r#"{{"SecretId":{id},"ForceDeleteWithoutRecovery":true}}"#),
            ),
            ("RestoreSecret", format!(r#"{{"SecretId":{id}}}"#)),
            (
                "TagResource",
                format!(r#"{{"SecretId":{id},"Tags":[{{"Key":"k","Value":"v"}}]}}"#),
            ),
            (
                "UntagResource",
                format!(r#"{{"SecretId":{id},"TagKeys":["k"]}}"#),
            ),
            ("ListSecretVersionIds", format!(r#"{{"SecretId":{id}}}"#)),
            (
                "UpdateSecretVersionStage",
                format!(r#"{{"SecretId":{id},"VersionStage":"X"}}"#),
            ),
            ("GetResourcePolicy", format!(r#"{{"SecretId":{id}}}"#)),
            (
                "PutResourcePolicy",
                format!(r#"{{"SecretId":{id},"ResourcePolicy":"{{}}"}}"#),
            ),
            ("DeleteResourcePolicy", format!(r#"{{"SecretId":{id}}}"#)),
            (
                "ValidateResourcePolicy",
                format!(r#"{{"SecretId":{id},"ResourcePolicy":"{{}}"}}"#),
            ),
            (
                "BatchGetSecretValue",
                format!(r#"{{"SecretIdList":[{id}]}}"#),
            ),
        ] {
            let r = s.call(&format!("secretsmanager.{op}"), &body);
            assert_eq!(r.status, 400, "{op} {id}: {}", r.body);
            assert_eq!(
                r.error_type(),
                "ValidationException",
                "{op} {id}: {}",
                r.body
            );
            assert_eq!(r.json()["Message"], INVALID_NAME, "{op} {id}: {}", r.body);
        }
    }
    // Positive controls: the full ARN (with its ':' fields), a partial ARN and the name.
    let partial = &arn[..arn.len() - 7];
    for id in [arn.as_str(), partial, "wire/ok"] {
        let r = s.call(
            "secretsmanager.GetSecretValue",
            &format!(r#"{{"SecretId":"{id}"}}"#),
        );
        assert_eq!(r.status, 200, "{id}: {}", r.body);
        assert_eq!(r.json()["SecretString"], "v");
    }
    // A well-formed name that does not exist is still not found.
    let r = s.call(
        "secretsmanager.DescribeSecret",
        r#"{"SecretId":"wire/missing"}"#,
    );
    assert_eq!(r.error_type(), "ResourceNotFoundException", "{}", r.body);
}

/// The same through the SDK: CreateSecret and GetSecretValue.
#[tokio::test]
async fn invalid_names_through_the_sdk() {
    let s = TestServer::start();
    let c = s.client();
    let e = c
        .create_secret()
        .name("has space")
        .secret_string("v")
        .send()
        .await
        .unwrap_err();
    assert_eq!(crate::common::code(&e), "ValidationException");
    assert_eq!(crate::common::message(&e), INVALID_NAME);
    let e = c
        .get_secret_value()
        .secret_id("has space")
        .send()
        .await
        .unwrap_err();
    assert_eq!(crate::common::code(&e), "ValidationException");
    assert_eq!(crate::common::message(&e), INVALID_NAME);
}

const MISSING_TOKEN: &str =
    "You must provide a ClientRequestToken value. We recommend a UUID-type value.";

/// A raw write that creates a version without a ClientRequestToken is refused, before the
/// secret is looked up; writes that create no version need none.
#[test]
fn writes_that_make_a_version_need_a_client_request_token() {
    let s = TestServer::start();
    let sm = |op: &str, body: &str| s.call(&format!("secretsmanager.{op}"), body);
    // CreateSecret with a value: refused, and nothing is created.
    let r = sm("CreateSecret", r#"{"Name":"tok/a","SecretString":"v"}"#);
    assert_aws_error(&r, "InvalidRequestException", MISSING_TOKEN);
    let r = sm("CreateSecret", r#"{"Name":"tok/a","SecretBinary":"AAE="}"#);
    assert_aws_error(&r, "InvalidRequestException", MISSING_TOKEN);
    let r = sm("DescribeSecret", r#"{"SecretId":"tok/a"}"#);
    assert_eq!(r.error_type(), "ResourceNotFoundException", "{}", r.body);
    // Without a value no version is made: no token needed.
    let r = sm("CreateSecret", r#"{"Name":"tok/empty"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    // With a token: created.
    let r = sm(
        "CreateSecret",
        r#"{"Name":"tok/a","SecretString":"v1","ClientRequestToken":"11111111-1111-4111-8111-111111111111"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["VersionId"],
        "11111111-1111-4111-8111-111111111111"
    );
    // Checked before existence: an existing name and a missing secret answer the same.
    let r = sm("CreateSecret", r#"{"Name":"tok/a","SecretString":"v"}"#);
    assert_aws_error(&r, "InvalidRequestException", MISSING_TOKEN);
    for id in ["tok/a", "tok/missing"] {
        let r = sm(
            "PutSecretValue",
            &format!(r#"{{"SecretId":"{id}","SecretString":"v2"}}"#),
        );
        assert_aws_error(&r, "InvalidRequestException", MISSING_TOKEN);
        let r = sm(
            "UpdateSecret",
            &format!(r#"{{"SecretId":"{id}","SecretString":"v2"}}"#),
        );
        assert_aws_error(&r, "InvalidRequestException", MISSING_TOKEN);
    }
    // No version was added by the refused writes.
    let r = sm("ListSecretVersionIds", r#"{"SecretId":"tok/a"}"#);
    assert_eq!(
        r.json()["Versions"].as_array().unwrap().len(),
        1,
        "{}",
        r.body
    );
    // UpdateSecret without a value makes no version: no token needed.
    let r = sm("UpdateSecret", r#"{"SecretId":"tok/a","Description":"d"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    // Positive controls: with a token, Put and Update write versions.
    let r = sm(
        "PutSecretValue",
        r#"{"SecretId":"tok/a","SecretString":"v2","ClientRequestToken":"22222222-2222-4222-8222-222222222222"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = sm(
        "UpdateSecret",
        r#"{"SecretId":"tok/a","SecretString":"v3","ClientRequestToken":"33333333-3333-4333-8333-333333333333"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = sm("GetSecretValue", r#"{"SecretId":"tok/a"}"#);
    assert_eq!(r.json()["SecretString"], "v3", "{}", r.body);
}

/// The SDK fills the token in: the same writes succeed through it.
#[tokio::test]
async fn the_sdk_sends_the_token_itself() {
    let s = TestServer::start();
    let c = s.client();
    c.create_secret()
        .name("tok/sdk")
        .secret_string("v1")
        .send()
        .await
        .unwrap();
    c.put_secret_value()
        .secret_id("tok/sdk")
        .secret_string("v2")
        .send()
        .await
        .unwrap();
    c.update_secret()
        .secret_id("tok/sdk")
        .secret_string("v3")
        .send()
        .await
        .unwrap();
    let got = c
        .get_secret_value()
        .secret_id("tok/sdk")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("v3"));
}

/// Every audit record the server wrote, as text.
fn audit_text(s: &TestServer) -> String {
    let store = strongroom::store::Store::open(&s.database_url).unwrap();
    let rows = store
        .read_blocking(|tx| {
            let mut out = Vec::new();
            for c in tx.audit_chains()? {
                out.extend(tx.audit_range(&c, 0, 1_000_000)?);
            }
            Ok(out)
        })
        .unwrap();
    rows.into_iter().map(|r| r.record + "\n").collect()
}

/// A value sent with the wrong JSON type is named by its type, never echoed: not in the
/// error and not in the audit record.
#[test]
fn a_value_of_the_wrong_type_is_not_echoed() {
    let s = TestServer::start();
    let token = r#""ClientRequestToken":"44444444-4444-4444-8444-444444444444""#;
    for (op, body) in [
        (
            "CreateSecret",
            format!(r#"{{"Name":"w/a","SecretString":918273645,{token}}}"#),
        ),
        (
            "CreateSecret",
            format!(r#"{{"Name":"w/a","SecretString":918273.645,{token}}}"#),
        ),
        (
            "CreateSecret",
            format!(r#"{{"Name":"w/a","SecretBinary":-918273645,{token}}}"#),
        ),
        (
            "PutSecretValue",
            format!(r#"{{"SecretId":"w/a","SecretString":918273645,{token}}}"#),
        ),
        (
            "UpdateSecret",
            format!(r#"{{"SecretId":"w/a","SecretString":918273645,{token}}}"#),
        ),
        (
            "PutSecretValue",
            format!(r#"{{"SecretId":"w/a","SecretString":{{"918273645":1}},{token}}}"#),
        ),
    ] {
        let r = s.call(&format!("secretsmanager.{op}"), &body);
        assert_eq!(r.error_type(), "SerializationException", "{op}: {}", r.body);
        assert!(!r.body.contains("918273"), "{op}: {}", r.body);
        assert!(!r.body.contains("645"), "{op}: {}", r.body);
        assert!(
            r.json()["Message"]
                .as_str()
                .unwrap()
                .contains("line 1 column"),
            "{}",
            r.body
        );
    }
    let audit = audit_text(&s);
    assert!(audit.contains("SerializationException"), "{audit}");
    assert!(!audit.contains("918273"), "{audit}");
}

/// A token already used for a version with another value: AWS's wording, without the token.
#[test]
fn a_reused_token_is_not_repeated_in_the_message() {
    let s = TestServer::start();
    let tok = "55555555-5555-4555-8555-555555555555";
    let r = s.call(
        "secretsmanager.CreateSecret",
        &format!(r#"{{"Name":"w/tok","SecretString":"v1","ClientRequestToken":"{tok}"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // the same token and value again: idempotent
    let r = s.call(
        "secretsmanager.PutSecretValue",
        &format!(r#"{{"SecretId":"w/tok","SecretString":"v1","ClientRequestToken":"{tok}"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for op in ["PutSecretValue", "UpdateSecret"] {
        let r = s.call(
            &format!("secretsmanager.{op}"),
            &format!(r#"{{"SecretId":"w/tok","SecretString":"v2","ClientRequestToken":"{tok}"}}"#),
        );
        assert_aws_error(
            &r,
            "ResourceExistsException",
            "You can't modify an existing version, you can only create a new version.",
        );
    }
    let audit = audit_text(&s);
    let refusals: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("ResourceExistsException"))
        .collect();
    assert_eq!(refusals.len(), 2, "{audit}");
    assert!(refusals.iter().all(|l| !l.contains(tok)), "{refusals:?}");
}

const DEFAULT_KEY_REFUSAL: &str = "You can't access a secret from a different AWS account if you encrypt the secret with the default KMS service key.";
const OTHER: &str = "444455556666";

/// A server whose principals add account 444455556666 with `writer`, allowed every Secrets
/// Manager and KMS action on any resource by its identity policy (never the limit here).
fn cross_account_server() -> (tempfile::TempDir, std::path::PathBuf, TestServer) {
    let (t, dir) = crate::common::example_policies();
    let acct = dir.join(format!("accounts/{OTHER}"));
    std::fs::create_dir_all(acct.join("users")).unwrap();
    std::fs::write(
        acct.join("account.json"),
        format!(r#"{{"AccountId":"{OTHER}"}}"#),
    )
    .unwrap();
    std::fs::write(
        acct.join("users/writer.json"),
        r#"{"UserName":"writer","InlinePolicies":{"all":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["secretsmanager:*","kms:*"],"Resource":"*"}]}}}"#,
    )
    .unwrap();
    let s = TestServer::start_with_policies(&dir);
    (t, dir, s)
}

/// A resource policy letting the other account's writer read, write and describe.
fn share_with_writer(s: &TestServer, secret: &str) {
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OTHER}:user/writer"}},"Action":["secretsmanager:GetSecretValue","secretsmanager:PutSecretValue","secretsmanager:UpdateSecret","secretsmanager:DescribeSecret","secretsmanager:ListSecretVersionIds"],"Resource":"*"}}]}}"#
    );
    let r = s.call(
        "secretsmanager.PutResourcePolicy",
        &serde_json::json!({"SecretId": secret, "ResourcePolicy": policy}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Another account may be allowed a secret by its resource policy, but a secret under the
/// default key (`aws/secretsmanager`) can be neither read nor written from there: AWS's
/// InvalidRequestException, and nothing is written. Under a customer managed key whose
/// policy allows the account, the same calls work; in the secret's own account they work.
#[tokio::test]
async fn the_default_key_is_not_usable_from_another_account() {
    let (_t, dir, s) = cross_account_server();
    let root = s.client();
    let default = root
        .create_secret()
        .name("xacct/default")
        .secret_string("d1")
        .send()
        .await
        .unwrap();
    let default = default.arn().unwrap().to_owned();
    let r = s.call("TrentService.CreateKey", r#"{"Description":"shared"}"#);
    let key = r.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:root"}},"Action":"kms:*","Resource":"*"}},
        {{"Sid":"Share","Effect":"Allow","Principal":{{"AWS":"{OTHER}"}},"Action":["kms:Decrypt","kms:GenerateDataKey"],"Resource":"*",
         "Condition":{{"StringEquals":{{"kms:ViaService":"secretsmanager.us-east-1.amazonaws.com"}}}}}}]}}"#
    );
    let r = s.call(
        "TrentService.PutKeyPolicy",
        &serde_json::json!({"KeyId": key, "Policy": key_policy}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let cmk = root
        .create_secret()
        .name("xacct/cmk")
        .secret_string("c1")
        .kms_key_id(&key)
        .send()
        .await
        .unwrap();
    let cmk = cmk.arn().unwrap().to_owned();
    share_with_writer(&s, &default);
    share_with_writer(&s, &cmk);

    let out = strongroom::cli::create_access_key(&s.store_config(), &dir, OTHER, "writer").unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (akid, secret) = (
        v["AccessKeyId"].as_str().unwrap().to_owned(),
        v["SecretAccessKey"].as_str().unwrap().to_owned(),
    );
    let writer = s.client_in("us-east-1", &akid, &secret);
    let as_writer = || crate::common::Signing {
        akid: akid.clone(),
        secret: secret.clone(),
        ..crate::common::Signing::default()
    };

    // The attacker: allowed by the resource policy, refused for every use of the value.
    let r = s.call_signed(
        "secretsmanager.GetSecretValue",
        &format!(r#"{{"SecretId":"{default}"}}"#),
        as_writer(),
    );
    assert_aws_error(&r, "InvalidRequestException", DEFAULT_KEY_REFUSAL);
    assert!(!r.body.contains("d1"));
    let r = s.call_signed(
        "secretsmanager.PutSecretValue",
        &format!(
            r#"{{"SecretId":"{default}","SecretString":"planted","ClientRequestToken":"66666666-6666-4666-8666-666666666666"}}"#
        ),
        as_writer(),
    );
    assert_aws_error(&r, "InvalidRequestException", DEFAULT_KEY_REFUSAL);
    let e = writer
        .put_secret_value()
        .secret_id(&default)
        .secret_string("planted")
        .send()
        .await
        .unwrap_err();
    assert_eq!(crate::common::code(&e), "InvalidRequestException");
    assert_eq!(crate::common::message(&e), DEFAULT_KEY_REFUSAL);
    let e = writer
        .update_secret()
        .secret_id(&default)
        .secret_string("planted")
        .send()
        .await
        .unwrap_err();
    assert_eq!(crate::common::message(&e), DEFAULT_KEY_REFUSAL);
    // moving it to a key the attacker may use would re-encrypt under the default key
    let e = writer
        .update_secret()
        .secret_id(&default)
        .kms_key_id(format!("arn:aws:kms:us-east-1:111122223333:key/{key}"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(crate::common::message(&e), DEFAULT_KEY_REFUSAL);
    // and moving the customer-key secret onto the default key is refused the same way
    let e = writer
        .update_secret()
        .secret_id(&cmk)
        .kms_key_id("")
        .send()
        .await
        .unwrap_err();
    assert_eq!(crate::common::message(&e), DEFAULT_KEY_REFUSAL);
    let batch = writer
        .batch_get_secret_value()
        .secret_id_list(&default)
        .send()
        .await
        .unwrap();
    // (BatchGetSecretValue looks ids up in the caller's account: another account's ARN is
    // reported as not found there, before the key would refuse it.)
    assert!(batch.secret_values().is_empty());
    assert_eq!(batch.errors().len(), 1, "{:?}", batch.errors());
    // Nothing was written: one version, the original value, the original key.
    let versions = root
        .list_secret_version_ids()
        .secret_id(&default)
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 1);
    let got = root
        .get_secret_value()
        .secret_id(&default)
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("d1"));
    let d = root
        .describe_secret()
        .secret_id(&default)
        .send()
        .await
        .unwrap();
    assert_eq!(d.kms_key_id(), None);
    let d = root.describe_secret().secret_id(&cmk).send().await.unwrap();
    assert!(d.kms_key_id().is_some_and(|k| k.contains(&key)), "{d:?}");
    // What needs no key still works across accounts (the resource policy allows it).
    writer
        .describe_secret()
        .secret_id(&default)
        .send()
        .await
        .unwrap();
    writer
        .update_secret()
        .secret_id(&default)
        .description("metadata only")
        .send()
        .await
        .unwrap();

    // Positive control: a customer managed key whose policy allows the account.
    let got = writer
        .get_secret_value()
        .secret_id(&cmk)
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("c1"));
    writer
        .put_secret_value()
        .secret_id(&cmk)
        .secret_string("c2")
        .send()
        .await
        .unwrap();
    writer
        .update_secret()
        .secret_id(&cmk)
        .secret_string("c3")
        .send()
        .await
        .unwrap();
    let got = writer
        .get_secret_value()
        .secret_id(&cmk)
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("c3"));
    // Positive control: the secret's own account uses the default key.
    root.put_secret_value()
        .secret_id(&default)
        .secret_string("d2")
        .send()
        .await
        .unwrap();
    let got = root
        .get_secret_value()
        .secret_id(&default)
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("d2"));
}

/// PutSecretValue moving AWSCURRENT off a version that also holds AWSPENDING leaves that
/// version with AWSPREVIOUS only.
#[tokio::test]
async fn a_new_current_takes_pending_off_the_old_current() {
    let s = TestServer::start();
    let c = s.client();
    let v1 = c
        .create_secret()
        .name("labels/a")
        .secret_string("v1")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    c.update_secret_version_stage()
        .secret_id("labels/a")
        .version_stage("AWSPENDING")
        .move_to_version_id(&v1)
        .send()
        .await
        .unwrap();
    let put = c
        .put_secret_value()
        .secret_id("labels/a")
        .secret_string("v2")
        .send()
        .await
        .unwrap();
    assert_eq!(put.version_stages(), ["AWSCURRENT"]);
    let v2 = put.version_id().unwrap().to_owned();
    let d = c
        .describe_secret()
        .secret_id("labels/a")
        .send()
        .await
        .unwrap();
    let stages = d.version_ids_to_stages().unwrap();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert_eq!(stages[&v1], ["AWSPREVIOUS"]);
    assert_eq!(stages[&v2], ["AWSCURRENT"]);
    let e = c
        .get_secret_value()
        .secret_id("labels/a")
        .version_stage("AWSPENDING")
        .send()
        .await
        .unwrap_err();
    assert_eq!(crate::common::code(&e), "ResourceNotFoundException");
}

/// DescribeSecret's members as AWS shows them: no `VersionIdsToStages` without versions, no
/// `Description` when it is empty, `Tags` absent on a secret never tagged and `[]` once its
/// tags were all removed (ListSecrets entries alike).
#[test]
fn describe_secret_shapes() {
    let s = TestServer::start();
    let sm = |op: &str, body: &str| {
        let r = s.call(&format!("secretsmanager.{op}"), body);
        assert_eq!(r.status, 200, "{op}: {}", r.body);
        r.json()
    };
    sm("CreateSecret", r#"{"Name":"shape/a","Description":""}"#);
    let d = sm("DescribeSecret", r#"{"SecretId":"shape/a"}"#);
    for absent in ["VersionIdsToStages", "Description", "Tags"] {
        assert!(d.get(absent).is_none(), "{absent}: {d}");
    }
    let listed = sm("ListSecrets", "{}");
    let entry = &listed["SecretList"][0];
    for absent in ["SecretVersionsToStages", "Description", "Tags"] {
        assert!(entry.get(absent).is_none(), "{absent}: {entry}");
    }
    sm(
        "TagResource",
        r#"{"SecretId":"shape/a","Tags":[{"Key":"team","Value":"x"}]}"#,
    );
    let d = sm("DescribeSecret", r#"{"SecretId":"shape/a"}"#);
    assert_eq!(
        d["Tags"],
        serde_json::json!([{"Key": "team", "Value": "x"}])
    );
    sm(
        "UntagResource",
        r#"{"SecretId":"shape/a","TagKeys":["team"]}"#,
    );
    let d = sm("DescribeSecret", r#"{"SecretId":"shape/a"}"#);
    assert_eq!(d["Tags"], serde_json::json!([]), "{d}");
    let listed = sm("ListSecrets", "{}");
    assert_eq!(
        listed["SecretList"][0]["Tags"],
        serde_json::json!([]),
        "{listed}"
    );
    // With a value and a description: both shown.
    sm(
        "PutSecretValue",
        r#"{"SecretId":"shape/a","SecretString":"v","ClientRequestToken":"77777777-7777-4777-8777-777777777777"}"#,
    );
    sm(
        "UpdateSecret",
        r#"{"SecretId":"shape/a","Description":"d"}"#,
    );
    let d = sm("DescribeSecret", r#"{"SecretId":"shape/a"}"#);
    assert_eq!(d["Description"], "d");
    assert_eq!(
        d["VersionIdsToStages"],
        serde_json::json!({"77777777-7777-4777-8777-777777777777": ["AWSCURRENT"]})
    );
}

/// "Marked for deletion" in AWS's words, with no operation name appended.
#[test]
fn messages_name_no_operation() {
    let s = TestServer::start();
    let r = s.call("secretsmanager.CreateSecret", r#"{"Name":"gone/a"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.call(
        "secretsmanager.DeleteSecret",
        r#"{"SecretId":"gone/a","RecoveryWindowInDays":7}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for (op, body) in [
        ("GetSecretValue", r#"{"SecretId":"gone/a"}"#),
        (
            "PutSecretValue",
            r#"{"SecretId":"gone/a","SecretString":"v","ClientRequestToken":"88888888-8888-4888-8888-888888888888"}"#,
        ),
        ("UpdateSecret", r#"{"SecretId":"gone/a","Description":"d"}"#),
        (
            "TagResource",
            r#"{"SecretId":"gone/a","Tags":[{"Key":"k","Value":"v"}]}"#,
        ),
    ] {
        let r = s.call(&format!("secretsmanager.{op}"), body);
        assert_aws_error(
            &r,
            "InvalidRequestException",
            "You can't perform this operation on the secret because it was marked for deletion.",
        );
    }
}
