//! Requests that race other writes between their authorization and their write, and
//! concurrent requests that share an idempotency token or a staging label. Each test checks
//! that every outcome is one a serial order of the same requests would allow; the races
//! with a write made on another connection to the SQLite file are tried a bounded number of
//! times, with the change made at moments spread over a request's duration.

use std::sync::Barrier;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::{json, Value};

use crate::common::{
    call_as, config_in, example_policies, fresh_postgres_db, key_for, ok, postgres_base_url,
    user_allowing, RawResponse, TestServer,
};

const ACCOUNT: &str = "111122223333";

/// How many times a race with another connection is tried.
const TRIES: u32 = 120;

/// Another connection to the server's SQLite file.
fn outside(s: &TestServer) -> diesel::SqliteConnection {
    let db = s.data_dir().join("strongroom.db");
    let mut c = diesel::SqliteConnection::establish(db.to_str().unwrap()).unwrap();
    c.batch_execute("PRAGMA busy_timeout = 10000").unwrap();
    c
}

fn query_one(c: &mut diesel::SqliteConnection, sql: &str) -> Option<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        v: Option<String>,
    }
    let rows: Vec<Row> = diesel::RunQueryDsl::load(diesel::sql_query(sql), c).unwrap();
    rows.into_iter().next().and_then(|r| r.v)
}

fn new_key(s: &TestServer, policy: Option<&Value>) -> String {
    let mut body = json!({"Description": "race"});
    if let Some(p) = policy {
        body["Policy"] = p.to_string().into();
    }
    let r = s.call("TrentService.CreateKey", &body.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A key policy administering the key from the account and refusing `user` GenerateDataKey.
fn key_denying(user: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "home", "Effect": "Allow",
         "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "no", "Effect": "Deny",
         "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/{user}")},
         "Action": "kms:GenerateDataKey", "Resource": "*"}]})
}

fn token() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Run `request` while `change` is made on another connection `delay` after it was sent;
/// the request's answer.
fn racing(
    request: impl FnOnce() -> RawResponse + Send,
    change: impl FnOnce(),
    delay: Duration,
) -> RawResponse {
    std::thread::scope(|sc| {
        let h = sc.spawn(request);
        std::thread::sleep(delay);
        change();
        h.join().unwrap()
    })
}

/// The `i`th of [`TRIES`] delays, spread over 0 to 12 ms.
fn delay(i: u32) -> Duration {
    Duration::from_micros(u64::from(i % 30) * 400)
}

