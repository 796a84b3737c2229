//! Repository rules, master key rotation, audit chain and the no-plaintext guarantee.

use std::path::Path;

use crate::common::{files_under, TestServer, MARKER};

#[test]
fn migrations_have_the_same_names_on_both_backends() {
    let names = |dir: &str| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let root = env!("CARGO_MANIFEST_DIR");
    let sqlite = names(&format!("{root}/migrations/sqlite"));
    let pg = names(&format!("{root}/migrations/postgres"));
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, pg);
}

#[test]
fn module_boundaries_hold() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let check = |module: &str, forbidden: &[&str]| {
        for f in files_under(&root.join(module)) {
            let text = std::fs::read_to_string(&f).unwrap();
            for line in text.lines().filter(|l| l.trim_start().starts_with("use ")) {
                for bad in forbidden {
                    assert!(!line.contains(bad), "{} imports {bad}: {line}", f.display());
                }
            }
        }
    };
    check("policy", &["crate::store", "diesel", "actix", "tokio"]);
    check(
        "auth",
        &["crate::policy", "crate::store", "diesel", "actix"],
    );
    check("ops", &["actix", "diesel"]);
    check("secrets", &["crate::store", "diesel", "actix"]);
    for f in files_under(&root) {
        if f.starts_with(root.join("store")) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("use diesel"),
            "{} uses diesel outside store",
            f.display()
        );
    }
}

#[tokio::test]
async fn no_plaintext_at_rest_audit_verifies_and_master_key_rotates() {
    let mut s = TestServer::start();
    let c = s.client();
    c.create_secret()
        .name("marked")
        .secret_string(MARKER)
        .send()
        .await
        .unwrap();
    c.put_secret_value()
        .secret_id("marked")
        .secret_string(format!("{MARKER}-2"))
        .send()
        .await
        .unwrap();
    c.get_secret_value()
        .secret_id("marked")
        .send()
        .await
        .unwrap();
    c.create_secret()
        .name("marked-bin")
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(
            MARKER.as_bytes().to_vec(),
        ))
        .send()
        .await
        .unwrap();
    // an error path that echoes parts of the request
    let _ = c
        .put_secret_value()
        .secret_id("marked")
        .secret_string(MARKER)
        .client_request_token("short")
        .send()
        .await;
    let pw = c.get_random_password().send().await.unwrap();
    let password = pw.random_password().unwrap().to_owned();

    // every file of the data dir (database, WAL, keys)
    for f in files_under(&s.data_dir()) {
        let bytes = std::fs::read(&f).unwrap();
        for needle in [
            MARKER.as_bytes(),
            password.as_bytes(),
            crate::common::SECRET.as_bytes(),
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "plaintext found in {}",
                f.display()
            );
        }
    }

    // the audit chain verifies
    let store = strongroom::store::Store::open(&s.database_url).unwrap();
    let n = strongroom::audit::verify(&store).unwrap();
    assert!(n >= 6, "{n}");

    // master key rotation: every wrapped key re-sealed, secrets still readable
    let cfg = strongroom::config::StoreConfig {
        data_dir: s.data_dir(),
        database_url: s.database_url.clone(),
        master_key_file: s.data_dir().join("master.key"),
        read_mmap_bytes: 0,
        pg_change_check: std::time::Duration::ZERO,
    };
    let before = std::fs::read(&cfg.master_key_file).unwrap();
    // servers are stopped for a rotation (a running one refuses it: see identity.rs)
    s.stop();
    let resealed = crate::common::rotate_after_stop(&cfg);
    assert!(resealed >= 2, "{resealed}");
    assert_ne!(before, std::fs::read(&cfg.master_key_file).unwrap());
    // a fresh server on the same data (the running one caches unwrapped keys)
    drop(c);
    let s2_cfg = strongroom::config::ServeConfig {
        store: cfg.clone(),
        listen: "127.0.0.1:0".into(),
        tls: None,
        account_id: crate::common::ACCOUNT.into(),
        regions: vec!["us-east-1".into()],
        purge_interval_secs: 60,
        policies: None,
        trusted_proxies: vec![],
        audit_retention: None,
        audit_digest_dir: None,
        metrics_listen: None,
        quotas: None,
        console: false,
        peers: Default::default(),
        rotation: Default::default(),
        client_timeouts: Default::default(),
        audit_unauthenticated: Default::default(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let sys = actix_web::rt::System::new();
        let _ = sys.block_on(strongroom::server::run(s2_cfg, |a| {
            let _ = tx.send(a);
        }));
    });
    let addr = rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap();
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .http_client(strongroom::client::https_client())
        .endpoint_url(format!("http://{addr}"))
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            crate::common::AKID,
            crate::common::SECRET,
            None,
            None,
            "test",
        ))
        .build();
    let c2 = aws_sdk_secretsmanager::Client::from_conf(conf);
    let v = c2
        .get_secret_value()
        .secret_id("marked")
        .send()
        .await
        .unwrap();
    assert_eq!(v.secret_string(), Some(format!("{MARKER}-2").as_str()));
}

