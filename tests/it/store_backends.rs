//! The same behaviour on PostgreSQL, plus concurrency that only a shared database can show.

use crate::common::{code, postgres_base_url, TestServer};

#[tokio::test]
async fn lifecycle_on_postgres() {
    let Some(base) = postgres_base_url() else {
        eprintln!("skipped: STRONGROOM_TEST_DATABASE_URL is not set");
        return;
    };
    let server = TestServer::start_postgres(&base);
    crate::sdk_secrets::lifecycle(&server).await;
}

/// Several writers on one secret: every acknowledged put is a distinct version, labels stay
/// consistent (exactly one AWSCURRENT, one AWSPREVIOUS), no lost update.
async fn concurrent_puts(server: &TestServer) {
    let c = server.client();
    c.create_secret()
        .name("race")
        .secret_string("v0")
        .send()
        .await
        .unwrap();
    let mut tasks = vec![];
    for i in 0..16 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.put_secret_value()
                .secret_id("race")
                .secret_string(format!("v{}", i + 1))
                .send()
                .await
                .map(|o| o.version_id().unwrap().to_owned())
        }));
    }
    let mut ok = vec![];
    for t in tasks {
        ok.push(t.await.unwrap().unwrap());
    }
    let all = c
        .list_secret_version_ids()
        .secret_id("race")
        .include_deprecated(true)
        .send()
        .await
        .unwrap();
    assert_eq!(all.versions().len(), 17);
    let current: Vec<_> = all
        .versions()
        .iter()
        .filter(|v| v.version_stages().contains(&"AWSCURRENT".to_owned()))
        .collect();
    let previous: Vec<_> = all
        .versions()
        .iter()
        .filter(|v| v.version_stages().contains(&"AWSPREVIOUS".to_owned()))
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(previous.len(), 1);
}