/// A PutSecretValue authorized for `kms:GenerateDataKey` on the secret's key is never
/// sealed under another key the secret was switched to before its write, one the caller is
/// refused GenerateDataKey on: a version sealed under that key was authorized on it (which
/// refuses the caller), so an accepted put holds a version sealed under the first key.
#[test]
fn a_value_is_not_sealed_under_a_key_switched_in_after_authorization() {
    let (_t, dir) = example_policies();
    user_allowing(
        &dir,
        ACCOUNT,
        "racer",
        &["secretsmanager:PutSecretValue", "kms:GenerateDataKey"],
    );
    let s = TestServer::start_with_policies(&dir);
    let k1 = new_key(&s, None);
    let k2 = new_key(&s, Some(&key_denying("racer")));
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "race/key", "SecretString": "v0", "KmsKeyId": k1}),
    );
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "race/k2", "SecretString": "v0", "KmsKeyId": k2}),
    );
    let k = key_for(&s, &dir, ACCOUNT, "racer");
    let put = |id: &str, tok: &str| {
        call_as(
            &s,
            &k.0,
            &k.1,
            "secretsmanager.PutSecretValue",
            &json!({"SecretId": id, "SecretString": "mine", "ClientRequestToken": tok}),
        )
    };
    // Controls: allowed under the first key, refused under the second.
    assert_eq!(put("race/key", &token()).status, 200);
    let r = put("race/k2", &token());
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);

    let mut c = outside(&s);
    // Control: a switch committed before the request refuses it.
    for _ in 0..3 {
        c.batch_execute(&format!(
            "UPDATE secrets SET kms_key_id = '{k2}' WHERE name = 'race/key'"
        ))
        .unwrap();
        let r = put("race/key", &token());
        assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
        c.batch_execute(&format!(
            "UPDATE secrets SET kms_key_id = '{k1}' WHERE name = 'race/key'"
        ))
        .unwrap();
        assert_eq!(put("race/key", &token()).status, 200);
    }
    let mut seen = Vec::new();
    for i in 0..TRIES {
        c.batch_execute(&format!(
            "UPDATE secrets SET kms_key_id = '{k1}' WHERE name = 'race/key'"
        ))
        .unwrap();
        let tok = token();
        let r = racing(
            || put("race/key", &tok),
            || {
                c.batch_execute(&format!(
                    "UPDATE secrets SET kms_key_id = '{k2}' WHERE name = 'race/key'"
                ))
                .unwrap();
            },
            delay(i),
        );
        let sealed = query_one(
            &mut c,
            &format!("SELECT kms_key_id AS v FROM secret_versions WHERE version_id = '{tok}'"),
        );
        seen.push((r.status, sealed.as_deref() == Some(k2.as_str())));
        assert!(
            r.status != 200 || sealed.as_deref() == Some(k1.as_str()),
            "try {i}: answered {} {} and sealed under {sealed:?} (the caller may use {k1}, not {k2})",
            r.status,
            r.body
        );
    }
    // The race was run: some puts were accepted, some refused.
    assert!(seen.iter().any(|(st, _)| *st == 200), "{seen:?}");
    assert!(seen.iter().any(|(st, _)| *st != 200), "{seen:?}");
}

/// A write authorized on one secret acts on that secret (by its id), never on another that
/// took its name before the write: a secret whose resource policy refuses the caller never
/// gets the caller's version.
#[test]
fn a_write_acts_on_the_secret_it_was_authorized_on_not_its_name() {
    let (_t, dir) = example_policies();
    user_allowing(&dir, ACCOUNT, "namer", &["secretsmanager:PutSecretValue"]);
    let s = TestServer::start_with_policies(&dir);
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "race/name", "SecretString": "a0"}),
    );
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "race/other", "SecretString": "b0"}),
    );
    let deny = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/namer")},
        "Action": "secretsmanager:PutSecretValue", "Resource": "*"}]});
    ok(
        &s,
        "secretsmanager.PutResourcePolicy",
        &json!({"SecretId": "race/other", "ResourcePolicy": deny.to_string()}),
    );
    let k = key_for(&s, &dir, ACCOUNT, "namer");
    let put = |id: &str, tok: &str| {
        call_as(
            &s,
            &k.0,
            &k.1,
            "secretsmanager.PutSecretValue",
            &json!({"SecretId": id, "SecretString": "mine", "ClientRequestToken": tok}),
        )
    };
    // Controls: allowed on the first, refused on the second.
    assert_eq!(put("race/name", &token()).status, 200);
    assert_eq!(
        put("race/other", &token()).error_type(),
        "AccessDeniedException"
    );
    let other = query_one(
        &mut outside(&s),
        "SELECT secret_id AS v FROM secrets WHERE name = 'race/other'",
    )
    .unwrap();

    let mut c = outside(&s);
    let mut accepted = 0;
    for i in 0..TRIES {
        let tok = token();
        let r = racing(
            || put("race/name", &tok),
            || {
                c.batch_execute(
                    "BEGIN IMMEDIATE; \
                     UPDATE secrets SET name = 'race/gone' WHERE name = 'race/name'; \
                     UPDATE secrets SET name = 'race/name' WHERE name = 'race/other'; \
                     UPDATE secrets SET name = 'race/other' WHERE name = 'race/gone'; COMMIT",
                )
                .unwrap();
            },
            delay(i),
        );
        accepted += u32::from(r.status == 200);
        let owner = query_one(
            &mut c,
            &format!("SELECT secret_id AS v FROM secret_versions WHERE version_id = '{tok}'"),
        );
        assert_ne!(
            owner.as_deref(),
            Some(other.as_str()),
            "try {i}: {}",
            r.body
        );
    }
    assert!(accepted > 0);
}

