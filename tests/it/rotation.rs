//! Rotation: RotateSecret / CancelRotateSecret against a command function (a Python script
//! using only the standard library, `tests/fixtures/rotation/rotate.py`, in the style of
//! AWS's rotation template), run by the server's engine with its execution role's session.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{call_as, config_in, write, TestServer, ACCOUNT};

const FN_ARN: &str = "arn:aws:lambda:us-east-1:111122223333:function:rotate-app";
const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/rotator";

/// A principals directory with the rotator role and the `rotate-app` function (timeout
/// `timeout` seconds, 2 attempts 1 s apart), and the function's control directory.
struct Rig {
    tmp: tempfile::TempDir,
    policies: PathBuf,
    control: PathBuf,
}

fn rig(timeout: u64) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let policies = tmp.path().join("policies");
    let control = tmp.path().join("control");
    std::fs::create_dir_all(&control).unwrap();
    write(
        &policies,
        &format!("accounts/{ACCOUNT}/account.json"),
        &format!(r#"{{"AccountId":"{ACCOUNT}"}}"#),
    );
    write(
        &policies,
        &format!("accounts/{ACCOUNT}/roles/rotator.json"),
        &json!({
            "RoleName": "rotator",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
                 "Action": "sts:AssumeRole"}]},
            "InlinePolicies": {"rotation": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": [
                    "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"],
                 "Resource": "*"}]}}
        })
        .to_string(),
    );
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rotation/rotate.py");
    write(
        &policies,
        &format!("accounts/{ACCOUNT}/functions/rotate-app.json"),
        &json!({
            "FunctionName": "rotate-app",
            "Role": ROLE_ARN,
            "Kind": "command",
            "Command": ["python3", script],
            "TimeoutSeconds": timeout,
            "MaxAttempts": 2,
            "RetryDelaySeconds": 1,
            "Environment": {"CONTROL_DIR": control}
        })
        .to_string(),
    );
    Rig {
        tmp,
        policies,
        control,
    }
}

impl Rig {
    fn start(&self) -> TestServer {
        self.start_on(None)
    }

    fn start_on(&self, database_url: Option<String>) -> TestServer {
        let mut cfg = config_in(self.tmp.path(), database_url);
        cfg.policies = Some(self.policies.clone());
        TestServer::launch_config(cfg, tempfile::tempdir().unwrap())
    }

    /// An access key for `user` (the server's data is under the rig's directory).
    fn key_for(&self, s: &TestServer, user: &str) -> (String, String) {
        let store =
            crate::common::store_config_for(self.tmp.path().join("data"), s.database_url.clone());
        crate::common::key_in(&store, &self.policies, ACCOUNT, user)
    }

    fn control(&self, name: &str, text: &str) {
        std::fs::write(self.control.join(name), text).unwrap();
    }

