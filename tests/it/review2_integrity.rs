//! Peer replication's transport and what the primary accepts from a peer; the audit trail's
//! lookup index as someone who can write its file sees it.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::types::ReplicaRegionType;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::Value;
use strongroom::audit::{AuditKeys, AuditOptions, Auditor, Draft, TamperKind, VerifyOptions};
use strongroom::auth::{Principal, PrincipalKind};
use strongroom::replication::{Peer, PeerConfig, PeerCredentials};
use strongroom::store::rows::AuditFilter;
use strongroom::store::Store;

use crate::common::{config_in, TestServer, ACCOUNT, AKID};

const PEER_REGION: &str = "eu-west-1";

/// A stand-in for a peer on `127.0.0.1` (plain HTTP): each request's body is kept, and
/// answered with the raw HTTP answer `answer` makes of it.
struct FakePeer {
    port: u16,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl FakePeer {
    fn start(answer: fn(&Value) -> String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || loop {
                    let mut raw = Vec::new();
                    let mut buf = [0_u8; 8192];
                    let body = loop {
                        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&raw[..at]).to_ascii_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if raw.len() >= at + 4 + len {
                                break raw[at + 4..at + 4 + len].to_vec();
                            }
                        }
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => raw.extend_from_slice(&buf[..n]),
                        }
                    };
                    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let out = answer(&v);
                    kept.lock().unwrap().push(v);
                    if conn.write_all(out.as_bytes()).is_err() {
                        return;
                    }
                });
            }
        });
        Self { port, bodies }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn deliveries(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }
}

fn http_200(body: &str, content_type: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn start_primary(peer_url: &str, ca: Option<PathBuf>) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.regions = vec!["us-east-1".into()];
    cfg.peers = PeerConfig {
        peers: vec![Peer::new(PEER_REGION, peer_url, true).unwrap()],
        ca_file: ca,
        credentials: Some(PeerCredentials {
            access_key_id: "AKIAREPLICATOR000001".into(),
            secret_access_key: zeroize::Zeroizing::new("replicator-secret".into()),
        }),
    };
    TestServer::launch_config(cfg, dir)
}

/// The primary's replication status of `name` in the peer region: (Status, StatusMessage).
async fn status(c: &aws_sdk_secretsmanager::Client, name: &str) -> (String, String) {
    let d = c.describe_secret().secret_id(name).send().await.unwrap();
    let r = d
        .replication_status()
        .iter()
        .find(|r| r.region() == Some(PEER_REGION))
        .expect("the peer region's status")
        .clone();
    (
        r.status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        r.status_message().unwrap_or_default().to_owned(),
    )
}

async fn create_replicated(c: &aws_sdk_secretsmanager::Client, name: &str) {
    c.create_secret()
        .name(name)
        .secret_string("replicated-value")
        .add_replica_regions(ReplicaRegionType::builder().region(PEER_REGION).build())
        .send()
        .await
        .unwrap();
}

/// The apply operation's answer for the delivery `v`, as a Strongroom peer gives it.
fn apply_answer(v: &Value) -> String {
    let arn = v["PrimaryArn"]
        .as_str()
        .unwrap_or_default()
        .replace(":us-east-1:", &format!(":{PEER_REGION}:"));
    let body = serde_json::json!({"ARN": arn, "Applied": true, "KmsKeyId": "aws/secretsmanager",
        "OmittedValuesAccepted": true})
    .to_string();
    http_200(&body, "application/x-amz-json-1.1")
}

/// A 200 from something else than the apply operation (a wrong URL, a default page).
fn not_an_apply_answer(_: &Value) -> String {
    http_200("<html><body>It works!</body></html>", "text/html")
}

/// An apply answer for another secret than the one delivered.
fn another_secrets_answer(_: &Value) -> String {
    let body = format!(
        r#"{{"ARN":"arn:aws:secretsmanager:{PEER_REGION}:{ACCOUNT}:secret:other-AbCdEf","Applied":true}}"#
    );
    http_200(&body, "application/x-amz-json-1.1")
}

