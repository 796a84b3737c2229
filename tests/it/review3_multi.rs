//! Several servers on one PostgreSQL database: state that removes access, changed through
//! one server (or the CLI against the same database), decides the very next request through
//! the other, whatever the other had cached; a change that restores access does too (the
//! positive controls). Access keys are the documented exception: refused within 5 seconds.
//! And the same ListSecrets filter gives the same answer on SQLite and on PostgreSQL.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{
    assume_role, call_as, config_in, fresh_postgres_db, key_for, ok, postgres_base_url,
    signed_request, write, RawResponse, Signing, TestServer, ACCOUNT,
};

use crate::common::account_directory as directory;
use crate::common::session_signing;

/// A user whose one inline policy is `statements` (a JSON array).
fn user(dir: &Path, name: &str, statements: &Value) {
    write(
        dir,
        &format!("accounts/{ACCOUNT}/users/{name}.json"),
        &json!({"UserName": name, "InlinePolicies": {"p": {
            "Version": "2012-10-17", "Statement": statements}}})
        .to_string(),
    );
}

/// Two servers on a fresh database, sharing the master key (their own data directories),
/// each serving `regions` with the principals directory `a_dir` / `b_dir`.
fn two_servers(
    regions: &[&str],
    a_dir: Option<&Path>,
    b_dir: Option<&Path>,
) -> Option<(TestServer, TestServer)> {
    let base = postgres_base_url()?;
    let url = fresh_postgres_db(&base);
    let a = TestServer::start_configured(
        Some(url.clone()),
        regions,
        None,
        a_dir.map(Path::to_path_buf),
    );
    let other = tempfile::tempdir().unwrap();
    let data = other.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(a.data_dir().join("master.key"), data.join("master.key")).unwrap();
    let mut config = config_in(other.path(), Some(url));
    config.regions = regions.iter().map(|r| (*r).to_owned()).collect();
    config.policies = b_dir.map(Path::to_path_buf);
    let b = TestServer::launch_config(config, other);
    Some((a, b))
}

fn get_as(s: &TestServer, k: &(String, String), id: &str) -> RawResponse {
    call_as(
        s,
        &k.0,
        &k.1,
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": id}),
    )
}

/// `n` reads through `s` as `k`, each answered `status` (warming `s`'s cache).
fn reads(s: &TestServer, k: &(String, String), id: &str, n: usize, status: u16) -> RawResponse {
    let mut last = None;
    for _ in 0..n {
        let r = get_as(s, k, id);
        assert_eq!(r.status, status, "{}", r.body);
        last = Some(r);
    }
    last.unwrap()
}

fn root_in(region: &str) -> Signing {
    Signing {
        region: region.into(),
        ..Signing::default()
    }
}

fn call_in(s: &TestServer, region: &str, target: &str, body: &Value) -> RawResponse {
    s.raw(&signed_request(
        target,
        body.to_string().as_bytes(),
        root_in(region),
    ))
}

