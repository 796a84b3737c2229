//! The built-in PostgreSQL rotators against the test PostgreSQL (scripts/pg.sh: TLS with a
//! self-signed certificate, passwords over TLS only for the roles these tests create). Each
//! test creates its own roles (random names) in that server. Skipped without
//! STRONGROOM_TEST_DATABASE_URL, as the other PostgreSQL cases.

use std::io::{Read, Write};
use std::path::PathBuf;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use serde_json::{json, Value};

use crate::common::{config_in, write, TestServer, ACCOUNT};
use crate::rotation::{
    current_value, describe, events, has_pending, ok, sm, stages_of, token, wait_for,
};

const SINGLE: &str = "SecretsManagerRDSPostgreSQLRotationSingleUser";
const MULTI: &str = "SecretsManagerRDSPostgreSQLRotationMultiUser";

pub(crate) fn fn_arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}")
}

/// The test server's address and the CA of its TLS certificate (None: skip).
struct Pg {
    admin: String,
    host: String,
    port: u16,
    /// The test database (the roles' tables are created there).
    db: String,
    ca: Option<PathBuf>,
}

fn pg() -> Option<Pg> {
    let admin = crate::common::postgres_base_url()?;
    let rest = admin.split_once('@')?.1;
    let (hostport, db) = rest.split_once('/')?;
    let db = db.split('?').next()?.to_owned();
    let (host, port) = hostport.rsplit_once(':')?;
    let ca = std::env::var_os("STRONGROOM_TEST_PG_CA").map(PathBuf::from);
    assert!(
        ca.is_some() || std::env::var("STRONGROOM_REQUIRE_POSTGRES").is_err(),
        "STRONGROOM_TEST_PG_CA is not set: start PostgreSQL with scripts/pg.sh (TLS)"
    );
    Some(Pg {
        admin: admin.clone(),
        host: host.to_owned(),
        port: port.parse().ok()?,
        db,
        ca,
    })
}

impl Pg {
    fn sql(&self, sql: &str) {
        let mut c = PgConnection::establish(&self.admin).unwrap();
        c.batch_execute(sql).unwrap();
    }

    fn conninfo(&self, user: &str, password: &str, sslmode: &str) -> String {
        let q = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        format!(
            "host={} port={} dbname={} user={} password={} sslmode={sslmode} connect_timeout=5",
            self.host,
            self.port,
            q(&self.db),
            q(user),
            q(password)
        )
    }

    /// Whether `user` logs in with `password` (over TLS).
    fn logs_in(&self, user: &str, password: &str) -> bool {
        PgConnection::establish(&self.conninfo(user, password, "require")).is_ok()
    }

    fn query_as(&self, user: &str, password: &str, sql: &str) -> Result<(), String> {
        let mut c = PgConnection::establish(&self.conninfo(user, password, "require"))
            .map_err(|e| e.to_string())?;
        c.batch_execute(sql).map_err(|e| e.to_string())
    }

    fn secret(&self, user: &str, password: &str) -> Value {
        json!({"engine": "postgres", "host": self.host, "port": self.port, "username": user,
               "password": password, "dbname": self.db})
    }
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub(crate) fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

/// A principals directory with the role `role` (allowed the rotation calls on every secret)
/// and `functions` (name → extra members of a `builtin` function file).
pub(crate) struct Rig {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) policies: PathBuf,
}

