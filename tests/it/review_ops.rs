//! Operator surfaces under attack: what the metrics listener exposes, quotas per account,
//! audit tamper evidence against rows outside the chain's numbering, retention runs over a
//! tampered chain, and the modes of exported audit files.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::json;
use strongroom::audit::{
    chain_hash, row_for, verify_store, AuditKeys, AuditOptions, Auditor, Draft, Index,
    VerifyOptions,
};
use strongroom::auth::{Principal, PrincipalKind};
use strongroom::store::rows::AuditFilter;
use strongroom::store::Store;

use crate::common::{config_in, send_raw, TestServer, ACCOUNT, AKID};

fn now_ms() -> i64 {
    strongroom::ops::system_now_ms()
}

/// A SQLite store in a fresh data dir, with an audit signing key beside it.
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
        self.dir.path().join("data").join("audit-signing.key")
    }
    fn keys(&self) -> AuditKeys {
        AuditKeys::load(&self.key_path()).unwrap()
    }
    fn auditor(&self, every: u64, digest_dir: Option<&Path>) -> Auditor {
        Auditor::with_options(
            self.store.clone(),
            "chain-a".into(),
            &self.key_path(),
            AuditOptions {
                digest_every_records: every,
                digest_dir: digest_dir.map(Path::to_path_buf),
                ..AuditOptions::default()
            },
        )
        .unwrap()
    }
    /// Run `sql` on the chain's own SQLite file.
    fn sql(&self, sql: &str) {
        let path = strongroom::store::audit_chain_path(self.url.trim_start_matches("sqlite://"));
        let mut c = diesel::SqliteConnection::establish(&path).unwrap();
        c.batch_execute(&format!("PRAGMA busy_timeout = 5000; {sql}"))
            .unwrap();
    }
    /// The first finding, trusting the server's key, with the digests anchored under
    /// `anchors` (if any).
    fn finding(&self, anchors: Option<&Path>) -> Option<strongroom::audit::Finding> {
        let trusted = vec![self.keys().public_hex().to_owned()];
        let anchors = anchors
            .map(|p| strongroom::audit::load_anchors(p, &trusted).unwrap())
            .unwrap_or_default();
        verify_store(
            &self.store,
            &VerifyOptions {
                trusted_keys: trusted,
                chain: None,
                anchors,
            },
        )
        .unwrap()
        .first_finding()
        .cloned()
    }
}

fn draft(i: i64, at_ms: i64) -> Draft {
    Draft {
        request_id: format!("req-{i}"),
        event_time_ms: at_ms,
        event_source: "secretsmanager.amazonaws.com".into(),
        event_name: "GetSecretValue".into(),
        region: "us-east-1".into(),
        source_ip: Some("10.0.0.1".into()),
        principal: Some(Arc::new(Principal {
            kind: PrincipalKind::User,
            arn: format!("arn:aws:iam::{ACCOUNT}:user/alice"),
            user_id: "AIDAalice".into(),
            access_key_id: "AKIAalice".into(),
            name: Some("alice".into()),
            ..Principal::root(ACCOUNT, AKID)
        })),
        read_only: Some(true),
        resource_arn: Some(format!(
            "arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/s-AbCdEf"
        )),
        request_parameters: json!({"SecretId": "app/s"}),
        decision: Some("Allow".into()),
        ..Draft::default()
    }
}

/// `n` records, one after the other (seq = i), then a flush (which signs a digest).
async fn fill(a: &Auditor, n: i64, at_ms: impl Fn(i64) -> i64) {
    for i in 1..=n {
        a.record(&draft(i, at_ms(i))).await.unwrap();
    }
    a.flush().await.unwrap();
}

/// A well-formed record the chain never held, as a database writer would forge it.
fn forged_row(seq: i64, prev: &str, request_id: &str) -> strongroom::store::rows::AuditRow {
    let mut d = draft(0, now_ms());
    d.request_id = request_id.into();
    let text = d.to_record("forged-event").to_string();
    let ix = Index::of(&serde_json::from_str(&text).unwrap());
    row_for("chain-a", seq, prev, &text, &ix)
}