/// A tag condition and a resource policy, each changed through `a`, decide the next read
/// through `b`; so does a secret deleted without recovery and created again under the same
/// name through `a`: `b` serves neither the old value nor the old resource policy's grant.
#[test]
fn tags_resource_policies_and_a_recreated_secret_decide_the_next_read_on_the_other_server() {
    let (_t, dir) = directory();
    user(
        &dir,
        "dev-reader",
        &json!([{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
                 "Condition": {"StringEquals": {"aws:ResourceTag/env": "dev"}}}]),
    );
    user(
        &dir,
        "policy-reader",
        &json!([{"Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": "*"}]),
    );
    let Some((a, b)) = two_servers(&["us-east-1"], Some(&dir), Some(&dir)) else {
        return;
    };
    let dev = key_for(&a, &dir, ACCOUNT, "dev-reader");
    let pol = key_for(&a, &dir, ACCOUNT, "policy-reader");
    let id = "multi/tagged";
    ok(
        &a,
        "secretsmanager.CreateSecret",
        &json!({"Name": id, "SecretString": "old-value", "Tags": [{"Key": "env", "Value": "dev"}]}),
    );
    reads(&b, &dev, id, 3, 200);
    let tag = |v: &str| {
        ok(
            &a,
            "secretsmanager.TagResource",
            &json!({"SecretId": id, "Tags": [{"Key": "env", "Value": v}]}),
        )
    };
    tag("prod");
    reads(&b, &dev, id, 1, 400);
    tag("dev");
    reads(&b, &dev, id, 2, 200);
    ok(
        &a,
        "secretsmanager.UntagResource",
        &json!({"SecretId": id, "TagKeys": ["env"]}),
    );
    reads(&b, &dev, id, 1, 400);
    tag("dev");
    reads(&b, &dev, id, 1, 200);
    // A resource policy granting the second user, then a Deny for the first.
    let grant = |who: &str, effect: &str| {
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": effect,
            "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/{who}")},
            "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})
        .to_string()
    };
    reads(&b, &pol, id, 2, 400);
    ok(
        &a,
        "secretsmanager.PutResourcePolicy",
        &json!({"SecretId": id, "ResourcePolicy": grant("policy-reader", "Allow")}),
    );
    reads(&b, &pol, id, 3, 200);
    ok(
        &a,
        "secretsmanager.PutResourcePolicy",
        &json!({"SecretId": id, "ResourcePolicy": grant("dev-reader", "Deny")}),
    );
    reads(&b, &dev, id, 1, 400);
    reads(&b, &pol, id, 1, 400);
    ok(
        &a,
        "secretsmanager.PutResourcePolicy",
        &json!({"SecretId": id, "ResourcePolicy": grant("policy-reader", "Allow")}),
    );
    reads(&b, &pol, id, 2, 200);
    reads(&b, &dev, id, 2, 200);
    ok(
        &a,
        "secretsmanager.DeleteResourcePolicy",
        &json!({"SecretId": id}),
    );
    reads(&b, &pol, id, 1, 400);
    reads(&b, &dev, id, 1, 200);
    // Deleted without recovery through `a`, created again with another value, no tags and
    // no resource policy: `b` serves the new secret only.
    ok(
        &a,
        "secretsmanager.PutResourcePolicy",
        &json!({"SecretId": id, "ResourcePolicy": grant("policy-reader", "Allow")}),
    );
    reads(&b, &pol, id, 2, 200);
    ok(
        &a,
        "secretsmanager.DeleteSecret",
        &json!({"SecretId": id, "ForceDeleteWithoutRecovery": true}),
    );
    let r = b.call(
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": id}).to_string(),
    );
    assert_eq!(r.error_type(), "ResourceNotFoundException", "{}", r.body);
    ok(
        &a,
        "secretsmanager.CreateSecret",
        &json!({"Name": id, "SecretString": "new-value"}),
    );
    reads(&b, &pol, id, 1, 400);
    reads(&b, &dev, id, 1, 400);
    let r = b.call(
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": id}).to_string(),
    );
    assert_eq!(r.json()["SecretString"], "new-value", "{}", r.body);
}