#[test]
fn tampering_with_the_audit_chain_is_detected() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let s = TestServer::start();
    for _ in 0..3 {
        assert_eq!(s.call("secretsmanager.ListSecrets", "{}").status, 200);
    }
    let store = strongroom::store::Store::open(&s.database_url).unwrap();
    assert!(strongroom::audit::verify(&store).is_ok());
    let path = strongroom::store::audit_chain_path(s.database_url.trim_start_matches("sqlite://"));
    let mut conn = diesel::SqliteConnection::establish(&path).unwrap();
    conn.batch_execute("PRAGMA busy_timeout = 5000; UPDATE audit_events SET record = replace(record, 'ListSecrets', 'ListSecretz') WHERE seq = 2")
        .unwrap();
    let err = strongroom::audit::verify(&store).unwrap_err();
    assert!(err.contains("record 2"), "{err}");
}

#[test]
fn purge_job_removes_secrets_after_their_window() {
    // The window is days long; the purge job's selection is tested through the store.
    let s = TestServer::start();
    let r = s.call(
        "secretsmanager.CreateSecret",
        r#"{"Name":"to-purge","SecretString":"x","ClientRequestToken":"00000000-0000-4000-8000-000000000001"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.call(
        "secretsmanager.DeleteSecret",
        r#"{"SecretId":"to-purge","RecoveryWindowInDays":7}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // move the purge date into the past, as if 7 days went by
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let path = s.database_url.trim_start_matches("sqlite://").to_owned();
    let mut conn = diesel::SqliteConnection::establish(&path).unwrap();
    conn.batch_execute(
        "PRAGMA busy_timeout = 5000; UPDATE secrets SET purge_at = 1 WHERE name = 'to-purge'",
    )
    .unwrap();
    // the job runs every second in tests
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = s.call(
            "secretsmanager.DescribeSecret",
            r#"{"SecretId":"to-purge"}"#,
        );
        if r.error_type() == "ResourceNotFoundException" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not purged: {}",
            r.body
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let r = s.call(
        "secretsmanager.CreateSecret",
        r#"{"Name":"to-purge","SecretString":"y","ClientRequestToken":"00000000-0000-4000-8000-000000000002"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn the_decision_corpus_passes_through_the_simulate_command() {
    let root = env!("CARGO_MANIFEST_DIR");
    for file in ["iam-cases.json", "strongroom-cases.json"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
            .args([
                "policy",
                "simulate",
                "--cases",
                &format!("{root}/tests/corpus/{file}"),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{file}: {text}");
        assert!(text.contains("cases matched"), "{file}: {text}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["policies", "validate", &format!("{root}/policies")])
        .output()
        .unwrap();
    assert!(out.status.success());
}

/// A second store opened on the same SQLite files in one process (a command beside an
/// embedded server, a test beside its server) must leave the first one's locks in place:
/// closing any descriptor of a database file drops every POSIX lock the process holds on it,
/// and another process's last connection, finding the file unlocked, checkpoints and removes
/// the WAL the first store still reads. The other process here is Python's sqlite3: it opens
/// the database, reads it and closes. The write-ahead log must still be there afterwards, and
/// the first store must still read and write.
#[test]
fn a_second_store_in_the_process_keeps_the_first_ones_locks() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let url = format!("sqlite://{}", db.display());
    let wal = dir.path().join("s.db-wal");
    let first = strongroom::store::Store::open(&url).unwrap();
    first
        .write_blocking(|tx| Ok(tx.rotation_job("no-such-secret")?))
        .unwrap();
    assert!(wal.exists(), "the first store works in WAL mode");
    let second = strongroom::store::Store::open(&url).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             c.execute('SELECT count(*) FROM sqlite_master').fetchall()\n\
             c.close()\n",
        )
        .arg(&db)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wal.exists(),
        "another process removed the WAL of a database this process has open"
    );
    drop(second);
    first
        .write_blocking(|tx| Ok(tx.rotation_job("no-such-secret")?))
        .unwrap();
}