    fn clear(&self, name: &str) {
        let _ = std::fs::remove_file(self.control.join(name));
    }

    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.control.join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

pub(crate) fn sm(s: &TestServer, op: &str, body: &Value) -> crate::common::RawResponse {
    s.call(&format!("secretsmanager.{op}"), &body.to_string())
}

pub(crate) fn ok(s: &TestServer, op: &str, body: &Value) -> Value {
    let r = sm(s, op, body);
    assert_eq!(r.status, 200, "{op}: {}", r.body);
    r.json()
}

pub(crate) fn describe(s: &TestServer, id: &str) -> Value {
    ok(s, "DescribeSecret", &json!({"SecretId": id}))
}

pub(crate) fn current_value(s: &TestServer, id: &str) -> String {
    ok(s, "GetSecretValue", &json!({"SecretId": id}))["SecretString"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn create(s: &TestServer, name: &str) -> String {
    ok(
        s,
        "CreateSecret",
        &json!({"Name": name, "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
                "SecretString": r#"{"username":"app","password":"original-password-1"}"#}),
    )["VersionId"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn token() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Wait (30 s at most) until `pred` holds for the secret's DescribeSecret.
pub(crate) fn wait_for(
    s: &TestServer,
    id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let d = describe(s, id);
        if pred(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {d}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn stages_of(d: &Value, version: &str) -> Vec<String> {
    d["VersionIdsToStages"][version]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

pub(crate) fn has_pending(d: &Value) -> bool {
    d["VersionIdsToStages"]
        .as_object()
        .is_some_and(|m| m.values().any(|v| v.to_string().contains("AWSPENDING")))
}

/// The audit records of `event` (newest first).
pub(crate) fn events(s: &TestServer, event: &str) -> Vec<Value> {
    let r = s.call_signed(
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        &json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": event}],
                "MaxResults": 50})
        .to_string(),
        crate::common::Signing {
            service: "cloudtrail".into(),
            ..crate::common::Signing::default()
        },
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap())
        .collect()
}

#[test]
fn rotate_secret_validation_errors_are_aws_s() {
    let rig = rig(5);
    let other = "444455556666";
    write(
        &rig.policies,
        &format!("accounts/{other}/account.json"),
        &format!(r#"{{"AccountId":"{other}"}}"#),
    );
    write(
        &rig.policies,
        &format!("accounts/{other}/roles/rotator.json"),
        &json!({"RoleName": "rotator", "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{other}:root")}, "Action": "sts:AssumeRole"}]}})
        .to_string(),
    );
    write(
        &rig.policies,
        &format!("accounts/{other}/functions/rotate-app.json"),
        &json!({"FunctionName": "rotate-app", "Role": format!("arn:aws:iam::{other}:role/rotator"),
                "Kind": "command", "Command": ["true"]})
        .to_string(),
    );
    let s = rig.start();
    create(&s, "app/v");
    let t = token();
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"SecretId": "app/v"}),
            "InvalidRequestException",
            "You must provide a ClientRequestToken value. We recommend a UUID-type value.",
        ),
        (
            json!({"SecretId": "app/v", "ClientRequestToken": "short"}),
            "InvalidParameterException",
            "ClientRequestToken must be 32-64 characters long.",
        ),
        (
            json!({"SecretId": "app/v", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN,
                   "RotationRules": {"AutomaticallyAfterDays": 1, "ScheduleExpression": "rate(10 hours)"}}),
            "InvalidParameterException",
            "You cannot specify both rotation frequency and schedule expression together.",
        ),
        (
            json!({"SecretId": "app/v", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN,
                   "RotationRules": {"AutomaticallyAfterDays": 0}}),
            "ValidationException",
            "1 validation error detected: Value '0' at 'rotationRules.automaticallyAfterDays' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ),
        (
            json!({"SecretId": "app/v", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN,
                   "RotationRules": {"AutomaticallyAfterDays": 1, "Duration": "1d"}}),
            "ValidationException",
            "1 validation error detected: Value '1d' at 'rotationRules.duration' failed to satisfy constraint: Member must satisfy regular expression pattern: [0-9]+h",
        ),
        (
            json!({"SecretId": "app/v", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN,
                   "RotationRules": {"ScheduleExpression": "cron(5 1 * * ? *)"}}),
            "InvalidParameterException",
            "Invalid cron expression `cron(5 1 * * ? *)`: the minutes field must be 0.",
        ),
        (
            json!({"SecretId": "app/v", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN,
                   "RotationRules": {"ScheduleExpression": "rate(2 hours)"}}),
            "InvalidParameterException",
            "The schedule expression must rotate at most once every 4 hours.",
        ),
        (
            json!({"SecretId": "app/v", "ClientRequestToken": t}),
            "InvalidRequestException",
            "No Lambda rotation function ARN is associated with this secret.",
        ),
        (
            json!({"SecretId": "app/v", "ClientRequestToken": t,
                   "RotationLambdaARN": "arn:aws:lambda:us-east-1:111122223333:function:nope"}),
            "AccessDeniedException",
            "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com.",
        ),
        (
            // Declared for us-east-1 only: another region's ARN names nothing.
            json!({"SecretId": "app/v", "ClientRequestToken": t,
                   "RotationLambdaARN": "arn:aws:lambda:eu-west-1:111122223333:function:rotate-app"}),
            "AccessDeniedException",
            "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com.",
        ),
        (
            // Another account's function (declared there): invoking it across accounts needs a
            // function policy, which a declared function does not have.
            json!({"SecretId": "app/v", "ClientRequestToken": t,
                   "RotationLambdaARN": "arn:aws:lambda:us-east-1:444455556666:function:rotate-app"}),
            "AccessDeniedException",
            "User: arn:aws:iam::111122223333:root is not authorized to perform: lambda:InvokeFunction on resource: arn:aws:lambda:us-east-1:444455556666:function:rotate-app because no resource-based policy allows the lambda:InvokeFunction action",
        ),
        (
            json!({"SecretId": "app/missing", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN}),
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        ),
    ];
    for (body, code, message) in cases {
        let r = sm(&s, "RotateSecret", &body);
        assert_eq!(r.error_type(), code, "{body}: {}", r.body);
        assert_eq!(
            r.json()["message"]
                .as_str()
                .or(r.json()["Message"].as_str()),
            Some(message),
            "{body}"
        );
    }
    let r = sm(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/v", "ClientRequestToken": t,
                "RotationLambdaARN": "arn:aws:lambda:us-east-1:111122223333:function:SecretsManagerRDSMySQLRotationSingleUser"}),
    );
    assert_eq!(r.error_type(), "InvalidRequestException", "{}", r.body);
    // A built-in's bare template name runs as the role of that name, not declared here.
    assert!(
        r.body
            .contains("role/SecretsManagerRDSMySQLRotationSingleUser"),
        "{}",
        r.body
    );
    // A refused request stores nothing.
    let d = describe(&s, "app/v");
    assert!(d.get("RotationEnabled").is_none(), "{d}");
    assert!(!has_pending(&d), "{d}");
    // PutSecretValue.RotationToken: 36–256 characters.
    let r = sm(
        &s,
        "PutSecretValue",
        &json!({"SecretId": "app/v", "ClientRequestToken": token(), "SecretString": "x", "RotationToken": "short"}),
    );
    assert_eq!(r.error_type(), "ValidationException", "{}", r.body);
    let r = sm(
        &s,
        "PutSecretValue",
        &json!({"SecretId": "app/v", "ClientRequestToken": token(), "SecretString": "x",
                "RotationToken": "not a token: it has spaces and a colon, and is long"}),
    );
    assert_eq!(r.error_type(), "ValidationException", "{}", r.body);
    assert!(
        r.body.contains("'rotationToken'") && !r.body.contains("spaces"),
        "{}",
        r.body
    );
}

