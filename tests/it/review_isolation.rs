//! Data isolation between accounts and regions, protocol robustness (no 5xx for a client's
//! mistake) and version/staging-label rules, probed with raw signed requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::{
    call_as, example_policies, key_for, ok, postgres_base_url, signed_query, signed_request,
    urlenc, user_allowing, RawResponse, Signing, TestServer, ACCOUNT,
};

/// The other account of these tests.
const OTHER: &str = "444455556666";

/// A server with both regions and a principals directory holding `OTHER`'s `intruder`, who
/// may do anything in Secrets Manager and KMS (its own account's policies only).
fn two_accounts() -> (tempfile::TempDir, TestServer, (String, String)) {
    let (t, dir) = example_policies();
    user_allowing(&dir, OTHER, "intruder", &["secretsmanager:*", "kms:*"]);
    let s =
        TestServer::start_configured(None, &["us-east-1", "eu-west-1"], None, Some(dir.clone()));
    let key = key_for(&s, &dir, OTHER, "intruder");
    (t, s, key)
}

fn as_in(akid: &str, secret: &str, region: &str) -> Signing {
    Signing {
        akid: akid.into(),
        secret: secret.into(),
        region: region.into(),
        ..Signing::default()
    }
}

fn message(r: &RawResponse) -> String {
    let v = r.json();
    v["Message"]
        .as_str()
        .or_else(|| v["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Every Secrets Manager operation that names one secret, with a body for `id`
/// (`version`: a version id of the secret, for the operations that need one).
fn secret_ops(id: &str, version: &str) -> Vec<(&'static str, Value)> {
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OTHER}:root"}},"Action":"secretsmanager:*","Resource":"*"}}]}}"#
    );
    vec![
        ("DescribeSecret", json!({"SecretId": id})),
        ("GetSecretValue", json!({"SecretId": id})),
        ("ListSecretVersionIds", json!({"SecretId": id})),
        ("GetResourcePolicy", json!({"SecretId": id})),
        ("ListResourcePolicies", json!({"SecretId": id})),
        (
            "TagResource",
            json!({"SecretId": id, "Tags": [{"Key": "owned", "Value": "yes"}]}),
        ),
        (
            "UntagResource",
            json!({"SecretId": id, "TagKeys": ["team"]}),
        ),
        (
            "UpdateSecret",
            json!({"SecretId": id, "Description": "changed by another account"}),
        ),
        (
            "PutSecretValue",
            json!({"SecretId": id, "SecretString": "planted",
                   "ClientRequestToken": "00000000-0000-4000-8000-000000000001"}),
        ),
        (
            "UpdateSecretVersionStage",
            json!({"SecretId": id, "VersionStage": "stolen", "MoveToVersionId": version}),
        ),
        (
            "PutResourcePolicy",
            json!({"SecretId": id, "ResourcePolicy": policy}),
        ),
        ("DeleteResourcePolicy", json!({"SecretId": id})),
        (
            "ValidateResourcePolicy",
            json!({"SecretId": id, "ResourcePolicy": policy}),
        ),
        (
            "RotateSecret",
            json!({"SecretId": id, "RotateImmediately": false,
                   "ClientRequestToken": "00000000-0000-4000-8000-000000000002",
                   "RotationLambdaArn": format!("arn:aws:lambda:us-east-1:{OTHER}:function:rot"),
                   "RotationRules": {"AutomaticallyAfterDays": 30}}),
        ),
        ("CancelRotateSecret", json!({"SecretId": id})),
        (
            "ReplicateSecretToRegions",
            json!({"SecretId": id, "AddReplicaRegions": [{"Region": "eu-west-1"}]}),
        ),
        (
            "RemoveRegionsFromReplication",
            json!({"SecretId": id, "RemoveReplicaRegions": ["eu-west-1"]}),
        ),
        ("StopReplicationToReplica", json!({"SecretId": id})),
        (
            "DeleteSecret",
            json!({"SecretId": id, "ForceDeleteWithoutRecovery": true}),
        ),
        ("RestoreSecret", json!({"SecretId": id})),
    ]
}

/// A principal of another account, allowed everything by its own policies, gets nothing of
/// a secret that has no resource policy, through any single-secret operation, whether it
/// names the secret by full ARN or partial ARN: each refusal reads exactly as for an ARN
/// of that account that names no secret, and the secret is unchanged afterwards. Its own
/// secret of the same name is what the name resolves to; its listings hold only its own.
/// Positive control: a resource policy granting DescribeSecret lets the full ARN through.
#[test]
fn another_account_reaches_no_secret_through_any_operation() {
    let (_t, s, (bk, bs)) = two_accounts();
    let created = ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "shared", "SecretString": "home-value",
                "Description": "home", "Tags": [{"Key": "team", "Value": "home"}]}),
    );
    let arn = created["ARN"].as_str().unwrap().to_owned();
    let version = created["VersionId"].as_str().unwrap().to_owned();
    let partial = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:shared");
    let missing = format!(
        "arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:absent-{}",
        &arn[arn.len() - 6..]
    );
    // The other account's own secret of the same name.
    let own = call_as(
        &s,
        &bk,
        &bs,
        "secretsmanager.CreateSecret",
        &json!({"Name": "shared", "SecretString": "other-value",
                "ClientRequestToken": "00000000-0000-4000-8000-0000000000aa"}),
    );
    assert_eq!(own.status, 200, "{}", own.body);
    let own_arn = own.json()["ARN"].as_str().unwrap().to_owned();
    assert!(own_arn.contains(OTHER), "{own_arn}");

    let b = |target: &str, body: &Value| {
        call_as(&s, &bk, &bs, &format!("secretsmanager.{target}"), body)
    };
    let mut wrong = Vec::new();
    for id in [&arn, &partial] {
        let tried = secret_ops(id, &version);
        let control = secret_ops(&missing, &version);
        for ((op, body), (_, missing_body)) in tried.iter().zip(&control) {
            let r = b(op, body);
            let m = b(op, missing_body);
            let seen = message(&r).replace(id.as_str(), "ID");
            let unseen = message(&m).replace(missing.as_str(), "ID");
            if r.status == 200
                || r.error_type() != "AccessDeniedException"
                || r.status >= 500
                || r.error_type() != m.error_type()
                || seen != unseen
            {
                wrong.push(format!(
                    "{op} on {id}: {} {} / missing: {} {}",
                    r.status, r.body, m.status, m.body
                ));
            }
            assert!(!r.body.contains("home-value"), "{op}: {}", r.body);
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // BatchGetSecretValue: nothing read; the existing and the missing one answer alike.
    let r = b(
        "BatchGetSecretValue",
        &json!({"SecretIdList": [arn, partial, missing]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["SecretValues"], json!([]), "{v}");
    let errors = v["Errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "{v}");
    let shapes: Vec<(String, String)> = errors
        .iter()
        .map(|e| {
            let id = e["SecretId"].as_str().unwrap();
            (
                e["ErrorCode"].as_str().unwrap().to_owned(),
                e["Message"].as_str().unwrap().replace(id, "ID"),
            )
        })
        .collect();
    assert!(shapes.windows(2).all(|w| w[0] == w[1]), "{v}");

    // The name is the caller's own secret; listings hold only its own.
    let r = b("GetSecretValue", &json!({"SecretId": "shared"}));
    assert_eq!(r.json()["SecretString"], "other-value", "{}", r.body);
    let r = b("ListSecrets", &json!({}));
    let listed: Vec<&str> = r.json()["SecretList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ARN"].as_str().unwrap())
        .map(|a| if a == own_arn { "own" } else { "other" })
        .collect();
    assert_eq!(listed, ["own"], "{}", r.body);
    let r = b(
        "BatchGetSecretValue",
        &json!({"Filters": [{"Key": "name", "Values": ["shared"]}]}),
    );
    let v = r.json();
    assert_eq!(v["SecretValues"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["SecretValues"][0]["ARN"], own_arn.as_str(), "{v}");
    assert_eq!(v["Errors"], json!([]), "{v}");

    // The home secret is as it was.
    let d = ok(
        &s,
        "secretsmanager.DescribeSecret",
        &json!({"SecretId": "shared"}),
    );
    assert_eq!(d["Description"], "home", "{d}");
    assert_eq!(d["Tags"], json!([{"Key": "team", "Value": "home"}]), "{d}");
    assert!(d.get("DeletedDate").is_none(), "{d}");
    assert!(d.get("RotationEnabled").is_none_or(|r| r == false), "{d}");
    let mut stages = serde_json::Map::new();
    stages.insert(version.clone(), json!(["AWSCURRENT"]));
    assert_eq!(d["VersionIdsToStages"], Value::Object(stages), "{d}");
    let g = ok(
        &s,
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "shared"}),
    );
    assert_eq!(g["SecretString"], "home-value");
    let p = ok(
        &s,
        "secretsmanager.GetResourcePolicy",
        &json!({"SecretId": "shared"}),
    );
    assert!(p.get("ResourcePolicy").is_none(), "{p}");

    // Positive control: shared by resource policy, the full ARN is described; a partial
    // ARN of another account is not followed.
    ok(
        &s,
        "secretsmanager.PutResourcePolicy",
        &json!({"SecretId": "shared", "ResourcePolicy": format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OTHER}:user/intruder"}},"Action":"secretsmanager:DescribeSecret","Resource":"*"}}]}}"#
        )}),
    );
    let r = b("DescribeSecret", &json!({"SecretId": arn}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ARN"], arn.as_str());
    let r = b("DescribeSecret", &json!({"SecretId": partial}));
    assert_ne!(r.status, 200, "{}", r.body);
    assert!(r.status < 500, "{}", r.body);
}

/// A secret of another region of the same account is found by no form of its id (name,
/// full ARN, partial ARN), by BatchGetSecretValue or by a listing, also after a read in its
/// own region put it in the read cache; in its own region (positive control) it is read.
#[test]
fn another_regions_secret_is_not_served() {
    let (_t, s, _) = two_accounts();
    let eu = Signing {
        region: "eu-west-1".into(),
        ..Signing::default()
    };
    let r = s.call_signed(
        "secretsmanager.CreateSecret",
        &json!({"Name": "regional", "SecretString": "eu-value",
                "ClientRequestToken": "00000000-0000-4000-8000-0000000000bb"})
        .to_string(),
        eu.clone(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let arn = r.json()["ARN"].as_str().unwrap().to_owned();
    let partial = format!("arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:regional");
    for id in [arn.as_str(), "regional", partial.as_str()] {
        // Read where it lives first: the cache holds it under that region.
        let r = s.call_signed(
            "secretsmanager.GetSecretValue",
            &json!({ "SecretId": id }).to_string(),
            eu.clone(),
        );
        assert_eq!(r.json()["SecretString"], "eu-value", "{id}: {}", r.body);
        for op in ["GetSecretValue", "DescribeSecret", "ListSecretVersionIds"] {
            let r = s.call(
                &format!("secretsmanager.{op}"),
                &json!({ "SecretId": id }).to_string(),
            );
            assert_eq!(
                r.error_type(),
                "ResourceNotFoundException",
                "{op} {id}: {}",
                r.body
            );
        }
        let r = s.call(
            "secretsmanager.BatchGetSecretValue",
            &json!({ "SecretIdList": [id] }).to_string(),
        );
        let v = r.json();
        assert_eq!(v["SecretValues"], json!([]), "{id}: {v}");
        assert_eq!(
            v["Errors"][0]["ErrorCode"], "ResourceNotFoundException",
            "{v}"
        );
    }
    let r = s.call("secretsmanager.ListSecrets", "{}");
    assert_eq!(r.json()["SecretList"], json!([]), "{}", r.body);
    let r = s.call(
        "secretsmanager.BatchGetSecretValue",
        &json!({"Filters": [{"Key": "name", "Values": ["regional"]}]}).to_string(),
    );
    assert_eq!(r.json()["SecretValues"], json!([]), "{}", r.body);
}

/// A secret named like another's ARN suffix (`db-AbCdEf` beside `db` whose ARN ends in
/// `-AbCdEf`) is told apart: the name finds the one so named, the full ARN of each finds
/// that one, and the bare name `db` finds `db`.
#[test]
fn a_name_ending_like_an_arn_suffix_is_not_confused_with_the_suffixed_secret() {
    let s = TestServer::start();
    let db = ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "db", "SecretString": "db-value"}),
    );
    let db_arn = db["ARN"].as_str().unwrap().to_owned();
    let suffix = &db_arn[db_arn.len() - 6..];
    let twin_name = format!("db-{suffix}");
    let twin = ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": twin_name, "SecretString": "twin-value"}),
    );
    let twin_arn = twin["ARN"].as_str().unwrap().to_owned();
    let value = |id: &str| {
        let r = s.call(
            "secretsmanager.GetSecretValue",
            &json!({ "SecretId": id }).to_string(),
        );
        assert_eq!(r.status, 200, "{id}: {}", r.body);
        r.json()["SecretString"].as_str().unwrap().to_owned()
    };
    assert_eq!(value("db"), "db-value");
    assert_eq!(value(&db_arn), "db-value");
    assert_eq!(value(&twin_name), "twin-value");
    assert_eq!(value(&twin_arn), "twin-value");
    // The twin's name as a partial ARN is exactly db's full ARN: the full ARN wins.
    let twin_partial = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{twin_name}");
    assert_eq!(twin_partial, db_arn);
    assert_eq!(value(&twin_partial), "db-value");
    let r = s.call(
        "secretsmanager.BatchGetSecretValue",
        &json!({ "SecretIdList": ["db", twin_name, db_arn, twin_arn] }).to_string(),
    );
    let v = r.json();
    let got: Vec<&str> = v["SecretValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["SecretString"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ["db-value", "twin-value", "db-value", "twin-value"],
        "{}",
        r.body
    );
}

