//! Secrets Manager behaviours checked against recordings of real AWS responses: moto's AWS-verified ListSecrets filter tests, LocalStack's snapshots recorded on
//! AWS (`tests/aws/services/secretsmanager/test_secretsmanager.snapshot.json`), and AWS
//! messages quoted in users' logs.

use serde_json::{json, Value};

use crate::common::{ok, TestServer};

fn create(s: &TestServer, body: &Value) -> Value {
    ok(s, "secretsmanager.CreateSecret", body)
}

/// The names ListSecrets answers for one `all` filter value, in creation order.
fn all(s: &TestServer, value: &str) -> Vec<String> {
    names(&ok(
        s,
        "secretsmanager.ListSecrets",
        &json!({"Filters": [{"Key": "all", "Values": [value]}]}),
    ))
}

fn names(list: &Value) -> Vec<String> {
    list["SecretList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Name"].as_str().unwrap().to_owned())
        .collect()
}

/// moto `test_with_all_filter` (verified on AWS): the `all` filter splits names, tag keys
/// and tag values into words (a new word at each capital that starts a lowercase run, so
/// `SecretFTag` is `Secret`, `F`, `Tag`), matches word prefixes case-insensitively, and
/// breaks the value into words too.
#[test]
fn all_filter_matches_words_as_aws_does() {
    let s = TestServer::start();
    for (name, extra) in [
        ("SecretOnea1b2c3", json!({})),
        ("SecretTwoa1b2c3", json!({"Description": "DescTwo"})),
        ("Thirdsecreta1b2c3", json!({})),
        (
            "SecretFTaga1b2c3",
            json!({"Tags": [{"Key": "1", "Value": "foo"}]}),
        ),
        (
            "SecretFValuea1b2c3",
            json!({"Tags": [{"Key": "foo", "Value": "v"}]}),
        ),
        ("nonea1b2c3", json!({})),
    ] {
        let mut body = json!({"Name": name, "SecretString": "s"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        create(&s, &body);
    }
    assert_eq!(all(&s, "SecretOne"), ["SecretOnea1b2c3"]);
    assert_eq!(all(&s, "foo"), ["SecretFTaga1b2c3", "SecretFValuea1b2c3"]);
    let secret_words = [
        "SecretOnea1b2c3",
        "SecretTwoa1b2c3",
        "SecretFTaga1b2c3",
        "SecretFValuea1b2c3",
    ];
    assert_eq!(all(&s, "Secret"), secret_words);
    assert_eq!(all(&s, "secret"), secret_words);
    assert_eq!(all(&s, "sec"), secret_words);
    assert!(all(&s, "ret").is_empty());
    assert!(all(&s, "SomeSecret").is_empty());
    assert_eq!(all(&s, "d"), ["SecretTwoa1b2c3"]);
    assert_eq!(all(&s, "d t"), ["SecretTwoa1b2c3"]);
    assert_eq!(
        all(&s, "t"),
        ["SecretTwoa1b2c3", "Thirdsecreta1b2c3", "SecretFTaga1b2c3"]
    );
}

/// moto `test_with_all_filter_special_characters` (verified on AWS): `/ _ + = . @ -` split
/// words, a separator alone matches nothing, and an all-capitals run ends one letter before
/// a lowercase run (`COMPANYthings` is `COMPAN`, `Ythings`).
#[test]
fn all_filter_splits_on_special_characters_as_aws_does() {
    let s = TestServer::start();
    let special: Vec<String> = ["/", "_", "+", "=", ".", "@", "-"]
        .iter()
        .map(|c| format!("prod{c}AppBeta{c}u1x2y3"))
        .collect();
    for n in &special {
        create(&s, &json!({"Name": n, "SecretString": "s"}));
    }
    create(
        &s,
        &json!({"Name": "uat/COMPANY/u1x2y3", "SecretString": "s"}),
    );
    create(
        &s,
        &json!({"Name": "uat/COMPANYthings/u1x2y3", "SecretString": "s"}),
    );
    assert_eq!(all(&s, "AppBeta"), special);
    assert_eq!(all(&s, "Beta"), special);
    let both = names(&ok(
        &s,
        "secretsmanager.ListSecrets",
        &json!({"Filters": [{"Key": "all", "Values": ["AppBeta", "prod"]}]}),
    ));
    assert_eq!(both, special);
    assert!(all(&s, "+").is_empty());
    let mut every = special.clone();
    every.extend([
        "uat/COMPANY/u1x2y3".into(),
        "uat/COMPANYthings/u1x2y3".into(),
    ]);
    assert_eq!(all(&s, "u1x2y3"), every);
    assert_eq!(all(&s, "company"), ["uat/COMPANY/u1x2y3"]);
    assert!(all(&s, "things").is_empty());
    assert_eq!(all(&s, "Ythings"), ["uat/COMPANYthings/u1x2y3"]);
    assert!(all(&s, "N").is_empty());
    assert!(all(&s, "pany").is_empty());
}

/// moto `test_with_filter_with_value_with_multiple_words` (verified on AWS): `description`
/// matches word prefixes of every word of the value.
#[test]
fn description_filter_matches_every_word_of_the_value() {
    let s = TestServer::start();
    for (n, d) in [
        ("foo", "one two"),
        ("bar", "one and two"),
        ("baz", "one"),
        ("qux", "two"),
        ("none", "unrelated"),
    ] {
        create(
            &s,
            &json!({"Name": n, "SecretString": "s", "Description": d}),
        );
    }
    let desc = |v: &str| {
        names(&ok(
            &s,
            "secretsmanager.ListSecrets",
            &json!({"Filters": [{"Key": "description", "Values": [v]}]}),
        ))
    };
    assert_eq!(desc("one two"), ["foo", "bar"]);
    assert_eq!(desc("o t"), ["foo", "bar"]);
    assert_eq!(desc("t"), ["foo", "bar", "qux"]);
    // A negated value excludes what it matches.
    let r = names(&ok(
        &s,
        "secretsmanager.ListSecrets",
        &json!({"Filters": [{"Key": "description", "Values": ["!o"]}]}),
    ));
    assert_eq!(r, ["qux", "none"]);
}

/// LocalStack `test_create_secret_version_from_empty_secret` and `test_secret_tags`
/// (recorded on AWS): a secret created without a value has no stage map; `Tags` is absent
/// until the secret is tagged, and `[]` once its last tag is removed.
#[test]
fn describe_secret_without_value_and_after_the_last_tag_is_removed() {
    let s = TestServer::start();
    create(&s, &json!({"Name": "empty"}));
    let d = ok(
        &s,
        "secretsmanager.DescribeSecret",
        &json!({"SecretId": "empty"}),
    );
    assert!(d.get("VersionIdsToStages").is_none(), "{d}");
    assert!(d.get("Tags").is_none(), "{d}");
    assert!(d.get("LastAccessedDate").is_none(), "{d}");
    let l = ok(
        &s,
        "secretsmanager.ListSecrets",
        &json!({"Filters": [{"Key": "name", "Values": ["empty"]}]}),
    );
    assert!(
        l["SecretList"][0].get("SecretVersionsToStages").is_none(),
        "{l}"
    );

    ok(
        &s,
        "secretsmanager.TagResource",
        &json!({"SecretId": "empty", "Tags": [{"Key": "tag1", "Value": "value1"}]}),
    );
    let d = ok(
        &s,
        "secretsmanager.DescribeSecret",
        &json!({"SecretId": "empty"}),
    );
    assert_eq!(d["Tags"], json!([{"Key": "tag1", "Value": "value1"}]));
    ok(
        &s,
        "secretsmanager.UntagResource",
        &json!({"SecretId": "empty", "TagKeys": ["tag1"]}),
    );
    let d = ok(
        &s,
        "secretsmanager.DescribeSecret",
        &json!({"SecretId": "empty"}),
    );
    assert_eq!(d["Tags"], json!([]), "{d}");
}

/// LocalStack `test_create_and_update_secret` / `test_update_secret_description` (recorded
/// on AWS): `LastAccessedDate` appears once the value was read, and AWS keeps it to the day.
#[test]
fn last_accessed_date_appears_once_read_and_is_a_day() {
    let s = TestServer::start();
    create(&s, &json!({"Name": "read-me", "SecretString": "v"}));
    let d = ok(
        &s,
        "secretsmanager.DescribeSecret",
        &json!({"SecretId": "read-me"}),
    );
    assert!(d.get("LastAccessedDate").is_none(), "{d}");
    ok(
        &s,
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "read-me"}),
    );
    let d = ok(
        &s,
        "secretsmanager.DescribeSecret",
        &json!({"SecretId": "read-me"}),
    );
    let at = d["LastAccessedDate"].as_f64().expect("LastAccessedDate");
    assert!(at > 0.0 && at % 86_400.0 == 0.0, "{at}");
    let l = ok(
        &s,
        "secretsmanager.ListSecrets",
        &json!({"Filters": [{"Key": "name", "Values": ["read-me"]}]}),
    );
    assert_eq!(l["SecretList"][0]["LastAccessedDate"].as_f64(), Some(at));
}