/// Two creates of one name at once: exactly one wins.
async fn concurrent_creates(server: &TestServer) {
    let c = server.client();
    let mut tasks = vec![];
    for i in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.create_secret()
                .name("same-name")
                .secret_string(format!("{i}"))
                .send()
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => assert_eq!(code(&e), "ResourceExistsException"),
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_on_sqlite() {
    let server = TestServer::start();
    concurrent_puts(&server).await;
    concurrent_creates(&server).await;
    // SQLite group-commits concurrent writes (a batch with a failed write runs again, each in
    // a savepoint): the creates that lost were rolled back alone, and the chain holds one
    // successful CreateSecret per secret, the losers' failures, and verifies.
    let store = strongroom::store::Store::open(&server.database_url).unwrap();
    let creates = store
        .query_audit_blocking(&strongroom::store::rows::AuditFilter {
            event_name: Some("CreateSecret".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    let ok = creates.iter().filter(|r| r.error_code.is_none()).count();
    let lost = creates
        .iter()
        .filter(|r| r.error_code.as_deref() == Some("ResourceExistsException"))
        .count();
    assert_eq!((ok, lost), (2, 7), "{creates:?}");
    let puts = store
        .query_audit_blocking(&strongroom::store::rows::AuditFilter {
            event_name: Some("PutSecretValue".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(puts.iter().filter(|r| r.error_code.is_none()).count(), 16);
    strongroom::audit::verify(&store).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_on_postgres() {
    let Some(base) = postgres_base_url() else {
        return;
    };
    let server = TestServer::start_postgres(&base);
    concurrent_puts(&server).await;
    concurrent_creates(&server).await;
}

/// Two servers on one PostgreSQL database: no duplicate name, no label on two versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_one_postgres() {
    let Some(base) = postgres_base_url() else {
        return;
    };
    let url = crate::common::fresh_postgres_db(&base);
    let a = TestServer::start_with(Some(url.clone()), &["us-east-1"]);
    let b = TestServer::start_with(Some(url), &["us-east-1"]);
    // b shares a's database (and so its root key); copy a's master key so b can read it.
    std::fs::copy(
        a.data_dir().join("master.key"),
        b.data_dir().join("master.key"),
    )
    .unwrap();
    let b = {
        // restart b with a's key: a new server on the same data dir picks the copied key up
        let url = b.database_url.clone();
        drop(b);
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::copy(a.data_dir().join("master.key"), data.join("master.key")).unwrap();
        let cfg = strongroom::config::ServeConfig {
            store: strongroom::config::StoreConfig {
                data_dir: data.clone(),
                database_url: url,
                master_key_file: data.join("master.key"),
                read_mmap_bytes: 0,
                pg_change_check: std::time::Duration::ZERO,
            },
            listen: "127.0.0.1:0".into(),
            tls: None,
            account_id: crate::common::ACCOUNT.into(),
            regions: vec!["us-east-1".into()],
            purge_interval_secs: 1,
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
            let _ = sys.block_on(strongroom::server::run(cfg, |addr| {
                let _ = tx.send(addr);
            }));
        });
        let addr = rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap();
        (addr, dir)
    };
    let ca = a.client();
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .http_client(strongroom::client::https_client())
        .endpoint_url(format!("http://{}", b.0))
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            crate::common::AKID,
            crate::common::SECRET,
            None,
            None,
            "test",
        ))
        .build();
    let cb = aws_sdk_secretsmanager::Client::from_conf(conf);
    ca.create_secret()
        .name("shared")
        .secret_string("0")
        .send()
        .await
        .unwrap();
    let mut tasks = vec![];
    for i in 0..12 {
        let c = if i % 2 == 0 { ca.clone() } else { cb.clone() };
        tasks.push(tokio::spawn(async move {
            c.put_secret_value()
                .secret_id("shared")
                .secret_string(format!("{i}"))
                .send()
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let d = cb
        .describe_secret()
        .secret_id("shared")
        .send()
        .await
        .unwrap();
    let stages = d.version_ids_to_stages().unwrap();
    let currents = stages
        .values()
        .filter(|s| s.contains(&"AWSCURRENT".to_owned()))
        .count();
    assert_eq!(currents, 1);
    let all = ca
        .list_secret_version_ids()
        .secret_id("shared")
        .include_deprecated(true)
        .send()
        .await
        .unwrap();
    assert_eq!(all.versions().len(), 13);
    // a duplicate create through the other server is refused
    let e = cb
        .create_secret()
        .name("shared")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceExistsException");
}

/// AWS keeps at most ~100 versions: beyond that, the oldest unlabelled versions older than
/// 24 hours go when a new version is written (never a younger or labelled one).
#[tokio::test]
async fn deprecated_versions_beyond_100_are_pruned_when_a_day_old() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let s = TestServer::start();
    let c = s.client();
    c.create_secret()
        .name("many")
        .secret_string("v0")
        .send()
        .await
        .unwrap();
    // 101 deprecated versions from long ago, written straight into the database
    let path = s.database_url.trim_start_matches("sqlite://");
    let mut db = diesel::SqliteConnection::establish(path).unwrap();
    db.batch_execute(
        "PRAGMA busy_timeout = 5000; \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 101) \
         INSERT INTO secret_versions (secret_id, version_id, created_at) \
         SELECT s.secret_id, printf('old-%03d', i), 1000 + i FROM secrets s, n \
         WHERE s.name = 'many';",
    )
    .unwrap();
    // 103 versions after this put: the three oldest unlabelled ones go
    c.put_secret_value()
        .secret_id("many")
        .secret_string("v1")
        .send()
        .await
        .unwrap();
    let mut ids = vec![];
    let mut token: Option<String> = None;
    loop {
        let page = c
            .list_secret_version_ids()
            .secret_id("many")
            .include_deprecated(true)
            .max_results(50)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        ids.extend(
            page.versions()
                .iter()
                .filter_map(|v| v.version_id().map(str::to_owned)),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(ids.len(), 100, "{ids:?}");
    for gone in ["old-001", "old-002", "old-003"] {
        assert!(!ids.iter().any(|i| i == gone), "{gone} kept");
    }
    assert!(ids.iter().any(|i| i == "old-004"));
    // the new version and the previous one (labelled, young) are kept
    let cur = c.get_secret_value().secret_id("many").send().await.unwrap();
    assert_eq!(cur.secret_string(), Some("v1"));
    let prev = c
        .get_secret_value()
        .secret_id("many")
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .unwrap();
    assert_eq!(prev.secret_string(), Some("v0"));
}
