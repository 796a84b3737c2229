//! The rotation state machine under a hostile caller: callers with less than RotateSecret
//! (and invoking the function) or PutSecretValue, racing a rotation's steps with their own
//! label moves, deletions and re-created secrets, or reaching it from another account. Each
//! attack has its positive control, the legitimate rotation that still completes.
//!
//! The function is `tests/fixtures/rotation/rotate.py` behind a wrapper that can hold a
//! chosen step until the test releases it, so that the test acts while the step is running.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{call_as, config_in, write, TestServer, ACCOUNT};
use crate::rotation::{describe, events, has_pending, ok, sm, stages_of, token, wait_for};

const FN_ARN: &str = "arn:aws:lambda:us-east-1:111122223333:function:rotate-held";
const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/rotator";
const OTHER: &str = "444455556666";
const OTHER_FN_ARN: &str = "arn:aws:lambda:us-east-1:444455556666:function:rotate-other";

/// Runs rotate.py's handler, first holding the step named in `$CONTROL_DIR/hold` until
/// `$CONTROL_DIR/release` says `yes` (6 s at most); each held step is appended to `held`,
/// and its event's SecretId and RotationToken to `tokens`.
const WRAPPER: &str = r#"
import json, os, sys, time
sys.path.insert(0, os.environ["FIXTURES"])
import rotate
event = json.load(sys.stdin)
control = os.environ["CONTROL_DIR"]
def read(name):
    try:
        with open(os.path.join(control, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""
if read("hold") == event["Step"]:
    with open(os.path.join(control, "tokens"), "a") as f:
        f.write(event["SecretId"] + " " + event["RotationToken"] + "\n")
    with open(os.path.join(control, "held"), "a") as f:
        f.write(event["Step"] + "\n")
    deadline = time.time() + 6
    while read("release") != "yes" and time.time() < deadline:
        time.sleep(0.05)
rotate.lambda_handler(event, None)
"#;

struct Rig {
    tmp: tempfile::TempDir,
    policies: PathBuf,
    control: PathBuf,
}

fn rig() -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let policies = tmp.path().join("policies");
    let control = tmp.path().join("control");
    std::fs::create_dir_all(&control).unwrap();
    let wrapper = tmp.path().join("held.py");
    std::fs::write(&wrapper, WRAPPER).unwrap();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rotation");
    for account in [ACCOUNT, OTHER] {
        write(
            &policies,
            &format!("accounts/{account}/account.json"),
            &format!(r#"{{"AccountId":"{account}"}}"#),
        );
        write(
            &policies,
            &format!("accounts/{account}/roles/rotator.json"),
            &json!({
                "RoleName": "rotator",
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
                     "Action": "sts:AssumeRole"}]},
                "InlinePolicies": {"rotation": {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": [
                        "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
                        "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"],
                     "Resource": "*"}]}}
            })
            .to_string(),
        );
    }
    for (account, name) in [(ACCOUNT, "rotate-held"), (OTHER, "rotate-other")] {
        write(
            &policies,
            &format!("accounts/{account}/functions/{name}.json"),
            &json!({
                "FunctionName": name,
                "Role": format!("arn:aws:iam::{account}:role/rotator"),
                "Kind": "command",
                "Command": ["python3", wrapper],
                "TimeoutSeconds": 10,
                "MaxAttempts": 2,
                "RetryDelaySeconds": 1,
                "Environment": {"CONTROL_DIR": control, "FIXTURES": fixtures}
            })
            .to_string(),
        );
    }
    assert!(ROLE_ARN.ends_with("role/rotator"));
    Rig {
        tmp,
        policies,
        control,
    }
}

impl Rig {
    fn user(&self, account: &str, name: &str, statements: Value) {
        write(
            &self.policies,
            &format!("accounts/{account}/users/{name}.json"),
            &json!({"UserName": name, "InlinePolicies": {"p": {"Version": "2012-10-17",
                    "Statement": statements}}})
            .to_string(),
        );
    }

    fn start(&self) -> TestServer {
        let mut cfg = config_in(self.tmp.path(), None);
        cfg.policies = Some(self.policies.clone());
        cfg.rotation =
            strongroom::rotation::engine::Settings::resolve(None, Some(200), Some(1000)).unwrap();
        TestServer::launch_config(cfg, tempfile::tempdir().unwrap())
    }