/// LocalStack `test_update_secret_version_stages_current_pending_cycle_custom_stages_1` and
/// `test_non_versioning_version_stages_replacement` (`aws.validated`): PutSecretValue answers
/// the stages sorted, not in the order given, and a version holding AWSPENDING that then
/// gets AWSCURRENT lists `[AWSCURRENT, AWSPENDING]`.
#[test]
fn version_stages_are_listed_in_aws_order() {
    let s = TestServer::start();
    let v0 = create(&s, &json!({"Name": "staged", "SecretString": "S1"}))["VersionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = ok(
        &s,
        "secretsmanager.PutSecretValue",
        &json!({"SecretId": "staged", "SecretString": "S2",
                "VersionStages": ["AWSSOMETHING", "AWSPENDING", "PUT1"]}),
    );
    assert_eq!(
        put["VersionStages"],
        json!(["AWSPENDING", "AWSSOMETHING", "PUT1"])
    );
    let v1 = put["VersionId"].as_str().unwrap().to_owned();
    ok(
        &s,
        "secretsmanager.UpdateSecretVersionStage",
        &json!({"SecretId": "staged", "VersionStage": "AWSCURRENT",
                "RemoveFromVersionId": v0, "MoveToVersionId": v1}),
    );
    let got = ok(
        &s,
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "staged"}),
    );
    assert_eq!(
        got["VersionStages"],
        json!(["AWSCURRENT", "AWSPENDING", "AWSSOMETHING", "PUT1"])
    );
    let put = ok(
        &s,
        "secretsmanager.PutSecretValue",
        &json!({"SecretId": "staged", "SecretString": "S3",
                "VersionStages": ["one", "two", "three"]}),
    );
    assert_eq!(put["VersionStages"], json!(["one", "three", "two"]));
}