/// A peer endpoint that answers 200 without being the apply operation (a load balancer's
/// page, another service at that address), or that answers for another secret, has not
/// applied the change: the primary keeps the change in its outbox and retries, and never
/// shows the replica `InSync`. The positive control: the apply operation's answer for the
/// replica makes it `InSync`.
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_answer_that_is_not_the_replicas_apply_answer_is_not_taken_as_delivered() {
    for (what, answer) in [
        ("a page", not_an_apply_answer as fn(&Value) -> String),
        ("another secret's answer", another_secrets_answer),
    ] {
        let peer = FakePeer::start(answer);
        let mut primary = start_primary(&peer.url(), None);
        let p = primary.client();
        create_replicated(&p, "app/one").await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while peer.deliveries() < 3 {
            assert!(Instant::now() < deadline, "{what}: not retried");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (s, m) = status(&p, "app/one").await;
        assert_ne!(s, "InSync", "{what}: {m}");
        assert!(m.contains("not the peer's apply answer"), "{what}: {m}");
        primary.stop();
    }
    // Positive control.
    let peer = FakePeer::start(apply_answer);
    let mut primary = start_primary(&peer.url(), None);
    let p = primary.client();
    create_replicated(&p, "app/one").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, m) = status(&p, "app/one").await;
        if s == "InSync" {
            break;
        }
        assert!(Instant::now() < deadline, "stayed {s}: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(peer.deliveries(), 1);
    let shipped = peer.bodies.lock().unwrap()[0].clone();
    assert_eq!(shipped["Secret"]["Name"], "app/one");
    primary.stop();
}

/// The peer's TLS certificate must name the host the peer URL names: a certificate of the
/// trusted CA issued for another name (here `localhost` and `127.0.0.1`, reached as
/// `127.0.0.2`) is refused and nothing reaches the peer. (The positive control, the same
/// certificate reached by its name, is `delivery_to_a_tls_peer_trusts_the_configured_ca`.)
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_certificate_for_another_host_name_is_refused() {
    let tls = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.regions = vec![PEER_REGION.into()];
    cfg.listen = "127.0.0.2:0".into();
    cfg.tls = Some((tls.join("cert.pem"), tls.join("key.pem")));
    let mut peer = TestServer::launch_config(cfg, dir);
    let url = format!("https://127.0.0.2:{}", peer.addr.port());
    let mut primary = start_primary(&url, Some(tls.join("ca.pem")));
    let p = primary.client();
    create_replicated(&p, "tls/name").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, m) = status(&p, "tls/name").await;
        assert_ne!(s, "InSync", "{m}");
        if m.contains("certificate") || m.contains("NotValidForName") {
            break;
        }
        assert!(Instant::now() < deadline, "no certificate error: {s} {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    primary.stop();
    peer.stop();
}

// ----- the audit trail's lookup index -----

fn now_ms() -> i64 {
    strongroom::ops::system_now_ms()
}

/// A store in a data dir, with an auditor whose lookup indexer runs only when asked.
struct Trail {
    dir: tempfile::TempDir,
    store: Store,
    url: String,
}

impl Trail {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let url = format!("sqlite://{}", data.join("strongroom.db").display());
        let store = Store::open(&url).unwrap();
        Self { dir, store, url }
    }
    fn key_path(&self) -> PathBuf {
        self.dir.path().join("data/audit-signing.key")
    }
    fn auditor(&self) -> Auditor {
        Auditor::with_options(
            self.store.clone(),
            "chain-a".into(),
            &self.key_path(),
            AuditOptions {
                digest_every_records: 10,
                index_every: Duration::from_secs(3600),
                ..AuditOptions::default()
            },
        )
        .unwrap()
    }
    /// Run `sql` on the lookup index's own file.
    fn sql_index(&self, sql: &str) {
        let path = strongroom::store::audit_index_path(self.url.trim_start_matches("sqlite://"));
        let mut c = diesel::SqliteConnection::establish(&path).unwrap();
        c.batch_execute(&format!("PRAGMA busy_timeout = 5000; {sql}"))
            .unwrap();
    }
    fn verify(&self) -> Option<strongroom::audit::Finding> {
        let trusted = AuditKeys::load(&self.key_path())
            .unwrap()
            .public_hex()
            .to_owned();
        strongroom::audit::verify_store(
            &self.store,
            &VerifyOptions {
                trusted_keys: vec![trusted],
                ..VerifyOptions::default()
            },
        )
        .unwrap()
        .first_finding()
        .cloned()
    }
    /// The seqs of alice's records, as a query by user name answers (it indexes first).
    fn alices(&self) -> Vec<i64> {
        let f = AuditFilter {
            user_name: Some("alice".into()),
            limit: 100,
            ..AuditFilter::default()
        };
        let mut seqs: Vec<i64> = self
            .store
            .query_audit_blocking(&f)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        seqs.sort_unstable();
        seqs
    }
    fn hash_of(&self, seq: i64) -> String {
        self.store
            .read_blocking(move |tx| Ok(tx.audit_record("chain-a", seq)?))
            .unwrap()
            .unwrap()
            .hash
    }
}