fn token(mode: &str, tag: &str, value: &str, id: &str) -> String {
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    b.encode(format!("1.{}.{tag}.{value}.{}", b.encode(mode), b.encode(id)).as_bytes())
}

/// A `NextToken` from another account's listing, or forged to start anywhere, pages only
/// the caller's own secrets; a token of another listing or ordering is refused as invalid.
#[test]
fn next_tokens_page_only_the_callers_own_secrets() {
    let (_t, s, (bk, bs)) = two_accounts();
    for i in 0..3 {
        ok(
            &s,
            "secretsmanager.CreateSecret",
            &json!({"Name": format!("home-{i}"), "SecretString": "v"}),
        );
    }
    for i in 0..2 {
        let r = call_as(
            &s,
            &bk,
            &bs,
            "secretsmanager.CreateSecret",
            &json!({"Name": format!("other-{i}"), "SecretString": "v",
                    "ClientRequestToken": format!("00000000-0000-4000-8000-00000000010{i}")}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let page = ok(&s, "secretsmanager.ListSecrets", &json!({"MaxResults": 1}));
    let home_token = page["NextToken"].as_str().unwrap().to_owned();
    let names = |r: &RawResponse| -> Vec<String> {
        let v = r.json();
        v["SecretList"]
            .as_array()
            .or_else(|| v["SecretValues"].as_array())
            .unwrap_or_else(|| panic!("{}", r.body))
            .iter()
            .map(|e| e["Name"].as_str().unwrap().to_owned())
            .collect()
    };
    let b = |target: &str, body: Value| call_as(&s, &bk, &bs, target, &body);
    let r = b(
        "secretsmanager.ListSecrets",
        json!({ "NextToken": home_token }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        names(&r).iter().all(|n| n.starts_with("other-")),
        "{}",
        r.body
    );
    for (mode, tag, value) in [
        ("ListSecrets/created-date/asc", "n", i64::MIN.to_string()),
        ("ListSecrets/created-date/desc", "n", i64::MAX.to_string()),
        (
            "ListSecrets/last-accessed-date/asc",
            "n",
            i64::MIN.to_string(),
        ),
        ("ListSecrets/name/asc", "t", String::new()),
    ] {
        let (by, order) = {
            let mut parts = mode.split('/').skip(1);
            (parts.next().unwrap(), parts.next().unwrap())
        };
        let r = b(
            "secretsmanager.ListSecrets",
            json!({"SortBy": by, "SortOrder": order, "NextToken": token(mode, tag, &value, "")}),
        );
        assert_eq!(r.status, 200, "{mode}: {}", r.body);
        let mut got = names(&r);
        got.sort();
        assert_eq!(got, ["other-0", "other-1"], "{mode}: {}", r.body);
    }
    let r = b(
        "secretsmanager.BatchGetSecretValue",
        json!({"Filters": [{"Key": "name", "Values": ["home", "other"]}],
               "NextToken": token("BatchGetSecretValue", "n", &i64::MIN.to_string(), "")}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut got = names(&r);
    got.sort();
    assert_eq!(got, ["other-0", "other-1"], "{}", r.body);
    // A token of another listing, ordering or version is invalid.
    for (target, body) in [
        (
            "secretsmanager.BatchGetSecretValue",
            json!({"Filters": [{"Key": "name", "Values": ["other"]}], "NextToken": home_token}),
        ),
        (
            "secretsmanager.ListSecrets",
            json!({"SortBy": "name", "NextToken": home_token}),
        ),
        (
            "secretsmanager.ListSecrets",
            json!({"NextToken": token("ListSecrets/created-date/asc", "t", "x", "")}),
        ),
        (
            "secretsmanager.ListSecretVersionIds",
            json!({"SecretId": "other-0", "NextToken": home_token}),
        ),
    ] {
        let r = b(target, body.clone());
        assert_eq!(
            r.error_type(),
            "InvalidNextTokenException",
            "{target} {body}: {}",
            r.body
        );
    }
}

/// KMS keys and aliases of another account are neither listed nor described, by key id,
/// key ARN, alias name or alias ARN; the owner (positive control) sees them.
#[test]
fn another_accounts_kms_keys_are_not_listed_or_described() {
    let (_t, s, (bk, bs)) = two_accounts();
    let kms = |body: &str, target: &str, signing: Signing| {
        s.call_signed(&format!("TrentService.{target}"), body, signing)
    };
    let r = s.call("TrentService.CreateKey", r#"{"Description":"home key"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let key_id = r.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_arn = r.json()["KeyMetadata"]["Arn"].as_str().unwrap().to_owned();
    let r = s.call(
        "TrentService.CreateAlias",
        &json!({"AliasName": "alias/home", "TargetKeyId": key_id}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let b = as_in(&bk, &bs, "us-east-1");
    let r = kms("{}", "ListKeys", b.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains(&key_id), "{}", r.body);
    let r = kms("{}", "ListAliases", b.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("alias/home"), "{}", r.body);
    assert!(!r.body.contains(&key_id), "{}", r.body);
    let alias_arn = format!("arn:aws:kms:us-east-1:{ACCOUNT}:alias/home");
    for id in [
        key_id.as_str(),
        key_arn.as_str(),
        "alias/home",
        alias_arn.as_str(),
    ] {
        let r = kms(
            &json!({ "KeyId": id }).to_string(),
            "DescribeKey",
            b.clone(),
        );
        assert!(r.status == 400 || r.status == 403, "{id}: {}", r.body);
        assert!(!r.body.contains("home key"), "{id}: {}", r.body);
        let r = kms(
            &json!({ "KeyId": id }).to_string(),
            "ListAliases",
            b.clone(),
        );
        assert!(r.status == 400 || r.status == 403, "{id}: {}", r.body);
        // Positive control.
        let r = kms(
            &json!({ "KeyId": id }).to_string(),
            "DescribeKey",
            Signing::default(),
        );
        assert_eq!(r.status, 200, "{id}: {}", r.body);
    }
    let r = kms("{}", "ListKeys", Signing::default());
    assert!(r.body.contains(&key_id), "{}", r.body);
}

/// On PostgreSQL, a text field that may hold any character (a VersionId, a VersionStage, a
/// ClientRequestToken, a description, the account of an ARN, a KMS alias, a forged
/// NextToken's name) is answered with a 4xx when it carries a NUL character, which
/// PostgreSQL cannot store or compare, never with a 500; the server keeps serving.
#[test]
fn nul_characters_in_free_text_fields_are_client_errors_on_postgres() {
    let Some(base) = postgres_base_url() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let s = TestServer::start_postgres(&base);
    let created = ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "app", "SecretString": "v1"}),
    );
    let version = created["VersionId"].as_str().unwrap().to_owned();
    let nul32 = "\u{0}".repeat(32);
    let cases: Vec<(&str, Value)> = vec![
        (
            "secretsmanager.GetSecretValue",
            json!({"SecretId": "app", "VersionId": nul32}),
        ),
        (
            "secretsmanager.GetSecretValue",
            json!({"SecretId": "app", "VersionStage": "\u{0}"}),
        ),
        (
            "secretsmanager.PutSecretValue",
            json!({"SecretId": "app", "SecretString": "v2", "ClientRequestToken": nul32}),
        ),
        (
            "secretsmanager.UpdateSecretVersionStage",
            json!({"SecretId": "app", "VersionStage": "a\u{0}b", "MoveToVersionId": version}),
        ),
        (
            "secretsmanager.UpdateSecret",
            json!({"SecretId": "app", "Description": "a\u{0}b"}),
        ),
        (
            "secretsmanager.CreateSecret",
            json!({"Name": "app2", "SecretString": "v", "Description": "a\u{0}b",
                   "ClientRequestToken": "00000000-0000-4000-8000-0000000000cc"}),
        ),
        (
            "secretsmanager.GetSecretValue",
            json!({"SecretId": format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}\u{0}:secret:app")}),
        ),
        (
            "secretsmanager.ListSecrets",
            json!({"SortBy": "name", "NextToken": token("ListSecrets/name/asc", "t",
                &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("a\u{0}"), "")}),
        ),
        (
            "TrentService.DescribeKey",
            json!({"KeyId": "alias/a\u{0}b"}),
        ),
        (
            "TrentService.DescribeKey",
            json!({"KeyId": format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/\u{0}")}),
        ),
    ];
    let mut wrong = Vec::new();
    for (target, body) in &cases {
        let r = s.call(target, &body.to_string());
        if r.status >= 500 || r.status == 0 {
            wrong.push(format!("{target} {body}: {} {}", r.status, r.body));
        }
    }
    // The Query protocol: an action name with a NUL, unauthenticated and signed.
    let r = s.raw(
        b"POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 32\r\nconnection: close\r\n\r\nAction=%00&Version=2011-06-15&X=",
    );
    if r.status >= 500 || r.status == 0 {
        wrong.push(format!("unsigned Action=%00: {} {}", r.status, r.body));
    }
    let r = s.raw(&signed_query(
        "Action=Get%00CallerIdentity&Version=2011-06-15",
        Signing {
            service: "sts".into(),
            ..Signing::default()
        },
    ));
    if r.status >= 500 || r.status == 0 {
        wrong.push(format!("signed Action with NUL: {} {}", r.status, r.body));
    }
    // Positive control: the server still serves.
    let g = ok(
        &s,
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "app"}),
    );
    assert_eq!(g["SecretString"], "v1");
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Send `request` and read everything the server answers until it closes.
fn exchange(s: &TestServer, request: &[u8]) -> String {
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// The statuses of every response in `raw`.
fn statuses(raw: &str) -> Vec<u16> {
    raw.match_indices("HTTP/1.")
        .filter_map(|(i, _)| raw[i..].split_whitespace().nth(1)?.parse().ok())
        .collect()
}

/// Transport variants answer as the same request sent plainly would: a chunked body, an
/// HTTP/1.0 request, two pipelined requests, `Expect: 100-continue`; a gzip body (whose
/// signature covers the compressed bytes) is refused with a 4xx, never a 5xx.
#[test]
fn transport_variants_are_answered_without_5xx() {
    let s = TestServer::start();
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "t", "SecretString": "v"}),
    );
    let body = br#"{"SecretId":"t"}"#;
    let plain = signed_request("secretsmanager.DescribeSecret", body, Signing::default());
    let text = String::from_utf8(plain.clone()).unwrap();
    let (head, _) = text.split_once("\r\n\r\n").unwrap();
    let head_no_len: String = head
        .lines()
        .filter(|l| !l.starts_with("content-length") && !l.starts_with("connection"))
        .map(|l| format!("{l}\r\n"))
        .collect();

    // Chunked.
    let chunked = format!(
        "{head_no_len}transfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        std::str::from_utf8(&body[..5]).unwrap(),
        body.len() - 5,
        std::str::from_utf8(&body[5..]).unwrap()
    );
    let raw = exchange(&s, chunked.as_bytes());
    assert_eq!(statuses(&raw), [200], "chunked: {raw}");

    // HTTP/1.0.
    let v10 = text.replacen("POST / HTTP/1.1", "POST / HTTP/1.0", 1);
    let raw = exchange(&s, v10.as_bytes());
    assert_eq!(statuses(&raw), [200], "HTTP/1.0: {raw}");

    // Two pipelined requests on one connection.
    let keep = text.replace("connection: close\r\n", "");
    let piped = format!("{keep}{text}");
    let raw = exchange(&s, piped.as_bytes());
    assert_eq!(statuses(&raw), [200, 200], "pipelined: {raw}");

    // Expect: 100-continue.
    let expect = format!(
        "{head_no_len}expect: 100-continue\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        body.len(),
        std::str::from_utf8(body).unwrap()
    );
    let raw = exchange(&s, expect.as_bytes());
    assert_eq!(statuses(&raw).last(), Some(&200), "expect: {raw}");

    // A gzip body (a stored deflate block), signed over the compressed bytes.
    let gz = gzip_stored(body);
    let mut signing = Signing::default();
    signing
        .extra_headers
        .push(("content-encoding".into(), "gzip".into()));
    let req = signed_request("secretsmanager.DescribeSecret", &gz, signing);
    let raw = exchange(&s, &req);
    let st = statuses(&raw);
    assert!(st.len() == 1 && (200..500).contains(&st[0]), "gzip: {raw}");
    // A body that claims gzip and is not.
    let mut signing = Signing::default();
    signing
        .extra_headers
        .push(("content-encoding".into(), "gzip".into()));
    let req = signed_request("secretsmanager.DescribeSecret", body, signing);
    let raw = exchange(&s, &req);
    let st = statuses(&raw);
    assert!(
        st.is_empty() || st.iter().all(|c| *c < 500),
        "bad gzip: {raw}"
    );
    ok(
        &s,
        "secretsmanager.DescribeSecret",
        &json!({"SecretId": "t"}),
    );
}

/// `data` as a gzip member of one stored (uncompressed) deflate block.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let len = u16::try_from(data.len()).unwrap();
    out.push(1);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffff_u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Odd JSON and header shapes get a 4xx: non-object bodies, NaN and infinities, numbers
/// beyond i64, floats where integers go, a byte-order mark, odd Content-Type and
/// X-Amz-Target spellings; odd Query-protocol encodings too. The server keeps serving.
#[test]
fn odd_bodies_targets_and_forms_are_client_errors() {
    let s = TestServer::start();
    let mut wrong = Vec::new();
    for body in [
        "\"x\"",
        "5",
        "true",
        "{\"MaxResults\": NaN}",
        "{\"MaxResults\": Infinity}",
        "{\"MaxResults\": 18446744073709551616}",
        "{\"MaxResults\": -9223372036854775809}",
        "{\"MaxResults\": 5.0}",
        "{\"MaxResults\": 1e2}",
        "{\"MaxResults\": 9223372036854775807}",
        "{\"MaxResults\": -9223372036854775808}",
        "{\"SortBy\": \"name\", \"SortOrder\": null}",
        "{\"Filters\": [{}]}",
        "{\"Filters\": [{\"Key\": \"name\"}]}",
        "{\"Filters\": [{\"Key\": \"name\", \"Values\": []}]}",
        "{\"Filters\": null, \"NextToken\": null}",
        "\u{feff}{}",
        "{}{}",
        "{} x",
        "{\"a\":\"\\ud800\"}",
    ] {
        let r = s.call("secretsmanager.ListSecrets", body);
        if r.status >= 500 || r.status == 0 {
            wrong.push(format!("{body}: {} {}", r.status, r.body));
        }
    }
    for target in [
        "secretsmanager.listsecrets",
        "SECRETSMANAGER.ListSecrets",
        "secretsmanager.ListSecrets ",
        " secretsmanager.ListSecrets",
        "secretsmanager..ListSecrets",
        "secretsmanager.ListSecrets\t",
        "TrentService.",
        "Strongroom.Nothing",
    ] {
        let r = s.raw(&signed_request(target, b"{}", Signing::default()));
        if r.status >= 500 || r.status == 0 {
            wrong.push(format!("target {target:?}: {} {}", r.status, r.body));
        }
    }
    for ct in [
        "application/x-amz-json-1.1; charset=utf-8",
        "APPLICATION/X-AMZ-JSON-1.1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        "multipart/form-data; boundary=x",
    ] {
        let mut s2 = Signing::default();
        s2.extra_headers.push(("content-type".into(), ct.into()));
        let req = signed_request("secretsmanager.ListSecrets", b"{}", s2);
        let r = s.raw(&req);
        if r.status >= 500 || r.status == 0 {
            wrong.push(format!("content-type {ct:?}: {} {}", r.status, r.body));
        }
    }
    let sts = || Signing {
        service: "sts".into(),
        ..Signing::default()
    };
    for form in [
        "Action=GetCallerIdentity&Action=AssumeRole&Version=2011-06-15",
        "Action=GetCallerIdentity&Version=2011-06-15&Version=x",
        "Action=%ZZ&Version=2011-06-15",
        "Action=Get%E2%82CallerIdentity",
        "Action",
        "=&&&=",
        "Action=AssumeRole&Version=2011-06-15&RoleArn=%FF&RoleSessionName=x",
        "Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::111122223333:role/x&RoleSessionName=x&DurationSeconds=1e400",
        "Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::111122223333:role/x&RoleSessionName=x&DurationSeconds=-1",
        "Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::111122223333:role/x&RoleSessionName=x&Tags.member.1.Key=a",
        "Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::111122223333:role/x&RoleSessionName=x&PolicyArns.member.1.arn=",
    ] {
        let r = s.raw(&signed_query(form, sts()));
        if r.status >= 500 || r.status == 0 {
            wrong.push(format!("form {form}: {} {}", r.status, r.body));
        }
    }
    let many: String = (0..6000).map(|i| format!("p{i}=x&")).collect();
    let r = s.raw(&signed_query(
        &format!("Action=GetCallerIdentity&{many}"),
        sts(),
    ));
    if r.status >= 500 || r.status == 0 {
        wrong.push(format!(
            "6000 params: {} {}",
            r.status,
            &r.body[..r.body.len().min(200)]
        ));
    }
    let r = s.raw(&signed_query(
        &format!(
            "Action=GetCallerIdentity&Version=2011-06-15&X={}",
            urlenc(&"\u{0}".repeat(10))
        ),
        sts(),
    ));
    if r.status >= 500 || r.status == 0 {
        wrong.push(format!("NUL param: {} {}", r.status, r.body));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    let r = s.call("secretsmanager.ListSecrets", "{}");
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Staging labels: AWSCURRENT cannot be removed (only moved), a label cannot be moved to
/// a version of another secret, a version id may not be reused across secrets to reach
/// another secret's version, and the 20-label limit answers LimitExceeded (never a 5xx);
/// a PutSecretValue retry with the same token answers the version's id and labels, never
/// its value.
#[test]
fn staging_label_rules_hold_without_5xx() {
    let s = TestServer::start();
    let a = ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "a", "SecretString": "value-of-a-1"}),
    );
    let b = ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "b", "SecretString": "value-of-b-1"}),
    );
    let (va, vb) = (
        a["VersionId"].as_str().unwrap().to_owned(),
        b["VersionId"].as_str().unwrap().to_owned(),
    );
    let call =
        |target: &str, body: Value| s.call(&format!("secretsmanager.{target}"), &body.to_string());
    // Remove AWSCURRENT without moving it.
    let r = call(
        "UpdateSecretVersionStage",
        json!({"SecretId": "a", "VersionStage": "AWSCURRENT", "RemoveFromVersionId": va}),
    );
    assert_eq!(r.error_type(), "InvalidParameterException", "{}", r.body);
    // Move a label onto another secret's version.
    let r = call(
        "UpdateSecretVersionStage",
        json!({"SecretId": "a", "VersionStage": "AWSCURRENT", "RemoveFromVersionId": va, "MoveToVersionId": vb}),
    );
    assert_eq!(r.error_type(), "InvalidParameterException", "{}", r.body);
    // Another secret's version id is no version here.
    let r = call("GetSecretValue", json!({"SecretId": "a", "VersionId": vb}));
    assert_eq!(r.error_type(), "ResourceNotFoundException", "{}", r.body);
    assert!(!r.body.contains("value-of-b-1"), "{}", r.body);
    // A PutSecretValue with another secret's version id as its token makes a new version
    // here, and leaves the other secret's alone.
    let r = call(
        "PutSecretValue",
        json!({"SecretId": "a", "SecretString": "value-of-a-2", "ClientRequestToken": vb}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("value-of-b-1"), "{}", r.body);
    let g = ok(
        &s,
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "b"}),
    );
    assert_eq!(g["SecretString"], "value-of-b-1");
    let g = ok(
        &s,
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "a"}),
    );
    assert_eq!(g["SecretString"], "value-of-a-2");
    // The retry answers the version, not a value.
    let r = call(
        "PutSecretValue",
        json!({"SecretId": "a", "SecretString": "value-of-a-2", "ClientRequestToken": vb}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["ARN", "Name", "VersionId", "VersionStages"],
        "{}",
        r.body
    );
    // The label limit.
    let mut last = None;
    for i in 0..25 {
        let r = call(
            "UpdateSecretVersionStage",
            json!({"SecretId": "a", "VersionStage": format!("l{i}"), "MoveToVersionId": va}),
        );
        if r.status != 200 {
            last = Some(r);
            break;
        }
    }
    let r = last.expect("the label limit was never reached");
    assert_eq!(r.error_type(), "LimitExceededException", "{}", r.body);
    let r = call(
        "PutSecretValue",
        json!({"SecretId": "a", "SecretString": "value-of-a-3",
               "ClientRequestToken": "00000000-0000-4000-8000-0000000000dd",
               "VersionStages": (0..20).map(|i| format!("m{i}")).collect::<Vec<_>>()}),
    );
    assert!(r.status == 400, "{}", r.body);
    // Still readable.
    let g = ok(
        &s,
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "a"}),
    );
    assert_eq!(g["SecretString"], "value-of-a-2");
}