/// A record stored at seq 0 or below belongs to no place in the chain; `audit verify` must
/// report it rather than skip it, since `audit query` and LookupEvents still return it.
#[tokio::test]
async fn a_record_numbered_below_the_chain_is_reported() {
    for seq in [0_i64, -7] {
        let t = Trail::new();
        let a = t.auditor(10, None);
        fill(&a, 12, |i| now_ms() + i).await;
        assert_eq!(t.finding(None), None, "seq {seq}: a clean chain verifies");
        let row = forged_row(seq, strongroom::audit::GENESIS, "req-forged");
        t.store
            .write_blocking(move |tx| Ok(tx.insert_audits(std::slice::from_ref(&row))?))
            .unwrap();
        let all = t
            .store
            .query_audit_blocking(&AuditFilter {
                limit: 100,
                ..AuditFilter::default()
            })
            .unwrap();
        assert!(
            all.iter().any(|r| r.record.contains("req-forged")),
            "seq {seq}: the forged record is served by queries"
        );
        let f = t.finding(None);
        assert!(
            f.is_some(),
            "seq {seq}: a record outside the chain's numbering went unreported"
        );
    }
}

/// The positive control of the test above: a forged record inside the numbering is caught.
#[tokio::test]
async fn a_record_inserted_inside_the_numbering_is_reported() {
    let t = Trail::new();
    let a = t.auditor(10, None);
    fill(&a, 12, |i| now_ms() + i).await;
    let prev = t
        .store
        .read_blocking(|tx| Ok(tx.audit_record("chain-a", 5)?))
        .unwrap()
        .unwrap();
    t.sql("DELETE FROM audit_events WHERE seq = 6");
    let row = forged_row(6, &prev.hash, "req-forged");
    t.store
        .write_blocking(move |tx| Ok(tx.insert_audits(std::slice::from_ref(&row))?))
        .unwrap();
    let f = t.finding(None).expect("a forged record at seq 6 is caught");
    assert!((6..=7).contains(&f.seq), "{f}");
}

/// A retention run over a chain whose rewrite only the anchored digests reveal must not
/// sign it into a prune anchor: afterwards `audit verify --anchor` still reports it.
#[tokio::test]
async fn pruning_does_not_launder_a_rewrite_the_anchored_digests_reveal() {
    let t = Trail::new();
    let digests = t.dir.path().join("digests");
    let a = t.auditor(10, Some(&digests));
    let day = 86_400_000;
    let old = now_ms() - 40 * day;
    fill(&a, 25, |i| old + i).await;
    assert_eq!(t.finding(Some(&digests)), None, "a clean chain verifies");

    // Rewrite records 13.. (every hash recomputed) and delete the digests that cover them.
    let rows = t
        .store
        .read_blocking(|tx| Ok(tx.audit_range("chain-a", 0, 100)?))
        .unwrap();
    let mut prev = rows[11].hash.clone();
    t.sql("DELETE FROM audit_events WHERE seq >= 13; DELETE FROM audit_digests WHERE seq_to > 10");
    for r in &rows[12..] {
        let text = r.record.replace("10.0.0.1", "10.9.9.9");
        let ix = Index::of(&serde_json::from_str(&text).unwrap());
        let row = row_for("chain-a", r.seq, &prev, &text, &ix);
        prev = chain_hash(&prev, &text);
        t.store
            .write_blocking(move |tx| Ok(tx.insert_audits(std::slice::from_ref(&row))?))
            .unwrap();
    }
    // The database alone cannot tell; the anchored digests can (positive control).
    assert_eq!(t.finding(None), None);
    assert!(
        t.finding(Some(&digests)).is_some(),
        "the anchored digests reveal the rewrite"
    );

    // A retention run (records older than 30 days), with the digest directory's copies as
    // the server's retention task passes them.
    let out = t.dir.path().join("export");
    let outside =
        strongroom::audit::load_anchors(&digests, &[t.keys().public_hex().to_owned()]).unwrap();
    let run = strongroom::audit::export::prune_chains(
        &t.store,
        &t.keys(),
        &out,
        now_ms() - 30 * day,
        now_ms(),
        Some("chain-a"),
        &outside,
    );
    let f = t.finding(Some(&digests));
    assert!(
        f.is_some(),
        "after the retention run the rewrite is no longer detectable: {run:?}"
    );
}

/// Retention's export holds every record (principal ARNs, source addresses, secret names):
/// an export directory the server creates is owner-only, like the data dir.
#[tokio::test]
async fn exported_audit_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let t = Trail::new();
    let a = t.auditor(10, None);
    fill(&a, 5, |i| now_ms() + i).await;
    let out = t.dir.path().join("trail");
    let keys = strongroom::audit::AuditKeys::ephemeral().unwrap();
    strongroom::audit::export::export_chains(&t.store, &keys, &out, None).unwrap();
    let mut checked = 0;
    for p in std::iter::once(out.clone()).chain(crate::common::files_under(&out)) {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", p.display());
        checked += 1;
    }
    assert!(checked >= 2, "nothing exported");
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn get(addr: SocketAddr, path: &str) -> crate::common::RawResponse {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    send_raw(addr, req.as_bytes())
}