/// Run `bodies` as `target` at once (each thread released by one barrier), the `i`th
/// through `servers[i % len]`; their answers, in order.
fn all_at_once(servers: &[&TestServer], target: &str, bodies: &[Value]) -> Vec<RawResponse> {
    let go = Barrier::new(bodies.len());
    std::thread::scope(|sc| {
        let hs: Vec<_> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let go = &go;
                let s = servers[i % servers.len()];
                sc.spawn(move || {
                    go.wait();
                    s.call(target, &b.to_string())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Concurrent PutSecretValue calls with one ClientRequestToken: with different values one
/// version is made and every other call is refused (ResourceExistsException); with the same
/// value every call answers that version. The version holds the winner's value.
fn puts_with_one_token(servers: &[&TestServer]) {
    let s = servers[0];
    ok(
        s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "race/token", "SecretString": "v0"}),
    );
    let tok = token();
    let bodies: Vec<Value> = (0..4)
        .map(|i| json!({"SecretId": "race/token", "SecretString": format!("v{i}"), "ClientRequestToken": tok}))
        .collect();
    let rs = all_at_once(servers, "secretsmanager.PutSecretValue", &bodies);
    let won: Vec<usize> = (0..rs.len()).filter(|i| rs[*i].status == 200).collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        rs.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    for (i, r) in rs.iter().enumerate() {
        if r.status != 200 {
            assert_eq!(r.error_type(), "ResourceExistsException", "{i}: {}", r.body);
        }
    }
    let v = ok(
        s,
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "race/token", "VersionId": tok}),
    );
    assert_eq!(v["SecretString"], format!("v{}", won[0]));
    assert_eq!(v["VersionStages"], json!(["AWSCURRENT"]));

    // The same value: every call answers the one version.
    let tok = token();
    let same = json!({"SecretId": "race/token", "SecretString": "same", "ClientRequestToken": tok});
    let rs = all_at_once(
        servers,
        "secretsmanager.PutSecretValue",
        &[same.clone(), same.clone(), same],
    );
    for r in &rs {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["VersionId"], tok.as_str());
    }
    let ids = ok(
        s,
        "secretsmanager.ListSecretVersionIds",
        &json!({"SecretId": "race/token", "IncludeDeprecated": true}),
    );
    let n = ids["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["VersionId"] == tok.as_str())
        .count();
    assert_eq!(n, 1);
}

#[test]
fn one_token_makes_one_version_under_concurrent_puts() {
    puts_with_one_token(&[&TestServer::start()]);
}

/// [`puts_with_one_token`] through two servers on one PostgreSQL database.
#[test]
fn one_token_makes_one_version_under_concurrent_puts_on_two_pg_servers() {
    let Some((a, b, _dir)) = two_pg_servers() else {
        return;
    };
    puts_with_one_token(&[&a, &b]);
}

/// Concurrent CreateSecret calls for one name: with one token and value, one secret is made
/// and every call answers it (same ARN and VersionId), as a retry after the first answer
/// is; with different values under one token, one is made and the others are refused
/// (ResourceExistsException).
fn creates_of_one_name(servers: &[&TestServer]) {
    let s = servers[0];
    // Control: a retry after the first call was answered is answered the same.
    let tok = token();
    let first = json!({"Name": "race/serial", "SecretString": "c", "ClientRequestToken": tok});
    let arn = ok(s, "secretsmanager.CreateSecret", &first)["ARN"].clone();
    for t in servers {
        assert_eq!(ok(t, "secretsmanager.CreateSecret", &first)["ARN"], arn);
    }
    for n in 0..10 {
        let tok = token();
        let same = json!({"Name": format!("race/create{n}"), "SecretString": "c",
                          "ClientRequestToken": tok});
        let rs = all_at_once(
            servers,
            "secretsmanager.CreateSecret",
            &[same.clone(), same.clone(), same.clone(), same],
        );
        let arns: Vec<Value> = rs
            .iter()
            .map(|r| {
                assert_eq!(r.status, 200, "try {n}: {}", r.body);
                assert_eq!(r.json()["VersionId"], tok.as_str());
                r.json()["ARN"].clone()
            })
            .collect();
        assert!(arns.iter().all(|a| *a == arns[0]), "{arns:?}");
    }

    let tok = token();
    let bodies: Vec<Value> = (0..3)
        .map(|i| json!({"Name": "race/differ", "SecretString": format!("c{i}"), "ClientRequestToken": tok}))
        .collect();
    let rs = all_at_once(servers, "secretsmanager.CreateSecret", &bodies);
    let won: Vec<usize> = (0..rs.len()).filter(|i| rs[*i].status == 200).collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        rs.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    for r in rs.iter().filter(|r| r.status != 200) {
        assert_eq!(r.error_type(), "ResourceExistsException", "{}", r.body);
    }
    let v = ok(
        s,
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "race/differ"}),
    );
    assert_eq!(v["SecretString"], format!("c{}", won[0]));
}

