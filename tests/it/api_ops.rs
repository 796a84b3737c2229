//! Secrets Manager operations of the current botocore model (1.44.18) that the SDK crate in
//! use predates (ListResourcePolicies), so these are raw signed requests.

use serde_json::{json, Value};

use crate::common::{call_as, example_policies, key_for, ok, user_allowing, Signing, TestServer};

const ACCOUNT: &str = "111122223333";

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;

#[test]
fn list_resource_policies_names_the_default_policy_once_one_is_attached() {
    let s = TestServer::start();
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "app/db", "SecretString": "v"}),
    );
    let list = |body: Value| ok(&s, "secretsmanager.ListResourcePolicies", &body);
    assert_eq!(
        list(json!({"SecretId": "app/db"})),
        json!({"ResourcePolicies": []})
    );
    ok(
        &s,
        "secretsmanager.PutResourcePolicy",
        &json!({"SecretId": "app/db", "ResourcePolicy": POLICY}),
    );
    assert_eq!(
        list(json!({"SecretId": "app/db"})),
        json!({"ResourcePolicies": [{"PolicyName": "default"}]})
    );
    // One page holds it: no NextToken.
    assert_eq!(
        list(json!({"SecretId": "app/db", "MaxResults": 1})),
        json!({"ResourcePolicies": [{"PolicyName": "default"}]})
    );
    ok(
        &s,
        "secretsmanager.DeleteResourcePolicy",
        &json!({"SecretId": "app/db"}),
    );
    assert_eq!(
        list(json!({"SecretId": "app/db"})),
        json!({"ResourcePolicies": []})
    );
}

#[test]
fn list_resource_policies_validates_its_input_as_the_model_does() {
    let s = TestServer::start();
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "app/db", "SecretString": "v"}),
    );
    let call = |body: Value| s.call("secretsmanager.ListResourcePolicies", &body.to_string());
    let r = call(json!({}));
    assert_eq!(r.error_type(), "ValidationException", "{}", r.body);
    assert!(r.body.contains("Value null at 'secretId'"), "{}", r.body);
    for max in [0, 101] {
        let r = call(json!({"SecretId": "app/db", "MaxResults": max}));
        assert_eq!(r.error_type(), "ValidationException", "{}", r.body);
        assert!(r.body.contains("'maxResults'"), "{}", r.body);
    }
    let r = call(json!({"SecretId": "app/db", "NextToken": ""}));
    assert_eq!(r.error_type(), "ValidationException", "{}", r.body);
    let r = call(json!({"SecretId": "app/db", "NextToken": "bm90LWEtdG9rZW4"}));
    assert_eq!(r.error_type(), "InvalidNextTokenException", "{}", r.body);
    let r = call(json!({"SecretId": "no/such"}));
    assert_eq!(r.error_type(), "ResourceNotFoundException", "{}", r.body);
    assert_eq!(
        r.json()["Message"],
        "Secrets Manager can't find the specified secret."
    );
}