/// The exposition names no secret, account, principal or key, and callers varying what they
/// control (secret names, operation names, error paths) do not add series.
#[test]
fn metrics_carry_no_caller_data_and_callers_cannot_add_series() {
    let maddr = free_addr();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.metrics_listen = Some(maddr.to_string());
    let s = TestServer::launch_config(cfg, dir);
    let round = |k: usize| {
        for i in 0..5 {
            let name = format!("leak-name-{k}-{i}");
            let r = s.call(
                "secretsmanager.CreateSecret",
                &json!({"Name": name, "SecretString": "v", "ClientRequestToken": uuid::Uuid::new_v4().to_string()}).to_string(),
            );
            assert_eq!(r.status, 200, "{}", r.body);
            s.call(
                "secretsmanager.GetSecretValue",
                &json!({"SecretId": format!("missing-{k}-{i}")}).to_string(),
            );
            s.call(&format!("secretsmanager.MadeUp{k}x{i}"), "{}");
            s.call("secretsmanager.GetSecretValue", "not json");
            s.call(&format!("TrentService.Nope{k}x{i}"), "{}");
        }
    };
    round(0);
    let series = |t: &str| t.lines().filter(|l| !l.starts_with('#')).count();
    let first = get(maddr, "/metrics").body;
    round(1);
    let second = get(maddr, "/metrics").body;
    assert_eq!(series(&first), series(&second), "{second}");
    for needle in [
        "leak-name",
        "missing-",
        "MadeUp",
        "Nope",
        ACCOUNT,
        AKID,
        "arn:aws",
    ] {
        assert!(!second.contains(needle), "`{needle}` in {second}");
    }
}

/// One account emptying its bucket does not throttle another account, and the buckets are
/// per region.
#[test]
fn one_accounts_quota_is_its_own() {
    let groups: HashMap<String, f64> = [("write".to_owned(), 2.0)].into();
    let cfg = strongroom::quota::QuotaConfig::resolve(None, &groups, &HashMap::new())
        .unwrap()
        .unwrap();
    let q = strongroom::quota::Quotas::new(cfg);
    let (a, b) = ("111111111111", "222222222222");
    assert!(q.check(a, "us-east-1", "PutSecretValue").is_ok());
    assert!(q.check(a, "us-east-1", "PutSecretValue").is_ok());
    assert!(q.check(a, "us-east-1", "PutSecretValue").is_err());
    assert!(q.check(b, "us-east-1", "PutSecretValue").is_ok());
    assert!(q.check(b, "us-east-1", "UpdateSecret").is_ok());
    assert!(q.check(b, "us-east-1", "PutSecretValue").is_err());
    // Operation names are matched exactly: another spelling is not served either.
    assert!(q.check(a, "us-east-1", "putsecretvalue").is_ok());
}

/// A request signed for a region the server does not serve is refused before the quota, so
/// a caller cannot get fresh buckets by naming other regions.
#[test]
fn an_unserved_region_does_not_get_a_fresh_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    let groups: HashMap<String, f64> = [("create".to_owned(), 1.0)].into();
    cfg.quotas = strongroom::quota::QuotaConfig::resolve(None, &groups, &HashMap::new()).unwrap();
    let s = TestServer::launch_config(cfg, dir);
    let body = |n: &str| {
        json!({"Name": n, "SecretString": "v", "ClientRequestToken": uuid::Uuid::new_v4().to_string()})
            .to_string()
    };
    assert_eq!(
        s.call("secretsmanager.CreateSecret", &body("r/1")).status,
        200
    );
    assert_eq!(
        s.call("secretsmanager.CreateSecret", &body("r/2"))
            .error_type(),
        "ThrottlingException"
    );
    let r = s.call_signed(
        "secretsmanager.CreateSecret",
        &body("r/3"),
        crate::common::Signing {
            region: "eu-west-9".into(),
            ..crate::common::Signing::default()
        },
    );
    assert_ne!(r.status, 200, "{}", r.body);
    assert_ne!(r.error_type(), "ThrottlingException");
}