    /// An access key for `user` of `account` (the server's data is under the rig's directory).
    fn key_for(&self, s: &TestServer, account: &str, user: &str) -> (String, String) {
        let store =
            crate::common::store_config_for(self.tmp.path().join("data"), s.database_url.clone());
        crate::common::key_in(&store, &self.policies, account, user)
    }

    fn control(&self, name: &str, text: &str) {
        std::fs::write(self.control.join(name), text).unwrap();
    }

    fn clear(&self, name: &str) {
        let _ = std::fs::remove_file(self.control.join(name));
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.control.join(name)).unwrap_or_default()
    }

    /// Wait until the function holds `step` (the `n`th time it held a step).
    fn wait_held(&self, step: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.read("held").lines().filter(|l| *l == step).count() < n {
            assert!(Instant::now() < deadline, "the function held {step}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Let the held step go on, and hold nothing more.
    fn release(&self) {
        self.clear("hold");
        self.control("release", "yes");
    }

    /// Wait until every run of the function so far has exited (its log stops growing and
    /// no held step is waiting).
    fn settle(&self) {
        let mut last = String::new();
        loop {
            std::thread::sleep(Duration::from_millis(1500));
            let now = self.read("log");
            if now == last {
                return;
            }
            last = now;
        }
    }
}

fn create(s: &TestServer, name: &str, value: &str) -> (String, String) {
    let out = ok(
        s,
        "CreateSecret",
        &json!({"Name": name, "ClientRequestToken": token(), "SecretString": value}),
    );
    (
        out["ARN"].as_str().unwrap().to_owned(),
        out["VersionId"].as_str().unwrap().to_owned(),
    )
}

fn put(s: &TestServer, id: &str, value: &str) -> String {
    ok(
        s,
        "PutSecretValue",
        &json!({"SecretId": id, "ClientRequestToken": token(), "SecretString": value}),
    )["VersionId"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn value_of(s: &TestServer, id: &str) -> String {
    ok(s, "GetSecretValue", &json!({"SecretId": id}))["SecretString"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn rotated(s: &TestServer, id: &str, version: &str) -> Value {
    let d = wait_for(s, id, "the rotation to finish", |d| {
        d.get("StrongroomRotation").is_none() && stages_of(d, version) == ["AWSCURRENT"]
    });
    assert!(!has_pending(&d), "{d}");
    d
}

/// A caller who may move only AWSPENDING moves it, while the function runs, from the
/// rotation's version to an old version whose value they know: the rotation stops and
/// never promotes that version (AWSCURRENT stays where it was): it fails after its attempts
/// instead of being taken up again forever. The positive control: with the planted label
/// removed, a new rotation completes.
#[test]
fn a_pending_label_moved_off_a_running_rotation_is_never_promoted() {
    let rig = rig();
    rig.user(
        ACCOUNT,
        "stager",
        json!([{"Effect": "Allow", "Action": "secretsmanager:UpdateSecretVersionStage",
                "Resource": "*",
                "Condition": {"StringEquals": {"secretsmanager:VersionStage": "AWSPENDING"}}},
               {"Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": "*"}]),
    );
    let s = rig.start();
    let old_value = r#"{"username":"app","password":"leaked-old-password-1"}"#;
    let (_, v1) = create(&s, "app/moved", old_value);
    let v2 = put(
        &s,
        "app/moved",
        r#"{"username":"app","password":"current-password-2"}"#,
    );
    rig.control("hold", "setSecret");
    let t = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/moved", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN}),
    );
    rig.wait_held("setSecret", 1);
    let (ak, sk) = rig.key_for(&s, ACCOUNT, "stager");
    let stage = |body: Value| {
        call_as(
            &s,
            &ak,
            &sk,
            "secretsmanager.UpdateSecretVersionStage",
            &body,
        )
    };
    let r = stage(
        json!({"SecretId": "app/moved", "VersionStage": "AWSCURRENT",
                         "MoveToVersionId": v1, "RemoveFromVersionId": v2}),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let r = stage(
        json!({"SecretId": "app/moved", "VersionStage": "AWSPENDING",
                         "MoveToVersionId": v1, "RemoveFromVersionId": t}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    rig.release();
    // The rotation fails (its version is no longer pending) and is not taken up again.
    let d = wait_for(&s, "app/moved", "the rotation to fail", |d| {
        d["StrongroomRotation"]["Status"] == "Failed"
    });
    assert!(
        d["StrongroomRotation"]["LastError"]
            .as_str()
            .unwrap()
            .contains("AWSPENDING is no longer on the rotation's version"),
        "{d}"
    );
    rig.settle();
    assert_eq!(
        describe(&s, "app/moved")["StrongroomRotation"]["Attempts"],
        2
    );
    assert_eq!(stages_of(&d, &v2), ["AWSCURRENT"], "{d}");
    let planted = stages_of(&d, &v1);
    assert!(
        planted.contains(&"AWSPENDING".to_owned()) && !planted.contains(&"AWSCURRENT".to_owned()),
        "{d}"
    );
    assert!(stages_of(&d, &t).is_empty(), "{d}");
    assert!(events(&s, "RotationSucceeded").is_empty());
    assert_ne!(value_of(&s, "app/moved"), old_value);
    // RotateSecret refuses while AWSPENDING is on a version other than AWSCURRENT.
    let r = sm(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/moved", "ClientRequestToken": token()}),
    );
    assert_eq!(r.error_type(), "InvalidRequestException", "{}", r.body);
    // The positive control: with the stopped rotation cancelled and the planted label
    // removed, a rotation completes with the function's own value current.
    ok(&s, "CancelRotateSecret", &json!({"SecretId": "app/moved"}));
    ok(
        &s,
        "UpdateSecretVersionStage",
        &json!({"SecretId": "app/moved", "VersionStage": "AWSPENDING", "RemoveFromVersionId": v1}),
    );
    let t2 = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/moved", "ClientRequestToken": t2}),
    );
    let d = rotated(&s, "app/moved", &t2);
    assert_eq!(stages_of(&d, &v2), ["AWSPREVIOUS"], "{d}");
    assert_ne!(value_of(&s, "app/moved"), old_value);
}

/// A caller of another account whom the secret's resource policy lets rotate, and whose own
/// policies allow `lambda:InvokeFunction` everywhere, still cannot have the secret's account's
/// function invoked (no function policy grants their account), nor name a function of their
/// own account for this secret: nothing is stored. The positive control, a caller of the
/// secret's account with the same rights, rotates it.
#[test]
fn a_caller_of_another_account_cannot_start_a_rotation_with_either_accounts_function() {
    let rig = rig();
    let all = json!([{"Effect": "Allow", "Action": ["secretsmanager:*", "lambda:InvokeFunction"],
                      "Resource": "*"}]);
    rig.user(OTHER, "outsider", all.clone());
    rig.user(ACCOUNT, "insider", all);
    let s = rig.start();
    let (arn, first) = create(&s, "app/shared", r#"{"username":"app","password":"p-1"}"#);
    ok(
        &s,
        "PutResourcePolicy",
        &json!({"SecretId": "app/shared", "ResourcePolicy": json!({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{OTHER}:root")},
                "Action": ["secretsmanager:RotateSecret", "secretsmanager:DescribeSecret",
                           "secretsmanager:CancelRotateSecret"],
                "Resource": "*"}]}).to_string()}),
    );
    let (ak, sk) = rig.key_for(&s, OTHER, "outsider");
    for function in [FN_ARN, OTHER_FN_ARN] {
        let r = call_as(
            &s,
            &ak,
            &sk,
            "secretsmanager.RotateSecret",
            &json!({"SecretId": arn, "ClientRequestToken": token(),
                    "RotationLambdaARN": function}),
        );
        // Its own account's function: invoking it is theirs to allow, and the secret
        // (under the account's default key) is refused to another account anyway.
        let refusal = if function == FN_ARN {
            assert!(r.body.contains("lambda:InvokeFunction"), "{}", r.body);
            "AccessDeniedException"
        } else {
            "InvalidRequestException"
        };
        assert_eq!(r.error_type(), refusal, "{function}: {}", r.body);
        let d = describe(&s, "app/shared");
        assert!(d.get("RotationEnabled").is_none(), "{function}: {d}");
        assert!(!has_pending(&d), "{function}: {d}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(rig.read("log").is_empty(), "{}", rig.read("log"));
    let (ak, sk) = rig.key_for(&s, ACCOUNT, "insider");
    let r = call_as(
        &s,
        &ak,
        &sk,
        "secretsmanager.RotateSecret",
        &json!({"SecretId": "app/shared", "ClientRequestToken": token(),
                "RotationLambdaARN": OTHER_FN_ARN}),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let t = token();
    let r = call_as(
        &s,
        &ak,
        &sk,
        "secretsmanager.RotateSecret",
        &json!({"SecretId": "app/shared", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let d = rotated(&s, "app/shared", &t);
    assert_eq!(stages_of(&d, &first), ["AWSPREVIOUS"], "{d}");
    // The rotation configured by its own account: the outsider (allowed RotateSecret by
    // the resource policy) may not re-run it with the stored function either.
    let (ak, sk) = rig.key_for(&s, OTHER, "outsider");
    let r = call_as(
        &s,
        &ak,
        &sk,
        "secretsmanager.RotateSecret",
        &json!({"SecretId": arn, "ClientRequestToken": token()}),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let after = describe(&s, "app/shared");
    assert_eq!(
        after["VersionIdsToStages"], d["VersionIdsToStages"],
        "{after}"
    );
}

/// A secret deleted without recovery while its rotation's function runs, and created again
/// under the same name: the old rotation's function, still holding the old ARN, reaches
/// nothing of the new secret (no version, no label, no rotation state). The positive
/// control: the new secret rotates.
#[test]
fn a_rotation_of_a_deleted_secret_does_not_reach_a_secret_re_created_under_its_name() {
    let rig = rig();
    let s = rig.start();
    create(
        &s,
        "app/again",
        r#"{"username":"app","password":"old-secret-1"}"#,
    );
    rig.control("hold", "createSecret");
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/again", "ClientRequestToken": token(),
                "RotationLambdaARN": FN_ARN}),
    );
    rig.wait_held("createSecret", 1);
    ok(
        &s,
        "DeleteSecret",
        &json!({"SecretId": "app/again", "ForceDeleteWithoutRecovery": true}),
    );
    // The purge is immediate; the name is free again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (_, v_new) = loop {
        let r = sm(
            &s,
            "CreateSecret",
            &json!({"Name": "app/again", "ClientRequestToken": token(),
                    "SecretString": r#"{"username":"app","password":"new-secret-2"}"#}),
        );
        if r.status == 200 {
            let v = r.json();
            break (
                v["ARN"].as_str().unwrap().to_owned(),
                v["VersionId"].as_str().unwrap().to_owned(),
            );
        }
        assert!(Instant::now() < deadline, "{}", r.body);
        std::thread::sleep(Duration::from_millis(200));
    };
    rig.release();
    rig.settle();
    let d = describe(&s, "app/again");
    assert_eq!(
        d["VersionIdsToStages"],
        json!({ v_new.as_str(): ["AWSCURRENT"] }),
        "{d}"
    );
    assert!(d.get("RotationEnabled").is_none(), "{d}");
    assert!(d.get("StrongroomRotation").is_none(), "{d}");
    let versions = ok(
        &s,
        "ListSecretVersionIds",
        &json!({"SecretId": "app/again", "IncludeDeprecated": true}),
    );
    assert_eq!(
        versions["Versions"].as_array().unwrap().len(),
        1,
        "{versions}"
    );
    assert!(value_of(&s, "app/again").contains("new-secret-2"));
    assert!(events(&s, "RotationSucceeded").is_empty());
    // The positive control.
    let t = token();
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/again", "ClientRequestToken": t, "RotationLambdaARN": FN_ARN}),
    );
    let d = rotated(&s, "app/again", &t);
    assert_eq!(stages_of(&d, &v_new), ["AWSPREVIOUS"], "{d}");
}

/// A caller allowed only test rotations (`secretsmanager:RotateImmediately` false) names an
/// existing version as the ClientRequestToken: the request is refused as an existing
/// version (whether or not its value is the current one) and no rotation is recorded on
/// that version. The positive control: a test rotation with a new token runs testSecret.
#[test]
fn a_test_rotation_cannot_take_an_existing_version_as_its_own() {
    let rig = rig();
    rig.user(
        ACCOUNT,
        "tester",
        json!([{"Effect": "Allow", "Action": "secretsmanager:RotateSecret", "Resource": "*",
                "Condition": {"Bool": {"secretsmanager:RotateImmediately": "false"}}},
               {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": FN_ARN}]),
    );
    let s = rig.start();
    let value = r#"{"username":"app","password":"same-value-3"}"#;
    let (_, v1) = create(&s, "app/test", value);
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "app/test", "ClientRequestToken": token(),
                "RotationLambdaARN": FN_ARN, "RotateImmediately": false}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while events(&s, "TestRotationSucceeded").is_empty() {
        assert!(Instant::now() < deadline, "testSecret ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A second version with the same value: v1 is AWSPREVIOUS and holds the current value.
    let v2 = put(&s, "app/test", value);
    let before = describe(&s, "app/test");
    let (ak, sk) = rig.key_for(&s, ACCOUNT, "tester");
    for existing in [&v1, &v2] {
        let r = call_as(
            &s,
            &ak,
            &sk,
            "secretsmanager.RotateSecret",
            &json!({"SecretId": "app/test", "ClientRequestToken": existing,
                    "RotateImmediately": false}),
        );
        assert_eq!(
            r.error_type(),
            "ResourceExistsException",
            "{existing}: {}",
            r.body
        );
        let d = describe(&s, "app/test");
        assert!(d.get("StrongroomRotation").is_none(), "{d}");
        assert_eq!(d["VersionIdsToStages"], before["VersionIdsToStages"], "{d}");
    }
    let tested = events(&s, "TestRotationSucceeded").len();
    let t = token();
    let r = call_as(
        &s,
        &ak,
        &sk,
        "secretsmanager.RotateSecret",
        &json!({"SecretId": "app/test", "ClientRequestToken": t, "RotateImmediately": false}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(30);
    while events(&s, "TestRotationSucceeded").len() == tested {
        assert!(Instant::now() < deadline, "testSecret ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    let d = wait_for(&s, "app/test", "the test rotation to end", |d| {
        d.get("StrongroomRotation").is_none()
    });
    assert_eq!(stages_of(&d, &v2), ["AWSCURRENT"], "{d}");
    assert!(stages_of(&d, &t).is_empty(), "{d}");
}

/// A RotationToken opens only the running rotation of its own secret: the token of one
/// secret's rotation does not fill another secret's rotation version (which would make that
/// rotation promote the caller's value), and a cancelled rotation's token opens nothing.
/// The positive control: the other rotation, left alone, completes with its function's value.
#[test]
fn a_rotation_token_opens_only_its_own_secret_s_running_rotation() {
    let rig = rig();
    let s = rig.start();
    let original = r#"{"username":"app","password":"original-4"}"#;
    let (arn_a, _) = create(&s, "app/token-a", original);
    let (arn_b, b1) = create(&s, "app/token-b", original);
    rig.control("hold", "createSecret");
    let (ta, tb) = (token(), token());
    for (id, t) in [("app/token-a", &ta), ("app/token-b", &tb)] {
        ok(
            &s,
            "RotateSecret",
            &json!({"SecretId": id, "ClientRequestToken": t, "RotationLambdaARN": FN_ARN}),
        );
    }
    rig.wait_held("createSecret", 2);
    let tokens = rig.read("tokens");
    let token_of = |arn: &str| {
        tokens
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{arn} ")))
            .unwrap()
            .to_owned()
    };
    let (rt_a, rt_b) = (token_of(&arn_a), token_of(&arn_b));
    assert_ne!(rt_a, rt_b);
    let planted = r#"{"username":"app","password":"planted-by-caller"}"#;
    let fill = |id: &str, version: &str, rotation_token: &str| {
        sm(
            &s,
            "PutSecretValue",
            &json!({"SecretId": id, "ClientRequestToken": version, "SecretString": planted,
                    "VersionStages": ["AWSPENDING"], "RotationToken": rotation_token}),
        )
    };
    let r = fill("app/token-b", &tb, &rt_a);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    ok(
        &s,
        "CancelRotateSecret",
        &json!({"SecretId": "app/token-a"}),
    );
    let r = fill("app/token-a", &ta, &rt_a);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    rig.release();
    let d = rotated(&s, "app/token-b", &tb);
    assert_eq!(stages_of(&d, &b1), ["AWSPREVIOUS"], "{d}");
    let value = value_of(&s, "app/token-b");
    assert!(
        !value.contains("planted") && !value.contains("original-4"),
        "{value}"
    );
    rig.settle();
    let a = describe(&s, "app/token-a");
    assert_eq!(stages_of(&a, &ta), ["AWSPENDING"], "{a}");
    assert!(a.get("StrongroomRotation").is_none(), "{a}");
    let r = sm(
        &s,
        "GetSecretValue",
        &json!({"SecretId": "app/token-a", "VersionId": ta}),
    );
    assert_eq!(r.error_type(), "ResourceNotFoundException", "{}", r.body);
    assert_eq!(value_of(&s, "app/token-a"), original);
}