/// A customer managed key disabled, re-policied, moved away from an alias a policy names,
/// or scheduled for deletion through `a` fails the next read through `b`; enabled, given its
/// grant back or its alias back, it reads again at once.
#[test]
fn key_changes_through_one_server_decide_the_next_read_on_the_other() {
    let (_t, dir) = directory();
    user(
        &dir,
        "key-reader",
        &json!([{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "kms:Decrypt"],
                 "Resource": "*"}]),
    );
    user(
        &dir,
        "alias-reader",
        &json!([
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
             "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/app"}}}]),
    );
    let Some((a, b)) = two_servers(&["us-east-1"], Some(&dir), Some(&dir)) else {
        return;
    };
    let kr = key_for(&a, &dir, ACCOUNT, "key-reader");
    let ar = key_for(&a, &dir, ACCOUNT, "alias-reader");
    let new_key = || {
        ok(&a, "TrentService.CreateKey", &json!({}))["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (key, other) = (new_key(), new_key());
    let id = "multi/keyed";
    ok(
        &a,
        "secretsmanager.CreateSecret",
        &json!({"Name": id, "SecretString": "k", "KmsKeyId": key}),
    );
    reads(&b, &kr, id, 3, 200);
    ok(&a, "TrentService.DisableKey", &json!({"KeyId": key}));
    let r = get_as(&b, &kr, id);
    assert_eq!(r.error_type(), "DecryptionFailure", "{}", r.body);
    ok(&a, "TrentService.EnableKey", &json!({"KeyId": key}));
    reads(&b, &kr, id, 2, 200);
    // A key policy denying the reader kms:Decrypt, then the account's default one again.
    let policy = |deny: bool| {
        let mut statements = vec![json!({
            "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
            "Action": "kms:*", "Resource": "*"})];
        if deny {
            statements.push(json!({
                "Effect": "Deny",
                "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/key-reader")},
                "Action": "kms:Decrypt", "Resource": "*"}));
        }
        json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    };
    ok(
        &a,
        "TrentService.PutKeyPolicy",
        &json!({"KeyId": key, "PolicyName": "default", "Policy": policy(true)}),
    );
    let r = reads(&b, &kr, id, 1, 400);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    ok(
        &a,
        "TrentService.PutKeyPolicy",
        &json!({"KeyId": key, "PolicyName": "default", "Policy": policy(false)}),
    );
    reads(&b, &kr, id, 2, 200);
    // `kms:ResourceAliases`: the alias moved away, back, deleted.
    reads(&b, &ar, id, 2, 400);
    ok(
        &a,
        "TrentService.CreateAlias",
        &json!({"AliasName": "alias/app", "TargetKeyId": key}),
    );
    reads(&b, &ar, id, 3, 200);
    // Moved to the other key (UpdateAlias is not served: deleted and created again).
    let point = |target: &str| {
        ok(
            &a,
            "TrentService.DeleteAlias",
            &json!({"AliasName": "alias/app"}),
        );
        ok(
            &a,
            "TrentService.CreateAlias",
            &json!({"AliasName": "alias/app", "TargetKeyId": target}),
        );
    };
    point(&other);
    reads(&b, &ar, id, 1, 400);
    point(&key);
    reads(&b, &ar, id, 2, 200);
    ok(
        &a,
        "TrentService.DeleteAlias",
        &json!({"AliasName": "alias/app"}),
    );
    reads(&b, &ar, id, 1, 400);
    // Scheduled for deletion: no read; cancelled (the key stays disabled): none either.
    reads(&b, &kr, id, 2, 200);
    ok(
        &a,
        "TrentService.ScheduleKeyDeletion",
        &json!({"KeyId": key, "PendingWindowInDays": 7}),
    );
    let r = get_as(&b, &kr, id);
    assert_eq!(r.error_type(), "DecryptionFailure", "{}", r.body);
    ok(&a, "TrentService.CancelKeyDeletion", &json!({"KeyId": key}));
    let r = get_as(&b, &kr, id);
    assert_eq!(r.error_type(), "DecryptionFailure", "{}", r.body);
    ok(&a, "TrentService.EnableKey", &json!({"KeyId": key}));
    reads(&b, &kr, id, 1, 200);
    // UpdateSecret moving the secret to the disabled other key: the next value is sealed
    // under it and read through `b` only while it is enabled.
    ok(&a, "TrentService.DisableKey", &json!({"KeyId": other}));
    let r = a.call(
        "secretsmanager.UpdateSecret",
        &json!({"SecretId": id, "KmsKeyId": other, "SecretString": "k2",
                "ClientRequestToken": uuid::Uuid::new_v4().to_string()})
        .to_string(),
    );
    assert_eq!(r.error_type(), "EncryptionFailure", "{}", r.body);
    reads(&b, &kr, id, 1, 200);
    ok(&a, "TrentService.EnableKey", &json!({"KeyId": other}));
    ok(
        &a,
        "secretsmanager.UpdateSecret",
        &json!({"SecretId": id, "KmsKeyId": other, "SecretString": "k2",
                "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
    );
    assert_eq!(reads(&b, &kr, id, 2, 200).json()["SecretString"], "k2");
    ok(&a, "TrentService.DisableKey", &json!({"KeyId": other}));
    let r = get_as(&b, &kr, id);
    assert_eq!(r.error_type(), "DecryptionFailure", "{}", r.body);
}

/// A replica made through `a` is read-only through `b` too (every write refused), also after
/// `b` read it from its cache; once promoted through `a`, `b` writes it at once.
#[test]
fn a_replica_is_read_only_on_every_server_until_promoted_through_either() {
    let Some((a, b)) = two_servers(&["us-east-1", "eu-west-1"], None, None) else {
        return;
    };
    ok(
        &a,
        "secretsmanager.CreateSecret",
        &json!({"Name": "multi/replicated", "SecretString": "p"}),
    );
    // `b` reads the name in the other region first: nothing there yet.
    let r = call_in(
        &b,
        "eu-west-1",
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "multi/replicated"}),
    );
    assert_eq!(r.error_type(), "ResourceNotFoundException", "{}", r.body);
    ok(
        &a,
        "secretsmanager.ReplicateSecretToRegions",
        &json!({"SecretId": "multi/replicated", "AddReplicaRegions": [{"Region": "eu-west-1"}]}),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = call_in(
            &b,
            "eu-west-1",
            "secretsmanager.GetSecretValue",
            &json!({"SecretId": "multi/replicated"}),
        );
        if r.status == 200 {
            assert_eq!(r.json()["SecretString"], "p");
            break;
        }
        assert!(Instant::now() < deadline, "no replica: {}", r.body);
        std::thread::sleep(Duration::from_millis(100));
    }
    let writes = [
        (
            "secretsmanager.PutSecretValue",
            json!({"SecretId": "multi/replicated", "SecretString": "x",
                   "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
        ),
        (
            "secretsmanager.UpdateSecret",
            json!({"SecretId": "multi/replicated", "Description": "x"}),
        ),
        (
            "secretsmanager.TagResource",
            json!({"SecretId": "multi/replicated", "Tags": [{"Key": "k", "Value": "v"}]}),
        ),
        (
            "secretsmanager.PutResourcePolicy",
            json!({"SecretId": "multi/replicated", "ResourcePolicy":
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Principal": {"AWS": "*"}, "Action": "secretsmanager:GetSecretValue",
                    "Resource": "*"}]}).to_string()}),
        ),
        (
            "secretsmanager.DeleteResourcePolicy",
            json!({"SecretId": "multi/replicated"}),
        ),
        (
            "secretsmanager.DeleteSecret",
            json!({"SecretId": "multi/replicated", "ForceDeleteWithoutRecovery": true}),
        ),
    ];
    for s in [&a, &b, &b, &a] {
        for (op, body) in &writes {
            let r = call_in(s, "eu-west-1", op, body);
            assert_eq!(r.status, 400, "{op} on a replica: {}", r.body);
        }
    }
    let r = call_in(
        &b,
        "eu-west-1",
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "multi/replicated"}),
    );
    assert_eq!(r.json()["SecretString"], "p", "{}", r.body);
    let r = call_in(
        &a,
        "eu-west-1",
        "secretsmanager.StopReplicationToReplica",
        &json!({"SecretId": "multi/replicated"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call_in(&b, "eu-west-1", writes[0].0, &writes[0].1);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call_in(
        &a,
        "eu-west-1",
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "multi/replicated"}),
    );
    assert_eq!(r.json()["SecretString"], "x", "{}", r.body);
}