/// A caller without `secretsmanager:ListResourcePolicies` is refused in AWS's words, even
/// when it may read the policy itself; one allowed the action is answered (positive
/// control); both calls are audited under the operation's own name.
#[test]
fn list_resource_policies_is_authorized_by_its_own_action() {
    let (_t, dir) = example_policies();
    user_allowing(
        &dir,
        ACCOUNT,
        "policy-reader",
        &[
            "secretsmanager:GetResourcePolicy",
            "secretsmanager:DescribeSecret",
        ],
    );
    user_allowing(
        &dir,
        ACCOUNT,
        "policy-lister",
        &["secretsmanager:ListResourcePolicies"],
    );
    let s = TestServer::start_with_policies(&dir);
    let arn = ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "app/db", "SecretString": "v"}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &s,
        "secretsmanager.PutResourcePolicy",
        &json!({"SecretId": "app/db", "ResourcePolicy": POLICY}),
    );

    let (rk, rs) = key_for(&s, &dir, ACCOUNT, "policy-reader");
    let body = json!({"SecretId": "app/db"});
    let r = call_as(&s, &rk, &rs, "secretsmanager.ListResourcePolicies", &body);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    // The API's denial wording; the resource as the request named it, so that a caller
    // who may not act on a secret learns nothing of its ARN.
    assert_eq!(
        r.json()["Message"],
        format!(
            "User: arn:aws:iam::{ACCOUNT}:user/policy-reader is not authorized to perform: \
             secretsmanager:ListResourcePolicies on resource: \
             arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/db"
        )
    );
    assert!(!r.body.contains(&arn), "{}", r.body);
    // The same caller may read the policy: only the listing action is missing.
    let r = call_as(&s, &rk, &rs, "secretsmanager.GetResourcePolicy", &body);
    assert_eq!(r.status, 200, "{}", r.body);

    let (lk, ls) = key_for(&s, &dir, ACCOUNT, "policy-lister");
    let r = call_as(&s, &lk, &ls, "secretsmanager.ListResourcePolicies", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"ResourcePolicies": [{"PolicyName": "default"}]})
    );

    let events = s.call_signed(
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        &json!({"LookupAttributes": [
            {"AttributeKey": "EventName", "AttributeValue": "ListResourcePolicies"}]})
        .to_string(),
        Signing {
            service: "cloudtrail".into(),
            ..Signing::default()
        },
    );
    assert_eq!(events.status, 200, "{}", events.body);
    let records: Vec<Value> = events.json()["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    for rec in &records {
        assert_eq!(rec["eventName"], "ListResourcePolicies", "{rec}");
        assert_eq!(rec["readOnly"], true, "{rec}");
        assert_eq!(rec["requestParameters"]["secretId"], "app/db", "{rec}");
    }
    assert!(
        records
            .iter()
            .any(|r| r["errorCode"] == "AccessDeniedException"
                && r["userIdentity"]["arn"]
                    == format!("arn:aws:iam::{ACCOUNT}:user/policy-reader")),
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r.get("errorCode").is_none() || r["errorCode"].is_null()),
        "{records:?}"
    );
}

/// `Type` (managed external secrets, botocore 1.44.18) is taken by CreateSecret and
/// UpdateSecret (at most 256 characters) and returned by DescribeSecret and ListSecrets.
#[test]
fn type_is_accepted_and_returned() {
    let s = TestServer::start();
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "partner/app", "SecretString": "{}", "Type": "PartnerA"}),
    );
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "plain", "SecretString": "v"}),
    );
    let d = ok(
        &s,
        "secretsmanager.DescribeSecret",
        &json!({"SecretId": "partner/app"}),
    );
    assert_eq!(d["Type"], "PartnerA", "{d}");
    let d = ok(
        &s,
        "secretsmanager.DescribeSecret",
        &json!({"SecretId": "plain"}),
    );
    assert!(d.get("Type").is_none(), "{d}");
    ok(
        &s,
        "secretsmanager.UpdateSecret",
        &json!({"SecretId": "partner/app", "Type": "PartnerB"}),
    );
    let l = ok(
        &s,
        "secretsmanager.ListSecrets",
        &json!({"Filters": [{"Key": "name", "Values": ["partner/"]}]}),
    );
    assert_eq!(l["SecretList"][0]["Type"], "PartnerB", "{l}");
    let long = "t".repeat(257);
    for (target, body) in [
        (
            "secretsmanager.CreateSecret",
            json!({"Name": "x", "Type": long}),
        ),
        (
            "secretsmanager.UpdateSecret",
            json!({"SecretId": "plain", "Type": long}),
        ),
    ] {
        let r = s.call(target, &body.to_string());
        assert_eq!(r.error_type(), "ValidationException", "{}", r.body);
        assert!(r.body.contains("'type'"), "{}", r.body);
    }
}

/// CrossAccountPrimaryARN makes a cross-account replica or nothing: never an ordinary secret
/// the caller believes to be a replica (here its key does not exist).
#[test]
fn create_secret_refuses_a_cross_account_primary() {
    let s = TestServer::start();
    let r = s.call(
        "secretsmanager.CreateSecret",
        &json!({"Name": "replica", "KmsKeyId": "alias/x",
                "CrossAccountPrimaryARN":
                    "arn:aws:secretsmanager:us-east-1:444455556666:secret:p-AbCdEf"})
        .to_string(),
    );
    assert_eq!(r.error_type(), "InvalidParameterException", "{}", r.body);
    assert!(
        r.body.contains("can't find the specified KMS key"),
        "{}",
        r.body
    );
    let r = s.call(
        "secretsmanager.DescribeSecret",
        &json!({"SecretId": "replica"}).to_string(),
    );
    assert_eq!(r.error_type(), "ResourceNotFoundException", "{}", r.body);
}