/// With `IncludeSpace` (and `RequireEachIncludedType`, the default) the space is one of the
/// included types: every password has one.
#[test]
fn get_random_password_with_include_space_includes_a_space() {
    let s = TestServer::start();
    for _ in 0..40 {
        let p = ok(
            &s,
            "secretsmanager.GetRandomPassword",
            &json!({"PasswordLength": 2, "IncludeSpace": true, "ExcludeUppercase": true,
                    "ExcludeNumbers": true, "ExcludePunctuation": true}),
        );
        let p = p["RandomPassword"].as_str().unwrap().to_owned();
        assert!(p.contains(' '), "{p:?}");
        assert!(p.chars().any(|c| c.is_ascii_lowercase()), "{p:?}");
    }
}

/// AWS checks the recovery window's range before its conflict with
/// ForceDeleteWithoutRecovery.
#[test]
fn delete_secret_checks_the_window_before_the_conflict_with_force() {
    let s = TestServer::start();
    create(&s, &json!({"Name": "d", "SecretString": "v"}));
    let r = s.call(
        "secretsmanager.DeleteSecret",
        &json!({"SecretId": "d", "RecoveryWindowInDays": 3, "ForceDeleteWithoutRecovery": true})
            .to_string(),
    );
    assert_eq!(r.error_type(), "InvalidParameterException", "{}", r.body);
    assert!(
        r.body
            .contains("RecoveryWindowInDays value must be between 7 and 30 days (inclusive)"),
        "{}",
        r.body
    );
    let r = s.call(
        "secretsmanager.DeleteSecret",
        &json!({"SecretId": "d", "RecoveryWindowInDays": 7, "ForceDeleteWithoutRecovery": true})
            .to_string(),
    );
    assert_eq!(r.error_type(), "InvalidParameterException", "{}", r.body);
    assert!(
        r.body.contains(
            "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays."
        ),
        "{}",
        r.body
    );
}