/// On PostgreSQL, unauthenticated Query-protocol requests whose action name holds a NUL
/// character, sent while signed requests are being served, fail none of those requests:
/// the audit records written in the same batch as theirs are not lost with them.
#[test]
fn unauthenticated_nul_actions_fail_no_concurrent_request_on_postgres() {
    let Some(base) = postgres_base_url() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let s = TestServer::start_postgres(&base);
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "app", "SecretString": "v1"}),
    );
    // Control: alone, every read succeeds.
    for _ in 0..50 {
        let r = s.call("secretsmanager.GetSecretValue", r#"{"SecretId":"app"}"#);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let failed = std::thread::scope(|scope| {
        let attackers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = s.raw(
                            b"POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 10\r\nconnection: close\r\n\r\nAction=%00",
                        );
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let mut failed = Vec::new();
                    for _ in 0..100 {
                        let r = s.call("secretsmanager.GetSecretValue", r#"{"SecretId":"app"}"#);
                        if r.status != 200 {
                            failed.push(format!("{} {}", r.status, r.body));
                        }
                    }
                    failed
                })
            })
            .collect();
        let failed: Vec<String> = readers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for a in attackers {
            a.join().unwrap();
        }
        failed
    });
    assert!(
        failed.is_empty(),
        "{} of 200 signed reads failed: {:?}",
        failed.len(),
        failed.first()
    );
}

