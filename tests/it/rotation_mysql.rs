//! The built-in MySQL/MariaDB rotators against the test MariaDB (scripts/mariadb.sh: TLS
//! with a self-signed certificate). Each test creates its own users (random names) in that
//! server. Skipped without STRONGROOM_TEST_MARIADB_URL; with STRONGROOM_REQUIRE_MARIADB=1 a
//! missing server fails instead.

use std::io::Write;
use std::path::PathBuf;

use mysql::prelude::Queryable;
use serde_json::{json, Value};

use crate::rotation::{events, ok, stages_of, token};
use crate::rotation_pg::{
    audit_text, create_secret, failed, fn_arn, rig, rotate, rotated, suffix, value_at, value_of,
};

const SINGLE: &str = "SecretsManagerRDSMariaDBRotationSingleUser";
const MULTI: &str = "SecretsManagerRDSMySQLRotationMultiUser";

struct My {
    admin: String,
    host: String,
    port: u16,
    db: String,
    ca: PathBuf,
}

fn my() -> Option<My> {
    let url = match std::env::var("STRONGROOM_TEST_MARIADB_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert!(
                std::env::var("STRONGROOM_REQUIRE_MARIADB").map_or(true, |v| v != "1"),
                "STRONGROOM_TEST_MARIADB_URL is not set: start MariaDB with scripts/mariadb.sh"
            );
            return None;
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = std::env::var_os("STRONGROOM_TEST_MARIADB_CA")
        .map(PathBuf::from)
        .expect("STRONGROOM_TEST_MARIADB_CA (scripts/mariadb.sh exports it)");
    let rest = url.split_once('@')?.1;
    let (hostport, db) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = hostport.rsplit_once(':')?;
    Some(My {
        admin: url.clone(),
        host: host.to_owned(),
        port: port.parse().ok()?,
        db: db.to_owned(),
        ca,
    })
}

impl My {
    fn admin(&self) -> mysql::Conn {
        let opts = mysql::OptsBuilder::from_opts(mysql::Opts::from_url(&self.admin).unwrap())
            .prefer_socket(false)
            .ssl_opts(mysql::SslOpts::default().with_root_cert_path(Some(self.ca.clone())));
        mysql::Conn::new(opts).unwrap()
    }

    fn sql(&self, sql: &str) {
        let mut c = self.admin();
        for stmt in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
            c.query_drop(stmt).unwrap_or_else(|e| panic!("{stmt}: {e}"));
        }
    }

    fn conn_as(&self, user: &str, password: &str, tls: bool) -> Result<mysql::Conn, String> {
        let mut opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some(self.host.clone()))
            .tcp_port(self.port)
            .user(Some(user))
            .pass(Some(password))
            .prefer_socket(false);
        if tls {
            opts =
                opts.ssl_opts(mysql::SslOpts::default().with_root_cert_path(Some(self.ca.clone())));
        }
        mysql::Conn::new(opts).map_err(|e| e.to_string())
    }

    fn logs_in(&self, user: &str, password: &str) -> bool {
        self.conn_as(user, password, true).is_ok()
    }

    fn query_as(&self, user: &str, password: &str, sql: &str) -> Result<(), String> {
        let mut c = self.conn_as(user, password, true)?;
        c.query_drop(sql).map_err(|e| e.to_string())
    }

    fn secret(&self, user: &str, password: &str) -> Value {
        // No `dbname`: the users these tests create log in without a default database.
        json!({"engine": "mariadb", "host": self.host, "port": self.port, "username": user,
               "password": password})
    }
}