pub(crate) fn rig(role: &str, functions: &[(&str, Value)]) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let policies = tmp.path().join("policies");
    write(
        &policies,
        &format!("accounts/{ACCOUNT}/account.json"),
        &format!(r#"{{"AccountId":"{ACCOUNT}"}}"#),
    );
    write(
        &policies,
        &format!("accounts/{ACCOUNT}/roles/{role}.json"),
        &json!({
            "RoleName": role,
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
    for (name, extra) in functions {
        let mut f = json!({
            "FunctionName": name,
            "Role": format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
            "Kind": "builtin",
            "TimeoutSeconds": 20,
            "MaxAttempts": 1,
            "RetryDelaySeconds": 1
        });
        for (k, v) in extra.as_object().unwrap() {
            f[k] = v.clone();
        }
        write(
            &policies,
            &format!("accounts/{ACCOUNT}/functions/{name}.json"),
            &f.to_string(),
        );
    }
    Rig { tmp, policies }
}

impl Rig {
    pub(crate) fn start(&self) -> TestServer {
        let mut cfg = config_in(self.tmp.path(), None);
        cfg.policies = Some(self.policies.clone());
        TestServer::launch_config(cfg, tempfile::tempdir().unwrap())
    }
}

pub(crate) fn create_secret(s: &TestServer, name: &str, value: &Value) -> String {
    ok(
        s,
        "CreateSecret",
        &json!({"Name": name, "ClientRequestToken": token(), "SecretString": value.to_string()}),
    )["VersionId"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn rotate(s: &TestServer, name: &str, arn: Option<&str>) -> String {
    let t = token();
    let mut body = json!({"SecretId": name, "ClientRequestToken": t});
    if let Some(a) = arn {
        body["RotationLambdaARN"] = json!(a);
    }
    ok(s, "RotateSecret", &body);
    t
}

pub(crate) fn rotated(s: &TestServer, name: &str, t: &str) -> Value {
    let d = wait_for(s, name, "the rotation", |d| {
        stages_of(d, t) == ["AWSCURRENT"] || d["StrongroomRotation"]["Status"] == "Failed"
    });
    assert_eq!(stages_of(&d, t), ["AWSCURRENT"], "{d}");
    assert!(!has_pending(&d), "{d}");
    d
}

pub(crate) fn failed(s: &TestServer, name: &str) -> Value {
    wait_for(s, name, "the rotation to fail", |d| {
        d["StrongroomRotation"]["Status"] == "Failed"
    })
}

pub(crate) fn value_of(s: &TestServer, name: &str) -> Value {
    serde_json::from_str(&current_value(s, name)).unwrap()
}

pub(crate) fn value_at(s: &TestServer, name: &str, stage: &str) -> Value {
    let v = ok(
        s,
        "GetSecretValue",
        &json!({"SecretId": name, "VersionStage": stage}),
    );
    serde_json::from_str(v["SecretString"].as_str().unwrap()).unwrap()
}

/// Every audit record of the rotation's calls and events, as text.
pub(crate) fn audit_text(s: &TestServer) -> String {
    [
        "RotationStarted",
        "RotationSucceeded",
        "RotationFailed",
        "PutSecretValue",
        "GetSecretValue",
        "UpdateSecretVersionStage",
        "DescribeSecret",
    ]
    .iter()
    .map(|e| serde_json::to_string(&events(s, e)).unwrap())
    .collect::<Vec<_>>()
    .join("\n")
}

#[test]
fn single_user_rotates_over_verified_tls_and_the_old_password_stops_working() {
    let Some(pg) = pg() else { return };
    let Some(ca) = pg.ca.clone() else { return };
    let n = suffix();
    // A user name built to break out of a badly quoted statement.
    let user = format!("rs_{n}\"; CREATE ROLE pwned_{n}; --'");
    pg.sql(&format!(
        "CREATE ROLE {} LOGIN PASSWORD 'old-password-1'",
        ident(&user)
    ));
    let rig = rig(
        "pg-rotator",
        &[("pg-single", json!({"Builtin": SINGLE, "TlsCaFile": ca}))],
    );
    let s = rig.start();
    let first = create_secret(&s, "db/single", &pg.secret(&user, "old-password-1"));
    let t = rotate(&s, "db/single", Some(&fn_arn("pg-single")));
    let d = rotated(&s, "db/single", &t);
    assert_eq!(stages_of(&d, &first), ["AWSPREVIOUS"], "{d}");
    let now = value_of(&s, "db/single");
    let new_password = now["password"].as_str().unwrap().to_owned();
    assert_eq!(now["username"], json!(user));
    assert_eq!(new_password.len(), 32);
    assert!(
        !new_password.chars().any(|c| " :/@\"'\\".contains(c)),
        "the templates' excluded characters"
    );
    assert!(pg.logs_in(&user, &new_password), "the new password works");
    assert!(
        !pg.logs_in(&user, "old-password-1"),
        "the old one no longer"
    );
    // The quoted name reached the server as one identifier: nothing else ran.
    let mut c = PgConnection::establish(&pg.admin).unwrap();
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count: N = diesel::RunQueryDsl::get_result(
        diesel::sql_query(format!(
            "SELECT count(*) AS n FROM pg_roles WHERE rolname = 'pwned_{n}'"
        )),
        &mut c,
    )
    .unwrap();
    assert_eq!(count.n, 0);
    // The calls were the role's, audited; no password anywhere in the trail.
    let puts = events(&s, "PutSecretValue");
    assert!(
        puts.iter().any(|e| e["userIdentity"]["arn"]
            .as_str()
            .unwrap_or_default()
            .contains("assumed-role/pg-rotator/pg-single")),
        "{puts:?}"
    );
    assert_eq!(events(&s, "RotationSucceeded").len(), 1);
    let trail = audit_text(&s);
    assert!(!trail.contains(&new_password) && !trail.contains("old-password-1"));
    // A second rotation logs in with the new current password.
    let t2 = rotate(&s, "db/single", None);
    rotated(&s, "db/single", &t2);
    let newer = value_of(&s, "db/single")["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pg.logs_in(&user, &newer) && !pg.logs_in(&user, &new_password));
    // The current password no longer works (the database restored to the previous one):
    // the rotator logs in with AWSPREVIOUS, as AWS's template does.
    pg.sql(&format!(
        "ALTER ROLE {} PASSWORD '{new_password}'",
        ident(&user)
    ));
    let t3 = rotate(&s, "db/single", None);
    rotated(&s, "db/single", &t3);
    let newest = value_of(&s, "db/single")["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pg.logs_in(&user, &newest) && !pg.logs_in(&user, &new_password));
    pg.sql(&format!("DROP ROLE {}", ident(&user)));
}

#[test]
fn multi_user_by_bare_template_name_alternates_keeps_previous_and_grants_in_step() {
    let Some(pg) = pg() else { return };
    let n = suffix();
    let (master, app) = (format!("rm_master_{n}"), format!("rm_app_{n}"));
    let clone = format!("{app}_clone");
    pg.sql(&format!(
        "CREATE ROLE {master} LOGIN CREATEROLE PASSWORD 'master-password-1';
         CREATE ROLE {app} LOGIN PASSWORD 'app-password-0';
         CREATE TABLE t1_{n} (x int); INSERT INTO t1_{n} VALUES (1);
         GRANT SELECT ON t1_{n} TO {app}; GRANT CREATE ON SCHEMA public TO {app};
         GRANT {app} TO {master} WITH ADMIN OPTION;
         ALTER ROLE {master} SET log_statement = 'all';
         ALTER ROLE {app} SET log_statement = 'all';"
    ));
    // No function file: the bare template name runs the built-in as the role of that name.
    let rig = rig(MULTI, &[]);
    let s = rig.start();
    let master_arn = ok(
        &s,
        "CreateSecret",
        &json!({"Name": "db/master", "ClientRequestToken": token(), "SecretString": pg.secret(&master, "master-password-1").to_string()}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut v = pg.secret(&app, "app-password-0");
    v["masterarn"] = json!(master_arn);
    v["extra"] = json!("kept");
    create_secret(&s, "db/app", &v);
    let t = rotate(&s, "db/app", Some(&fn_arn(MULTI)));
    rotated(&s, "db/app", &t);
    let first = value_of(&s, "db/app");
    assert_eq!(first["username"], json!(clone));
    assert_eq!(first["extra"], json!("kept"));
    let p1 = first["password"].as_str().unwrap().to_owned();
    // Both users work: the new (clone) and the previous one, unchanged.
    assert!(pg.logs_in(&clone, &p1));
    assert!(pg.logs_in(&app, "app-password-0"));
    assert_eq!(
        value_at(&s, "db/app", "AWSPREVIOUS")["username"],
        json!(app)
    );
    // The clone has the original's grants, including one made after the clone exists.
    pg.query_as(&clone, &p1, &format!("SELECT * FROM t1_{n}"))
        .unwrap();
    pg.sql(&format!(
        "CREATE TABLE t2_{n} (x int); GRANT SELECT ON t2_{n} TO {app};"
    ));
    pg.query_as(&clone, &p1, &format!("SELECT * FROM t2_{n}"))
        .unwrap();
    // What the clone creates belongs to the original user (its sessions run as it).
    pg.query_as(&clone, &p1, &format!("CREATE TABLE t3_{n} (x int)"))
        .unwrap();
    pg.query_as(&app, "app-password-0", &format!("SELECT * FROM t3_{n}"))
        .unwrap();
    // The next rotation flips back to the original user; the clone's password stays valid.
    let t2 = rotate(&s, "db/app", None);
    rotated(&s, "db/app", &t2);
    let second = value_of(&s, "db/app");
    assert_eq!(second["username"], json!(app));
    let p2 = second["password"].as_str().unwrap().to_owned();
    assert!(pg.logs_in(&app, &p2));
    assert!(!pg.logs_in(&app, "app-password-0"));
    assert!(
        pg.logs_in(&clone, &p1),
        "the previous credentials still work"
    );
    let trail = audit_text(&s);
    for secret in [&p1, &p2, "master-password-1", "app-password-0"] {
        assert!(!trail.contains(secret));
    }
    // The database's statement log (every statement of these roles) has the SCRAM
    // verifiers, never the new passwords.
    if let Some(log) = std::env::var_os("PG_LOG") {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            text.contains(&format!("CREATE ROLE {clone}")),
            "statements are logged"
        );
        assert!(text.contains("SCRAM-SHA-256$4096:"));
        assert!(!text.contains(&p1) && !text.contains(&p2));
    }
    pg.sql(&format!(
        "DROP TABLE t1_{n}; DROP TABLE t2_{n}; DROP TABLE t3_{n}; REVOKE CREATE ON SCHEMA public FROM {app}; DROP ROLE {clone}; DROP ROLE {app}; DROP ROLE {master};"
    ));
}

#[test]
fn a_failure_leaves_awscurrent_records_rotation_failed_and_the_next_attempt_succeeds() {
    let Some(pg) = pg() else { return };
    let n = suffix();
    let (master, app) = (format!("rf_master_{n}"), format!("rf_app_{n}"));
    pg.sql(&format!(
        "CREATE ROLE {master} LOGIN CREATEROLE PASSWORD 'master-password-1';
         CREATE ROLE {app} LOGIN PASSWORD 'app-password-0';
         GRANT {app} TO {master} WITH ADMIN OPTION;"
    ));
    let rig = rig(
        "pg-rotator",
        &[
            ("pg-multi", json!({"Builtin": MULTI})),
            ("pg-single", json!({"Builtin": SINGLE})),
        ],
    );
    let s = rig.start();
    // The wrong master password.
    let master_arn = ok(
        &s,
        "CreateSecret",
        &json!({"Name": "db/master", "ClientRequestToken": token(), "SecretString": pg.secret(&master, "wrong-master-pw").to_string()}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut v = pg.secret(&app, "app-password-0");
    v["masterarn"] = json!(master_arn);
    let first = create_secret(&s, "db/app", &v);
    let t = rotate(&s, "db/app", Some(&fn_arn("pg-multi")));
    let d = failed(&s, "db/app");
    assert_eq!(stages_of(&d, &first), ["AWSCURRENT"], "{d}");
    let err = d["StrongroomRotation"]["LastError"].as_str().unwrap();
    assert!(err.contains("setSecret") && err.contains("master"), "{err}");
    assert!(
        !err.contains("wrong-master-pw") && !err.contains("app-password-0"),
        "{err}"
    );
    assert_eq!(value_of(&s, "db/app")["password"], json!("app-password-0"));
    assert!(pg.logs_in(&app, "app-password-0"));
    let failed_events = events(&s, "RotationFailed");
    assert_eq!(failed_events.len(), 1);
    assert!(failed_events[0].to_string().contains("setSecret"));
    // Fixed: the master secret's password, the stuck AWSPENDING removed, rotated again.
    ok(
        &s,
        "PutSecretValue",
        &json!({"SecretId": "db/master", "ClientRequestToken": token(), "SecretString": pg.secret(&master, "master-password-1").to_string()}),
    );
    ok(
        &s,
        "UpdateSecretVersionStage",
        &json!({"SecretId": "db/app", "VersionStage": "AWSPENDING", "RemoveFromVersionId": t}),
    );
    let t2 = rotate(&s, "db/app", None);
    rotated(&s, "db/app", &t2);
    let now = value_of(&s, "db/app");
    assert!(pg.logs_in(
        now["username"].as_str().unwrap(),
        now["password"].as_str().unwrap()
    ));

    // The database down (nothing listening): the same, then fixed by pointing at it again.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let single = format!("rf_single_{n}");
    pg.sql(&format!(
        "CREATE ROLE {single} LOGIN PASSWORD 'single-password-0'"
    ));
    let mut v = pg.secret(&single, "single-password-0");
    v["port"] = json!(dead_port);
    let first = create_secret(&s, "db/down", &v);
    let t = rotate(&s, "db/down", Some(&fn_arn("pg-single")));
    let d = failed(&s, "db/down");
    assert_eq!(stages_of(&d, &first), ["AWSCURRENT"], "{d}");
    let err = d["StrongroomRotation"]["LastError"].as_str().unwrap();
    assert!(
        err.contains("setSecret") && err.contains("refused"),
        "{err}"
    );
    assert!(!err.contains("single-password-0"), "{err}");
    ok(
        &s,
        "UpdateSecretVersionStage",
        &json!({"SecretId": "db/down", "VersionStage": "AWSPENDING", "RemoveFromVersionId": t}),
    );
    ok(
        &s,
        "PutSecretValue",
        &json!({"SecretId": "db/down", "ClientRequestToken": token(), "SecretString": pg.secret(&single, "single-password-0").to_string()}),
    );
    let t2 = rotate(&s, "db/down", None);
    rotated(&s, "db/down", &t2);
    let p = value_of(&s, "db/down")["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pg.logs_in(&single, &p) && !pg.logs_in(&single, "single-password-0"));
    pg.sql(&format!(
        "DROP ROLE IF EXISTS {app}_clone; DROP ROLE {app}; DROP ROLE {master}; DROP ROLE {single};"
    ));
}

#[test]
fn a_server_without_tls_is_refused_unless_the_function_allows_plaintext() {
    let Some(pg) = pg() else { return };
    // A server that answers the SSLRequest with 'N' (no TLS), and records whether a
    // plaintext startup message followed.
    let fake = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_port = fake.local_addr().unwrap().port();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<usize>();
    std::thread::spawn(move || {
        for conn in fake.incoming() {
            let Ok(mut c) = conn else { break };
            let mut req = [0_u8; 8];
            if c.read_exact(&mut req).is_err() {
                continue;
            }
            let _ = c.write_all(b"N");
            c.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .ok();
            let mut rest = [0_u8; 64];
            let got = c.read(&mut rest).unwrap_or(0);
            let _ = seen_tx.send(got);
        }
    });
    let n = suffix();
    let plain = format!("rp_{n}");
    pg.sql(&format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'strongroom_plaintext_ok') \
         THEN CREATE ROLE strongroom_plaintext_ok NOLOGIN; END IF; END $$;
         CREATE ROLE {plain} LOGIN PASSWORD 'plain-password-0' IN ROLE strongroom_plaintext_ok;"
    ));
    let rig = rig(
        "pg-rotator",
        &[
            ("pg-tls", json!({"Builtin": SINGLE})),
            (
                "pg-plain",
                json!({"Builtin": SINGLE, "AllowPlaintext": true}),
            ),
        ],
    );
    let s = rig.start();
    let mut v = pg.secret(&plain, "plain-password-0");
    v["port"] = json!(fake_port);
    let first = create_secret(&s, "db/notls", &v);
    rotate(&s, "db/notls", Some(&fn_arn("pg-tls")));
    let d = failed(&s, "db/notls");
    assert_eq!(stages_of(&d, &first), ["AWSCURRENT"], "{d}");
    let err = d["StrongroomRotation"]["LastError"].as_str().unwrap();
    assert!(err.contains("SSL"), "{err}");
    // libpq closed the connection after 'N': nothing was sent in plaintext.
    let seen: Vec<usize> = seen_rx.try_iter().collect();
    assert!(!seen.is_empty(), "the rotator reached the server");
    assert!(
        seen.iter().all(|&got| got == 0),
        "a startup message followed the refusal of TLS: {seen:?}"
    );
    // A certificate that does not chain to the configured CA is refused (verify-full).
    let other_ca = rig.tmp.path().join("other-ca.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(rig.tmp.path().join("other-ca.key"))
        .arg("-out")
        .arg(&other_ca)
        .output()
        .is_ok_and(|o| o.status.success());
    if made {
        std::fs::write(
            rig.policies.join(format!("accounts/{ACCOUNT}/functions/pg-wrong-ca.json")),
            json!({"FunctionName": "pg-wrong-ca", "Role": format!("arn:aws:iam::{ACCOUNT}:role/pg-rotator"),
                   "Kind": "builtin", "Builtin": SINGLE, "TlsCaFile": other_ca, "MaxAttempts": 1})
            .to_string(),
        )
        .unwrap();
    }
    // `"ssl": false` without the function file's permission fails, naming the setting.
    let mut v = pg.secret(&plain, "plain-password-0");
    v["ssl"] = json!(false);
    create_secret(&s, "db/optout-denied", &v);
    rotate(&s, "db/optout-denied", Some(&fn_arn("pg-tls")));
    let d = failed(&s, "db/optout-denied");
    let err = d["StrongroomRotation"]["LastError"].as_str().unwrap();
    assert!(err.contains("AllowPlaintext"), "{err}");
    // With `AllowPlaintext` in the function file, the secret's `"ssl": false` is honoured.
    create_secret(&s, "db/optout", &v);
    let t = rotate(&s, "db/optout", Some(&fn_arn("pg-plain")));
    rotated(&s, "db/optout", &t);
    let p = value_of(&s, "db/optout")["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let plain_login = PgConnection::establish(&pg.conninfo(&plain, &p, "disable")).is_ok();
    assert!(plain_login);
    // Other refusals of the built-in: a wrong engine and a missing key, named, no value.
    let mut v = pg.secret(&plain, "plain-password-0");
    v["engine"] = json!("mysql");
    create_secret(&s, "db/engine", &v);
    rotate(&s, "db/engine", Some(&fn_arn("pg-tls")));
    let err = failed(&s, "db/engine")["StrongroomRotation"]["LastError"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(err.contains("`engine`") && !err.contains("mysql"), "{err}");
    let mut v = pg.secret(&plain, "plain-password-0");
    v.as_object_mut().unwrap().remove("host");
    create_secret(&s, "db/nohost", &v);
    rotate(&s, "db/nohost", Some(&fn_arn("pg-tls")));
    let err = failed(&s, "db/nohost")["StrongroomRotation"]["LastError"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        err.contains("no `host` key") && !err.contains("plain-password-0"),
        "{err}"
    );
    if made {
        let role = format!("rv_{n}");
        pg.sql(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'verify-password-0'"
        ));
        create_secret(&s, "db/wrong-ca", &pg.secret(&role, "verify-password-0"));
        // Function files are read at start: the same data, a server that has it.
        drop(s);
        let s = rig.start();
        rotate(&s, "db/wrong-ca", Some(&fn_arn("pg-wrong-ca")));
        let err = failed(&s, "db/wrong-ca")["StrongroomRotation"]["LastError"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(err.contains("certificate verify failed"), "{err}");
        assert!(pg.logs_in(&role, "verify-password-0"));
        pg.sql(&format!("DROP ROLE {role}"));
    }
    pg.sql(&format!("DROP ROLE {plain}"));
}

#[test]
fn a_bare_template_name_needs_its_role_for_postgresql_and_mariadb_alike() {
    // No PostgreSQL needed: RotateSecret refuses before anything is stored.
    let rig = rig("other", &[]);
    let s = rig.start();
    create_secret(&s, "db/x", &json!({"engine": "postgres"}));
    let r = sm(
        &s,
        "RotateSecret",
        &json!({"SecretId": "db/x", "ClientRequestToken": token(), "RotationLambdaARN": fn_arn(SINGLE)}),
    );
    assert_eq!(r.error_type(), "InvalidRequestException", "{}", r.body);
    assert!(
        r.body
            .contains(&format!("arn:aws:iam::{ACCOUNT}:role/{SINGLE}")),
        "{}",
        r.body
    );
    let r = sm(
        &s,
        "RotateSecret",
        &json!({"SecretId": "db/x", "ClientRequestToken": token(),
                "RotationLambdaARN": fn_arn("SecretsManagerRDSMariaDBRotationMultiUser")}),
    );
    assert_eq!(r.error_type(), "InvalidRequestException", "{}", r.body);
    assert!(
        r.body
            .contains("role/SecretsManagerRDSMariaDBRotationMultiUser"),
        "{}",
        r.body
    );
    assert!(!has_pending(&describe(&s, "db/x")));
}

#[test]
fn builtin_function_files_are_checked_at_load() {
    let rig = rig(
        "pg-rotator",
        &[
            (
                "bad-name",
                json!({"Builtin": "SecretsManagerRDSOracleRotationSingleUser"}),
            ),
            ("with-cmd", json!({"Builtin": SINGLE, "Command": ["true"]})),
        ],
    );
    let errors = strongroom::identity::load_dir(&rig.policies).unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let text = text.join("\n");
    assert!(text.contains("$.Builtin"), "{text}");
    assert!(
        text.contains("a built-in function has no command"),
        "{text}"
    );
}

#[test]
fn a_retry_succeeds_once_fixed_and_the_master_secret_is_read_with_the_role_s_permissions() {
    let Some(pg) = pg() else { return };
    let n = suffix();
    let (master, app) = (format!("rr_master_{n}"), format!("rr_app_{n}"));
    pg.sql(&format!(
        "CREATE ROLE {master} LOGIN CREATEROLE PASSWORD 'master-password-1';
         CREATE ROLE {app} LOGIN PASSWORD 'app-password-0';
         GRANT {app} TO {master} WITH ADMIN OPTION;"
    ));
    let rig = rig(
        "pg-rotator",
        &[(
            "pg-retry",
            json!({"Builtin": MULTI, "MaxAttempts": 3, "RetryDelaySeconds": 2}),
        )],
    );
    // A second function whose role may use only the `db/app*` secrets, not the master's.
    write(
        &rig.policies,
        &format!("accounts/{ACCOUNT}/roles/pg-narrow.json"),
        &json!({
            "RoleName": "pg-narrow",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
                 "Action": "sts:AssumeRole"}]},
            "InlinePolicies": {"rotation": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "secretsmanager:*",
                 "Resource": format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db/app*")}]}}
        })
        .to_string(),
    );
    write(
        &rig.policies,
        &format!("accounts/{ACCOUNT}/functions/pg-narrow.json"),
        &json!({"FunctionName": "pg-narrow", "Role": format!("arn:aws:iam::{ACCOUNT}:role/pg-narrow"),
                "Kind": "builtin", "Builtin": MULTI, "MaxAttempts": 1})
        .to_string(),
    );
    let s = rig.start();
    let master_arn = ok(
        &s,
        "CreateSecret",
        &json!({"Name": "db/master", "ClientRequestToken": token(),
                "SecretString": pg.secret(&master, "wrong-master-pw").to_string()}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut v = pg.secret(&app, "app-password-0");
    v["masterarn"] = json!(master_arn);
    // The narrow role cannot read the master secret: AccessDenied, nothing changed.
    let first = create_secret(&s, "db/app-narrow", &v);
    rotate(&s, "db/app-narrow", Some(&fn_arn("pg-narrow")));
    let d = failed(&s, "db/app-narrow");
    assert_eq!(stages_of(&d, &first), ["AWSCURRENT"], "{d}");
    let err = d["StrongroomRotation"]["LastError"].as_str().unwrap();
    assert!(err.contains("AccessDeniedException"), "{err}");
    assert!(pg.logs_in(&app, "app-password-0"));
    // The rotator role: the first attempt fails (wrong master password), the master secret
    // is fixed, and the engine's next attempt succeeds on its own.
    create_secret(&s, "db/app", &v);
    let t = rotate(&s, "db/app", Some(&fn_arn("pg-retry")));
    wait_for(&s, "db/app", "a failed attempt", |d| {
        d["StrongroomRotation"]["Attempts"].as_i64().unwrap_or(0) >= 1
            && d["StrongroomRotation"]["LastError"].is_string()
    });
    ok(
        &s,
        "PutSecretValue",
        &json!({"SecretId": "db/master", "ClientRequestToken": token(),
                "SecretString": pg.secret(&master, "master-password-1").to_string()}),
    );
    rotated(&s, "db/app", &t);
    let now = value_of(&s, "db/app");
    assert!(pg.logs_in(
        now["username"].as_str().unwrap(),
        now["password"].as_str().unwrap()
    ));
    assert!(!events(&s, "RotationFailed").is_empty());
    pg.sql(&format!(
        "DROP ROLE IF EXISTS {app}_clone; DROP ROLE {app}; DROP ROLE {master};"
    ));
}

#[test]
fn rotate_immediately_false_tests_the_current_credentials_only() {
    let Some(pg) = pg() else { return };
    let n = suffix();
    let user = format!("ri_{n}");
    pg.sql(&format!(
        "CREATE ROLE {user} LOGIN PASSWORD 'keep-password-0'"
    ));
    let rig = rig("pg-rotator", &[("pg-single", json!({"Builtin": SINGLE}))]);
    let s = rig.start();
    let first = create_secret(&s, "db/ri", &pg.secret(&user, "keep-password-0"));
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "db/ri", "ClientRequestToken": token(), "RotationLambdaARN": fn_arn("pg-single"),
                "RotateImmediately": false, "RotationRules": {"AutomaticallyAfterDays": 30}}),
    );
    let d = wait_for(&s, "db/ri", "the test rotation", |d| !has_pending(d));
    assert_eq!(stages_of(&d, &first), ["AWSCURRENT"], "{d}");
    assert_eq!(events(&s, "TestRotationSucceeded").len(), 1);
    assert!(pg.logs_in(&user, "keep-password-0"));
    pg.sql(&format!("DROP ROLE {user}"));
}