/// GetSecretValue on a secret marked for deletion answers AWS's GetSecretValue text;
/// BatchGetSecretValue reports it in `Errors` with the "currently marked deleted" text.
#[test]
fn reads_of_a_secret_marked_for_deletion_use_each_operations_text() {
    let s = TestServer::start();
    create(&s, &json!({"Name": "gone", "SecretString": "v"}));
    ok(
        &s,
        "secretsmanager.DeleteSecret",
        &json!({"SecretId": "gone"}),
    );
    let r = s.call(
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "gone"}).to_string(),
    );
    assert_eq!(r.error_type(), "InvalidRequestException", "{}", r.body);
    assert_eq!(
        r.json()["Message"],
        "You can't perform this operation on the secret because it was marked for deletion."
    );
    let b = ok(
        &s,
        "secretsmanager.BatchGetSecretValue",
        &json!({"SecretIdList": ["gone"]}),
    );
    assert_eq!(b["SecretValues"], json!([]));
    assert_eq!(
        b["Errors"],
        json!([{"SecretId": "gone", "ErrorCode": "InvalidRequestException",
                "Message": "You tried to perform the operation on a secret that's currently marked deleted."}])
    );
}

/// BatchGetSecretValue on a secret that has no value reports it in `Errors` as
/// GetSecretValue would answer it.
#[test]
fn batch_get_of_a_secret_without_value_reports_it_in_errors() {
    let s = TestServer::start();
    create(&s, &json!({"Name": "novalue"}));
    create(&s, &json!({"Name": "valued", "SecretString": "v"}));
    let b = ok(
        &s,
        "secretsmanager.BatchGetSecretValue",
        &json!({"SecretIdList": ["novalue", "valued"]}),
    );
    assert_eq!(b["SecretValues"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["SecretValues"][0]["Name"], "valued");
    assert_eq!(
        b["Errors"],
        json!([{"SecretId": "novalue", "ErrorCode": "ResourceNotFoundException",
                "Message": "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT"}])
    );
    let b = ok(
        &s,
        "secretsmanager.BatchGetSecretValue",
        &json!({"Filters": [{"Key": "name", "Values": ["novalue"]}]}),
    );
    assert_eq!(b["SecretValues"], json!([]), "{b}");
}

/// An unknown filter key is refused with every key of the current model (botocore 1.44.18:
/// `all`, `name`, `tag-key`, `description`, `tag-value`, `primary-region`, `owning-service`),
/// in the order AWS's recorded message lists the first five.
#[test]
fn unknown_filter_key_lists_the_models_keys() {
    let s = TestServer::start();
    let r = s.call(
        "secretsmanager.ListSecrets",
        &json!({"Filters": [{"Key": "invalid", "Values": ["foo"]}]}).to_string(),
    );
    assert_eq!(r.error_type(), "ValidationException", "{}", r.body);
    assert_eq!(
        r.json()["Message"],
        "1 validation error detected: Value 'invalid' at 'filters.1.member.key' failed to \
         satisfy constraint: Member must satisfy enum value set: [all, name, tag-key, \
         description, tag-value, primary-region, owning-service]"
    );
}