/// `n` pseudo-random characters drawn from `alphabet` (incompressible enough that an index
/// entry holding them stays as long as they are).
fn noise(n: usize, alphabet: &[char]) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[usize::try_from(x % alphabet.len() as u64).unwrap()]
        })
        .collect()
}

/// On PostgreSQL, long identifiers a caller chooses (an ARN of up to 2,048 characters whose
/// partition is multi-byte text; an access key id of a few kilobytes in an unsigned
/// request's Authorization header) are answered with a 4xx, and recorded: an index entry
/// of the audit trail too long to be written fails no request.
#[test]
fn long_caller_chosen_identifiers_are_client_errors_on_postgres() {
    let Some(base) = postgres_base_url() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let s = TestServer::start_postgres(&base);
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "app", "SecretString": "v1"}),
    );
    let cjk: Vec<char> = ('\u{4e00}'..='\u{9fff}').collect();
    let letters: Vec<char> = ('a'..='z').chain('A'..='Z').chain('0'..='9').collect();
    let mut wrong = Vec::new();
    let arn = format!(
        "arn:{}:secretsmanager:us-east-1:{ACCOUNT}:secret:app",
        noise(1990, &cjk)
    );
    assert!(arn.chars().count() <= 2048);
    for op in ["GetSecretValue", "DescribeSecret"] {
        let r = s.call(
            &format!("secretsmanager.{op}"),
            &json!({ "SecretId": arn }).to_string(),
        );
        if r.status >= 500 || r.status == 0 {
            wrong.push(format!("{op} long ARN: {} {}", r.status, r.body));
        }
    }
    let akid = noise(6000, &letters);
    let req = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\nx-amz-date: 20200101T000000Z\r\nauthorization: AWS4-HMAC-SHA256 Credential={akid}/20200101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=00\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: secretsmanager.ListSecrets\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
    );
    let r = s.raw(req.as_bytes());
    if r.status >= 500 || r.status == 0 {
        wrong.push(format!("long access key id: {} {}", r.status, r.body));
    }
    let g = ok(
        &s,
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "app"}),
    );
    assert_eq!(g["SecretString"], "v1");
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// An operation name no service defines, sent to the Organizations target prefix, is the
/// client's mistake (`UnknownOperationException`, 400), as under every other prefix; an
/// operation Strongroom serves there (positive control) is answered.
#[test]
fn an_unknown_organizations_operation_is_a_client_error() {
    let s = TestServer::start();
    let org = |op: &str| {
        s.call_signed(
            &format!("AWSOrganizationsV20161128.{op}"),
            "{}",
            Signing {
                service: "organizations".into(),
                ..Signing::default()
            },
        )
    };
    let r = org("ListAccounts");
    assert!(r.status < 500, "{}", r.body);
    let r = s.call("secretsmanager.FlyToTheMoon", "{}");
    assert_eq!(r.error_type(), "UnknownOperationException", "{}", r.body);
    let r = org("FlyToTheMoon");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_type(), "UnknownOperationException", "{}", r.body);
}