#[test]
fn a_command_function_rotates_end_to_end() {
    let rig = rig(10);
    let s = rig.start();
    let first = create(&s, "app/db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt
        .block_on(
            s.client()
                .rotate_secret()
                .secret_id("app/db")
                .rotation_lambda_arn(FN_ARN)
                .rotation_rules(
                    aws_sdk_secretsmanager::types::RotationRulesType::builder()
                        .automatically_after_days(30)
                        .build(),
                )
                .send(),
        )
        .unwrap();
    let new = out.version_id().unwrap().to_owned();
    let d = wait_for(&s, "app/db", "the rotation to finish", |d| {
        d.get("LastRotatedDate").is_some() && d.get("StrongroomRotation").is_none()
    });
    assert_eq!(stages_of(&d, &new), ["AWSCURRENT"], "{d}");
    assert_eq!(stages_of(&d, &first), ["AWSPREVIOUS"], "{d}");
    assert!(
        !has_pending(&d),
        "AWSPENDING is removed after finishSecret: {d}"
    );
    assert_eq!(d["RotationEnabled"], true);
    assert_eq!(d["RotationLambdaARN"], FN_ARN);
    assert_eq!(d["RotationRules"]["AutomaticallyAfterDays"], 30);
    let last = d["LastRotatedDate"].as_f64().unwrap();
    let next = d["NextRotationDate"].as_f64().unwrap();
    // The end of the UTC day 30 days after the rotation.
    let day = 86_400.0;
    assert_eq!(next, ((last / day).floor() + 31.0) * day - 1.0, "{d}");
    let sdk = rt
        .block_on(s.client().describe_secret().secret_id("app/db").send())
        .unwrap();
    assert_eq!(sdk.rotation_enabled(), Some(true));
    assert_eq!(
        sdk.rotation_rules()
            .and_then(|r| r.automatically_after_days()),
        Some(30)
    );
    assert!(sdk.last_rotated_date().is_some() && sdk.next_rotation_date().is_some());
    let value: Value = serde_json::from_str(&current_value(&s, "app/db")).unwrap();
    assert_ne!(value["password"], "original-password-1");
    assert_eq!(value["username"], "app");
    assert_eq!(
        std::fs::read_to_string(rig.control.join("db")).unwrap(),
        value["password"].as_str().unwrap(),
        "setSecret saw the pending value the function wrote"
    );
    let steps: Vec<String> = rig
        .log()
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        steps,
        ["createSecret", "setSecret", "testSecret", "finishSecret"]
    );
    assert!(rig.log().iter().all(|l| l.ends_with(&new)));
    // ListSecrets carries the same fields.
    let list = ok(&s, "ListSecrets", &json!({}));
    let entry = &list["SecretList"][0];
    assert_eq!(entry["RotationEnabled"], true);
    assert_eq!(entry["LastRotatedDate"], d["LastRotatedDate"]);
    // Service events, and the function's calls as its role.
    let started = events(&s, "RotationStarted");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["eventType"], "AwsServiceEvent");
    assert_eq!(
        started[0]["userIdentity"],
        json!({"accountId": ACCOUNT, "invokedBy": "secretsmanager.amazonaws.com"})
    );
    let succeeded = events(&s, "RotationSucceeded");
    assert_eq!(succeeded.len(), 1);
    assert!(succeeded[0]["resources"].to_string().contains("app/db"));
    let puts = events(&s, "PutSecretValue");
    assert!(
        puts.iter().any(|e| e["userIdentity"]["arn"]
            == format!("arn:aws:sts::{ACCOUNT}:assumed-role/rotator/rotate-app")),
        "{puts:?}"
    );
    for e in started.iter().chain(&succeeded).chain(&puts) {
        assert!(!e.to_string().contains(value["password"].as_str().unwrap()));
    }
    // A value written by hand counts as a rotation for AutomaticallyAfterDays.
    set_next_rotation(&rig, "app/db", 4_102_444_800_000);
    assert_eq!(
        describe(&s, "app/db")["NextRotationDate"],
        4_102_444_800.0 + 86_399.0
    );
    ok(
        &s,
        "PutSecretValue",
        &json!({"SecretId": "app/db", "ClientRequestToken": token(), "SecretString": "{}"}),
    );
    assert_eq!(
        describe(&s, "app/db")["NextRotationDate"],
        d["NextRotationDate"]
    );
}

/// PutSecretValue's RotationToken is checked against the rotation in progress: a forged
/// token, the attempt's own token for another version, a token with no rotation running and
/// the token of a finished rotation are refused; the function's own call (the positive
/// control) fills the pending version and the rotation completes.
#[test]
fn a_rotation_token_is_accepted_only_from_the_running_rotation_for_its_version() {
    let rig = rig(10);
    let s = rig.start();
    let first = create(&s, "app/rt");
    let put = |version: &str, rotation_token: &str| {
        sm(
            &s,
            "PutSecretValue",
            &json!({"SecretId": "app/rt", "ClientRequestToken": version,
                    "SecretString": "{}", "VersionStages": ["AWSPENDING"],
                    "RotationToken": rotation_token}),
        )
    };
    let r = put(&token(), &token());
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    assert!(!r.body.contains("RotationToken\":"), "{}", r.body);
    rig.control("probe", "createSecret");
    let t = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/rt", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN,
                "RotationRules": {"AutomaticallyAfterDays": 30}}),
    );
    let d = wait_for(&s, "app/rt", "the rotation to finish", |d| {
        d.get("LastRotatedDate").is_some() && d.get("StrongroomRotation").is_none()
    });
    assert_eq!(stages_of(&d, &t), ["AWSCURRENT"], "{d}");
    assert_eq!(stages_of(&d, &first), ["AWSPREVIOUS"], "{d}");
    let probes = std::fs::read_to_string(rig.control.join("probes")).unwrap();
    assert_eq!(
        probes.lines().collect::<Vec<_>>(),
        [
            "forged AccessDeniedException",
            "other-version AccessDeniedException"
        ]
    );
    assert_eq!(
        d["VersionIdsToStages"].as_object().unwrap().len(),
        2,
        "no version was written by a refused call: {d}"
    );
    // The finished rotation's token opens nothing.
    let used = std::fs::read_to_string(rig.control.join("rotation-token")).unwrap();
    let r = put(&token(), &used);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let r = put(&t, &used);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let puts = events(&s, "PutSecretValue");
    assert!(
        puts.iter().all(|e| !e.to_string().contains(&used)),
        "{puts:?}"
    );
}