fn draft(i: i64) -> Draft {
    let name = if i % 3 == 0 { "alice" } else { "bob" };
    Draft {
        request_id: format!("req-{i}"),
        event_time_ms: now_ms() + i,
        event_source: "secretsmanager.amazonaws.com".into(),
        event_name: "GetSecretValue".into(),
        region: "us-east-1".into(),
        source_ip: Some("10.0.0.1".into()),
        principal: Some(Arc::new(Principal {
            kind: PrincipalKind::User,
            arn: format!("arn:aws:iam::{ACCOUNT}:user/{name}"),
            user_id: format!("AIDA{name}"),
            access_key_id: format!("AKIA{name}"),
            name: Some(name.to_owned()),
            ..Principal::root(ACCOUNT, AKID)
        })),
        read_only: Some(true),
        decision: Some("Allow".into()),
        ..Draft::default()
    }
}

async fn fill(a: &Auditor, from: i64, to: i64) {
    for i in from..=to {
        a.record(&draft(i)).await.unwrap();
    }
    a.flush().await.unwrap();
}

/// Someone who can write the lookup index's file hides a record from searches by user and
/// moves the index's mark back (removes it, or sets it to an earlier record with that
/// record's hash), or plants an entry for a record not yet written: `audit verify` checks
/// only what the mark covers, so it cannot see those entries. The index is derived data:
/// indexing again what the mark does not cover derives every entry from the chain again, so
/// the next query (which indexes first) finds every record of the user, and a verification
/// after it passes. The positive control: the same edit with the mark left in place is
/// reported by `audit verify`.
#[tokio::test]
async fn an_index_entry_beyond_the_mark_is_derived_again_from_the_chain() {
    // Positive control: the mark covers the edited entry.
    let t = Trail::new();
    let a = t.auditor();
    fill(&a, 1, 12).await;
    assert_eq!(t.alices(), [3, 6, 9, 12]);
    t.sql_index("UPDATE audit_lookup SET user_name = NULL WHERE seq = 6");
    assert_eq!(t.alices(), [3, 9, 12]);
    let f = t.verify().expect("the edited entry is reported");
    assert_eq!((f.kind, f.seq), (TamperKind::IndexAltered, 6), "{f}");
    drop(a);

    for case in ["mark removed", "mark moved back", "entry planted ahead"] {
        let t = Trail::new();
        let a = t.auditor();
        fill(&a, 1, 12).await;
        assert_eq!(t.alices(), [3, 6, 9, 12], "{case}");
        let want: Vec<i64> = match case {
            "mark removed" => {
                t.sql_index(
                    "UPDATE audit_lookup SET user_name = NULL WHERE seq = 6; \
                     DELETE FROM audit_index_state",
                );
                vec![3, 6, 9, 12]
            }
            "mark moved back" => {
                t.sql_index(&format!(
                    "UPDATE audit_lookup SET user_name = NULL WHERE seq = 6; \
                     UPDATE audit_index_state SET indexed_through = 4, indexed_hash = '{}'",
                    t.hash_of(4)
                ));
                vec![3, 6, 9, 12]
            }
            _ => {
                // Record 15 (alice's) is not written yet: its entry is planted as bob's.
                t.sql_index(&format!(
                    "INSERT INTO audit_lookup (chain_id, seq, event_time, event_name, \
                     principal_arn, user_name, decision) VALUES ('chain-a', 15, {}, \
                     'GetSecretValue', 'arn:aws:iam::{ACCOUNT}:user/bob', 'bob', 'Allow')",
                    now_ms()
                ));
                fill(&a, 13, 15).await;
                vec![3, 6, 9, 12, 15]
            }
        };
        assert_eq!(t.alices(), want, "{case}: a record stays hidden");
        assert_eq!(t.verify(), None, "{case}");
        drop(a);
    }
}