/// A string literal for the test's own admin statements.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[test]
fn single_user_rotates_over_verified_tls_and_an_injected_name_stays_one_name() {
    let Some(my) = my() else { return };
    let n = suffix();
    // A user name built to break out of a badly quoted statement.
    let user = format!("ms{}'@'%'; CREATE USER pw{}; --", &n[..6], &n[..6]);
    my.sql(&format!(
        "CREATE USER {}@'%' IDENTIFIED BY 'old-password-1' REQUIRE SSL",
        lit(&user)
    ));
    let rig = rig(
        "my-rotator",
        &[("my-single", json!({"Builtin": SINGLE, "TlsCaFile": my.ca}))],
    );
    let s = rig.start();
    let first = create_secret(&s, "db/single", &my.secret(&user, "old-password-1"));
    let t = rotate(&s, "db/single", Some(&fn_arn("my-single")));
    let d = rotated(&s, "db/single", &t);
    assert_eq!(stages_of(&d, &first), ["AWSPREVIOUS"], "{d}");
    let now = value_of(&s, "db/single");
    let p1 = now["password"].as_str().unwrap().to_owned();
    assert_eq!(now["username"], json!(user));
    assert_eq!(p1.len(), 32);
    assert!(my.logs_in(&user, &p1), "the new password works");
    assert!(
        !my.logs_in(&user, "old-password-1"),
        "the old one no longer"
    );
    // Nothing else ran: no user `pw...` exists.
    let mut c = my.admin();
    let pwned: Option<u8> = c
        .exec_first(
            "SELECT 1 FROM mysql.user WHERE User = ?",
            (format!("pw{}", &n[..6]),),
        )
        .unwrap();
    assert!(pwned.is_none());
    assert_eq!(events(&s, "RotationSucceeded").len(), 1);
    let trail = audit_text(&s);
    assert!(!trail.contains(&p1) && !trail.contains("old-password-1"));
    // A second rotation logs in with the new current password.
    let t2 = rotate(&s, "db/single", None);
    rotated(&s, "db/single", &t2);
    let p2 = value_of(&s, "db/single")["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(my.logs_in(&user, &p2) && !my.logs_in(&user, &p1));
    my.sql(&format!("DROP USER {}@'%'", lit(&user)));
}

#[test]
fn multi_user_alternates_keeps_previous_and_copies_grants_and_quotes_names() {
    let Some(my) = my() else { return };
    let n = &suffix()[..4];
    // A user name built to break out of a badly quoted statement (the master runs
    // CREATE USER, ALTER USER and GRANT with it); `r{n}` is its would-be victim.
    let (master, app) = (format!("mm_{n}"), format!("q{n}';DROP USER r{n};#"));
    let clone = format!("{app}_clone");
    let (app_a, clone_a) = (format!("{}@'%'", lit(&app)), format!("{}@'%'", lit(&clone)));
    my.sql(&format!(
        "CREATE USER '{master}'@'%' IDENTIFIED BY 'master-password-1';
         GRANT CREATE USER, SELECT ON *.* TO '{master}'@'%' WITH GRANT OPTION;
         GRANT ALL ON `{0}`.* TO '{master}'@'%' WITH GRANT OPTION;
         CREATE USER {app_a} IDENTIFIED BY 'app-password-0';
         CREATE USER 'r{n}'@'%' IDENTIFIED BY 'victim-password-0';
         CREATE TABLE `{0}`.t1_{n} (x int);
         GRANT SELECT ON `{0}`.t1_{n} TO {app_a}",
        my.db
    ));
    // No function file: the bare template name runs the built-in as the role of that name.
    let rig = rig(MULTI, &[]);
    let s = rig.start();
    let master_arn = ok(
        &s,
        "CreateSecret",
        &json!({"Name": "db/master", "ClientRequestToken": token(), "SecretString": my.secret(&master, "master-password-1").to_string()}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut v = my.secret(&app, "app-password-0");
    v["masterarn"] = json!(master_arn);
    v["extra"] = json!("kept");
    create_secret(&s, "db/app", &v);
    let t = rotate(&s, "db/app", Some(&fn_arn(MULTI)));
    rotated(&s, "db/app", &t);
    let first = value_of(&s, "db/app");
    assert_eq!(first["username"], json!(clone));
    assert_eq!(first["extra"], json!("kept"));
    let p1 = first["password"].as_str().unwrap().to_owned();
    assert!(my.logs_in(&clone, &p1));
    assert!(
        my.logs_in(&app, "app-password-0"),
        "the previous user still works"
    );
    assert_eq!(
        value_at(&s, "db/app", "AWSPREVIOUS")["username"],
        json!(app)
    );
    // The clone has the original's grant, and not more.
    my.query_as(&clone, &p1, &format!("SELECT * FROM `{}`.t1_{n}", my.db))
        .unwrap();
    assert!(my
        .query_as(&clone, &p1, "SELECT * FROM mysql.user")
        .is_err());
    // A grant made to the original later reaches the clone at the next rotations.
    my.sql(&format!(
        "CREATE TABLE `{0}`.t2_{n} (x int);
         GRANT SELECT ON `{0}`.t2_{n} TO {app_a}",
        my.db
    ));
    let t2 = rotate(&s, "db/app", None);
    rotated(&s, "db/app", &t2);
    let second = value_of(&s, "db/app");
    assert_eq!(second["username"], json!(app));
    let p2 = second["password"].as_str().unwrap().to_owned();
    assert!(my.logs_in(&app, &p2));
    assert!(!my.logs_in(&app, "app-password-0"));
    assert!(
        my.logs_in(&clone, &p1),
        "the previous credentials still work"
    );
    let t3 = rotate(&s, "db/app", None);
    rotated(&s, "db/app", &t3);
    let third = value_of(&s, "db/app");
    assert_eq!(third["username"], json!(clone));
    let p3 = third["password"].as_str().unwrap().to_owned();
    assert!(!my.logs_in(&clone, &p1));
    assert!(my.logs_in(&app, &p2), "the previous credentials still work");
    my.query_as(&clone, &p3, &format!("SELECT * FROM `{}`.t2_{n}", my.db))
        .unwrap();
    assert!(
        my.logs_in(&format!("r{n}"), "victim-password-0"),
        "nothing else ran"
    );
    let trail = audit_text(&s);
    for secret in [&p1, &p2, &p3, "master-password-1", "app-password-0"] {
        assert!(!trail.contains(secret));
    }
    my.sql(&format!(
        "DROP TABLE `{0}`.t1_{n};
         DROP TABLE `{0}`.t2_{n};
         DROP USER {clone_a};
         DROP USER {app_a};
         DROP USER 'r{n}'@'%';
         DROP USER '{master}'@'%'",
        my.db
    ));
}

#[test]
fn a_wrong_master_password_leaves_awscurrent_and_records_rotation_failed() {
    let Some(my) = my() else { return };
    let n = &suffix()[..8];
    let (master, app) = (format!("fm_{n}"), format!("fa_{n}"));
    my.sql(&format!(
        "CREATE USER '{master}'@'%' IDENTIFIED BY 'master-password-1';
         GRANT CREATE USER, SELECT ON *.* TO '{master}'@'%' WITH GRANT OPTION;
         CREATE USER '{app}'@'%' IDENTIFIED BY 'app-password-0'"
    ));
    let rig = rig("my-rotator", &[("my-multi", json!({"Builtin": MULTI}))]);
    let s = rig.start();
    let master_arn = ok(
        &s,
        "CreateSecret",
        &json!({"Name": "db/master", "ClientRequestToken": token(), "SecretString": my.secret(&master, "wrong-master-pw").to_string()}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut v = my.secret(&app, "app-password-0");
    v["masterarn"] = json!(master_arn);
    let first = create_secret(&s, "db/app", &v);
    rotate(&s, "db/app", Some(&fn_arn("my-multi")));
    let d = failed(&s, "db/app");
    assert_eq!(stages_of(&d, &first), ["AWSCURRENT"], "{d}");
    let err = d["StrongroomRotation"]["LastError"].as_str().unwrap();
    assert!(err.contains("setSecret") && err.contains("master"), "{err}");
    assert!(
        !err.contains("wrong-master-pw") && !err.contains("app-password-0"),
        "{err}"
    );
    assert_eq!(value_of(&s, "db/app")["password"], json!("app-password-0"));
    assert!(my.logs_in(&app, "app-password-0"));
    let failed_events = events(&s, "RotationFailed");
    assert_eq!(failed_events.len(), 1);
    assert!(failed_events[0].to_string().contains("setSecret"));
    my.sql(&format!(
        "DROP USER IF EXISTS '{app}_clone'@'%';
         DROP USER '{app}'@'%';
         DROP USER '{master}'@'%'"
    ));
}

#[test]
fn plaintext_is_refused_unless_the_function_allows_it() {
    let Some(my) = my() else { return };
    // A server that offers no TLS: a MySQL handshake without the CLIENT_SSL capability,
    // recording whether the client sent anything but nothing.
    let fake = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_port = fake.local_addr().unwrap().port();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        for conn in fake.incoming() {
            let Ok(mut c) = conn else { break };
            // Protocol 10 handshake; capabilities without CLIENT_SSL (0x0800).
            let mut p = vec![10_u8];
            p.extend_from_slice(b"5.5.5-10.11.0-fake\0");
            p.extend_from_slice(&1_u32.to_le_bytes());
            p.extend_from_slice(b"abcdefgh\0");
            p.extend_from_slice(&0xf7ff_u16.to_le_bytes()); // lower caps, no SSL
            p.push(45);
            p.extend_from_slice(&2_u16.to_le_bytes());
            p.extend_from_slice(&0x0008_u16.to_le_bytes()); // upper caps: PLUGIN_AUTH
            p.push(21);
            p.extend_from_slice(&[0; 10]);
            p.extend_from_slice(b"ijklmnopqrst\0");
            p.extend_from_slice(b"mysql_native_password\0");
            let len = u32::try_from(p.len()).unwrap().to_le_bytes();
            let mut packet = vec![len[0], len[1], len[2], 0];
            packet.extend_from_slice(&p);
            let _ = c.write_all(&packet);
            c.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .ok();
            let mut rest = [0_u8; 256];
            let got = std::io::Read::read(&mut c, &mut rest).unwrap_or(0);
            let _ = seen_tx.send(rest[..got].to_vec());
        }
    });
    let n = &suffix()[..8];
    let plain = format!("mp_{n}");
    my.sql(&format!(
        "CREATE USER '{plain}'@'%' IDENTIFIED BY 'plain-password-0'"
    ));
    let rig = rig(
        "my-rotator",
        &[
            ("my-tls", json!({"Builtin": SINGLE})),
            (
                "my-plain",
                json!({"Builtin": SINGLE, "AllowPlaintext": true}),
            ),
        ],
    );
    let s = rig.start();
    let mut v = my.secret(&plain, "plain-password-0");
    v["port"] = json!(fake_port);
    let first = create_secret(&s, "db/notls", &v);
    rotate(&s, "db/notls", Some(&fn_arn("my-tls")));
    let d = failed(&s, "db/notls");
    assert_eq!(stages_of(&d, &first), ["AWSCURRENT"], "{d}");
    let err = d["StrongroomRotation"]["LastError"].as_str().unwrap();
    assert!(err.contains("secure connection"), "{err}");
    let seen: Vec<Vec<u8>> = seen_rx.try_iter().collect();
    assert!(!seen.is_empty(), "the rotator reached the server");
    // Nothing but, at most, COM_QUIT (a 1-byte packet: 0x01): no handshake response, so
    // neither the user name nor anything derived from the password.
    assert!(
        seen.iter()
            .all(|got| got.is_empty() || (got.len() == 5 && got[0] == 1 && got[4] == 1)),
        "the client answered a server without TLS: {seen:?}"
    );
    // `"ssl": false` without the function file's permission fails, naming the setting.
    let mut v = my.secret(&plain, "plain-password-0");
    v["ssl"] = json!(false);
    create_secret(&s, "db/optout-denied", &v);
    rotate(&s, "db/optout-denied", Some(&fn_arn("my-tls")));
    let err = failed(&s, "db/optout-denied")["StrongroomRotation"]["LastError"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(err.contains("AllowPlaintext"), "{err}");
    assert!(my.logs_in(&plain, "plain-password-0"));
    // With `AllowPlaintext`, the secret's `"ssl": false` is honoured.
    create_secret(&s, "db/optout", &v);
    let t = rotate(&s, "db/optout", Some(&fn_arn("my-plain")));
    rotated(&s, "db/optout", &t);
    let p = value_of(&s, "db/optout")["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(my.conn_as(&plain, &p, false).is_ok());
    // A PostgreSQL secret is not this rotator's: the key is named, not the value.
    let mut v = my.secret(&plain, "plain-password-0");
    v["engine"] = json!("postgres");
    create_secret(&s, "db/engine", &v);
    rotate(&s, "db/engine", Some(&fn_arn("my-tls")));
    let err = failed(&s, "db/engine")["StrongroomRotation"]["LastError"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        err.contains("`engine`") && !err.contains("postgres`"),
        "{err}"
    );
    my.sql(&format!("DROP USER '{plain}'@'%'"));
}