/// `strongroom rotation rollback`, run as an operator with their own access key: AWSCURRENT
/// goes back to the AWSPREVIOUS version (and AWSPREVIOUS to the rotated one), recorded as
/// the operator's UpdateSecretVersionStage; a user without UpdateSecretVersionStage is
/// denied and nothing changes; while a rotation is in progress the rollback is refused.
#[test]
fn rotation_rollback_restores_the_previous_value_through_the_api_as_the_operator() {
    let rig = rig(10);
    crate::common::user_allowing(
        &rig.policies,
        ACCOUNT,
        "operator",
        &[
            "secretsmanager:DescribeSecret",
            "secretsmanager:UpdateSecretVersionStage",
        ],
    );
    crate::common::user_allowing(
        &rig.policies,
        ACCOUNT,
        "reader",
        &["secretsmanager:DescribeSecret"],
    );
    let s = rig.start();
    let first = create(&s, "app/rb");
    let t = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/rb", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN}),
    );
    wait_for(&s, "app/rb", "the rotation to finish", |d| {
        d.get("LastRotatedDate").is_some() && d.get("StrongroomRotation").is_none()
    });
    let rotated = current_value(&s, "app/rb");
    assert!(!rotated.contains("original-password-1"));
    let rollback = |user: &str| {
        let (akid, secret) = rig.key_for(&s, user);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
            .args(["rotation", "rollback", "app/rb"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_ACCESS_KEY_ID", akid)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", s.endpoint())
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Policy applies: without UpdateSecretVersionStage, nothing moves.
    let (done, _, err) = rollback("reader");
    assert!(!done);
    assert!(err.contains("AccessDeniedException"), "{err}");
    let d = describe(&s, "app/rb");
    assert_eq!(stages_of(&d, &t), ["AWSCURRENT"], "{d}");
    // The operator rolls back.
    let (done, out, err) = rollback("operator");
    assert!(done, "{out}{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["CurrentVersionId"], first.as_str());
    assert_eq!(v["PreviousVersionId"], t.as_str());
    assert_eq!(v["Name"], "app/rb");
    let d = describe(&s, "app/rb");
    assert_eq!(stages_of(&d, &first), ["AWSCURRENT"], "{d}");
    assert_eq!(stages_of(&d, &t), ["AWSPREVIOUS"], "{d}");
    assert!(current_value(&s, "app/rb").contains("original-password-1"));
    assert!(!out.contains("original-password-1") && !out.contains(&rotated));
    let moves = events(&s, "UpdateSecretVersionStage");
    let operator = format!("arn:aws:iam::{ACCOUNT}:user/operator");
    assert!(
        moves
            .iter()
            .any(|e| e["userIdentity"]["arn"] == operator.as_str()
                && e["errorCode"].is_null()
                && e["requestParameters"]["versionStage"] == "AWSCURRENT"),
        "{moves:?}"
    );
    assert!(moves.iter().any(|e| e["userIdentity"]["arn"]
        == format!("arn:aws:iam::{ACCOUNT}:user/reader")
        && e["errorCode"] == "AccessDeniedException"));
    // A rotation in progress: refused, nothing changes.
    rig.control("sleep", "createSecret");
    let t3 = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/rb", "ClientRequestToken": t3}),
    );
    let (done, out, err) = rollback("operator");
    assert!(!done, "{out}");
    assert!(err.contains("in progress"), "{err}");
    assert!(err.contains("cancel-rotate-secret"), "{err}");
    let d = describe(&s, "app/rb");
    assert_eq!(stages_of(&d, &first), ["AWSCURRENT"], "{d}");
    assert_eq!(stages_of(&d, &t3), ["AWSPENDING"], "{d}");
    rig.clear("sleep");
}

#[test]
fn a_failing_function_leaves_awscurrent_is_retried_then_failed_and_rotates_once_fixed() {
    let rig = rig(10);
    let s = rig.start();
    let first = create(&s, "app/fail");
    rig.control("fail", "setSecret");
    let t = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/fail", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN}),
    );
    let d = wait_for(&s, "app/fail", "the rotation to fail", |d| {
        d["StrongroomRotation"]["Status"] == "Failed"
    });
    assert_eq!(d["StrongroomRotation"]["Attempts"], 2, "{d}");
    assert_eq!(d["StrongroomRotation"]["Step"], "setSecret", "{d}");
    assert_eq!(
        stages_of(&d, &first),
        ["AWSCURRENT"],
        "AWSCURRENT untouched: {d}"
    );
    assert_eq!(stages_of(&d, &t), ["AWSPENDING"], "{d}");
    assert!(d.get("LastRotatedDate").is_none());
    let pending: Value = serde_json::from_str(
        ok(
            &s,
            "GetSecretValue",
            &json!({"SecretId": "app/fail", "VersionStage": "AWSPENDING"}),
        )["SecretString"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let password = pending["password"].as_str().unwrap();
    let error = d["StrongroomRotation"]["LastError"].as_str().unwrap();
    assert!(
        error.starts_with(&format!(
            "Error when executing lambda {FN_ARN} during setSecret step: exited with status 1"
        )),
        "{error}"
    );
    assert!(error.contains("[REDACTED]"), "{error}");
    assert!(
        !error.contains(password),
        "the function's output is redacted: {error}"
    );
    assert!(current_value(&s, "app/fail").contains("original-password-1"));
    // The SDK reads the answer (and ignores the member AWS does not have).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sdk = rt
        .block_on(s.client().describe_secret().secret_id("app/fail").send())
        .unwrap();
    assert_eq!(sdk.rotation_enabled(), Some(true));
    assert_eq!(sdk.rotation_lambda_arn(), Some(FN_ARN));
    assert!(sdk.last_rotated_date().is_none());
    let failed = events(&s, "RotationFailed");
    assert_eq!(failed.len(), 2, "one per attempt");
    assert_eq!(failed[0]["eventType"], "AwsServiceEvent");
    assert!(failed[0]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("during setSecret step (attempt 2 of 2; no further attempts)"));
    assert!(!failed.iter().any(|e| e.to_string().contains(password)));
    // The stuck rotation blocks a new one, in AWS's words.
    let r = sm(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/fail", "ClientRequestToken": token()}),
    );
    assert_eq!(r.error_type(), "InvalidRequestException");
    assert_eq!(
        r.json()["message"]
            .as_str()
            .or(r.json()["Message"].as_str()),
        Some("A previous rotation isn't complete. That rotation will be reattempted.")
    );
    // The operator fixes the cause, clears AWSPENDING and rotates again.
    rig.clear("fail");
    ok(
        &s,
        "UpdateSecretVersionStage",
        &json!({"SecretId": "app/fail", "VersionStage": "AWSPENDING", "RemoveFromVersionId": t}),
    );
    let t2 = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/fail", "ClientRequestToken": t2}),
    );
    let d = wait_for(&s, "app/fail", "the second rotation", |d| {
        d.get("LastRotatedDate").is_some() && d.get("StrongroomRotation").is_none()
    });
    assert_eq!(stages_of(&d, &t2), ["AWSCURRENT"], "{d}");
    assert_eq!(stages_of(&d, &first), ["AWSPREVIOUS"], "{d}");
    assert!(!current_value(&s, "app/fail").contains("original-password-1"));
    assert_eq!(events(&s, "RotationSucceeded").len(), 1);
}

#[test]
fn a_function_past_its_timeout_fails_and_a_new_current_abandons_the_rotation() {
    let rig = rig(2);
    let s = rig.start();
    let first = create(&s, "app/slow");
    rig.control("sleep", "createSecret");
    let t = token();
    let started = Instant::now();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/slow", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN}),
    );
    let d = wait_for(&s, "app/slow", "the rotation to time out", |d| {
        d["StrongroomRotation"]["Status"] == "Failed"
    });
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the function was killed at its timeout"
    );
    assert!(
        d["StrongroomRotation"]["LastError"]
            .as_str()
            .unwrap()
            .contains("during createSecret step: timed out after 2 seconds"),
        "{d}"
    );
    assert_eq!(stages_of(&d, &first), ["AWSCURRENT"]);
    assert!(current_value(&s, "app/slow").contains("original-password-1"));
    // A new AWSCURRENT abandons the failed rotation: AWSPENDING goes, rotation may start again.
    ok(
        &s,
        "PutSecretValue",
        &json!({"SecretId": "app/slow", "ClientRequestToken": token(), "SecretString": r#"{"username":"app","password":"manual"}"#}),
    );
    let d = wait_for(&s, "app/slow", "the abandonment", |d| {
        !has_pending(d) && d.get("StrongroomRotation").is_none()
    });
    assert!(!d.to_string().contains("AWSPENDING"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while events(&s, "RotationAbandoned").is_empty() {
        assert!(Instant::now() < deadline, "RotationAbandoned is recorded");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rotate_immediately_false_runs_test_secret_only_on_a_copy() {
    let rig = rig(10);
    let s = rig.start();
    let first = create(&s, "app/test");
    let t = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/test", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN,
                "RotateImmediately": false,
                "RotationRules": {"ScheduleExpression": "cron(0 4 ? * SUN *)", "Duration": "2h"}}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while events(&s, "TestRotationSucceeded").is_empty() {
        assert!(Instant::now() < deadline, "testSecret ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(rig.log(), [format!("testSecret {t}")]);
    let d = describe(&s, "app/test");
    assert_eq!(stages_of(&d, &first), ["AWSCURRENT"], "{d}");
    assert!(!has_pending(&d), "{d}");
    assert!(d.get("LastRotatedDate").is_none(), "{d}");
    assert_eq!(d["RotationEnabled"], true);
    assert_eq!(
        d["RotationRules"]["ScheduleExpression"],
        "cron(0 4 ? * SUN *)"
    );
    // The next window: a Sunday 04:00 UTC, for 2 hours.
    let next = d["NextRotationDate"].as_f64().unwrap() as i64;
    let t = time::OffsetDateTime::from_unix_timestamp(next).unwrap();
    assert_eq!(t.weekday(), time::Weekday::Sunday, "{d}");
    assert_eq!((t.hour(), t.minute(), t.second()), (5, 59, 59), "{d}");
    assert_eq!(
        ok(
            &s,
            "GetSecretValue",
            &json!({"SecretId": "app/test", "VersionId": t_string(&rig)})
        )["SecretString"],
        current_value(&s, "app/test"),
        "the tested version is a copy of the current value"
    );
}

fn t_string(rig: &Rig) -> String {
    rig.log()[0].split(' ').nth(1).unwrap().to_owned()
}

#[test]
fn cancel_rotate_secret_stops_the_rotation_and_keeps_its_pending_version() {
    let rig = rig(3);
    let s = rig.start();
    let first = create(&s, "app/cancel");
    rig.control("sleep", "setSecret");
    let t = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/cancel", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN,
                "RotationRules": {"ScheduleExpression": "rate(10 hours)"}}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rig.log().iter().any(|l| l.starts_with("setSecret")) {
        assert!(Instant::now() < deadline, "setSecret started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = ok(&s, "CancelRotateSecret", &json!({"SecretId": "app/cancel"}));
    assert_eq!(out["VersionId"], t.as_str());
    assert!(out["ARN"].as_str().unwrap().contains(":secret:app/cancel-"));
    // The killed step (timeout 3 s) records nothing, and nothing runs again.
    std::thread::sleep(Duration::from_secs(5));
    let d = describe(&s, "app/cancel");
    assert_eq!(d["RotationEnabled"], false, "{d}");
    assert_eq!(d["RotationLambdaARN"], FN_ARN);
    assert_eq!(d["RotationRules"]["ScheduleExpression"], "rate(10 hours)");
    assert!(d.get("NextRotationDate").is_none(), "{d}");
    assert!(d.get("StrongroomRotation").is_none(), "{d}");
    assert_eq!(stages_of(&d, &first), ["AWSCURRENT"]);
    assert_eq!(
        stages_of(&d, &t),
        ["AWSPENDING"],
        "AWSPENDING stays, as on AWS: {d}"
    );
    assert_eq!(rig.log().len(), 2, "{:?}", rig.log());
    assert!(events(&s, "RotationFailed").is_empty());
    let r = sm(&s, "CancelRotateSecret", &json!({"SecretId": "app/none"}));
    assert_eq!(r.error_type(), "ResourceNotFoundException");
}

#[test]
fn a_rotation_interrupted_by_a_restart_is_resumed() {
    let rig = rig(3);
    let mut s = rig.start();
    let first = create(&s, "app/restart");
    rig.control("sleep", "setSecret");
    let t = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/restart", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rig.log().iter().any(|l| l.starts_with("setSecret")) {
        assert!(Instant::now() < deadline, "setSecret started");
        std::thread::sleep(Duration::from_millis(50));
    }
    s.stop();
    rig.clear("sleep");
    let s = rig.start();
    let d = wait_for(&s, "app/restart", "the resumed rotation", |d| {
        d.get("LastRotatedDate").is_some()
    });
    assert_eq!(stages_of(&d, &t), ["AWSCURRENT"], "{d}");
    assert_eq!(stages_of(&d, &first), ["AWSPREVIOUS"], "{d}");
    assert!(!has_pending(&d));
    assert!(
        rig.log()
            .iter()
            .filter(|l| l.starts_with("createSecret"))
            .count()
            >= 2
    );
}

#[test]
fn rotate_secret_needs_invoke_function_and_matching_condition_keys() {
    let rig = rig(10);
    let account = ACCOUNT;
    let user = |name: &str, statements: Value| {
        write(
            &rig.policies,
            &format!("accounts/{account}/users/{name}.json"),
            &json!({"UserName": name, "InlinePolicies": {"p": {"Version": "2012-10-17", "Statement": statements}}})
                .to_string(),
        );
    };
    // No lambda:InvokeFunction.
    user(
        "mallory",
        json!([{"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}]),
    );
    // RotateSecret only with another function.
    user(
        "carol",
        json!([{"Effect": "Allow", "Action": "secretsmanager:RotateSecret", "Resource": "*",
                "Condition": {"ArnEquals": {"secretsmanager:RotationLambdaARN": "arn:aws:lambda:us-east-1:111122223333:function:other"}}},
               {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"}]),
    );
    // The positive control: this function, and invoking it.
    user(
        "alice",
        json!([{"Effect": "Allow", "Action": "secretsmanager:RotateSecret", "Resource": "*",
                "Condition": {"ArnEquals": {"secretsmanager:RotationLambdaARN": FN_ARN}}},
               {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": FN_ARN}]),
    );
    // Reads only secrets whose rotation function is this one.
    user(
        "dave",
        json!([{"Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": "*",
                "Condition": {"ArnEquals": {"secretsmanager:resource/AllowRotationLambdaArn": FN_ARN}}}]),
    );
    let s = rig.start();
    create(&s, "app/authz");
    let body = json!({"SecretId": "app/authz", "ClientRequestToken": token(), "RotationLambdaARN": FN_ARN});
    let (ak, sk) = rig.key_for(&s, "dave");
    let r = call_as(
        &s,
        &ak,
        &sk,
        "secretsmanager.DescribeSecret",
        &json!({"SecretId": "app/authz"}),
    );
    assert_eq!(
        r.error_type(),
        "AccessDeniedException",
        "no rotation function yet: {}",
        r.body
    );
    for who in ["mallory", "carol"] {
        let (ak, sk) = rig.key_for(&s, who);
        let r = call_as(&s, &ak, &sk, "secretsmanager.RotateSecret", &body);
        assert_eq!(r.error_type(), "AccessDeniedException", "{who}: {}", r.body);
        let d = describe(&s, "app/authz");
        assert!(
            d.get("RotationEnabled").is_none(),
            "{who}: nothing stored: {d}"
        );
        assert!(!has_pending(&d));
    }
    let (ak, sk) = rig.key_for(&s, "mallory");
    let r = call_as(&s, &ak, &sk, "secretsmanager.RotateSecret", &body);
    assert!(r.body.contains("lambda:InvokeFunction"), "{}", r.body);
    let (ak, sk) = rig.key_for(&s, "alice");
    let r = call_as(&s, &ak, &sk, "secretsmanager.RotateSecret", &body);
    assert_eq!(r.status, 200, "alice: {}", r.body);
    wait_for(&s, "app/authz", "alice's rotation", |d| {
        d.get("LastRotatedDate").is_some()
    });
    let (ak, sk) = rig.key_for(&s, "dave");
    let r = call_as(
        &s,
        &ak,
        &sk,
        "secretsmanager.DescribeSecret",
        &json!({"SecretId": "app/authz"}),
    );
    assert_eq!(
        r.status, 200,
        "the secret's rotation function matches: {}",
        r.body
    );
}

#[test]
fn a_function_file_of_another_kind_or_without_its_role_is_refused_at_load() {
    let rig = rig(10);
    write(
        &rig.policies,
        &format!("accounts/{ACCOUNT}/functions/hook.json"),
        &json!({"FunctionName": "hook", "Role": "arn:aws:iam::111122223333:role/none", "Kind": "lambda"})
            .to_string(),
    );
    let errors = strongroom::identity::load_dir(Path::new(&rig.policies)).unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let text = text.join("\n");
    assert!(text.contains("kind `lambda` is not supported"), "{text}");
    assert!(
        text.contains("no role `arn:aws:iam::111122223333:role/none`"),
        "{text}"
    );
    assert!(text.contains("$.Command"), "{text}");
}

/// Make `name`'s scheduled rotation due now, as if its window had come (the test cannot wait
/// 4 hours): what the scheduler finds through its index.
fn make_due(rig: &Rig, name: &str) {
    set_next_rotation(rig, name, 0);
}

fn set_next_rotation(rig: &Rig, name: &str, at_ms: i64) {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let db = rig.tmp.path().join("data/strongroom.db");
    let mut c = diesel::SqliteConnection::establish(db.to_str().unwrap()).unwrap();
    c.batch_execute(&format!(
        "PRAGMA busy_timeout = 10000; UPDATE secrets SET next_rotation_at = {at_ms} WHERE name = '{name}'"
    ))
    .unwrap();
}

#[test]
fn the_scheduler_starts_due_rotations_and_retries_a_failed_one_at_the_next_window() {
    let rig = rig(10);
    let s = rig.start();
    let first = create(&s, "app/sched");
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/sched", "ClientRequestToken": token(), "RotationLambdaARN": FN_ARN,
                "RotateImmediately": false, "RotationRules": {"ScheduleExpression": "rate(4 hours)"}}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while events(&s, "TestRotationSucceeded").is_empty() {
        assert!(Instant::now() < deadline, "testSecret ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Not due yet: nothing starts.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(events(&s, "RotationStarted").is_empty());
    // The window comes, and the function fails twice: the rotation is marked failed.
    rig.control("fail", "testSecret");
    make_due(&rig, "app/sched");
    let d = wait_for(&s, "app/sched", "the scheduled rotation to fail", |d| {
        d["StrongroomRotation"]["Status"] == "Failed"
    });
    assert_eq!(stages_of(&d, &first), ["AWSCURRENT"]);
    let next = d["NextRotationDate"].as_f64().unwrap();
    assert!(
        next > crate::common::now_secs() as f64,
        "the next window is ahead: {d}"
    );
    // Fixed; at the next window the failed rotation (same version) is tried again.
    let pending = d["StrongroomRotation"]["VersionId"]
        .as_str()
        .unwrap()
        .to_owned();
    rig.clear("fail");
    make_due(&rig, "app/sched");
    let d = wait_for(&s, "app/sched", "the retried rotation", |d| {
        d.get("LastRotatedDate").is_some()
    });
    assert_eq!(stages_of(&d, &pending), ["AWSCURRENT"], "{d}");
    assert_eq!(stages_of(&d, &first), ["AWSPREVIOUS"], "{d}");
    assert!(!has_pending(&d));
    let last = d["LastRotatedDate"].as_f64().unwrap();
    let next = d["NextRotationDate"].as_f64().unwrap();
    assert!(next > last && next - last <= 5.0 * 3600.0, "{d}");
    assert_eq!(events(&s, "RotationSucceeded").len(), 1);
}

#[test]
fn a_command_function_rotates_on_postgresql() {
    let Some(base) = crate::common::postgres_base_url() else {
        return;
    };
    let rig = rig(10);
    let s = rig.start_on(Some(crate::common::fresh_postgres_db(&base)));
    let first = create(&s, "app/pg");
    rig.control("fail", "setSecret");
    let t = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/pg", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN,
                "RotationRules": {"ScheduleExpression": "cron(0 */6 * * ? *)", "Duration": "2h"}}),
    );
    wait_for(&s, "app/pg", "the rotation to fail", |d| {
        d["StrongroomRotation"]["Status"] == "Failed"
    });
    rig.clear("fail");
    ok(
        &s,
        "UpdateSecretVersionStage",
        &json!({"SecretId": "app/pg", "VersionStage": "AWSPENDING", "RemoveFromVersionId": t}),
    );
    let t2 = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/pg", "ClientRequestToken": t2}),
    );
    let d = wait_for(&s, "app/pg", "the rotation", |d| {
        d.get("LastRotatedDate").is_some()
    });
    assert_eq!(stages_of(&d, &t2), ["AWSCURRENT"], "{d}");
    assert_eq!(stages_of(&d, &first), ["AWSPREVIOUS"], "{d}");
    assert!(!has_pending(&d));
    assert_eq!(events(&s, "RotationFailed").len(), 2);
    assert_eq!(events(&s, "RotationSucceeded").len(), 1);
}

#[test]
fn two_servers_on_one_postgresql_run_each_rotation_once() {
    let Some(base) = crate::common::postgres_base_url() else {
        return;
    };
    let rig = rig(10);
    let url = crate::common::fresh_postgres_db(&base);
    let a = rig.start_on(Some(url.clone()));
    // A second server on the same database, with the same master key.
    let other = tempfile::tempdir().unwrap();
    let data = other.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(
        rig.tmp.path().join("data/master.key"),
        data.join("master.key"),
    )
    .unwrap();
    let mut cfg = config_in(other.path(), Some(url));
    cfg.policies = Some(rig.policies.clone());
    let b = TestServer::launch_config(cfg, tempfile::tempdir().unwrap());
    let names: Vec<String> = (0..6).map(|i| format!("app/two-{i}")).collect();
    let mut tokens = Vec::new();
    for (i, n) in names.iter().enumerate() {
        create(&a, n);
        let t = token();
        let server = if i % 2 == 0 { &a } else { &b };
        ok(
            server,
            "RotateSecret",
            &json!({"SecretId": n, "ClientRequestToken": t, "RotationLambdaARN": FN_ARN}),
        );
        tokens.push(t);
    }
    for n in &names {
        wait_for(&a, n, "every rotation", |d| {
            d.get("LastRotatedDate").is_some()
        });
    }
    let log = rig.log();
    for t in &tokens {
        let steps: Vec<&str> = log
            .iter()
            .filter(|l| l.ends_with(t.as_str()))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(
            steps,
            ["createSecret", "setSecret", "testSecret", "finishSecret"],
            "each step of {t} ran once, on one server"
        );
    }
    assert_eq!(events(&a, "RotationStarted").len(), names.len());
}

/// A Python interpreter with boto3: `STRONGROOM_TEST_PYTHON`, the repository's `.venv` (which
/// the test command builds), or `python3`; `None` when none imports boto3.
fn python_with_boto3() -> Option<String> {
    let candidates = [
        std::env::var("STRONGROOM_TEST_PYTHON").ok(),
        Some(format!("{}/.venv/bin/python", env!("CARGO_MANIFEST_DIR"))),
        Some("python3".to_owned()),
    ];
    candidates.into_iter().flatten().find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import boto3"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn a_boto3_function_in_the_style_of_aws_s_template_runs_unchanged() {
    let Some(python) = python_with_boto3() else {
        eprintln!("skipped: no Python with boto3 (set STRONGROOM_TEST_PYTHON)");
        return;
    };
    let rig = rig(30);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rotation/boto3");
    write(
        &rig.policies,
        &format!("accounts/{ACCOUNT}/roles/template.json"),
        &json!({
            "RoleName": "template",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
                 "Action": "sts:AssumeRole"}]},
            "InlinePolicies": {"rotation": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": [
                    "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"],
                 "Resource": "*"},
                {"Effect": "Allow", "Action": "secretsmanager:GetRandomPassword", "Resource": "*"}]}}
        })
        .to_string(),
    );
    write(
        &rig.policies,
        &format!("accounts/{ACCOUNT}/functions/template-rotation.json"),
        &json!({
            "FunctionName": "template-rotation",
            "Role": format!("arn:aws:iam::{ACCOUNT}:role/template"),
            "Kind": "command",
            "Command": [python, dir.join("handler.py")],
            "TimeoutSeconds": 30,
            "Environment": {"CONTROL_DIR": rig.control}
        })
        .to_string(),
    );
    let s = rig.start();
    let first = ok(
        &s,
        "CreateSecret",
        &json!({"Name": "app/template", "ClientRequestToken": token(), "SecretString": "first-password"}),
    )["VersionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/template", "ClientRequestToken": t,
                "RotationLambdaARN": format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:template-rotation")}),
    );
    let d = wait_for(&s, "app/template", "the template's rotation", |d| {
        d.get("LastRotatedDate").is_some() || d["StrongroomRotation"]["Status"] == "Failed"
    });
    assert!(d.get("StrongroomRotation").is_none(), "{d}");
    assert_eq!(stages_of(&d, &t), ["AWSCURRENT"], "{d}");
    assert_eq!(stages_of(&d, &first), ["AWSPREVIOUS"], "{d}");
    assert!(!has_pending(&d));
    let value = current_value(&s, "app/template");
    assert_eq!(
        value.chars().count(),
        32,
        "GetRandomPassword's default length"
    );
    assert_eq!(
        std::fs::read_to_string(rig.control.join("db")).unwrap(),
        value
    );
}

/// Rotation runs on the primary only and its result reaches the replica: the rotated value,
/// the labels (AWSPENDING gone) and LastRotatedDate; the replica itself is never scheduled.
#[test]
fn a_rotation_of_a_replicated_primary_reaches_its_replica() {
    let rig = rig(10);
    let mut cfg = config_in(rig.tmp.path(), None);
    cfg.policies = Some(rig.policies.clone());
    cfg.regions = vec!["us-east-1".into(), "eu-west-1".into()];
    let s = TestServer::launch_config(cfg, tempfile::tempdir().unwrap());
    let first = create(&s, "app/replicated");
    ok(
        &s,
        "ReplicateSecretToRegions",
        &json!({"SecretId": "app/replicated", "AddReplicaRegions": [{"Region": "eu-west-1"}]}),
    );
    let t = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/replicated", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN,
                "RotationRules": {"AutomaticallyAfterDays": 1}}),
    );
    let d = wait_for(&s, "app/replicated", "the rotation to finish", |d| {
        d.get("LastRotatedDate").is_some() && d.get("StrongroomRotation").is_none()
    });
    assert_eq!(stages_of(&d, &t), ["AWSCURRENT"], "{d}");
    let rotated = current_value(&s, "app/replicated");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let eu = s.client_in("eu-west-1", crate::common::AKID, crate::common::SECRET);
    let replica = rt
        .block_on(eu.get_secret_value().secret_id("app/replicated").send())
        .unwrap();
    assert_eq!(replica.secret_string(), Some(rotated.as_str()));
    assert_eq!(replica.version_id(), Some(t.as_str()));
    let rd = rt
        .block_on(eu.describe_secret().secret_id("app/replicated").send())
        .unwrap();
    let stages = rd.version_ids_to_stages().unwrap();
    assert_eq!(stages[&t], ["AWSCURRENT"]);
    assert_eq!(stages[&first], ["AWSPREVIOUS"]);
    assert!(stages
        .values()
        .all(|s| !s.iter().any(|l| l == "AWSPENDING")));
    assert!(rd.last_rotated_date().is_some());
    // The replica refuses rotation requests of its own (writes on a replica are refused).
    let e = rt
        .block_on(
            eu.rotate_secret()
                .secret_id("app/replicated")
                .rotation_lambda_arn(FN_ARN)
                .send(),
        )
        .unwrap_err();
    assert_eq!(crate::common::code(&e), "InvalidParameterException");
    assert!(
        crate::common::message(&e).contains("Operation not permitted on a replica secret"),
        "{e:?}"
    );
    // Only the primary's four steps ran: the replica was never rotated on its own.
    assert_eq!(rig.log().len(), 4, "{:?}", rig.log());
}
