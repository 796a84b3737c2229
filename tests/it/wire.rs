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