/// `strongroom access-key deactivate` against the shared database while both servers run
/// (each having used the key just before): both refuse it within 5 seconds and never accept
/// it again once refused; activated again, both accept it within 5 seconds.
#[test]
fn a_key_deactivated_with_the_cli_is_refused_by_every_server_within_five_seconds() {
    let (_t, dir) = directory();
    user(
        &dir,
        "cli-reader",
        &json!([{"Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": "*"}]),
    );
    let Some((a, b)) = two_servers(&["us-east-1"], Some(&dir), Some(&dir)) else {
        return;
    };
    ok(
        &a,
        "secretsmanager.CreateSecret",
        &json!({"Name": "multi/cli", "SecretString": "c"}),
    );
    let k = key_for(&a, &dir, ACCOUNT, "cli-reader");
    let describe = |s: &TestServer| {
        call_as(
            s,
            &k.0,
            &k.1,
            "secretsmanager.DescribeSecret",
            &json!({"SecretId": "multi/cli"}),
        )
        .status
    };
    // Until both answer `want` (at most 5 s after the change, with a margin for a slow
    // machine), then `want` for another second on both.
    let settle = |want: u16| {
        let changed = Instant::now();
        let mut settled = [None, None];
        while settled.iter().any(Option::is_none) {
            for (i, s) in [&a, &b].into_iter().enumerate() {
                let got = describe(s);
                match settled[i] {
                    Some(_) => assert_eq!(got, want, "server {i} went back"),
                    None if got == want => settled[i] = Some(changed.elapsed()),
                    None => {}
                }
            }
            assert!(
                changed.elapsed() < Duration::from_millis(5_800),
                "not {want} within 5 s: {settled:?}, last {} {}",
                describe(&a),
                describe(&b)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            assert_eq!(describe(&a), want);
            assert_eq!(describe(&b), want);
        }
    };
    for s in [&a, &b, &a, &b] {
        assert_eq!(describe(s), 200);
    }
    let cfg = a.store_config();
    strongroom::cli::change_access_key(&cfg, &k.0, strongroom::cli::KeyChange::Deactivate).unwrap();
    settle(400);
    strongroom::cli::change_access_key(&cfg, &k.0, strongroom::cli::KeyChange::Activate).unwrap();
    settle(200);
    strongroom::cli::change_access_key(&cfg, &k.0, strongroom::cli::KeyChange::Delete).unwrap();
    settle(400);
}

/// A session issued through `a` is accepted through `b` (one master key, one directory);
/// its role removed from the shared principals directory, both refuse it once they have
/// reloaded the files (each checks them every 2 s).
#[test]
fn a_session_from_one_server_ends_on_both_when_its_role_is_removed() {
    let (_t, dir) = directory();
    user(
        &dir,
        "assumer",
        &json!([{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]),
    );
    write(
        &dir,
        &format!("accounts/{ACCOUNT}/roles/multi-role.json"),
        &json!({"RoleName": "multi-role",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/assumer")},
                "Action": "sts:AssumeRole"}]},
            "InlinePolicies": {"p": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": "*"}]}}})
        .to_string(),
    );
    let Some((a, b)) = two_servers(&["us-east-1"], Some(&dir), Some(&dir)) else {
        return;
    };
    ok(
        &a,
        "secretsmanager.CreateSecret",
        &json!({"Name": "multi/sts", "SecretString": "s"}),
    );
    let k = key_for(&a, &dir, ACCOUNT, "assumer");
    let role = format!("arn:aws:iam::{ACCOUNT}:role/multi-role");
    let (sid, ssecret, token) = assume_role(&a, &k.0, &k.1, &role, "s1");
    let describe = |s: &TestServer| {
        s.call_signed(
            "secretsmanager.DescribeSecret",
            &json!({"SecretId": "multi/sts"}).to_string(),
            session_signing(&(sid.clone(), ssecret.clone(), token.clone())),
        )
        .status
    };
    assert_eq!(describe(&b), 200);
    assert_eq!(describe(&a), 200);
    std::fs::remove_file(dir.join(format!("accounts/{ACCOUNT}/roles/multi-role.json"))).unwrap();
    let start = Instant::now();
    let mut refused = [false, false];
    while !refused.iter().all(|r| *r) {
        for (i, s) in [&a, &b].into_iter().enumerate() {
            if describe(s) != 200 {
                refused[i] = true;
            }
            if refused[i] {
                assert_ne!(describe(s), 200, "server {i} accepted the session again");
            }
        }
        assert!(start.elapsed() < Duration::from_secs(8), "{refused:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Names whose characters are metacharacters of SQL patterns (`%`, `_`, `\`), differ only in
/// case, or are not ASCII: the same ListSecrets filters (and BatchGetSecretValue filters)
/// give the same names on SQLite and PostgreSQL, and a filter value is matched as the text
/// it is (no wildcard, case as AWS matches it).
#[test]
fn list_filters_answer_alike_on_sqlite_and_postgresql() {
    let Some(base) = postgres_base_url() else {
        return;
    };
    let lite = TestServer::start();
    let pg = TestServer::start_postgres(&base);
    // Names are ASCII (`[A-Za-z0-9/_+=.@-]`); descriptions and tags hold anything.
    let texts = [
        "a%b",
        "axxb",
        "a_b",
        "aXb",
        "a\\b",
        "a\\\\b",
        "One",
        "one",
        "ONE",
        "\u{e9}t\u{e9}",
        "E\u{301}t\u{e9}",
        "\u{c9}t\u{e9}",
        "\u{1F511}",
        "zz",
    ];
    let names = [
        "app/a_b", "app/aXb", "app/axb", "app/a+b", "app/a=b", "App/one", "app/one", "APP/ONE",
        "app/a.b", "app/a@b", "app/a-b", "app/a/b", "app/zz", "other/x",
    ];
    for s in [&lite, &pg] {
        for (i, (n, t)) in names.iter().zip(texts).enumerate() {
            // Tags hold letters, digits, spaces and `_.:/=+-@` only.
            let tag_text = if t
                .chars()
                .all(|c| c.is_alphanumeric() || "_.:/=+-@ ".contains(c))
            {
                t.to_owned()
            } else {
                format!("x{i}")
            };
            ok(
                s,
                "secretsmanager.CreateSecret",
                &json!({"Name": n, "SecretString": "v", "Description": format!("d {t}"),
                        "Tags": [{"Key": format!("k-{tag_text}"),
                                  "Value": format!("v-{tag_text}")}]}),
            );
        }
    }
    // The names listed, or the error refusing the filter.
    let list = |s: &TestServer, filters: &Value| -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({"Filters": filters, "MaxResults": 4});
            if let Some(t) = &token {
                body["NextToken"] = json!(t);
            }
            let r = s.call("secretsmanager.ListSecrets", &body.to_string());
            if r.status != 200 {
                return Err(r.error_type());
            }
            let r = r.json();
            for e in r["SecretList"].as_array().unwrap() {
                out.push(e["Name"].as_str().unwrap().to_owned());
            }
            match r["NextToken"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        out.sort();
        Ok(out)
    };
    let batch = |s: &TestServer, filters: &Value| -> Result<Vec<String>, String> {
        let r = s.call(
            "secretsmanager.BatchGetSecretValue",
            &json!({"Filters": filters, "MaxResults": 20}).to_string(),
        );
        if r.status != 200 {
            return Err(r.error_type());
        }
        let r = r.json();
        let mut out: Vec<String> = r["SecretValues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Name"].as_str().unwrap().to_owned())
            .collect();
        out.sort();
        Ok(out)
    };
    let mut checked = 0;
    for key in ["name", "description", "tag-key", "tag-value", "all"] {
        for v in [
            "app/a_",
            "app/a",
            "app/a+",
            "app/a.",
            "APP/",
            "App",
            "app/",
            "a",
            "_",
            "%",
            "\\",
            "d a%",
            "d a_",
            "d a\\",
            "d a\\\\",
            "d \u{e9}",
            "d \u{c9}",
            "d E",
            "d \u{1F511}",
            "k-a%",
            "k-a_",
            "k-a\\",
            "v-a%",
            "v-a_",
            "v-\u{e9}",
            "v-E\u{301}",
            "d one",
            "d ONE",
            "!app/a",
            "!app/",
            "!d a%",
            "!k-a_",
            "a%b",
            "a_b",
            "d",
            "k-",
            "v-",
            "one",
            "ONE",
        ] {
            let f = json!([{"Key": key, "Values": [v]}]);
            let (l, p) = (list(&lite, &f), list(&pg, &f));
            assert_eq!(l, p, "ListSecrets {key} {v:?}");
            assert_eq!(batch(&lite, &f), batch(&pg, &f), "Batch {key} {v:?}");
            checked += 1;
        }
    }
    assert!(checked > 100);
    // A SecretId names the secret of exactly that name (case counts), on both backends, also
    // within a partial ARN.
    for s in [&lite, &pg] {
        for (id, want) in [
            ("App/one", Some("App/one")),
            ("app/one", Some("app/one")),
            ("APP/ONE", Some("APP/ONE")),
            ("app/ONE", None),
            ("APP/one", None),
            (
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:App/one",
                Some("App/one"),
            ),
            (
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/One",
                None,
            ),
        ] {
            let r = s.call(
                "secretsmanager.DescribeSecret",
                &json!({"SecretId": id}).to_string(),
            );
            match want {
                Some(n) => assert_eq!(r.json()["Name"], n, "{id}: {}", r.body),
                None => assert_eq!(r.error_type(), "ResourceNotFoundException", "{id}"),
            }
        }
    }
    // A name prefix is matched as the text it is: `_` is no wildcard, case counts.
    for s in [&lite, &pg] {
        for (v, want) in [
            ("app/a_", &["app/a_b"][..]),
            ("App", &["App/one"]),
            ("APP/", &["APP/ONE"]),
            (
                "app/a",
                &[
                    "app/a+b", "app/a-b", "app/a.b", "app/a/b", "app/a=b", "app/a@b", "app/aXb",
                    "app/a_b", "app/axb",
                ],
            ),
        ] {
            let want: Vec<String> = want.iter().map(|n| (*n).to_owned()).collect();
            assert_eq!(
                list(s, &json!([{"Key": "name", "Values": [v]}])),
                Ok(want),
                "{v}"
            );
        }
    }
}

/// Every access key of a shared database deleted with the CLI (the root's included, on
/// purpose): a server joining the database later with a data directory of its own (a new
/// machine, a container whose data directory is not kept) installs no root key, neither the
/// environment's pair nor a new one, so the deleted pair works through no server.
#[test]
fn a_server_joining_a_database_whose_keys_were_all_deleted_installs_no_root_key() {
    let Some(base) = postgres_base_url() else {
        return;
    };
    let url = fresh_postgres_db(&base);
    let a = TestServer::start_with(Some(url.clone()), &["us-east-1"]);
    let list = |s: &TestServer| s.call("secretsmanager.ListSecrets", "{}");
    // Positive control: the root key the first server installed in the new database works.
    assert_eq!(list(&a).status, 200);
    let cfg = a.store_config();
    strongroom::cli::change_access_key(
        &cfg,
        crate::common::AKID,
        strongroom::cli::KeyChange::Delete,
    )
    .unwrap();
    let keys = strongroom::cli::list_access_keys(&cfg, None, None).unwrap();
    assert_eq!(keys, "", "{keys}");
    let other = tempfile::tempdir().unwrap();
    let data = other.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(a.data_dir().join("master.key"), data.join("master.key")).unwrap();
    let b = TestServer::launch_config(config_in(other.path(), Some(url)), other);
    let r = list(&b);
    assert_eq!(r.error_type(), "UnrecognizedClientException", "{}", r.body);
    assert!(
        !data.join("root-credentials.json").exists(),
        "a new root key pair was minted"
    );
    let keys = strongroom::cli::list_access_keys(&b.store_config(), None, None).unwrap();
    assert_eq!(keys, "", "{keys}");
    std::thread::sleep(Duration::from_millis(5200)); // past `a`'s key cache
    let r = list(&a);
    assert_eq!(r.error_type(), "UnrecognizedClientException", "{}", r.body);
}

/// Each server with a copy of the principals directory of its own (not shared files): a role
/// removed from one copy ends its sessions on every server at that server's reload (the
/// reload deletes the role's id from the database, and a session is accepted only under the
/// id kept there). The other server, whose copy still declares the role, gives it a new id
/// at its next reload: a session it issues then is refused by the server whose copy does not
/// declare the role, and accepted by itself. A user removed from one copy has its access keys
/// deactivated in the database: refused through every server within 5 seconds, whatever the
/// other copies declare.
#[test]
fn a_role_or_user_removed_from_one_servers_copy_of_the_directory() {
    let (_t, dir_a) = directory();
    user(
        &dir_a,
        "assumer",
        &json!([{"Effect": "Allow", "Action": ["sts:AssumeRole", "secretsmanager:DescribeSecret"],
                 "Resource": "*"}]),
    );
    user(
        &dir_a,
        "leaver",
        &json!([{"Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": "*"}]),
    );
    write(
        &dir_a,
        &format!("accounts/{ACCOUNT}/roles/copy-role.json"),
        &json!({"RoleName": "copy-role",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/assumer")},
                "Action": "sts:AssumeRole"}]},
            "InlinePolicies": {"p": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": "*"}]}}})
        .to_string(),
    );
    let (_t2, dir_b) = directory();
    for rel in [
        format!("accounts/{ACCOUNT}/users/assumer.json"),
        format!("accounts/{ACCOUNT}/users/leaver.json"),
        format!("accounts/{ACCOUNT}/roles/copy-role.json"),
    ] {
        write(
            &dir_b,
            &rel,
            &std::fs::read_to_string(dir_a.join(&rel)).unwrap(),
        );
    }
    let Some((a, b)) = two_servers(&["us-east-1"], Some(&dir_a), Some(&dir_b)) else {
        return;
    };
    ok(
        &a,
        "secretsmanager.CreateSecret",
        &json!({"Name": "multi/copies", "SecretString": "s"}),
    );
    let k = key_for(&a, &dir_a, ACCOUNT, "assumer");
    let leaver = key_for(&a, &dir_a, ACCOUNT, "leaver");
    let role = format!("arn:aws:iam::{ACCOUNT}:role/copy-role");
    let (sid, ssecret, token) = assume_role(&a, &k.0, &k.1, &role, "s1");
    let session = |s: &TestServer| {
        s.call_signed(
            "secretsmanager.DescribeSecret",
            &json!({"SecretId": "multi/copies"}).to_string(),
            session_signing(&(sid.clone(), ssecret.clone(), token.clone())),
        )
        .status
    };
    let as_leaver = |s: &TestServer| {
        call_as(
            s,
            &leaver.0,
            &leaver.1,
            "secretsmanager.DescribeSecret",
            &json!({"SecretId": "multi/copies"}),
        )
        .status
    };
    let until = |what: &str, f: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!((session(&a), session(&b)), (200, 200));
    std::fs::remove_file(dir_a.join(format!("accounts/{ACCOUNT}/roles/copy-role.json"))).unwrap();
    until("a refuses the session", &|| session(&a) != 200);
    // The removal deleted the role's id from the database: `b` refuses the session too,
    // although its copy still declares the role.
    until("b refuses the session", &|| session(&b) != 200);
    // An unrelated change to b's copy: at that reload `b` gives the role a new id, and a
    // session it issues then works through `b` only.
    user(
        &dir_b,
        "unrelated",
        &json!([{"Effect": "Allow", "Action": "secretsmanager:ListSecrets", "Resource": "*"}]),
    );
    let describe_as = |s: &TestServer, session: &(String, String, String)| {
        s.call_signed(
            "secretsmanager.DescribeSecret",
            &json!({"SecretId": "multi/copies"}).to_string(),
            session_signing(session),
        )
        .status
    };
    let start = Instant::now();
    let second = loop {
        let s2 = assume_role(&b, &k.0, &k.1, &role, "s2");
        if describe_as(&b, &s2) == 200 {
            break s2;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "b never reloaded"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(describe_as(&a, &second), 400);
    assert_eq!(session(&b), 400);
    // A user removed from a's copy only.
    assert_eq!((as_leaver(&a), as_leaver(&b)), (200, 200));
    std::fs::remove_file(dir_a.join(format!("accounts/{ACCOUNT}/users/leaver.json"))).unwrap();
    until("a refuses the leaver", &|| as_leaver(&a) != 200);
    until("b refuses the leaver", &|| as_leaver(&b) != 200);
}

/// Tag keys differing only in case are refused on one secret: two servers tagging the same
/// secret at the same moment with `team` and `Team` leave one of them only (the other write
/// is refused), every round.
#[test]
fn concurrent_tags_differing_in_case_through_two_servers_never_both_land() {
    let Some((a, b)) = two_servers(&["us-east-1"], None, None) else {
        return;
    };
    let a = std::sync::Arc::new(a);
    let b = std::sync::Arc::new(b);
    for round in 0..12 {
        let id = format!("multi/case{round}");
        ok(
            &a,
            "secretsmanager.CreateSecret",
            &json!({"Name": id, "SecretString": "c"}),
        );
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let spawn = |s: &std::sync::Arc<TestServer>, key: &'static str| {
            let (s, id, barrier) = (s.clone(), id.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                s.call(
                    "secretsmanager.TagResource",
                    &json!({"SecretId": id, "Tags": [{"Key": key, "Value": key}]}).to_string(),
                )
                .status
            })
        };
        let (ta, tb) = (spawn(&a, "team"), spawn(&b, "Team"));
        let statuses = [ta.join().unwrap(), tb.join().unwrap()];
        let d = ok(
            &b,
            "secretsmanager.DescribeSecret",
            &json!({"SecretId": id}),
        );
        let tags = d["Tags"].as_array().cloned().unwrap_or_default();
        assert_eq!(tags.len(), 1, "round {round}: {statuses:?} {tags:?}");
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "round {round}: {statuses:?}"
        );
    }
}

/// A role declared again ends the sessions issued before, on every server: its files removed
/// and restored are read by one server while the other's copy never changed (a copy synced
/// late, which got only the final state). The role's id in the database decides: the other
/// server refuses the old session at once, and accepts a session issued under the new id.
#[test]
fn a_role_declared_again_through_one_server_ends_its_old_sessions_on_every_server() {
    let (_t, dir_a) = directory();
    user(
        &dir_a,
        "assumer",
        &json!([{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]),
    );
    let role_file = format!("accounts/{ACCOUNT}/roles/again-role.json");
    let role_text = json!({"RoleName": "again-role",
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/assumer")},
            "Action": "sts:AssumeRole"}]},
        "InlinePolicies": {"p": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": "*"}]}}})
    .to_string();
    write(&dir_a, &role_file, &role_text);
    let (_t2, dir_b) = directory();
    for rel in [
        format!("accounts/{ACCOUNT}/users/assumer.json"),
        role_file.clone(),
    ] {
        write(
            &dir_b,
            &rel,
            &std::fs::read_to_string(dir_a.join(&rel)).unwrap(),
        );
    }
    let Some((a, b)) = two_servers(&["us-east-1"], Some(&dir_a), Some(&dir_b)) else {
        return;
    };
    ok(
        &a,
        "secretsmanager.CreateSecret",
        &json!({"Name": "multi/again", "SecretString": "s"}),
    );
    let k = key_for(&a, &dir_a, ACCOUNT, "assumer");
    let role = format!("arn:aws:iam::{ACCOUNT}:role/again-role");
    let describe = |s: &TestServer, session: &(String, String, String)| {
        s.call_signed(
            "secretsmanager.DescribeSecret",
            &json!({"SecretId": "multi/again"}).to_string(),
            session_signing(session),
        )
        .status
    };
    let old = assume_role(&a, &k.0, &k.1, &role, "old");
    assert_eq!((describe(&a, &old), describe(&b, &old)), (200, 200));
    let until = |what: &str, f: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    std::fs::remove_file(dir_a.join(&role_file)).unwrap();
    until("a refuses the old session", &|| describe(&a, &old) != 200);
    write(&dir_a, &role_file, &role_text);
    let new = {
        let start = Instant::now();
        loop {
            let r = a.raw(&crate::common::signed_query(
                &format!(
                    "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=new",
                    crate::common::urlenc(&role)
                ),
                crate::common::sts_as(&k.0, &k.1),
            ));
            if r.status == 200 {
                break (
                    crate::common::xml_field(&r.body, "AccessKeyId"),
                    crate::common::xml_field(&r.body, "SecretAccessKey"),
                    crate::common::xml_field(&r.body, "SessionToken"),
                );
            }
            assert!(start.elapsed() < Duration::from_secs(10), "{}", r.body);
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(describe(&a, &new), 200);
    assert_eq!(describe(&a, &old), 400);
    // `b`'s copy never changed: the old session is refused there too, within the time a
    // looked-up role id is trusted (as an access key's status), and from then on.
    until("b refuses a session of the role's old id", &|| {
        describe(&b, &old) != 200
    });
    assert_eq!(describe(&b, &old), 400);
    // Positive control: the session issued under the role's new id works through `b`.
    assert_eq!(describe(&b, &new), 200);
}