#[test]
fn concurrent_creates_of_one_name_make_one_secret() {
    creates_of_one_name(&[&TestServer::start()]);
}

/// [`creates_of_one_name`] through one server on PostgreSQL.
#[test]
fn concurrent_creates_of_one_name_make_one_secret_on_pg() {
    let Some(base) = postgres_base_url() else {
        return;
    };
    creates_of_one_name(&[&TestServer::start_postgres(&base)]);
}

/// [`creates_of_one_name`] through two servers on one PostgreSQL database.
#[test]
fn concurrent_creates_of_one_name_make_one_secret_on_two_pg_servers() {
    let Some((a, b, _dir)) = two_pg_servers() else {
        return;
    };
    creates_of_one_name(&[&a, &b]);
}

/// Two concurrent moves of AWSCURRENT away from the same version: one wins, the other is
/// refused (its RemoveFromVersionId no longer holds the label), and exactly one version is
/// AWSCURRENT, with the old one AWSPREVIOUS.
fn moves_of_awscurrent(servers: &[&TestServer]) {
    let s = servers[0];
    let v1 = token();
    ok(
        s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "race/stage", "SecretString": "1", "ClientRequestToken": v1}),
    );
    let (v2, v3) = (token(), token());
    for v in [&v2, &v3] {
        ok(
            s,
            "secretsmanager.PutSecretValue",
            &json!({"SecretId": "race/stage", "SecretString": v, "ClientRequestToken": v,
                    "VersionStages": ["STAGED"]}),
        );
        // The label is only on the last one put.
    }
    let moves: Vec<Value> = [&v2, &v3]
        .iter()
        .map(|to| {
            json!({"SecretId": "race/stage", "VersionStage": "AWSCURRENT",
                          "RemoveFromVersionId": v1, "MoveToVersionId": to})
        })
        .collect();
    let rs = all_at_once(servers, "secretsmanager.UpdateSecretVersionStage", &moves);
    let won: Vec<usize> = (0..rs.len()).filter(|i| rs[*i].status == 200).collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        rs.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let lost = 1 - won[0];
    assert_eq!(
        rs[lost].error_type(),
        "InvalidParameterException",
        "{}",
        rs[lost].body
    );
    let winner = if won[0] == 0 { &v2 } else { &v3 };
    let ids = ok(
        s,
        "secretsmanager.ListSecretVersionIds",
        &json!({"SecretId": "race/stage"}),
    );
    let with = |stage: &str| -> Vec<String> {
        ids["Versions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| {
                v["VersionStages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s == stage)
            })
            .map(|v| v["VersionId"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(with("AWSCURRENT"), vec![winner.clone()]);
    assert_eq!(with("AWSPREVIOUS"), vec![v1]);
}

#[test]
fn concurrent_moves_of_awscurrent_leave_one_current() {
    moves_of_awscurrent(&[&TestServer::start()]);
}

/// [`moves_of_awscurrent`] through two servers on one PostgreSQL database.
#[test]
fn concurrent_moves_of_awscurrent_leave_one_current_on_two_pg_servers() {
    let Some((a, b, _dir)) = two_pg_servers() else {
        return;
    };
    moves_of_awscurrent(&[&a, &b]);
}

/// Two servers on a fresh PostgreSQL database sharing the master key, when PostgreSQL is
/// given.
fn two_pg_servers() -> Option<(TestServer, TestServer, tempfile::TempDir)> {
    let base = postgres_base_url()?;
    let url = fresh_postgres_db(&base);
    let a = TestServer::start_with(Some(url.clone()), &["us-east-1"]);
    let other = tempfile::tempdir().unwrap();
    let data = other.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(a.data_dir().join("master.key"), data.join("master.key")).unwrap();
    let b = TestServer::launch_config(
        config_in(other.path(), Some(url)),
        tempfile::tempdir().unwrap(),
    );
    Some((a, b, other))
}

/// A CreateSecret that names its key by alias is never sealed under a key the alias was
/// moved to between the decision (kms:GenerateDataKey on the key the alias named then) and
/// the write, one the caller is refused: the write holds the key it resolves to the one
/// decided, and an accepted create holds a version sealed under the first key.
#[test]
fn a_value_is_not_sealed_under_a_key_an_alias_moved_to_after_authorization() {
    let (_t, dir) = example_policies();
    user_allowing(
        &dir,
        ACCOUNT,
        "aliaser",
        &["secretsmanager:CreateSecret", "kms:GenerateDataKey"],
    );
    let s = TestServer::start_with_policies(&dir);
    let k1 = new_key(&s, None);
    let k2 = new_key(&s, Some(&key_denying("aliaser")));
    let r = s.call(
        "TrentService.CreateAlias",
        &json!({"AliasName": "alias/race", "TargetKeyId": k1}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let k = key_for(&s, &dir, ACCOUNT, "aliaser");
    let create = |name: &str, tok: &str| {
        call_as(
            &s,
            &k.0,
            &k.1,
            "secretsmanager.CreateSecret",
            &json!({"Name": name, "SecretString": "mine", "KmsKeyId": "alias/race",
                    "ClientRequestToken": tok}),
        )
    };
    let mut c = outside(&s);
    let point = |c: &mut diesel::SqliteConnection, key: &str| {
        c.batch_execute(&format!(
            "UPDATE kms_aliases SET target_key_id = '{key}' WHERE alias_name = 'alias/race'"
        ))
        .unwrap();
    };
    // Controls: allowed while the alias names the first key, refused while it names the second.
    assert_eq!(create("alias/ok", &token()).status, 200);
    point(&mut c, &k2);
    let r = create("alias/no", &token());
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let mut seen = Vec::new();
    for i in 0..TRIES {
        point(&mut c, &k1);
        let tok = token();
        let name = format!("alias/try-{i}");
        let r = racing(|| create(&name, &tok), || point(&mut c, &k2), delay(i));
        let sealed = query_one(
            &mut c,
            &format!("SELECT kms_key_id AS v FROM secret_versions WHERE version_id = '{tok}'"),
        );
        seen.push(r.status);
        assert!(
            r.status != 200 || sealed.as_deref() == Some(k1.as_str()),
            "try {i}: answered {} {} and sealed under {sealed:?} (the caller may use {k1}, not {k2})",
            r.status,
            r.body
        );
        if r.status != 200 {
            let t = r.error_type();
            assert!(
                t == "AccessDeniedException" || t == "InvalidRequestException",
                "try {i}: {}",
                r.body
            );
        }
    }
    assert!(seen.contains(&200), "{seen:?}");
    assert!(seen.iter().any(|st| *st != 200), "{seen:?}");
}
