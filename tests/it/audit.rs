//! The audit trail: records per request, no secret material, group commit and its bounded
//! wait, tamper detection of every kind, LookupEvents, `strongroom audit` commands, export and
//! prune; and (ignored) query timings over a million records.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::{json, Value};
use strongroom::audit::{
    chain_hash, row_for, verify_store, AuditKeys, AuditOptions, Auditor, Draft, Index, TamperKind,
    VerifyOptions,
};
use strongroom::auth::{Principal, PrincipalKind};
use strongroom::store::rows::AuditFilter;
use strongroom::store::Store;

use crate::common::{signed_request, Signing, TestServer, ACCOUNT, AKID, MARKER};

const LOOKUP: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents";

fn lookup(s: &TestServer, body: &Value) -> crate::common::RawResponse {
    let sign = Signing {
        service: "cloudtrail".into(),
        ..Signing::default()
    };
    s.raw(&signed_request(LOOKUP, body.to_string().as_bytes(), sign))
}

fn now_ms() -> i64 {
    strongroom::ops::system_now_ms()
}

/// A store in a data dir with an audit signing key beside `master.key`.
struct Trail {
    dir: tempfile::TempDir,
    store: Store,
    url: String,
}

impl Trail {
    fn new() -> Self {
        Self::new_at(None)
    }
    /// On SQLite in the data dir, or on the database at `url`.
    fn new_at(url: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let url =
            url.unwrap_or_else(|| format!("sqlite://{}", data.join("strongroom.db").display()));
        let store = Store::open(&url).unwrap();
        Self { dir, store, url }
    }
    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    fn key_path(&self) -> PathBuf {
        self.data_dir().join("audit-signing.key")
    }
    fn auditor(&self, digest_every_records: u64) -> Auditor {
        Auditor::with_options(
            self.store.clone(),
            "chain-a".into(),
            &self.key_path(),
            AuditOptions {
                digest_every_records,
                ..AuditOptions::default()
            },
        )
        .unwrap()
    }
    fn public_key(&self) -> String {
        AuditKeys::load(&self.key_path())
            .unwrap()
            .public_hex()
            .to_owned()
    }
    fn sql(&self, sql: &str) {
        if self.url.starts_with("postgres") {
            let mut c = diesel::PgConnection::establish(&self.url).unwrap();
            c.batch_execute(sql).unwrap();
            return;
        }
        // The chain is a file of its own on SQLite.
        let path = strongroom::store::audit_chain_path(self.url.trim_start_matches("sqlite://"));
        let mut c = diesel::SqliteConnection::establish(&path).unwrap();
        c.batch_execute(&format!("PRAGMA busy_timeout = 5000; {sql}"))
            .unwrap();
    }
    /// Run `sql` on the lookup index (SQLite: its own file; PostgreSQL: the database).
    fn sql_index(&self, sql: &str) {
        if self.url.starts_with("postgres") {
            return self.sql(sql);
        }
        let path = strongroom::store::audit_index_path(self.url.trim_start_matches("sqlite://"));
        let mut c = diesel::SqliteConnection::establish(&path).unwrap();
        c.batch_execute(&format!("PRAGMA busy_timeout = 5000; {sql}"))
            .unwrap();
    }
    /// An auditor that also writes each digest into `digest_dir`.
    fn auditor_anchored(&self, digest_every_records: u64, digest_dir: &Path) -> Auditor {
        Auditor::with_options(
            self.store.clone(),
            "chain-a".into(),
            &self.key_path(),
            AuditOptions {
                digest_every_records,
                digest_dir: Some(digest_dir.to_path_buf()),
                ..AuditOptions::default()
            },
        )
        .unwrap()
    }
    /// The full report, with digests anchored at `anchors` (if any).
    fn report(&self, anchors: Option<&Path>) -> strongroom::audit::Report {
        let trusted = vec![self.public_key()];
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
    }
    fn verify(&self) -> Option<strongroom::audit::Finding> {
        let opts = VerifyOptions {
            trusted_keys: vec![self.public_key()],
            chain: None,
            anchors: Vec::new(),
        };
        verify_store(&self.store, &opts)
            .unwrap()
            .first_finding()
            .cloned()
    }
}

fn user(name: &str) -> Principal {
    Principal {
        kind: PrincipalKind::User,
        arn: format!("arn:aws:iam::{ACCOUNT}:user/{name}"),
        user_id: format!("AIDA{name}"),
        access_key_id: format!("AKIA{name}"),
        name: Some(name.to_owned()),
        ..Principal::root(ACCOUNT, AKID)
    }
}

fn draft(i: i64, at_ms: i64) -> Draft {
    let denied = i % 7 == 3;
    Draft {
        request_id: format!("req-{i}"),
        event_time_ms: at_ms,
        event_source: "secretsmanager.amazonaws.com".into(),
        event_name: if i % 2 == 0 {
            "GetSecretValue"
        } else {
            "DescribeSecret"
        }
        .into(),
        region: "us-east-1".into(),
        source_ip: Some(format!("10.0.0.{}", i % 5)),
        principal: Some(Arc::new(user(if i % 3 == 0 { "alice" } else { "bob" }))),
        read_only: Some(true),
        resource_arn: Some(format!(
            "arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/s{}-AbCdEf",
            i % 4
        )),
        request_parameters: json!({"SecretId": format!("app/s{}", i % 4)}),
        decision: Some(if denied { "Deny" } else { "Allow" }.into()),
        error_code: denied.then(|| "AccessDeniedException".to_owned()),
        ..Draft::default()
    }
}

/// `n` records through the auditor (concurrently), then a flush (which signs a digest).
async fn fill(a: &Auditor, n: i64, at_ms: impl Fn(i64) -> i64) {
    let futs: Vec<_> = (1..=n)
        .map(|i| {
            let a = a.clone();
            let d = draft(i, at_ms(i));
            async move { a.record(&d).await }
        })
        .collect();
    // Sequential per chunk keeps seq order equal to i (tamper tests rely on it).
    for f in futs {
        f.await.unwrap();
    }
    a.flush().await.unwrap();
}

#[tokio::test]
async fn every_kind_of_tampering_is_caught() {
    type Case = (&'static str, &'static str, TamperKind, i64);
    let cases: &[Case] = &[
        (
            "modify",
            "UPDATE audit_events SET record = replace(record, 'req-5', 'req-X') WHERE seq = 5",
            TamperKind::Modified,
            5,
        ),
        (
            "modify a query column",
            "UPDATE audit_events SET principal_arn = 'arn:aws:iam::1:user/nobody' WHERE seq = 6",
            TamperKind::Modified,
            6,
        ),
        (
            "delete",
            "DELETE FROM audit_events WHERE seq = 5",
            TamperKind::Deleted,
            5,
        ),
        (
            "delete the head",
            "DELETE FROM audit_events WHERE seq <= 2",
            TamperKind::Deleted,
            1,
        ),
        (
            "delete and renumber",
            "DELETE FROM audit_events WHERE seq = 5; \
             UPDATE audit_events SET seq = -(seq - 1) WHERE seq > 5; \
             UPDATE audit_events SET seq = -seq WHERE seq < 0;",
            TamperKind::Unlinked,
            5,
        ),
        (
            "reorder",
            "UPDATE audit_events SET seq = -1 WHERE seq = 5; \
             UPDATE audit_events SET seq = 5 WHERE seq = 6; \
             UPDATE audit_events SET seq = 6 WHERE seq = -1;",
            TamperKind::Reordered,
            5,
        ),
        (
            "truncate the tail after a digest",
            "DELETE FROM audit_events WHERE seq > 22",
            TamperKind::Truncated,
            23,
        ),
        (
            "forge a digest",
            "UPDATE audit_digests SET last_hash = \
             (CASE WHEN substr(last_hash, 1, 1) = '0' THEN '1' ELSE '0' END) || substr(last_hash, 2) \
             WHERE seq_to = 20",
            TamperKind::Forged,
            11,
        ),
        (
            "delete a digest",
            "DELETE FROM audit_digests WHERE seq_to = 10",
            TamperKind::DigestMissing,
            1,
        ),
    ];
    for (name, sql, kind, seq) in cases {
        let t = Trail::new();
        let a = t.auditor(10);
        fill(&a, 25, |i| now_ms() + i).await;
        assert_eq!(t.verify(), None, "{name}: clean chain must verify");
        t.sql(sql);
        let f = t.verify().unwrap_or_else(|| panic!("{name}: not detected"));
        assert_eq!((f.kind, f.seq), (*kind, *seq), "{name}: {f}");
    }
}

/// The same trail on PostgreSQL (when the test command provides one).
#[tokio::test]
async fn postgres_trail_verifies_queries_and_prunes() {
    let Some(base) = crate::common::postgres_base_url() else {
        return;
    };
    let t = Trail::new_at(Some(crate::common::fresh_postgres_db(&base)));
    let a = t.auditor(10);
    let day = 86_400_000;
    fill(&a, 25, |i| {
        if i <= 12 {
            now_ms() - 40 * day + i
        } else {
            now_ms() + i
        }
    })
    .await;
    assert_eq!(t.verify(), None);
    let q = |f: AuditFilter| t.store.query_audit_blocking(&f).unwrap();
    let all = |f: AuditFilter| AuditFilter { limit: 100, ..f };
    // name and ARN prefixes (LIKE on PostgreSQL), `_` and `%` taken literally
    assert_eq!(
        q(all(AuditFilter {
            resource_prefix: Some("app/s1".into()),
            ..AuditFilter::default()
        }))
        .len(),
        7
    );
    let arn = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/s");
    assert_eq!(
        q(all(AuditFilter {
            resource_prefix: Some(arn),
            ..AuditFilter::default()
        }))
        .len(),
        25
    );
    assert_eq!(
        q(all(AuditFilter {
            resource_prefix: Some("app_s".into()),
            ..AuditFilter::default()
        }))
        .len(),
        0
    );
    assert_eq!(
        q(all(AuditFilter {
            resource_prefix: Some("app%".into()),
            ..AuditFilter::default()
        }))
        .len(),
        0
    );
    // LookupEvents-style: account scope with a resource, a boolean column, keyset paging
    let scoped = AuditFilter {
        account_id: Some(ACCOUNT.into()),
        resource_name: Some("app/s2".into()),
        ..AuditFilter::default()
    };
    assert_eq!(q(all(scoped.clone())).len(), 6);
    assert_eq!(
        q(all(AuditFilter {
            account_id: Some("999999999999".into()),
            ..scoped
        }))
        .len(),
        0
    );
    assert_eq!(
        q(all(AuditFilter {
            read_only: Some(true),
            ..AuditFilter::default()
        }))
        .len(),
        25
    );
    let first = q(AuditFilter {
        limit: 3,
        ..AuditFilter::default()
    });
    let last = first.last().unwrap();
    let next = q(AuditFilter {
        limit: 100,
        before: Some((last.event_time, last.chain_id.clone(), last.seq)),
        ..AuditFilter::default()
    });
    assert_eq!(next.len(), 22);
    // export + prune under an anchor, then tampering is still caught
    let keys = AuditKeys::load(&t.key_path()).unwrap();
    let out = t.dir.path().join("export");
    let s =
        strongroom::audit::export::prune(&t.store, &keys, &out, now_ms() - 30 * day, now_ms(), &[])
            .unwrap();
    assert_eq!(s.pruned, vec![("chain-a".to_owned(), 12, 12)]);
    assert_eq!(exported_records(&out).len(), 25);
    assert_eq!(t.verify(), None);
    t.sql("UPDATE audit_events SET record = replace(record, 'req-15', 'req-X') WHERE seq = 15");
    let f = t.verify().unwrap();
    assert_eq!((f.kind, f.seq), (TamperKind::Modified, 15), "{f}");
}

#[tokio::test]
async fn insertion_and_rewrites_are_caught() {
    // Insert a well-formed record in the middle (renumbering the rest). The forger copies
    // the query attributes of the record whose place it takes, so that the lookup index's
    // entry for that place matches it whether or not the indexer has reached it yet: the
    // chain alone has to catch the insertion.
    let t = Trail::new();
    let a = t.auditor(10);
    let t0 = now_ms();
    fill(&a, 25, |i| t0 + i).await;
    t.sql(
        "UPDATE audit_events SET seq = -(seq + 1) WHERE seq >= 5; \
         UPDATE audit_events SET seq = -seq WHERE seq < 0;",
    );
    let prev = t
        .store
        .read_blocking(|tx| Ok(tx.audit_record("chain-a", 4)?))
        .unwrap()
        .unwrap();
    let mut forged = draft(5, t0 + 5);
    forged.request_id = "req-forged".into();
    let text = forged.to_record("forged-event").to_string();
    let ix = Index::of(&serde_json::from_str(&text).unwrap());
    let row = row_for("chain-a", 5, &prev.hash, &text, &ix);
    t.store
        .write_blocking(move |tx| Ok(tx.insert_audits(std::slice::from_ref(&row))?))
        .unwrap();
    let f = t.verify().unwrap();
    assert_eq!((f.kind, f.seq), (TamperKind::Inserted, 5), "{f}");

    // Rebuild the chain from record 13 on (every hash recomputed): only the digest knows.
    let t = Trail::new();
    let a = t.auditor(10);
    fill(&a, 25, |i| now_ms() + i).await;
    let rows = t
        .store
        .read_blocking(|tx| Ok(tx.audit_range("chain-a", 0, 100)?))
        .unwrap();
    let mut prev = rows[11].hash.clone();
    t.sql("DELETE FROM audit_events WHERE seq >= 13");
    for r in &rows[12..] {
        let text = r.record.replace("req-", "req-rewritten-");
        let ix = Index::of(&serde_json::from_str(&text).unwrap());
        let row = row_for("chain-a", r.seq, &prev, &text, &ix);
        prev = chain_hash(&prev, &text);
        t.store
            .write_blocking(move |tx| Ok(tx.insert_audits(std::slice::from_ref(&row))?))
            .unwrap();
    }
    let f = t.verify().unwrap();
    assert_eq!((f.kind, f.seq), (TamperKind::Rewritten, 11), "{f}");

    // A digest re-signed with another key is not trusted.
    let t = Trail::new();
    let a = t.auditor(10);
    fill(&a, 12, |i| now_ms() + i).await;
    let other = AuditKeys::ephemeral().unwrap();
    let last = t
        .store
        .read_blocking(|tx| Ok(tx.last_audit("chain-a")?))
        .unwrap()
        .unwrap();
    t.sql("DELETE FROM audit_digests WHERE seq_to = 12");
    let forged = strongroom::audit::signed_statement(
        &other,
        "chain-a",
        strongroom::audit::DIGEST,
        11,
        last.seq,
        &last.hash,
        now_ms(),
    );
    t.store
        .write_blocking(move |tx| Ok(tx.insert_audit_digest(&forged)?))
        .unwrap();
    let f = t.verify().unwrap();
    assert_eq!((f.kind, f.seq), (TamperKind::Forged, 11), "{f}");
    assert!(f.message.contains("not trusted"), "{f}");
}

#[tokio::test]
async fn cli_verify_query_export_and_prune() {
    let bin = env!("CARGO_BIN_EXE_strongroom");
    let t = Trail::new();
    let a = t.auditor(10);
    let day = 86_400_000;
    // 1..=30 are 40 days old; 31..=40 are recent.
    fill(&a, 40, |i| {
        if i <= 30 {
            now_ms() - 40 * day + i
        } else {
            now_ms() + i
        }
    })
    .await;
    let data = t.data_dir();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, out, err) = run(&["audit", "verify"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("audit verified: 40 records"), "{out}");

    let (ok, out, err) = run(&["audit", "query", "--denied", "--format", "jsonl"]);
    assert!(ok, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), (1..=40).filter(|i| i % 7 == 3).count());
    assert!(lines
        .iter()
        .all(|r| r["authorization"]["decision"] == "Deny"));
    let times: Vec<&str> = lines
        .iter()
        .map(|r| r["eventTime"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");

    let (ok, out, _) = run(&[
        "audit",
        "query",
        "--principal",
        &format!("arn:aws:iam::{ACCOUNT}:user/alice"),
        "--secret",
        "app/s1",
        "--source-ip",
        "10.0.0.3",
    ]);
    assert!(ok);
    // i ≡ 0 (mod 3), ≡ 1 (mod 4), ≡ 3 (mod 5): i = 33 only
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().next().unwrap().starts_with("TIME"));
    let since = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let since = since
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (ok, out, _) = run(&["audit", "query", "--since", &since, "--limit", "1000"]);
    assert!(ok);
    assert_eq!(out.lines().count(), 11, "{out}");
    let (ok, _, err) = run(&["audit", "query", "--since", "yesterday"]);
    assert!(!ok && err.contains("RFC 3339"), "{err}");

    // export: all 40, then nothing new, then only the new ones
    let out_dir = t.dir.path().join("export");
    let od = out_dir.to_str().unwrap();
    let (ok, out, err) = run(&["audit", "export", "--out", od]);
    assert!(ok && out.contains("exported 40 records"), "{out}{err}");
    let (ok, out, _) = run(&["audit", "export", "--out", od]);
    assert!(ok && out.contains("exported 0 records"), "{out}");
    fill(&a, 3, |i| now_ms() + 100 + i).await;
    let (ok, out, _) = run(&["audit", "export", "--out", od]);
    assert!(ok && out.contains("exported 3 records"), "{out}");
    let records = exported_records(&out_dir);
    assert_eq!(records.len(), 43);
    assert!(records.iter().all(|r| r["eventVersion"] == "1.08"));

    // prune the 30 old ones: an anchor keeps the rest verifiable
    let (ok, out, err) = run(&["audit", "prune", "--older-than", "30", "--out", od]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("pruned 30 records (through seq 30)"), "{out}");
    let (ok, out, err) = run(&["audit", "verify"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("pruned through 30"), "{out}");
    assert!(out.contains("audit verified: 13 records"), "{out}");
    // more records after the prune still chain on
    fill(&a, 2, |i| now_ms() + 200 + i).await;
    assert_eq!(t.verify(), None);

    // the export verifies against the digests signed beside its files, after the prune too;
    // a file altered, a file missing from the middle, a digest edited are each reported
    let (ok, out, _) = run(&["audit", "export", "--out", od]);
    assert!(ok && out.contains("exported 2 records"), "{out}");
    let (ok, out, err) = run(&["audit", "verify-export", "--dir", od]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("3 files, records 1..45") && out.contains("export verified"),
        "{out}"
    );
    let mut gz: Vec<PathBuf> = crate::common::files_under(&out_dir)
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with(".json.gz"))
        .collect();
    gz.sort();
    assert_eq!(gz.len(), 3, "{gz:?}");
    let copy = |name: &str| {
        let to = t.dir.path().join(name);
        let _ = std::fs::remove_dir_all(&to);
        for f in crate::common::files_under(&out_dir) {
            let rel = f.strip_prefix(&out_dir).unwrap();
            std::fs::create_dir_all(to.join(rel).parent().unwrap()).unwrap();
            std::fs::copy(&f, to.join(rel)).unwrap();
        }
        to
    };
    let in_copy = |to: &Path, f: &Path| to.join(f.strip_prefix(&out_dir).unwrap());
    let altered = copy("altered");
    let mut bytes = std::fs::read(in_copy(&altered, &gz[0])).unwrap();
    bytes.push(0);
    std::fs::write(in_copy(&altered, &gz[0]), bytes).unwrap();
    let missing = copy("missing");
    std::fs::remove_file(in_copy(&missing, &gz[1])).unwrap();
    let edited = copy("edited");
    let digest = PathBuf::from(format!(
        "{}.digest.json",
        in_copy(&edited, &gz[2]).display()
    ));
    let text = std::fs::read_to_string(&digest).unwrap();
    std::fs::write(&digest, text.replace("\"seqFrom\":44", "\"seqFrom\":43")).unwrap();
    for (dir, says) in [
        (&altered, "altered"),
        (&missing, "does not continue"),
        (&edited, "signature does not verify"),
    ] {
        let (ok, out, err) = run(&["audit", "verify-export", "--dir", dir.to_str().unwrap()]);
        assert!(!ok && err.contains(says), "{says}: {out}{err}");
    }

    // without the anchor the cut is a deletion; the CLI names the first record, non-zero
    t.sql("DELETE FROM audit_digests WHERE kind = 'anchor'");
    let (ok, _, err) = run(&["audit", "verify"]);
    assert!(!ok);
    assert!(
        err.contains("record 1 ") && err.contains("[deleted]"),
        "{err}"
    );
}

fn exported_records(dir: &Path) -> Vec<Value> {
    let mut out = vec![];
    for f in crate::common::files_under(dir) {
        if f.extension().is_some_and(|e| e == "gz") {
            let mut s = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(std::fs::File::open(&f).unwrap()),
                &mut s,
            )
            .unwrap();
            let v: Value = serde_json::from_str(&s).unwrap();
            out.extend(v["Records"].as_array().unwrap().iter().cloned());
        }
    }
    out
}

#[tokio::test]
async fn concurrent_records_are_group_committed() {
    let t = Trail::new();
    let a = t.auditor(1000);
    let start = Instant::now();
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let a = a.clone();
            tokio::spawn(async move { a.record(&draft(i, now_ms())).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // several events of one request (BatchGetSecretValue) share one commit
    let batch: Vec<Draft> = (400..410).map(|i| draft(i, now_ms())).collect();
    a.record_all(&batch).await.unwrap();
    a.flush().await.unwrap();
    let elapsed = start.elapsed();
    let report = verify_store(&t.store, &VerifyOptions::default()).unwrap();
    assert_eq!(report.records(), 410);
    assert!(report.first_finding().is_none());
    // 400 records with synchronous=FULL would take seconds one commit each.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

/// An auditor whose writer would gather for 5 s: a test that ends quickly shows that it
/// stopped gathering early.
fn slow_gathering_auditor(t: &Trail) -> Auditor {
    Auditor::with_options(
        t.store.clone(),
        "chain-a".into(),
        &t.key_path(),
        AuditOptions {
            gather: Duration::from_secs(5),
            ..AuditOptions::default()
        },
    )
    .unwrap()
}

/// Under concurrency the writer gathers records before committing, but only while some
/// request under way has yet to send its record: once every one has, it commits at once.
/// (With a 5 s gather window and no such check, each round below would wait 5 s.)
#[tokio::test]
async fn the_writer_stops_gathering_when_every_request_has_its_record_in() {
    let t = Trail::new();
    let a = slow_gathering_auditor(&t);
    let start = Instant::now();
    for round in 0..4_i64 {
        let guards: Vec<_> = (0..4).map(|_| a.begin()).collect();
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let a = a.clone();
                tokio::spawn(async move { a.record(&draft(round * 4 + i, now_ms())).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        drop(guards);
    }
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    a.flush().await.unwrap();
    assert_eq!(
        verify_store(&t.store, &VerifyOptions::default())
            .unwrap()
            .records(),
        16
    );
}

/// While it gathers, the writer takes the records already sent into its open transaction
/// (the chain file's write lock is held), so that only the last few inserts and the COMMIT are
/// left once the set is complete; then it commits at once, every record in order.
#[tokio::test]
async fn the_writer_inserts_records_while_it_gathers() {
    let t = Trail::new();
    let a = slow_gathering_auditor(&t);
    let guards: Vec<_> = (0..20).map(|_| a.begin()).collect();
    let send = |i: i64| {
        let a = a.clone();
        tokio::spawn(async move { a.record(&draft(i, now_ms())).await })
    };
    let first: Vec<_> = (1..=19).map(send).collect();
    // The 20th request has not sent its record: the writer is gathering, in its transaction.
    let chain = strongroom::store::audit_chain_path(t.url.trim_start_matches("sqlite://"));
    let mut probe = diesel::SqliteConnection::establish(&chain).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match probe.batch_execute("BEGIN IMMEDIATE") {
            Err(e) if e.to_string().contains("locked") => break,
            Err(e) => panic!("{e}"),
            Ok(()) => {
                probe.batch_execute("ROLLBACK").unwrap();
                assert!(
                    Instant::now() < deadline,
                    "the writer never opened its transaction"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    let start = Instant::now();
    let last = send(20);
    for task in first.into_iter().chain([last]) {
        task.await.unwrap().unwrap();
    }
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    drop(guards);
    assert_eq!(a.load_counts(), (0, 0));
    let rows = t
        .store
        .read_blocking(|tx| Ok(tx.audit_range("chain-a", 0, 100)?))
        .unwrap();
    assert_eq!(rows.len(), 20);
    assert!(rows.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert_eq!(t.verify(), None);
}

/// A write's record goes into its own write transaction, not through the writer: while the
/// write is under way the writer does not count it, so a concurrent read's record commits at
/// once instead of waiting out the gather window for a record that never comes.
#[tokio::test]
async fn a_write_under_way_does_not_hold_back_the_reads_records() {
    let t = Trail::new();
    let a = slow_gathering_auditor(&t);
    let write = a.begin();
    let read = a.begin();
    assert_eq!(a.load_counts(), (2, 0));
    // A background event's record changes nothing (it was never counted).
    let background = a
        .in_transaction(draft(0, now_ms()), Box::new(|_, _| true))
        .unwrap();
    assert_eq!(a.load_counts(), (2, 0));
    drop(background);
    assert_eq!(a.load_counts(), (2, 0));
    let in_tx = a
        .in_request_transaction(draft(0, now_ms()), Box::new(|_, _| true))
        .unwrap();
    assert_eq!(
        a.load_counts(),
        (1, 0),
        "the write is not expected to send a record"
    );
    let start = Instant::now();
    a.record(&draft(1, now_ms())).await.unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    // A write that failed is recorded through the writer: expected again once its
    // transaction's record is gone, until the request ends.
    drop(in_tx);
    assert_eq!(a.load_counts().0, 2);
    drop((read, write));
    assert_eq!(a.load_counts(), (0, 0));
}

#[test]
fn requests_fail_closed_and_quickly_when_the_trail_cannot_be_written() {
    let s = TestServer::start();
    assert_eq!(s.call("secretsmanager.ListSecrets", "{}").status, 200);
    // Another connection holds the chain file's write lock: the record cannot commit.
    let path = strongroom::store::audit_chain_path(s.database_url.trim_start_matches("sqlite://"));
    let mut holder = diesel::SqliteConnection::establish(&path).unwrap();
    holder.batch_execute("BEGIN EXCLUSIVE").unwrap();
    let start = Instant::now();
    let r = s.call("secretsmanager.ListSecrets", "{}");
    let elapsed = start.elapsed();
    holder.batch_execute("COMMIT").unwrap();
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.error_type(), "InternalServiceError");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // Once the lock is gone, requests are recorded again.
    assert_eq!(s.call("secretsmanager.ListSecrets", "{}").status, 200);
}

#[tokio::test]
async fn lookup_events_finds_filters_and_pages() {
    let s = TestServer::start();
    let c = s.client();
    c.create_secret()
        .name("ct/one")
        .secret_string(MARKER)
        .send()
        .await
        .unwrap();
    c.get_secret_value()
        .secret_id("ct/one")
        .send()
        .await
        .unwrap();
    c.describe_secret()
        .secret_id("ct/one")
        .send()
        .await
        .unwrap();
    let _ = c.describe_secret().secret_id("ct/missing").send().await;
    // unauthenticated: recorded, but belongs to no account
    let bad = Signing {
        secret: "wrong".into(),
        ..Signing::default()
    };
    let r = s.raw(&signed_request("secretsmanager.ListSecrets", b"{}", bad));
    assert_eq!(r.status, 400);

    let r = lookup(&s, &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let events = r.json()["Events"].as_array().unwrap().clone();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["EventName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "DescribeSecret",
            "DescribeSecret",
            "GetSecretValue",
            "CreateSecret"
        ],
        "newest first, the bad signature not in the account's trail"
    );
    let get = &events[2];
    assert_eq!(get["ReadOnly"], "true");
    assert_eq!(get["Username"], "root");
    assert_eq!(get["AccessKeyId"], AKID);
    assert_eq!(get["EventSource"], "secretsmanager.amazonaws.com");
    assert_eq!(
        get["Resources"][0]["ResourceType"],
        "AWS::SecretsManager::Secret"
    );
    let arn = get["Resources"][0]["ResourceName"].as_str().unwrap();
    assert!(arn.contains(":secret:ct/one-"), "{arn}");
    let ct: Value = serde_json::from_str(get["CloudTrailEvent"].as_str().unwrap()).unwrap();
    assert_eq!(ct["eventName"], "GetSecretValue");
    assert_eq!(ct["responseElements"], Value::Null);
    assert!(get["EventTime"].as_f64().unwrap() > 1.7e9);
    assert_eq!(
        events[0]["Resources"][0]["ResourceName"].as_str().unwrap(),
        format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:ct/missing")
    );
    assert!(!r.body.contains(MARKER));

    // each lookup attribute
    let one = |k: &str, v: &str| {
        let r = lookup(
            &s,
            &json!({"LookupAttributes": [{"AttributeKey": k, "AttributeValue": v}]}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["Events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["EventName"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(one("EventName", "GetSecretValue"), ["GetSecretValue"]);
    // (CreateSecret too, once the pipeline records the new secret's ARN)
    let by_arn = one("ResourceName", arn);
    assert!(
        by_arn.starts_with(&["DescribeSecret".to_owned(), "GetSecretValue".to_owned()]),
        "{by_arn:?}"
    );
    assert_eq!(one("ResourceName", "ct/one"), by_arn);
    assert_eq!(one("ReadOnly", "false"), ["CreateSecret"]);
    assert!(one("Username", "root").len() >= 4);
    assert!(one("AccessKeyId", AKID).len() >= 4);
    assert!(!one("EventSource", "cloudtrail.amazonaws.com").is_empty());
    assert_eq!(one("ResourceType", "AWS::KMS::Key").len(), 0);
    let id = events[1]["EventId"].as_str().unwrap();
    assert_eq!(one("EventId", id), ["DescribeSecret"]);

    // pagination: 2 at a time, same order, nothing twice
    let mut seen = vec![];
    let mut token: Option<String> = None;
    let filter =
        json!([{"AttributeKey": "EventSource", "AttributeValue": "secretsmanager.amazonaws.com"}]);
    loop {
        let mut body = json!({"MaxResults": 2, "LookupAttributes": filter});
        if let Some(t) = &token {
            body["NextToken"] = json!(t);
        }
        let r = lookup(&s, &body);
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        for e in v["Events"].as_array().unwrap() {
            seen.push(e["EventId"].as_str().unwrap().to_owned());
        }
        match v["NextToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    let all: Vec<String> = lookup(&s, &json!({"LookupAttributes": filter})).json()["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["EventId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, all);

    // time range
    let r = lookup(&s, &json!({"StartTime": 1.0, "EndTime": 2.0}));
    assert_eq!(r.json()["Events"].as_array().unwrap().len(), 0);

    // errors
    for (body, code) in [
        (json!({"MaxResults": 0}), "InvalidMaxResultsException"),
        (json!({"MaxResults": 51}), "InvalidMaxResultsException"),
        (
            json!({"StartTime": 5.0, "EndTime": 1.0}),
            "InvalidTimeRangeException",
        ),
        (
            json!({"LookupAttributes": [{"AttributeKey": "Nope", "AttributeValue": "x"}]}),
            "InvalidLookupAttributesException",
        ),
        (
            json!({"LookupAttributes": [
                {"AttributeKey": "EventName", "AttributeValue": "x"},
                {"AttributeKey": "Username", "AttributeValue": "y"}]}),
            "InvalidLookupAttributesException",
        ),
        (json!({"NextToken": "garbage"}), "InvalidNextTokenException"),
    ] {
        let r = lookup(&s, &body);
        assert_eq!(r.error_type(), code, "{body}: {}", r.body);
    }
    // a token is bound to its query
    let r = lookup(&s, &json!({"MaxResults": 1}));
    let t = r.json()["NextToken"].as_str().unwrap().to_owned();
    let r = lookup(
        &s,
        &json!({"NextToken": t, "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "CreateSecret"}]}),
    );
    assert_eq!(r.error_type(), "InvalidNextTokenException");
}

#[tokio::test]
async fn no_secret_material_or_raw_tokens_in_the_trail() {
    let s = TestServer::start();
    let c = s.client();
    let token = "TOKEN-5b1f0c2a-7d3e-4f60-9a8b-0c1d2e3f4a5b";
    c.create_secret()
        .name("hyg")
        .secret_string(MARKER)
        .client_request_token(token)
        .send()
        .await
        .unwrap();
    c.put_secret_value()
        .secret_id("hyg")
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(
            MARKER.as_bytes(),
        ))
        .send()
        .await
        .unwrap();
    c.get_secret_value().secret_id("hyg").send().await.unwrap();
    let pw = c.get_random_password().send().await.unwrap();
    let pw = pw.random_password().unwrap().to_owned();
    let store = Store::open(&s.database_url).unwrap();
    let rows = store
        .query_audit_blocking(&AuditFilter {
            limit: 1000,
            ..AuditFilter::default()
        })
        .unwrap();
    assert!(rows.len() >= 4);
    for r in &rows {
        for needle in [MARKER, pw.as_str(), token, crate::common::SECRET] {
            assert!(!r.record.contains(needle), "{needle} in {}", r.record);
        }
    }
    let create = rows
        .iter()
        .find(|r| r.event_name == "CreateSecret")
        .unwrap();
    let v: Value = serde_json::from_str(&create.record).unwrap();
    let h = v["requestParameters"]["clientRequestToken"]
        .as_str()
        .unwrap();
    assert!(h.starts_with("hmac-sha256:"), "{h}");
}

#[test]
#[ignore = "benchmark: inserts 1,000,000 records (run with --ignored --nocapture)"]
fn million_records_query_times() {
    let dir = std::env::var("STRONGROOM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("strongroom-audit-bench"));
    // STRONGROOM_BENCH_REUSE=1 keeps a database filled by an earlier run.
    let reuse =
        std::env::var("STRONGROOM_BENCH_REUSE").is_ok() && dir.join("strongroom.db").exists();
    if !reuse {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("strongroom.db").display());
    let store = Store::open(&url).unwrap();
    let n: i64 = 1_000_000;
    let t0 = store
        .read_blocking(|tx| Ok(tx.audit_record("bench", 1)?))
        .unwrap()
        .map_or(now_ms() - 90 * 86_400_000, |r| r.event_time - 1);
    let step = 90 * 86_400_000 / n;
    if !reuse {
        let start = Instant::now();
        let mut in_db = Duration::ZERO;
        let mut prev = strongroom::audit::GENESIS.to_owned();
        let batch = 20_000;
        for b in 0..(n / batch) {
            let mut rows = Vec::with_capacity(usize::try_from(batch).unwrap());
            for k in 0..batch {
                let i = b * batch + k + 1;
                let mut d = draft(i, t0 + i * step);
                d.principal = Some(Arc::new(user(&format!("u{}", i % 1000))));
                d.resource_arn = Some(format!(
                    "arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/s{}-AbCdEf",
                    i % 10_000
                ));
                d.source_ip = Some(format!("10.0.{}.{}", (i / 256) % 256, i % 256));
                let text = d.to_record(&format!("ev-{i}")).to_string();
                let ix = Index::of(&serde_json::from_str(&text).unwrap());
                let row = row_for("bench", i, &prev, &text, &ix);
                prev = row.hash.clone();
                rows.push(row);
            }
            let s = Instant::now();
            store
                .write_blocking(move |tx| Ok(tx.insert_audits(&rows)?))
                .unwrap();
            in_db += s.elapsed();
        }
        let insert = start.elapsed();
        println!(
            "inserted {n} records in {insert:?}; {in_db:?} of it in INSERT transactions ({:.0} records/s)",
            n as f64 / in_db.as_secs_f64()
        );
    }
    let time = |name: &str, f: AuditFilter| {
        let f2 = f.clone();
        let _ = store.query_audit_blocking(&f2); // warm
        let s = Instant::now();
        let rows = store.query_audit_blocking(&f).unwrap();
        let e = s.elapsed();
        println!(
            "{name:<48} {:>5} rows  {:>9.2} ms",
            rows.len(),
            e.as_secs_f64() * 1e3
        );
        assert!(
            name.contains("worst case") || e < Duration::from_secs(1),
            "{name}: {e:?}"
        );
    };
    let acct = || AuditFilter {
        account_id: Some(ACCOUNT.into()),
        limit: 50,
        ..AuditFilter::default()
    };
    time("LookupEvents: newest 50", acct());
    time(
        "LookupEvents: Username (1 of 1000)",
        AuditFilter {
            user_name: Some("u7".into()),
            ..acct()
        },
    );
    time(
        "LookupEvents: ResourceName = name",
        AuditFilter {
            resource_name: Some("app/s42".into()),
            ..acct()
        },
    );
    time(
        "LookupEvents: ResourceName = ARN",
        AuditFilter {
            resource_name: Some(format!(
                "arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/s42-AbCdEf"
            )),
            ..acct()
        },
    );
    time(
        "LookupEvents: EventName, 30-day window",
        AuditFilter {
            event_name: Some("DescribeSecret".into()),
            since_ms: Some(t0 + 30 * 86_400_000),
            until_ms: Some(t0 + 60 * 86_400_000),
            ..acct()
        },
    );
    time(
        "LookupEvents: ReadOnly=false (none: worst case)",
        AuditFilter {
            read_only: Some(false),
            ..acct()
        },
    );
    time(
        "LookupEvents: EventId",
        AuditFilter {
            event_id: Some("ev-777777".into()),
            ..acct()
        },
    );
    time(
        "LookupEvents: page 100 (keyset cursor)",
        AuditFilter {
            before: Some((t0 + 500_000 * step, "bench".into(), 500_000)),
            ..acct()
        },
    );
    time(
        "audit query: --principal (1000 newest)",
        AuditFilter {
            principal_arn: Some(format!("arn:aws:iam::{ACCOUNT}:user/u7")),
            limit: 1000,
            ..AuditFilter::default()
        },
    );
    time(
        "audit query: --secret app/s42 (name prefix)",
        AuditFilter {
            resource_prefix: Some("app/s42".into()),
            limit: 1000,
            ..AuditFilter::default()
        },
    );
    time(
        "audit query: --secret ARN prefix app/s42",
        AuditFilter {
            resource_prefix: Some(format!(
                "arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/s42"
            )),
            limit: 1000,
            ..AuditFilter::default()
        },
    );
    time(
        "audit query: --since/--until one day",
        AuditFilter {
            since_ms: Some(t0 + 45 * 86_400_000),
            until_ms: Some(t0 + 46 * 86_400_000),
            limit: 100_000,
            ..AuditFilter::default()
        },
    );
    time(
        "audit query: --denied, one week",
        AuditFilter {
            denied_only: true,
            since_ms: Some(t0 + 10 * 86_400_000),
            until_ms: Some(t0 + 17 * 86_400_000),
            limit: 100_000,
            ..AuditFilter::default()
        },
    );
    time(
        "audit query: --source-ip",
        AuditFilter {
            source_ip: Some("10.0.3.7".into()),
            limit: 1000,
            ..AuditFilter::default()
        },
    );
    time(
        "audit query: --error-code (100 newest)",
        AuditFilter {
            error_code: Some("AccessDeniedException".into()),
            limit: 100,
            ..AuditFilter::default()
        },
    );
    let s = Instant::now();
    let report = verify_store(&store, &VerifyOptions::default()).unwrap();
    assert!(report.first_finding().is_none());
    println!("verify {} records: {:?}", report.records(), s.elapsed());
}

#[test]
#[ignore = "benchmark: group-commit throughput (run with --ignored --nocapture, ideally --release)"]
fn auditor_throughput() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_all()
        .build()
        .unwrap();
    for (label, digests) in [
        ("signed digests every 1000", 1000),
        ("digest every record", 1),
    ] {
        let t = Trail::new();
        let a = t.auditor(digests);
        let n: u32 = 19_968;
        let start = Instant::now();
        rt.block_on(async {
            let tasks: Vec<_> = (0..64)
                .map(|w| {
                    let a = a.clone();
                    tokio::spawn(async move {
                        for i in 0..i64::from(n / 64) {
                            a.record(&draft(w * 10_000 + i, now_ms())).await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            a.flush().await.unwrap();
        });
        let e = start.elapsed();
        println!(
            "{label}: {n} records from 64 concurrent writers in {e:?} ({:.0} records/s)",
            f64::from(n) / e.as_secs_f64()
        );
    }
}

/// Every record of a server's store, in chain order.
fn all_records(database_url: &str) -> Vec<strongroom::store::rows::AuditRow> {
    let store = Store::open(database_url).unwrap();
    store
        .read_blocking(|tx| {
            let mut out = Vec::new();
            for c in tx.audit_chains()? {
                out.extend(tx.audit_range(&c, 0, 1_000_000)?);
            }
            Ok(out)
        })
        .unwrap()
}

/// The records of one request id.
fn records_of(
    rows: &[strongroom::store::rows::AuditRow],
    request_id: &str,
) -> Vec<(String, Value)> {
    rows.iter()
        .filter_map(|r| {
            let v: Value = serde_json::from_str(&r.record).unwrap();
            (v["requestID"] == request_id).then(|| (r.event_name.clone(), v))
        })
        .collect()
}

fn request_id(r: &crate::common::RawResponse) -> String {
    r.header("x-amzn-RequestId").unwrap().to_owned()
}

/// A write's record is appended in the write's own transaction: when the record cannot be
/// written, the change is rolled back with it (and the failure is recorded apart).
#[test]
fn a_write_and_its_record_commit_together() {
    let s = TestServer::start();
    let put = |v: &str| {
        s.call(
            "secretsmanager.PutSecretValue",
            &json!({"SecretId": "tx/one", "SecretString": v, "ClientRequestToken": uuid::Uuid::new_v4().to_string()}).to_string(),
        )
    };
    let r = s.call(
        "secretsmanager.CreateSecret",
        &json!({"Name": "tx/one", "SecretString": "v1", "ClientRequestToken": uuid::Uuid::new_v4().to_string()}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // The store refuses successful PutSecretValue records (only those).
    let path = strongroom::store::audit_chain_path(s.database_url.trim_start_matches("sqlite://"));
    let mut c = diesel::SqliteConnection::establish(&path).unwrap();
    c.batch_execute(
        "PRAGMA busy_timeout = 5000;
         CREATE TRIGGER refuse_put BEFORE INSERT ON audit_events
         WHEN NEW.event_name = 'PutSecretValue' AND NEW.error_code IS NULL
         BEGIN SELECT RAISE(ABORT, 'refused by test'); END;",
    )
    .unwrap();
    let refused = put("v2");
    assert_eq!(refused.status, 500, "{}", refused.body);
    assert_eq!(refused.error_type(), "InternalServiceError");
    let get = s.call("secretsmanager.GetSecretValue", r#"{"SecretId":"tx/one"}"#);
    assert_eq!(
        get.json()["SecretString"],
        "v1",
        "the change was rolled back"
    );
    c.batch_execute("DROP TRIGGER refuse_put").unwrap();
    let ok = put("v3");
    assert_eq!(ok.status, 200, "{}", ok.body);

    let rows = all_records(&s.database_url);
    let failed = records_of(&rows, &request_id(&refused));
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].1["errorCode"], "InternalServiceError");
    let done = records_of(&rows, &request_id(&ok));
    assert_eq!(done.len(), 1, "{done:?}");
    let v = &done[0].1;
    assert_eq!(v["eventName"], "PutSecretValue");
    assert_eq!(v["errorCode"], Value::Null);
    assert_eq!(v["readOnly"], false);
    assert_eq!(v["authorization"]["decision"], "Allow");
    assert_eq!(v["responseElements"]["name"], "tx/one");
    assert_eq!(
        v["responseElements"]["versionStages"],
        json!(["AWSCURRENT"])
    );
    assert!(v["responseElements"]["arn"]
        .as_str()
        .unwrap()
        .contains(":secret:tx/one-"));
    // seqs are contiguous and the chain verifies
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (1..=i64::try_from(rows.len()).unwrap()).collect::<Vec<_>>()
    );
    let store = Store::open(&s.database_url).unwrap();
    let report = verify_store(&store, &VerifyOptions::default()).unwrap();
    assert!(
        report.first_finding().is_none(),
        "{:?}",
        report.first_finding()
    );
}

/// Reads (group-committed) and writes (in their own transactions) interleave on one chain:
/// one record per request, seqs contiguous, the chain verifies. On PostgreSQL the writes
/// conflict (one secret) and are retried; each retry rebuilds its record.
fn interleaved_reads_and_writes(s: &TestServer) {
    let r = s.call(
        "secretsmanager.CreateSecret",
        &json!({"Name": "mix", "SecretString": "v0", "ClientRequestToken": uuid::Uuid::new_v4().to_string()}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let ids = std::sync::Mutex::new(vec![request_id(&r)]);
    std::thread::scope(|scope| {
        for w in 0..6 {
            let ids = &ids;
            scope.spawn(move || {
                for i in 0..15 {
                    let r = if w % 2 == 0 {
                        s.call(
                            "secretsmanager.PutSecretValue",
                            &json!({"SecretId": "mix", "SecretString": format!("v{w}-{i}"), "ClientRequestToken": uuid::Uuid::new_v4().to_string()})
                                .to_string(),
                        )
                    } else {
                        s.call("secretsmanager.GetSecretValue", r#"{"SecretId":"mix"}"#)
                    };
                    assert_eq!(r.status, 200, "{}", r.body);
                    ids.lock().unwrap().push(request_id(&r));
                }
            });
        }
    });
    let rows = all_records(&s.database_url);
    let ids = ids.into_inner().unwrap();
    for id in &ids {
        assert_eq!(records_of(&rows, id).len(), 1, "request {id}");
    }
    let puts = rows
        .iter()
        .filter(|r| r.event_name == "PutSecretValue")
        .count();
    assert_eq!(puts, 45);
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (1..=i64::try_from(rows.len()).unwrap()).collect::<Vec<_>>()
    );
    let store = Store::open(&s.database_url).unwrap();
    let report = verify_store(&store, &VerifyOptions::default()).unwrap();
    assert!(
        report.first_finding().is_none(),
        "{:?}",
        report.first_finding()
    );
}

#[test]
fn reads_and_writes_share_one_chain_sqlite() {
    interleaved_reads_and_writes(&TestServer::start());
}

#[test]
fn reads_and_writes_share_one_chain_postgres() {
    let Some(base) = crate::common::postgres_base_url() else {
        eprintln!("skipped: STRONGROOM_TEST_DATABASE_URL not set");
        return;
    };
    interleaved_reads_and_writes(&TestServer::start_postgres(&base));
}

/// Pruning a whole chain, then a restart (a new auditor: nothing cached): the chain goes on
/// from the signed anchor and verifies.
#[tokio::test]
async fn a_fully_pruned_chain_continues_from_its_anchor() {
    let t = Trail::new();
    let a = t.auditor(1000);
    fill(&a, 5, |i| now_ms() - 10_000 + i).await;
    let keys = AuditKeys::load(&t.key_path()).unwrap();
    let out = t.dir.path().join("export");
    let s = strongroom::audit::export::prune(&t.store, &keys, &out, now_ms() + 1, now_ms(), &[])
        .unwrap();
    assert_eq!(s.pruned, vec![("chain-a".to_owned(), 5, 5)]);
    assert!(all_records(&t.url).is_empty());
    drop(a);
    let b = t.auditor(1000);
    fill(&b, 3, |i| now_ms() + i).await;
    assert_eq!(t.verify(), None);
    let seqs: Vec<i64> = all_records(&t.url).iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [6, 7, 8]);
    assert_eq!(exported_records(&out).len(), 5);
}

/// A server with `max_age` retention, run every `every`.
fn start_with_retention(max_age: Duration, every: Duration) -> (TestServer, PathBuf) {
    use strongroom::config::{AuditRetention, ServeConfig, StoreConfig};
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let export_dir = dir.path().join("trail");
    let database_url = format!("sqlite://{}", data_dir.join("strongroom.db").display());
    let cfg = ServeConfig {
        store: StoreConfig {
            data_dir: data_dir.clone(),
            database_url: database_url.clone(),
            master_key_file: data_dir.join("master.key"),
            read_mmap_bytes: 0,
            pg_change_check: std::time::Duration::ZERO,
        },
        listen: "127.0.0.1:0".into(),
        tls: None,
        account_id: ACCOUNT.into(),
        regions: vec!["us-east-1".into()],
        purge_interval_secs: 60,
        policies: None,
        trusted_proxies: vec![],
        audit_retention: Some(AuditRetention {
            max_age,
            every,
            export_dir: export_dir.clone(),
        }),
        audit_digest_dir: None,
        metrics_listen: None,
        quotas: None,
        console: false,
        peers: Default::default(),
        rotation: Default::default(),
        client_timeouts: Default::default(),
        audit_unauthenticated: Default::default(),
    };
    (TestServer::launch(cfg, dir, database_url), export_dir)
}

/// Retention at serve time: old records go to the export directory and are deleted under a
/// signed anchor; what remains verifies (also with `strongroom audit verify`), the server
/// keeps appending, and every run is recorded.
#[test]
fn retention_exports_and_prunes_while_serving() {
    let (s, trail) = start_with_retention(Duration::from_millis(1500), Duration::from_millis(500));
    let r = s.call(
        "secretsmanager.CreateSecret",
        &json!({"Name": "ret/one", "SecretString": MARKER, "ClientRequestToken": uuid::Uuid::new_v4().to_string()}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let early = request_id(&r);
    let get = s.call("secretsmanager.GetSecretValue", r#"{"SecretId":"ret/one"}"#);
    assert_eq!(get.status, 200);
    let early_get = request_id(&get);
    // wait until both are pruned
    let store = Store::open(&s.database_url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = all_records(&s.database_url);
        if records_of(&rows, &early).is_empty() && records_of(&rows, &early_get).is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "records were not pruned");
        std::thread::sleep(Duration::from_millis(200));
    }
    // exported first, with their contents
    let exported = exported_records(&trail);
    let of = |id: &str| {
        exported
            .iter()
            .filter(|r| r["requestID"] == id)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(of(&early).len(), 1);
    assert_eq!(of(&early)[0]["eventName"], "CreateSecret");
    assert_eq!(of(&early_get).len(), 1);
    for r in &exported {
        assert!(!r.to_string().contains(MARKER));
    }
    // the server goes on appending; what remains verifies from the anchor
    for _ in 0..3 {
        assert_eq!(s.call("secretsmanager.ListSecrets", "{}").status, 200);
    }
    let report = verify_store(
        &store,
        &VerifyOptions {
            trusted_keys: vec![AuditKeys::load(&s.data_dir().join("audit-signing.key"))
                .unwrap()
                .public_hex()
                .to_owned()],
            chain: None,
            anchors: Vec::new(),
        },
    )
    .unwrap();
    assert!(
        report.first_finding().is_none(),
        "{:?}",
        report.first_finding()
    );
    assert!(report.chains[0].pruned_through.is_some_and(|p| p >= 2));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["audit", "verify", "--data-dir"])
        .arg(s.data_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("pruned through"), "{text}");
    // every run is a background event (exported or still in the store)
    let runs: Vec<Value> = all_records(&s.database_url)
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.record).unwrap())
        .chain(exported_records(&trail))
        .filter(|r| r["eventName"] == "PruneAuditRecords")
        .collect();
    assert!(!runs.is_empty());
    for r in &runs {
        assert_eq!(r["eventType"], "AwsServiceEvent");
        assert_eq!(r["eventSource"], "strongroom.local");
        assert_eq!(r["errorCode"], Value::Null, "{r}");
    }
    assert!(
        runs.iter().any(|r| r["authorization"]["reason"]
            .as_str()
            .is_some_and(|m| m.contains("under a signed anchor"))),
        "{runs:?}"
    );
}

/// What one request's record must say.
struct Want {
    name: &'static str,
    source: &'static str,
    read_only: Option<bool>,
    /// `None`: the request succeeded.
    error: Option<String>,
    /// `Allow` / `Deny`, or `None` when no decision was made.
    decision: Option<&'static str>,
    /// A substring of the one resource's ARN, or `None` for no resource.
    resource: Option<String>,
    /// The caller's ARN, or `None` when unauthenticated.
    caller: Option<String>,
}

/// Check that `r` has exactly one record, and that it says what `w` says.
fn check_record(
    rows: &[strongroom::store::rows::AuditRow],
    r: &crate::common::RawResponse,
    w: &Want,
) {
    let id = request_id(r);
    let recs = records_of(rows, &id);
    assert_eq!(recs.len(), 1, "{}: {} records for {id}", w.name, recs.len());
    let v = &recs[0].1;
    let ctx = format!("{}: {v}", w.name);
    assert_eq!(v["eventVersion"], "1.08", "{ctx}");
    assert_eq!(v["eventName"], w.name, "{ctx}");
    assert_eq!(v["eventSource"], w.source, "{ctx}");
    assert_eq!(v["eventType"], "AwsApiCall", "{ctx}");
    assert_eq!(v["managementEvent"], true, "{ctx}");
    assert_eq!(v["eventCategory"], "Management", "{ctx}");
    assert_eq!(v["sourceIPAddress"], "127.0.0.1", "{ctx}");
    assert!(
        uuid::Uuid::parse_str(v["eventID"].as_str().unwrap()).is_ok(),
        "{ctx}"
    );
    let t = strongroom::audit::parse_rfc3339_ms(v["eventTime"].as_str().unwrap()).unwrap();
    assert!((now_ms() - t).abs() < 600_000, "{ctx}");
    assert_eq!(v["readOnly"], json!(w.read_only), "{ctx}");
    match &w.error {
        None => {
            assert!(r.status < 300, "{ctx}: {}", r.body);
            assert_eq!(v["errorCode"], Value::Null, "{ctx}");
            assert_eq!(v["errorMessage"], Value::Null, "{ctx}");
        }
        Some(code) => {
            assert!(r.status >= 400, "{ctx}");
            assert_eq!(v["errorCode"], code.as_str(), "{ctx}");
            assert!(v["errorMessage"].is_string(), "{ctx}");
        }
    }
    assert_eq!(v["authorization"]["decision"], json!(w.decision), "{ctx}");
    if w.decision.is_some() {
        assert!(v["authorization"]["reason"].is_string(), "{ctx}");
    }
    match &w.resource {
        None => assert_eq!(v["resources"], json!([]), "{ctx}"),
        Some(part) => {
            let res = v["resources"].as_array().unwrap();
            assert_eq!(res.len(), 1, "{ctx}");
            assert!(
                res[0]["ARN"].as_str().unwrap().contains(part.as_str()),
                "{ctx}"
            );
            assert!(
                res[0]["type"].is_string() && res[0]["accountId"].is_string(),
                "{ctx}"
            );
        }
    }
    match &w.caller {
        None => {
            assert_eq!(v["userIdentity"], Value::Null, "{ctx}");
            assert_eq!(v["recipientAccountId"], Value::Null, "{ctx}");
        }
        Some(arn) => {
            assert_eq!(v["userIdentity"]["arn"], arn.as_str(), "{ctx}");
            assert_eq!(v["userIdentity"]["accountId"], ACCOUNT, "{ctx}");
            assert!(v["userIdentity"]["accessKeyId"].is_string(), "{ctx}");
            assert!(v["userIdentity"]["type"].is_string(), "{ctx}");
            assert_eq!(v["recipientAccountId"], ACCOUNT, "{ctx}");
            assert_eq!(v["awsRegion"], "us-east-1", "{ctx}");
        }
    }
    if ["GetSecretValue", "BatchGetSecretValue", "GetRandomPassword"].contains(&w.name) {
        assert_eq!(v["responseElements"], Value::Null, "{ctx}");
    }
    assert!(!v.to_string().contains(MARKER), "{ctx}");
    if let Err(e) = cloudtrail_shape(v) {
        panic!("{ctx}: not CloudTrail's documented shape: {e}");
    }
}

/// Every operation, failure, unauthenticated and malformed request gets exactly one record
/// with the right fields (successful writes' records are made in their own transaction,
/// the rest by the group-commit writer: the fields are the same).
#[test]
fn every_request_gets_exactly_one_record_with_its_fields() {
    let s = TestServer::start();
    let root = format!("arn:aws:iam::{ACCOUNT}:root");
    let sm = "secretsmanager.amazonaws.com";
    let mut seen: Vec<(crate::common::RawResponse, Want)> = Vec::new();
    let ok = |name: &'static str, read_only: bool, resource: Option<&str>| Want {
        name,
        source: sm,
        read_only: Some(read_only),
        error: None,
        decision: Some("Allow"),
        resource: resource.map(str::to_owned),
        caller: Some(format!("arn:aws:iam::{ACCOUNT}:root")),
    };
    let mut call = |target: &str, body: Value, want: Want| {
        let r = s.call(target, &body.to_string());
        seen.push((r, want));
        seen.last().unwrap().0.json()
    };
    let sec = Some(":secret:one/a-");
    let created = call(
        "secretsmanager.CreateSecret",
        json!({"Name": "one/a", "SecretString": MARKER, "Tags": [{"Key": "team", "Value": "x"}], "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
        ok("CreateSecret", false, sec),
    );
    assert!(created["ARN"].is_string(), "{created}");
    call(
        "secretsmanager.GetSecretValue",
        json!({"SecretId": "one/a"}),
        ok("GetSecretValue", true, sec),
    );
    let put = call(
        "secretsmanager.PutSecretValue",
        json!({"SecretId": "one/a", "SecretString": MARKER, "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
        ok("PutSecretValue", false, sec),
    );
    call(
        "secretsmanager.DescribeSecret",
        json!({"SecretId": "one/a"}),
        ok("DescribeSecret", true, sec),
    );
    call(
        "secretsmanager.UpdateSecret",
        json!({"SecretId": "one/a", "Description": "d"}),
        ok("UpdateSecret", false, sec),
    );
    call(
        "secretsmanager.ListSecrets",
        json!({}),
        ok("ListSecrets", true, None),
    );
    call(
        "secretsmanager.ListSecretVersionIds",
        json!({"SecretId": "one/a"}),
        ok("ListSecretVersionIds", true, sec),
    );
    call(
        "secretsmanager.UpdateSecretVersionStage",
        json!({"SecretId": "one/a", "VersionStage": "blue", "MoveToVersionId": put["VersionId"]}),
        ok("UpdateSecretVersionStage", false, sec),
    );
    call(
        "secretsmanager.TagResource",
        json!({"SecretId": "one/a", "Tags": [{"Key": "k", "Value": "v"}]}),
        ok("TagResource", false, sec),
    );
    call(
        "secretsmanager.UntagResource",
        json!({"SecretId": "one/a", "TagKeys": ["k"]}),
        ok("UntagResource", false, sec),
    );
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})
    .to_string();
    call(
        "secretsmanager.PutResourcePolicy",
        json!({"SecretId": "one/a", "ResourcePolicy": policy}),
        ok("PutResourcePolicy", false, sec),
    );
    call(
        "secretsmanager.GetResourcePolicy",
        json!({"SecretId": "one/a"}),
        ok("GetResourcePolicy", true, sec),
    );
    call(
        "secretsmanager.ValidateResourcePolicy",
        json!({"ResourcePolicy": policy}),
        ok("ValidateResourcePolicy", true, None),
    );
    call(
        "secretsmanager.DeleteResourcePolicy",
        json!({"SecretId": "one/a"}),
        ok("DeleteResourcePolicy", false, sec),
    );
    call(
        "secretsmanager.GetRandomPassword",
        json!({}),
        ok("GetRandomPassword", true, None),
    );
    call(
        "secretsmanager.BatchGetSecretValue",
        json!({"SecretIdList": ["one/a"]}),
        ok("BatchGetSecretValue", true, None),
    );
    call(
        "secretsmanager.DeleteSecret",
        json!({"SecretId": "one/a", "RecoveryWindowInDays": 7}),
        ok("DeleteSecret", false, sec),
    );
    call(
        "secretsmanager.RestoreSecret",
        json!({"SecretId": "one/a"}),
        ok("RestoreSecret", false, sec),
    );
    // KMS and CloudTrail
    let kms = |name, read_only, resource: Option<&str>| Want {
        source: "kms.amazonaws.com",
        ..ok(name, read_only, resource)
    };
    let key = call(
        "TrentService.CreateKey",
        json!({"Description": "k"}),
        kms("CreateKey", false, None),
    );
    let key_id = key["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    call(
        "TrentService.DescribeKey",
        json!({"KeyId": key_id}),
        kms("DescribeKey", true, Some(key_id.as_str())),
    );
    call(
        "TrentService.ListKeys",
        json!({}),
        kms("ListKeys", true, None),
    );
    call(
        "TrentService.DisableKey",
        json!({"KeyId": key_id}),
        kms("DisableKey", false, Some(key_id.as_str())),
    );
    call(
        LOOKUP,
        json!({"MaxResults": 1}),
        Want {
            source: "cloudtrail.amazonaws.com",
            ..ok("LookupEvents", true, None)
        },
    );
    // failures, after and before authorization
    let fail = |name, read_only: Option<bool>, code: &str, decision, resource: Option<&str>| Want {
        name,
        source: sm,
        read_only,
        error: Some(code.to_owned()),
        decision,
        resource: resource.map(str::to_owned),
        caller: Some(root.clone()),
    };
    call(
        "secretsmanager.PutSecretValue",
        json!({"SecretId": "missing/x", "SecretString": "x", "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
        fail(
            "PutSecretValue",
            Some(false),
            "ResourceNotFoundException",
            Some("Allow"),
            Some(":secret:missing/x"),
        ),
    );
    call(
        "secretsmanager.CreateSecret",
        json!({"Name": "one/a", "SecretString": "x", "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
        fail(
            "CreateSecret",
            Some(false),
            "ResourceExistsException",
            Some("Allow"),
            Some(":secret:one/a-"),
        ),
    );
    call(
        "secretsmanager.CreateSecret",
        json!({"Name": "bad name!", "SecretString": "x"}),
        fail(
            "CreateSecret",
            Some(false),
            "ValidationException",
            None,
            None,
        ),
    );
    call(
        "secretsmanager.AssociateCrossAccountReplica",
        json!({"SecretId": "one/a"}),
        fail(
            "AssociateCrossAccountReplica",
            Some(false),
            "ValidationException",
            None,
            None,
        ),
    );
    // the error codes of these come from the responses
    let mut raw = |req: Vec<u8>, mut want: Want| {
        let r = s.raw(&req);
        assert!(r.status >= 400, "{}: {}", want.name, r.body);
        want.error = Some(r.error_type());
        seen.push((r, want));
    };
    let unauth = |name: &'static str| Want {
        name,
        source: sm,
        read_only: None,
        error: None,
        decision: None,
        resource: None,
        caller: None,
    };
    // unauthenticated: a wrong secret, an unknown key, no signature at all
    let bad = Signing {
        secret: "wrong".into(),
        ..Signing::default()
    };
    raw(
        signed_request("secretsmanager.ListSecrets", b"{}", bad),
        unauth("ListSecrets"),
    );
    let unknown = Signing {
        akid: "AKIAUNKNOWNUNKNOWN00".into(),
        ..Signing::default()
    };
    raw(
        signed_request("secretsmanager.ListSecrets", b"{}", unknown),
        unauth("ListSecrets"),
    );
    raw(
        b"POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: secretsmanager.ListSecrets\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".to_vec(),
        unauth("ListSecrets"),
    );
    // malformed: a body that is not JSON (authenticated), an unknown operation, no target,
    // not a POST, a body over the limit
    raw(
        signed_request(
            "secretsmanager.ListSecrets",
            b"{not json",
            Signing::default(),
        ),
        Want {
            read_only: Some(true),
            caller: Some(root.clone()),
            ..unauth("ListSecrets")
        },
    );
    raw(
        signed_request("secretsmanager.Nope", b"{}", Signing::default()),
        Want {
            caller: Some(root.clone()),
            ..unauth("Nope")
        },
    );
    raw(
        b"POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".to_vec(),
        Want { source: "", ..unauth("") },
    );
    raw(
        b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n".to_vec(),
        Want {
            source: "",
            ..unauth("")
        },
    );
    let big = vec![b'x'; strongroom::server::MAX_BODY + 1];
    let mut req = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: secretsmanager.PutSecretValue\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        big.len()
    )
    .into_bytes();
    req.extend_from_slice(&big);
    raw(req, unauth("PutSecretValue"));

    let rows = all_records(&s.database_url);
    for (r, w) in &seen {
        check_record(&rows, r, w);
    }
    // A successful write's record carries the identifiers of its response, KMS's too (made
    // in the write's transaction, from the operation's output).
    for (r, w) in &seen {
        if w.error.is_none() && ["CreateSecret", "PutSecretValue", "CreateKey"].contains(&w.name) {
            let recs = records_of(&rows, &request_id(r));
            let v = &recs[0].1;
            let body = r.json();
            match w.name {
                "CreateKey" => assert_eq!(
                    v["responseElements"]["keyMetadata"]["keyId"], body["KeyMetadata"]["KeyId"],
                    "{v}"
                ),
                _ => assert_eq!(v["responseElements"]["arn"], body["ARN"], "{v}"),
            }
        }
    }
    // BatchGetSecretValue also made one GetSecretValue event per secret it read, naming the
    // secret in its request parameters as CloudTrail does
    let gets: Vec<Value> = rows
        .iter()
        .filter(|r| r.event_name == "GetSecretValue" && r.error_code.is_none())
        .map(|r| serde_json::from_str(&r.record).unwrap())
        .collect();
    assert_eq!(gets.len(), 2);
    // the direct call names the secret as it was given; the batch's event, by its ARN
    let mut named: Vec<&str> = gets
        .iter()
        .map(|g| {
            g["requestParameters"]["secretId"]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    named.sort_unstable();
    let arn = gets[0]["resources"][0]["ARN"].as_str().unwrap_or_default();
    assert_eq!(named, [arn, "one/a"], "{gets:?}");
    // a successful write's record carries its response elements (identifiers only)
    let put_rec = &records_of(&rows, &request_id(&seen[2].0))[0].1;
    assert_eq!(put_rec["responseElements"]["name"], "one/a");
    assert!(put_rec["responseElements"].get("versionId").is_none());
    // nothing else was recorded: one record per request, plus the batch's per-secret one
    assert_eq!(rows.len(), seen.len() + 1);
    let store = Store::open(&s.database_url).unwrap();
    assert!(verify_store(&store, &VerifyOptions::default())
        .unwrap()
        .first_finding()
        .is_none());
}

/// Requests signed as `user` of the example policies (a fresh access key).
fn signing_as(s: &TestServer, dir: &Path, user: &str) -> Signing {
    let (akid, secret) = crate::common::mint(s, dir, user);
    Signing {
        akid,
        secret,
        ..Signing::default()
    }
}

/// `target` with `body`, signed by `who`, which must be denied.
fn call_denied(
    s: &TestServer,
    target: &str,
    body: &Value,
    who: &Signing,
) -> crate::common::RawResponse {
    let r = s.call_signed(target, &body.to_string(), who.clone());
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    r
}

/// A denial is recorded once, with the caller, the resource and the deciding policy.
#[tokio::test]
async fn denials_are_recorded_with_the_deciding_policy() {
    let (_d, dir) = crate::common::example_policies();
    let s = TestServer::start_with_policies(&dir);
    let r = s.call(
        "secretsmanager.CreateSecret",
        &json!({"Name": "other/db", "SecretString": "o", "ClientRequestToken": uuid::Uuid::new_v4().to_string()}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let as_alice = signing_as(&s, &dir, "alice");
    let denied = call_denied(
        &s,
        "secretsmanager.PutSecretValue",
        &json!({"SecretId": "other/db", "SecretString": "x", "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
        &as_alice,
    );
    let rows = all_records(&s.database_url);
    let alice = format!("arn:aws:iam::{ACCOUNT}:user/engineering/alice");
    check_record(
        &rows,
        &denied,
        &Want {
            name: "PutSecretValue",
            source: "secretsmanager.amazonaws.com",
            read_only: Some(false),
            error: Some("AccessDeniedException".into()),
            decision: Some("ImplicitDeny"),
            resource: Some(":secret:other/db-".into()),
            caller: Some(alice),
        },
    );
    let v = &records_of(&rows, &request_id(&denied))[0].1;
    assert_eq!(v["userIdentity"]["type"], "IAMUser");
    assert_eq!(v["userIdentity"]["userName"], "alice");
    assert_eq!(
        v["authorization"]["reason"], "NotAllowedBy(Identity)",
        "{v}"
    );
    // an implicit deny has no deciding statement
    assert!(v["authorization"]["decidingPolicyType"].is_null(), "{v}");
    assert!(v["authorization"]["statement"].is_null(), "{v}");
    // an allow names the policy type, the policy and the statement that allowed it
    let allowed = s.call_signed("secretsmanager.ListSecrets", "{}", as_alice.clone());
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let rows = all_records(&s.database_url);
    let v = &records_of(&rows, &request_id(&allowed))[0].1;
    let auth = &v["authorization"];
    assert_eq!(auth["decision"], "Allow", "{v}");
    assert_eq!(auth["decidingPolicyType"], "Identity", "{v}");
    assert!(
        auth["policyArnOrId"]
            .as_str()
            .is_some_and(|p| p.contains("SecretsManagerReadOnly")),
        "{v}"
    );
    assert!(
        auth["statement"].as_str().is_some_and(|s| !s.is_empty()),
        "{v}"
    );
    let rows = Store::open(&s.database_url)
        .unwrap()
        .query_audit_blocking(&AuditFilter {
            denied_only: true,
            limit: 100,
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(
        rows.len(),
        1,
        "`audit query --denied` finds the implicit denial"
    );
}

/// One resource-policy text on two secrets (compiled and cached once, by text): each
/// secret's denial names its own secret's policy.
#[tokio::test]
async fn a_shared_resource_policy_text_is_named_per_secret() {
    let (_d, dir) = crate::common::example_policies();
    let s = TestServer::start_with_policies(&dir);
    let alice = format!("arn:aws:iam::{ACCOUNT}:user/engineering/alice");
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "NoAlice", "Effect": "Deny", "Principal": {"AWS": alice},
                       "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]
    })
    .to_string();
    let mut arns = vec![];
    for name in ["shared/a", "shared/b"] {
        let r = s.call(
            "secretsmanager.CreateSecret",
            &json!({"Name": name, "SecretString": "v", "ClientRequestToken": uuid::Uuid::new_v4().to_string()}).to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        arns.push(r.json()["ARN"].as_str().unwrap().to_owned());
        let r = s.call(
            "secretsmanager.PutResourcePolicy",
            &json!({"SecretId": name, "ResourcePolicy": policy}).to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let as_alice = signing_as(&s, &dir, "alice");
    for arn in &arns {
        let denied = call_denied(
            &s,
            "secretsmanager.GetSecretValue",
            &json!({"SecretId": arn}),
            &as_alice,
        );
        let rows = all_records(&s.database_url);
        let v = &records_of(&rows, &request_id(&denied))[0].1;
        let auth = &v["authorization"];
        assert_eq!(auth["decision"], "ExplicitDeny", "{v}");
        assert_eq!(auth["statement"], "NoAlice", "{v}");
        assert_eq!(
            auth["policyArnOrId"],
            format!("{arn}:resource-policy"),
            "{v}"
        );
    }
}

/// The lookup index is derived data: when its chain no longer matches it (a database restored
/// from an older backup beside a newer index file), it is rebuilt, never trusted.
#[tokio::test]
async fn a_lookup_index_that_no_longer_matches_its_chain_is_rebuilt() {
    let t = Trail::new();
    let by_ip = |ip: &str| {
        t.store
            .query_audit_blocking(&AuditFilter {
                source_ip: Some(ip.into()),
                limit: 100,
                ..AuditFilter::default()
            })
            .unwrap()
    };
    {
        let a = t.auditor(1000);
        fill(&a, 10, |i| now_ms() + i).await;
    }
    // records 1 and 6 came from 10.0.0.1; querying indexes all ten
    assert_eq!(by_ip("10.0.0.1").len(), 2);
    // the chain is "restored" to its first five records; five others then take seq 6..=10
    t.sql("DELETE FROM audit_events WHERE seq > 5");
    {
        let a = t.auditor(1000);
        for i in 1..=5 {
            let mut d = draft(100 + i, now_ms() + 100 + i);
            d.source_ip = Some("10.9.9.9".into());
            a.record(&d).await.unwrap();
        }
    }
    let rows = by_ip("10.9.9.9");
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![10, 9, 8, 7, 6]
    );
    let rows = by_ip("10.0.0.1");
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1]);
}

/// Append `n` records to chain `chain` directly (no auditor): record `i` names secret
/// `app/s{i % 7}` (and records `rare` name `app/rare`), at a time that is out of sequence
/// order now and then, as commit order makes it.
fn append_rows(store: &Store, chain: &str, n: i64, t0: i64, rare: &[i64]) {
    let mut prev = strongroom::audit::GENESIS.to_owned();
    let mut rows = Vec::new();
    for i in 1..=n {
        let at = t0 + i * 10 - if i % 10 == 0 { 25 } else { 0 };
        let mut d = draft(i, at);
        let name = if rare.contains(&i) {
            "app/rare".to_owned()
        } else {
            format!("app/s{}", i % 7)
        };
        d.resource_arn = Some(format!(
            "arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{name}-AbCdEf"
        ));
        let text = d.to_record(&format!("ev-{chain}-{i}")).to_string();
        let ix = Index::of(&serde_json::from_str(&text).unwrap());
        let row = row_for(chain, i, &prev, &text, &ix);
        prev.clone_from(&row.hash);
        rows.push(row);
    }
    store
        .write_blocking(move |tx| Ok(tx.insert_audits(&rows)?))
        .unwrap();
}

/// Every page of `f`'s answer (pages of `f.limit`, by keyset cursor), as (time, chain, seq).
fn all_pages(store: &Store, f: &AuditFilter) -> Vec<(i64, String, i64)> {
    let mut out: Vec<(i64, String, i64)> = Vec::new();
    loop {
        let page = store
            .query_audit_blocking(&AuditFilter {
                before: out.last().cloned(),
                ..f.clone()
            })
            .unwrap();
        let n = page.len();
        out.extend(page.into_iter().map(|r| (r.event_time, r.chain_id, r.seq)));
        if i64::try_from(n).unwrap() < f.limit {
            return out;
        }
    }
}

/// The lookup index groups records in blocks of 1,024 sequence numbers, with a term index
/// of the blocks holding each resource name: queries by resource walk those blocks newest
/// first (by name prefix, every block) and must still return exactly the records a scan
/// would, in order (time, then chain, then seq, newest first), across block boundaries,
/// chains, out-of-order times, time bounds and pages.
fn resource_queries_across_blocks(t: &Trail) {
    let t0 = now_ms() - 3_600_000;
    append_rows(&t.store, "chain-a", 9_000, t0, &[5, 4_100, 8_999]);
    append_rows(&t.store, "chain-b", 5_000, t0 + 3, &[4_097]);
    let everything: Vec<(i64, String, i64, Option<String>)> = ["chain-a", "chain-b"]
        .iter()
        .flat_map(|c| {
            t.store
                .read_blocking(|tx| Ok(tx.audit_range(c, 0, 100_000)?))
                .unwrap()
        })
        .map(|r| (r.event_time, r.chain_id, r.seq, r.resource_arn))
        .collect();
    assert_eq!(everything.len(), 14_000);
    let expect = |keep: &dyn Fn(&str, i64) -> bool| {
        let mut v: Vec<(i64, String, i64)> = everything
            .iter()
            .filter(|(at, _, _, arn)| keep(arn.as_deref().unwrap_or(""), *at))
            .map(|(at, c, s, _)| (*at, c.clone(), *s))
            .collect();
        v.sort_by(|x, y| y.cmp(x));
        v
    };
    let arn =
        |name: &str| format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{name}-AbCdEf");
    let rare = all_pages(
        &t.store,
        &AuditFilter {
            resource_name: Some("app/rare".into()),
            limit: 2,
            ..AuditFilter::default()
        },
    );
    assert_eq!(rare, expect(&|a, _| a == arn("app/rare")));
    assert_eq!(
        rare.iter()
            .map(|(_, c, s)| (c.as_str(), *s))
            .collect::<Vec<_>>(),
        vec![
            ("chain-a", 8_999),
            ("chain-a", 4_100),
            ("chain-b", 4_097),
            ("chain-a", 5)
        ]
    );
    let s3 = all_pages(
        &t.store,
        &AuditFilter {
            resource_name: Some(arn("app/s3")),
            limit: 500,
            ..AuditFilter::default()
        },
    );
    assert!(s3.len() > 1_900, "{}", s3.len());
    assert_eq!(s3, expect(&|a, _| a == arn("app/s3")));
    let (lo, hi) = (t0 + 30_000, t0 + 60_000);
    let window = all_pages(
        &t.store,
        &AuditFilter {
            resource_prefix: Some("app/s".into()),
            since_ms: Some(lo),
            until_ms: Some(hi),
            limit: 1_000,
            ..AuditFilter::default()
        },
    );
    assert_eq!(
        window,
        expect(&|a, at| a.contains(":secret:app/s") && (lo..=hi).contains(&at))
    );
    let newest = t
        .store
        .query_audit_blocking(&AuditFilter {
            resource_prefix: Some(arn("app/s5").trim_end_matches("-AbCdEf").to_owned()),
            limit: 3,
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(
        newest
            .iter()
            .map(|r| (r.event_time, r.chain_id.clone(), r.seq))
            .collect::<Vec<_>>(),
        expect(&|a, _| a == arn("app/s5"))[..3].to_vec()
    );
}

#[test]
fn resource_queries_across_blocks_sqlite() {
    resource_queries_across_blocks(&Trail::new());
}

#[test]
fn resource_queries_across_blocks_postgres() {
    let Some(base) = crate::common::postgres_base_url() else {
        return;
    };
    resource_queries_across_blocks(&Trail::new_at(Some(crate::common::fresh_postgres_db(
        &base,
    ))));
}

/// `insert_audits` sends multi-row INSERTs of up to 64 rows: 150 rows (three statements, the
/// last one short) come back column for column, with every optional column both set and
/// unset and text that needs escaping.
fn audit_rows_round_trip(store: &Store) {
    use strongroom::store::rows::AuditRow;
    let opt = |i: i64, k: i64, v: String| (i % k != 0).then_some(v);
    let rows: Vec<AuditRow> = (1..=150_i64)
        .map(|i| AuditRow {
            chain_id: "round-trip".into(),
            seq: i,
            event_id: format!("ev-{i}"),
            event_time: 1_700_000_000_000 + i,
            event_name: format!("Event{}", i % 5),
            principal_arn: opt(i, 2, format!("arn:aws:iam::{ACCOUNT}:user/u{i}")),
            access_key_id: opt(i, 3, format!("AKIA{i:016}")),
            source_ip: opt(i, 4, format!("10.0.0.{}", i % 250)),
            resource_arn: opt(
                i,
                5,
                format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:s{i}-AbCdEf"),
            ),
            error_code: opt(i, 6, "AccessDeniedException".into()),
            decision: if i % 7 == 0 { "Deny" } else { "Allow" }.into(),
            record: format!("{{\"n\":{i},\"text\":\"it's \\\"quoted\\\" – ünïcödé ?, $1\"}}"),
            prev_hash: format!("{:064x}", i - 1),
            hash: format!("{i:064x}"),
            account_id: opt(i, 8, ACCOUNT.into()),
            event_source: opt(i, 9, "secretsmanager.amazonaws.com".into()),
            read_only: match i % 3 {
                0 => None,
                1 => Some(true),
                _ => Some(false),
            },
            user_name: opt(i, 10, format!("u{i}")),
            resource_type: opt(i, 11, "AWS::SecretsManager::Secret".into()),
            resource_name: opt(i, 12, format!("s{i}")),
        })
        .collect();
    let want: Vec<String> = rows.iter().map(|r| format!("{r:?}")).collect();
    store
        .write_blocking(move |tx| Ok(tx.insert_audits(&rows)?))
        .unwrap();
    let have: Vec<String> = store
        .read_blocking(|tx| Ok(tx.audit_range("round-trip", 0, 1_000)?))
        .unwrap()
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    assert_eq!(have.len(), 150);
    for (h, w) in have.iter().zip(&want) {
        assert_eq!(h, w);
    }
}

#[test]
fn audit_rows_round_trip_sqlite() {
    audit_rows_round_trip(&Trail::new().store);
}

#[test]
fn audit_rows_round_trip_postgres() {
    let Some(base) = crate::common::postgres_base_url() else {
        return;
    };
    audit_rows_round_trip(&Trail::new_at(Some(crate::common::fresh_postgres_db(&base))).store);
}

/// SQLite: the store's background checkpointer copies the chain file's WAL into the file on
/// its own, long before the writer's automatic checkpoint (16 MiB of WAL) would.
#[tokio::test]
async fn the_background_checkpointer_copies_the_wal_into_the_database() {
    let t = Trail::new();
    let db = strongroom::store::audit_chain_path(t.url.trim_start_matches("sqlite://"));
    let size = || std::fs::metadata(&db).unwrap().len();
    let before = size();
    let a = t.auditor(100_000);
    fill(&a, 200, |i| now_ms() + i).await;
    let wal = std::fs::metadata(format!("{db}-wal")).unwrap().len();
    assert!(wal > 1_000_000, "{wal}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while size() < before + 200_000 {
        assert!(
            Instant::now() < deadline,
            "never checkpointed: {} bytes, WAL {wal}",
            size()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A lookup index file built by the previous layout (no blocks, no recorded version) is
/// rebuilt in the current one when the store opens it, and queries answer from it.
#[tokio::test]
async fn an_index_file_of_an_older_layout_is_rebuilt() {
    let t = Trail::new();
    {
        let a = t.auditor(1000);
        fill(&a, 12, |i| now_ms() + i).await;
    }
    let index = format!("{}-audit-index", t.url.trim_start_matches("sqlite://"));
    {
        let mut c = diesel::SqliteConnection::establish(&index).unwrap();
        c.batch_execute(
            "PRAGMA busy_timeout = 5000; DROP TABLE audit_lookup; DROP TABLE audit_lookup_blocks; \
             DELETE FROM audit_index_state; \
             CREATE TABLE audit_lookup (chain_id TEXT NOT NULL, seq BIGINT NOT NULL, \
             resource_arn TEXT, PRIMARY KEY (chain_id, seq)); \
             CREATE INDEX audit_lookup_resource ON audit_lookup (resource_arn); \
             PRAGMA user_version = 0;",
        )
        .unwrap();
    }
    let store = Store::open(&t.url).unwrap();
    let rows = store
        .query_audit_blocking(&AuditFilter {
            resource_name: Some("app/s1".into()),
            limit: 100,
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![9, 5, 1]
    );
}

/// The lookup indexer keeps up with a chain that grows faster than one batch a tick: after a
/// full batch (5,000 records) it takes the next after a short pause, not a whole tick. One
/// batch a tick capped a busy server's indexing rate, and its index fell further behind for
/// as long as the load lasted. One record more than a batch holds, a 6 s tick: the whole
/// chain is indexed well before a second tick would have come.
#[tokio::test]
async fn the_indexer_takes_the_next_batch_without_waiting_a_tick() {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Through {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let t = Trail::new();
    let n: i64 = 5_001;
    let t0 = now_ms() - 60_000;
    let mut prev = strongroom::audit::GENESIS.to_owned();
    let mut rows = Vec::new();
    for i in 1..=n {
        let text = draft(i, t0 + i).to_record(&format!("ev-{i}")).to_string();
        let ix = Index::of(&serde_json::from_str(&text).unwrap());
        let row = row_for("chain-a", i, &prev, &text, &ix);
        prev.clone_from(&row.hash);
        rows.push(row);
    }
    t.store
        .write_blocking(move |tx| Ok(tx.insert_audits(&rows)?))
        .unwrap();
    let tick = Duration::from_secs(6);
    let started = Instant::now();
    let _a = Auditor::with_options(
        t.store.clone(),
        "chain-a".into(),
        &t.key_path(),
        AuditOptions {
            index_every: tick,
            ..AuditOptions::default()
        },
    )
    .unwrap();
    let index = format!("{}-audit-index", t.url.trim_start_matches("sqlite://"));
    let mut c = sqlite_at(&index);
    let through = |c: &mut diesel::SqliteConnection| {
        diesel::sql_query(
            "SELECT COALESCE(MAX(indexed_through), 0) AS n FROM audit_index_state \
             WHERE chain_id = 'chain-a'",
        )
        .get_result::<Through>(c)
        .map_or(0, |r| r.n)
    };
    // The first tick indexes one batch; one batch a tick would reach the second at 12 s.
    let deadline = tick * 2 - Duration::from_millis(500);
    let mut seen = 0;
    while started.elapsed() < deadline {
        seen = through(&mut c);
        if seen >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen >= n,
        "{seen} of {n} records indexed after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() >= tick - Duration::from_millis(100),
        "indexed before the first tick: {:?}",
        started.elapsed()
    );
}

/// A raw connection to a SQLite file that waits for locks: a stopped server's last
/// connections may still be checkpointing as they close.
fn sqlite_at(path: &str) -> diesel::SqliteConnection {
    let mut c = diesel::SqliteConnection::establish(path).unwrap();
    c.batch_execute("PRAGMA busy_timeout = 10000").unwrap();
    c
}

/// SQLite keeps the chain in a file of its own; a write's record also goes into the main file
/// with the change (`audit_pending`). When the chain file's commit is lost (the process died
/// between the two files' commits), the next open appends that copy to the chain, so the
/// acknowledged write keeps its record and the chain verifies.
#[test]
fn a_write_record_lost_from_the_chain_file_is_recovered_from_the_main_file() {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Rec {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        seq: i64,
        #[diesel(sql_type = diesel::sql_types::Text)]
        hash: String,
    }
    let mut s = TestServer::start();
    let r = s.call(
        "secretsmanager.CreateSecret",
        r#"{"Name":"pending/one","SecretString":"v1","ClientRequestToken":"00000000-0000-4000-8000-00000000000a"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let url = s.database_url.clone();
    s.stop();
    let db = url.trim_start_matches("sqlite://").to_owned();
    let chain_path = strongroom::store::audit_chain_path(&db);
    let last = "SELECT seq, hash FROM audit_events WHERE event_name = 'CreateSecret' \
                AND seq = (SELECT max(seq) FROM audit_events)";
    let mut chain = sqlite_at(&chain_path);
    let written: Rec = diesel::sql_query(last).get_result(&mut chain).unwrap();
    // The main file holds the copy, written in the same transaction as the secret.
    let mut main = sqlite_at(&db);
    let copy: Rec = diesel::sql_query("SELECT seq, hash FROM audit_pending ORDER BY seq DESC")
        .get_result(&mut main)
        .unwrap();
    assert_eq!(copy, written);
    // The chain file's commit "did not happen".
    chain
        .batch_execute(&format!(
            "DELETE FROM audit_events WHERE seq = {}",
            written.seq
        ))
        .unwrap();
    drop(chain);
    let store = strongroom::store::Store::open(&url).unwrap();
    // Every record, the recovered one the last.
    assert_eq!(
        strongroom::audit::verify(&store),
        Ok(u64::try_from(written.seq).unwrap())
    );
    let mut chain = sqlite_at(&chain_path);
    let back: Rec = diesel::sql_query(last).get_result(&mut chain).unwrap();
    assert_eq!(back, written);
    // The copy goes once the chain holds it.
    let left: Vec<Rec> = diesel::sql_query("SELECT seq, hash FROM audit_pending")
        .load(&mut main)
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// A SQLite database from before the chain had a file of its own: opening it moves the
/// records and digests out of the main file, and the chain still verifies.
#[test]
fn a_chain_in_the_main_file_moves_to_its_own_file_on_open() {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count = |c: &mut diesel::SqliteConnection, sql: &str| {
        diesel::sql_query(sql).get_result::<N>(c).unwrap().n
    };
    let mut s = TestServer::start();
    for _ in 0..3 {
        assert_eq!(s.call("secretsmanager.ListSecrets", "{}").status, 200);
    }
    let url = s.database_url.clone();
    s.stop();
    let db = url.trim_start_matches("sqlite://").to_owned();
    let chain_path = strongroom::store::audit_chain_path(&db);
    // The old layout: the chain's tables in the main file, the chain file empty.
    let mut main = sqlite_at(&db);
    main.batch_execute(&format!(
        "ATTACH DATABASE '{chain_path}' AS c; \
         CREATE TABLE main.audit_events AS SELECT * FROM c.audit_events; \
         CREATE TABLE main.audit_digests AS SELECT * FROM c.audit_digests; \
         DELETE FROM c.audit_events; DELETE FROM c.audit_digests; DETACH DATABASE c;"
    ))
    .unwrap();
    let records = count(&mut main, "SELECT count(*) AS n FROM audit_events");
    assert!(records >= 3, "{records}");
    drop(main);
    let store = strongroom::store::Store::open(&url).unwrap();
    assert_eq!(
        strongroom::audit::verify(&store),
        Ok(u64::try_from(records).unwrap())
    );
    let mut main = sqlite_at(&db);
    let left =
        "SELECT count(*) AS n FROM sqlite_master WHERE name IN ('audit_events', 'audit_digests')";
    assert_eq!(count(&mut main, left), 0);
    let mut chain = sqlite_at(&chain_path);
    assert_eq!(
        count(&mut chain, "SELECT count(*) AS n FROM audit_events"),
        records
    );
}

/// An auditor of `t` whose lookup indexer does not run on its own (the test indexes).
fn auditor_indexed_by_hand(t: &Trail, digest_every_records: u64) -> Auditor {
    Auditor::with_options(
        t.store.clone(),
        "chain-a".into(),
        &t.key_path(),
        AuditOptions {
            digest_every_records,
            index_every: Duration::from_secs(3600),
            ..AuditOptions::default()
        },
    )
    .unwrap()
}

/// Run the `strongroom` binary on `data`: (success, stdout, stderr).
fn cli(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Hiding a record from LookupEvents by editing what a search reads (the chain's query
/// columns, or the lookup index: an entry, a block's time bounds, a block's terms) fails
/// verification, naming the record; each edit is first shown to hide the record from a
/// search. The index is derived data: `audit reindex` rebuilds it, and the trail verifies.
#[tokio::test]
async fn hiding_a_record_from_lookup_is_caught() {
    hiding_a_record_from_lookup(None).await;
}

/// [`hiding_a_record_from_lookup_is_caught`] on PostgreSQL (when the test command provides
/// one), where the lookup index lives in the main database.
#[tokio::test]
async fn hiding_a_record_from_lookup_is_caught_postgres() {
    let Some(base) = crate::common::postgres_base_url() else {
        return;
    };
    hiding_a_record_from_lookup(Some(base)).await;
}

async fn hiding_a_record_from_lookup(postgres: Option<String>) {
    /// (name, on the lookup index (else the chain), SQL, kind, first record reported)
    type Case = (&'static str, bool, &'static str, TamperKind, i64);
    let cases: &[Case] = &[
        (
            "null the chain's query columns",
            false,
            "UPDATE audit_events SET account_id = NULL, event_source = NULL, read_only = NULL, \
             user_name = NULL, resource_type = NULL, resource_name = NULL WHERE seq = 6",
            TamperKind::Modified,
            6,
        ),
        (
            "null a lookup entry's user",
            true,
            "UPDATE audit_lookup SET user_name = NULL WHERE seq = 6",
            TamperKind::IndexAltered,
            6,
        ),
        (
            "change a lookup entry's principal",
            true,
            "UPDATE audit_lookup SET principal_arn = 'arn:aws:iam::1:user/x', user_name = 'x' WHERE seq = 6",
            TamperKind::IndexAltered,
            6,
        ),
        (
            "delete a lookup entry",
            true,
            "DELETE FROM audit_lookup WHERE seq = 6",
            TamperKind::IndexAltered,
            6,
        ),
        (
            "shrink a block's time bounds",
            true,
            "UPDATE audit_lookup_blocks SET max_time = min_time",
            TamperKind::IndexAltered,
            2,
        ),
        (
            "delete a block's term",
            true,
            "DELETE FROM audit_lookup_terms WHERE term = 'u:alice'",
            TamperKind::IndexAltered,
            3,
        ),
    ];
    for (name, on_index, sql, kind, seq) in cases {
        let t = Trail::new_at(postgres.as_deref().map(crate::common::fresh_postgres_db));
        let db = ["--database-url", t.url.as_str()];
        let a = auditor_indexed_by_hand(&t, 10);
        let t0 = now_ms();
        fill(&a, 12, |i| t0 + i).await;
        // Records 3, 6, 9 and 12 are alice's.
        let alices = || -> Vec<i64> {
            let f = AuditFilter {
                user_name: Some("alice".into()),
                since_ms: Some(t0 + 2),
                limit: 100,
                ..AuditFilter::default()
            };
            let mut seqs: Vec<i64> = t
                .store
                .query_audit_blocking(&f)
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect();
            seqs.sort_unstable();
            seqs
        };
        if *on_index {
            assert_eq!(alices(), [3, 6, 9, 12], "{name}");
            t.sql_index(sql);
        } else {
            t.sql(sql);
        }
        assert!(!alices().contains(&6), "{name}: record 6 is not hidden");
        let f = t.verify().unwrap_or_else(|| panic!("{name}: not detected"));
        assert_eq!((f.kind, f.seq), (*kind, *seq), "{name}: {f}");
        if *on_index {
            let (ok, out, err) = cli(&t.data_dir(), &[&["audit", "verify"][..], &db].concat());
            assert!(!ok, "{name}: {out}");
            assert!(err.contains("[index-altered]"), "{name}: {err}");
            assert!(err.contains("audit reindex"), "{name}: {err}");
            let (ok, out, err) = cli(&t.data_dir(), &[&["audit", "reindex"][..], &db].concat());
            assert!(ok && out.contains("rebuilt the lookup index"), "{out}{err}");
            assert_eq!(t.verify(), None, "{name}: after reindex");
            assert_eq!(alices(), [3, 6, 9, 12], "{name}: after reindex");
        }
    }
}

/// The positive control of the lookup checks: a trail spanning several lookup blocks, fully
/// indexed (and then partly pruned), verifies with every record checked against the index.
#[tokio::test]
async fn an_untampered_trail_verifies_against_its_lookup_index() {
    let t = Trail::new();
    append_rows(&t.store, "chain-a", 2500, now_ms() - 10_000, &[7, 2049]);
    t.store.index_audit_blocking(None, usize::MAX).unwrap();
    let r = verify_store(&t.store, &VerifyOptions::default()).unwrap();
    assert!(r.first_finding().is_none(), "{:?}", r.first_finding());
    assert_eq!(r.chains[0].indexed, 2500);
    assert_eq!(r.chains[0].records, 2500);
    // unsigned: no digest covers these records (append_rows signs none)
    assert_eq!(r.chains[0].unsigned, 2500);
    // A term missing from an early block is found there, with later blocks intact.
    let t_index = |sql: &str| {
        let path = strongroom::store::audit_index_path(t.url.trim_start_matches("sqlite://"));
        let mut c = diesel::SqliteConnection::establish(&path).unwrap();
        c.batch_execute(sql).unwrap();
    };
    t_index("DELETE FROM audit_lookup_terms WHERE term = 'r:app/rare' AND blk = 0");
    let f = verify_store(&t.store, &VerifyOptions::default())
        .unwrap()
        .first_finding()
        .cloned()
        .unwrap();
    assert_eq!((f.kind, f.seq), (TamperKind::IndexAltered, 7), "{f}");
    assert!(f.message.contains("lacks the term `r:app/rare`"), "{f}");
    t.store
        .write_blocking(|tx| Ok(tx.reset_audit_index("chain-a")?))
        .unwrap();
    t.store.index_audit_blocking(None, usize::MAX).unwrap();
    let r = verify_store(&t.store, &VerifyOptions::default()).unwrap();
    assert!(r.first_finding().is_none(), "{:?}", r.first_finding());
    assert_eq!(r.chains[0].indexed, 2500);
}

/// Digests anchored outside the database (the auditor's digest directory) catch what the
/// database alone cannot: the newest records cut together with the digests that cover
/// them, the newest digest deleted, the whole chain deleted. Without the anchors each
/// passes; with them, each is reported. The untampered trail verifies with the anchors.
#[tokio::test]
async fn a_cut_tail_is_caught_against_anchored_digests() {
    type Case = (&'static str, &'static str, TamperKind, i64);
    let cases: &[Case] = &[
        (
            "cut the tail with the digests that cover it",
            "DELETE FROM audit_events WHERE seq > 20; DELETE FROM audit_digests WHERE seq_to > 20",
            TamperKind::Truncated,
            21,
        ),
        (
            "delete the newest digest",
            "DELETE FROM audit_digests WHERE seq_to = 25",
            TamperKind::DigestMissing,
            21,
        ),
        (
            "delete the whole chain",
            "DELETE FROM audit_events; DELETE FROM audit_digests",
            TamperKind::Truncated,
            1,
        ),
    ];
    for (name, sql, kind, seq) in cases {
        let t = Trail::new();
        let anchors = t.dir.path().join("digests");
        let a = t.auditor_anchored(10, &anchors);
        fill(&a, 25, |i| now_ms() + i).await;
        let files = crate::common::files_under(&anchors);
        assert_eq!(files.len(), 3, "{name}: {files:?}");
        let clean = t.report(Some(&anchors));
        assert!(clean.first_finding().is_none(), "{name}: {clean:?}");
        assert_eq!(clean.chains[0].anchored_through, Some(25));
        assert_eq!(clean.chains[0].unsigned, 0);
        t.sql(sql);
        assert_eq!(
            t.verify(),
            None,
            "{name}: the database alone should not tell"
        );
        let r = t.report(Some(&anchors));
        let f = r
            .first_finding()
            .unwrap_or_else(|| panic!("{name}: not detected"));
        assert_eq!((f.kind, f.seq), (*kind, *seq), "{name}: {f}");
    }
}

/// Records after the last signed digest are counted (nothing outside the database vouches
/// for them), and `audit verify` warns about them; deleting some of them goes unnoticed,
/// which is what the warning says.
#[tokio::test]
async fn records_not_covered_by_a_digest_are_reported() {
    let t = Trail::new();
    let a = t.auditor(10);
    for i in 1..=25 {
        a.record(&draft(i, now_ms() + i)).await.unwrap();
    }
    let r = t.report(None);
    assert!(r.first_finding().is_none(), "{:?}", r.first_finding());
    assert_eq!(r.chains[0].signed_through, Some(20));
    assert_eq!(r.chains[0].unsigned, 5);
    let (ok, out, err) = cli(&t.data_dir(), &["audit", "verify"]);
    assert!(ok, "{out}{err}");
    assert!(
        err.contains("5 record(s) (seq 21..=25) are not yet covered by a signed digest"),
        "{err}"
    );
    assert!(
        out.contains("(5 not yet covered by a signed digest)"),
        "{out}"
    );
    t.sql("DELETE FROM audit_events WHERE seq > 23");
    assert_eq!(t.verify(), None);
    assert_eq!(t.report(None).chains[0].unsigned, 3);
    drop(a);
}

/// `audit digests export` prints the signed digests (or writes digest files), and
/// `audit verify --anchor` holds the database to them; an anchor whose signature does not
/// verify is refused.
#[tokio::test]
async fn cli_digests_export_and_verify_against_anchors() {
    let t = Trail::new();
    let a = t.auditor(10);
    fill(&a, 25, |i| now_ms() + i).await;
    let data = t.data_dir();
    let (ok, out, err) = cli(&data, &["audit", "digests", "export"]);
    assert!(ok, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[2]["seqTo"], 25);
    assert_eq!(lines[2]["kind"], "digest");
    let file = t.dir.path().join("anchors.jsonl");
    std::fs::write(&file, &out).unwrap();
    let dir = t.dir.path().join("anchor-dir");
    let (ok, out, err) = cli(
        &data,
        &["audit", "digests", "export", "--out", dir.to_str().unwrap()],
    );
    assert!(ok && out.contains("wrote 3 digest file(s)"), "{out}{err}");
    for anchor in [&file, &dir] {
        let (ok, out, err) = cli(
            &data,
            &["audit", "verify", "--anchor", anchor.to_str().unwrap()],
        );
        assert!(ok, "{out}{err}");
        assert!(out.contains("anchored through 25"), "{out}");
        assert!(
            !err.contains("newer than the newest anchored digest"),
            "{err}"
        );
    }
    // records after the newest anchor are named
    fill(&a, 2, |i| now_ms() + 100 + i).await;
    let (ok, _, err) = cli(
        &data,
        &["audit", "verify", "--anchor", file.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    assert!(
        err.contains("records 26..=27 are newer than the newest anchored digest"),
        "{err}"
    );
    // without anchors, the output says what is not covered
    let (ok, _, err) = cli(&data, &["audit", "verify"]);
    assert!(ok);
    assert!(err.contains("--anchor"), "{err}");
    // the tail and its digests cut: only the anchors tell
    t.sql("DELETE FROM audit_events WHERE seq > 20; DELETE FROM audit_digests WHERE seq_to > 20");
    let (ok, out, err) = cli(&data, &["audit", "verify"]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = cli(
        &data,
        &["audit", "verify", "--anchor", file.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(
        err.contains("record 21 ") && err.contains("[truncated]"),
        "{err}"
    );
    // a forged anchor is refused
    let forged = std::fs::read_to_string(&file)
        .unwrap()
        .replace("\"seqTo\":25", "\"seqTo\":26");
    std::fs::write(&file, forged).unwrap();
    let (ok, _, err) = cli(
        &data,
        &["audit", "verify", "--anchor", file.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(err.contains("signature does not verify"), "{err}");
    drop(a);
}

/// `serve --audit-digest-dir`: the server writes each signed digest there (the last one at
/// shutdown), and `audit verify --anchor` accepts the directory.
#[test]
fn the_server_writes_its_digests_to_the_digest_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let digests = dir.path().join("digests");
    let mut cfg = crate::common::config_in(dir.path(), None);
    cfg.purge_interval_secs = 60;
    cfg.audit_digest_dir = Some(digests.clone());
    let mut s = TestServer::launch_config(cfg, dir);
    for _ in 0..3 {
        assert_eq!(s.call("secretsmanager.ListSecrets", "{}").status, 200);
    }
    s.stop();
    let files = crate::common::files_under(&digests);
    assert_eq!(files.len(), 1, "{files:?}");
    let (ok, out, err) = cli(
        &data_dir,
        &["audit", "verify", "--anchor", digests.to_str().unwrap()],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("anchored through 3"), "{out}");
}

/// `audit query --format table` shows no control character a caller sent: a Query-protocol
/// Action that is not shaped like an operation name (here one forging a table line and
/// terminal escapes) is refused without being recorded as the event name; the table escapes
/// what any column holds (`audit::cli::tests::printable_escapes_what_a_terminal_would_act_on`).
#[test]
fn audit_query_escapes_control_characters() {
    let s = TestServer::start();
    let forged = "Forged\n2026-01-01T00:00:00.000Z  DeleteSecret  Allow\u{1b}[2J\u{9b}31m\u{202e}x";
    let form = format!(
        "Action={}&Version=2011-06-15",
        crate::common::urlenc(forged)
    );
    let sign = Signing {
        service: "sts".into(),
        ..Signing::default()
    };
    let r = s.raw(&crate::common::signed_query(&form, sign));
    assert!(r.status >= 400, "{}", r.body);
    let (ok, out, err) = cli(&s.data_dir(), &["audit", "query", "--format", "table"]);
    assert!(ok, "{err}");
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{9b}') && !out.contains('\u{202e}'),
        "{out:?}"
    );
    assert_eq!(out.lines().count(), 2, "one header, one record: {out:?}");
    assert!(!out.contains("Forged"), "{out:?}");
    assert!(
        r.body.contains("UnknownOperation") || r.body.contains("InvalidAction"),
        "{}",
        r.body
    );
}

/// Start the `strongroom` binary this test run built, with the benchmark build's audit-off
/// variable set, send it one request, stop it: how many records that request got.
fn records_with_the_bench_audit_variable() -> usize {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Kill(
        std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
            .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
            .arg(&data)
            .env("STRONGROOM_BENCHMARK_ONLY_DISABLE_AUDIT", "1")
            .env("STRONGROOM_ROOT_ACCESS_KEY_ID", AKID)
            .env("STRONGROOM_ROOT_SECRET_ACCESS_KEY", crate::common::SECRET)
            .env("STRONGROOM_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(server.0.try_wait().unwrap().is_none(), "the server exited");
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = crate::common::send_raw(
        addr,
        &signed_request("secretsmanager.ListSecrets", b"{}", Signing::default()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let id = request_id(&r);
    drop(server);
    let url = format!("sqlite://{}", data.join("strongroom.db").display());
    records_of(&all_records(&url), &id).len()
}

/// The default build has no way to switch audit off: a server started with the benchmark
/// build's variable set records every request all the same.
#[cfg(not(feature = "bench-audit-off"))]
#[test]
fn the_default_build_ignores_the_benchmark_audit_switch() {
    assert_eq!(records_with_the_bench_audit_variable(), 1);
    // Compiled out, not merely unused: the binary does not even name the variable.
    let bin = std::fs::read(env!("CARGO_BIN_EXE_strongroom")).unwrap();
    let name = b"STRONGROOM_BENCHMARK_ONLY_DISABLE_AUDIT";
    assert!(!bin.windows(name.len()).any(|w| w == name));
}

/// The benchmark build (`--features bench-audit-off`, what scripts/bench.sh runs for its
/// audit-off rows) records nothing with the variable set.
#[cfg(feature = "bench-audit-off")]
#[test]
fn the_bench_build_switches_audit_off_with_its_variable() {
    assert_eq!(records_with_the_bench_audit_variable(), 0);
}

/// Check a record against CloudTrail's documented record contents ("CloudTrail record
/// contents for management, data, and network activity events" and "CloudTrail userIdentity
/// element", AWS CloudTrail User Guide), written out here independently of the code that
/// writes records: each member's name and JSON type. Optional members may be absent or null;
/// `authorization` is Strongroom's own member (the README's audit section).
fn cloudtrail_shape(v: &Value) -> Result<(), String> {
    let obj = v.as_object().ok_or("a record is a JSON object")?;
    let string = |x: &Value| x.is_string();
    let opt =
        |x: Option<&Value>, ok: &dyn Fn(&Value) -> bool| x.is_none_or(|x| x.is_null() || ok(x));
    let need = |name: &str, ok: &dyn Fn(&Value) -> bool| -> Result<(), String> {
        match obj.get(name) {
            Some(x) if ok(x) => Ok(()),
            other => Err(format!("`{name}`: {other:?}")),
        }
    };
    // Documented as always present (Optional: False).
    need("eventVersion", &|x| {
        // `major.minor` (records say "1.08": the minor is read as a number).
        x.as_str()
            .and_then(|s| s.split_once('.'))
            .is_some_and(|(a, b)| a == "1" && b.parse::<u32>().is_ok())
    })?;
    need("eventTime", &|x| {
        x.as_str().is_some_and(|s| {
            s.ends_with('Z')
                && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .is_ok()
        })
    })?;
    need("eventSource", &string)?;
    need("eventName", &string)?;
    need("awsRegion", &string)?;
    need("requestID", &string)?;
    need("eventID", &|x| {
        x.as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok())
    })?;
    need("eventType", &|x| {
        matches!(
            x.as_str(),
            Some("AwsApiCall" | "AwsServiceEvent" | "AwsConsoleAction" | "AwsConsoleSignIn")
        )
    })?;
    need("managementEvent", &Value::is_boolean)?;
    need("eventCategory", &|x| {
        matches!(x.as_str(), Some("Management" | "Data" | "NetworkActivity"))
    })?;
    need("requestParameters", &|x| x.is_object() || x.is_null())?;
    need("responseElements", &|x| x.is_object() || x.is_null())?;
    // Present, but null where Strongroom cannot say (no caller, a background event).
    for name in ["sourceIPAddress", "userAgent", "recipientAccountId"] {
        need(name, &|x| x.is_string() || x.is_null())?;
    }
    need("readOnly", &|x| x.is_boolean() || x.is_null())?;
    need("userIdentity", &|x| x.is_object() || x.is_null())?;
    // Optional.
    for name in [
        "errorCode",
        "errorMessage",
        "apiVersion",
        "sharedEventID",
        "vpcEndpointId",
    ] {
        if !opt(obj.get(name), &string) {
            return Err(format!("`{name}`: {:?}", obj.get(name)));
        }
    }
    let resource = |r: &Value| {
        r.as_object().is_some_and(|r| {
            r.keys()
                .all(|k| ["ARN", "accountId", "type"].contains(&k.as_str()))
                && r.values().all(Value::is_string)
        })
    };
    if !opt(obj.get("resources"), &|x| {
        x.as_array().is_some_and(|a| a.iter().all(resource))
    }) {
        return Err(format!("`resources`: {:?}", obj.get("resources")));
    }
    if let Some(account) = obj.get("recipientAccountId").and_then(Value::as_str) {
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`recipientAccountId`: {account}"));
        }
    }
    const DOCUMENTED: &[&str] = &[
        "eventTime",
        "eventVersion",
        "userIdentity",
        "eventSource",
        "eventName",
        "awsRegion",
        "sourceIPAddress",
        "userAgent",
        "errorCode",
        "errorMessage",
        "requestParameters",
        "responseElements",
        "additionalEventData",
        "requestID",
        "eventID",
        "eventType",
        "apiVersion",
        "managementEvent",
        "readOnly",
        "resources",
        "recipientAccountId",
        "serviceEventDetails",
        "sharedEventID",
        "vpcEndpointId",
        "vpcEndpointAccountId",
        "eventCategory",
        "addendum",
        "sessionCredentialFromConsole",
        "edgeDeviceDetails",
        "tlsDetails",
        "insightDetails",
    ];
    for k in obj.keys() {
        if !DOCUMENTED.contains(&k.as_str()) && k != "authorization" {
            return Err(format!("`{k}` is not a CloudTrail record member"));
        }
    }
    // userIdentity: an AWS service's own event names only the account and the service
    // (CloudTrail's `{"accountId", "invokedBy"}`).
    let service_identity = obj
        .get("userIdentity")
        .and_then(Value::as_object)
        .filter(|id| id.get("type").is_none() && id.contains_key("invokedBy"));
    if let Some(id) = service_identity {
        if obj.get("eventType").and_then(Value::as_str) != Some("AwsServiceEvent") {
            return Err("only a service event is invoked by a service alone".into());
        }
        for name in ["accountId", "invokedBy"] {
            if !id.get(name).is_some_and(Value::is_string) {
                return Err(format!("userIdentity.{name}: {:?}", id.get(name)));
            }
        }
        if id.len() != 2 {
            return Err(format!("a service's userIdentity: {id:?}"));
        }
    }
    if let Some(id) = obj
        .get("userIdentity")
        .and_then(Value::as_object)
        .filter(|_| service_identity.is_none())
    {
        let kinds = [
            "Root",
            "IAMUser",
            "AssumedRole",
            "Role",
            "FederatedUser",
            "Directory",
            "AWSAccount",
            "AWSService",
            "IdentityCenterUser",
            "Unknown",
        ];
        if !id
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| kinds.contains(&t))
        {
            return Err(format!("userIdentity.type: {:?}", id.get("type")));
        }
        for name in ["principalId", "arn", "accountId", "accessKeyId"] {
            if !id.get(name).is_some_and(Value::is_string) {
                return Err(format!("userIdentity.{name}: {:?}", id.get(name)));
            }
        }
        for k in id.keys() {
            let known = [
                "type",
                "principalId",
                "arn",
                "accountId",
                "accessKeyId",
                "userName",
                "sessionContext",
                "invokedBy",
                "identityProvider",
                "credentialId",
                "onBehalfOf",
                "inScopeOf",
            ];
            if !known.contains(&k.as_str()) {
                return Err(format!("userIdentity.{k} is not documented"));
            }
        }
        if !opt(id.get("userName"), &string) {
            return Err("userIdentity.userName".into());
        }
        if let Some(sc) = id.get("sessionContext").filter(|x| !x.is_null()) {
            let sc = sc.as_object().ok_or("sessionContext is an object")?;
            if let Some(issuer) = sc.get("sessionIssuer").filter(|x| !x.is_null()) {
                let issuer = issuer.as_object().ok_or("sessionIssuer is an object")?;
                for name in ["type", "principalId", "arn", "accountId", "userName"] {
                    if !issuer.get(name).is_some_and(Value::is_string) {
                        return Err(format!("sessionIssuer.{name}: {:?}", issuer.get(name)));
                    }
                }
            }
            if let Some(at) = sc.get("attributes").filter(|x| !x.is_null()) {
                if !at["creationDate"].is_string()
                    || !matches!(at["mfaAuthenticated"].as_str(), Some("true" | "false"))
                {
                    return Err(format!("sessionContext.attributes: {at}"));
                }
            }
        }
    }
    Ok(())
}

/// A record, written for an assumed-role session's denied call, is exactly what CloudTrail's
/// documented record contents say (member names, types, lowerCamelCase parameters, `arn`
/// in the response elements as Secrets Manager writes it since 2024), plus Strongroom's
/// `authorization` member; records of other callers have the documented shape too.
#[test]
fn records_have_cloudtrails_documented_shape() {
    let session = Principal {
        kind: PrincipalKind::AssumedRole,
        arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/deploy/ci-42"),
        user_id: "AROADEPLOYEXAMPLE:ci-42".into(),
        access_key_id: "ASIATEMPEXAMPLE".into(),
        role_arn: Some(format!("arn:aws:iam::{ACCOUNT}:role/deploy")),
        session: Some(strongroom::auth::SessionContext {
            issuer: "sts".into(),
            created_ms: 1_780_000_000_000,
            expires_ms: 1_780_003_600_000,
            policy: None,
        }),
        ..Principal::root(ACCOUNT, AKID)
    };
    let secret = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db/pw-AbCdEf");
    let d = Draft {
        request_id: "0b7f6c1e-0000-4000-8000-000000000001".into(),
        event_time_ms: 1_780_000_000_123,
        event_source: "secretsmanager.amazonaws.com".into(),
        event_name: "PutSecretValue".into(),
        region: "us-east-1".into(),
        source_ip: Some("192.0.2.10".into()),
        user_agent: Some("aws-cli/2.15.0".into()),
        principal: Some(Arc::new(session)),
        read_only: Some(false),
        resource_arn: Some(secret.clone()),
        request_parameters: strongroom::audit::safe_request_parameters(
            br#"{"SecretId":"db/pw","SecretString":"MARK","Tags":[{"Key":"k","Value":"v"}]}"#,
        ),
        response_elements: Some(json!({"ARN": secret, "Name": "db/pw", "VersionId": "v1"})),
        decision: Some("Allow".into()),
        decision_reason: Some("allowed by statement Put".into()),
        deciding_policy_type: Some("IdentityPolicy".into()),
        policy_id: Some("writers".into()),
        statement: Some("Put".into()),
        ..Draft::default()
    };
    let event_id = "0190f3a2-7b1c-7d2e-8f00-000000000001";
    let (text, _) = d.to_text(event_id, None);
    let v: Value = serde_json::from_str(&text).unwrap();
    let expected = json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROADEPLOYEXAMPLE:ci-42",
            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/deploy/ci-42"),
            "accountId": ACCOUNT,
            "accessKeyId": "ASIATEMPEXAMPLE",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROADEPLOYEXAMPLE",
                    "arn": format!("arn:aws:iam::{ACCOUNT}:role/deploy"),
                    "accountId": ACCOUNT,
                    "userName": "deploy"
                },
                "attributes": {
                    "creationDate": "2026-05-28T20:26:40.000Z",
                    "mfaAuthenticated": "false"
                }
            }
        },
        "eventTime": "2026-05-28T20:26:40.123Z",
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": "PutSecretValue",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.10",
        "userAgent": "aws-cli/2.15.0",
        "errorCode": null,
        "errorMessage": null,
        "requestParameters": {"secretId": "db/pw", "tags": [{"key": "k", "value": "v"}]},
        "responseElements": {"arn": secret, "name": "db/pw"},
        "requestID": "0b7f6c1e-0000-4000-8000-000000000001",
        "eventID": event_id,
        "readOnly": false,
        "resources": [{"ARN": secret, "accountId": ACCOUNT, "type": "AWS::SecretsManager::Secret"}],
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
        "authorization": {
            "decision": "Allow",
            "reason": "allowed by statement Put",
            "decidingPolicyType": "IdentityPolicy",
            "policyArnOrId": "writers",
            "statement": "Put"
        }
    });
    assert_eq!(v, expected);
    cloudtrail_shape(&v).unwrap();
    // Other callers: an IAM user, root, no caller, a background event.
    let others = [
        Draft {
            principal: Some(Arc::new(user("alice"))),
            error_code: Some("AccessDeniedException".into()),
            error_message: Some("denied".into()),
            ..d.clone()
        },
        Draft {
            principal: Some(Arc::new(Principal::root(ACCOUNT, AKID))),
            ..d.clone()
        },
        Draft {
            principal: None,
            read_only: None,
            resource_arn: None,
            ..d.clone()
        },
        Draft {
            event_type: Some("AwsServiceEvent".into()),
            source_ip: None,
            user_agent: None,
            ..d.clone()
        },
    ];
    for o in &others {
        let v: Value = serde_json::from_str(&o.to_text(event_id, None).0).unwrap();
        cloudtrail_shape(&v).unwrap_or_else(|e| panic!("{e}: {v}"));
    }
    // A service's own event (a rotation's): the service, invoked in the secret's account, as
    // CloudTrail's RotationFailed example writes it; its index names no caller.
    let service = Draft {
        principal: None,
        event_name: "RotationFailed".into(),
        event_source: "secretsmanager.amazonaws.com".into(),
        event_type: Some("AwsServiceEvent".into()),
        resource_arn: Some(format!(
            "arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db/pw-AbCdEf"
        )),
        ..d.clone()
    };
    let (text, index) = service.to_text(event_id, None);
    let v: Value = serde_json::from_str(&text).unwrap();
    cloudtrail_shape(&v).unwrap_or_else(|e| panic!("{e}: {v}"));
    assert_eq!(
        v["userIdentity"],
        json!({"accountId": ACCOUNT, "invokedBy": "secretsmanager.amazonaws.com"})
    );
    assert_eq!(v["recipientAccountId"], ACCOUNT);
    assert_eq!(index, Index::of(&v));
    assert!(index.principal_arn.is_none() && index.user_name.is_none());
    // A member CloudTrail does not document is refused by the check itself.
    let mut bad = expected.clone();
    bad["secretValue"] = json!("x");
    assert!(cloudtrail_shape(&bad).is_err_and(|e| e.contains("secretValue")));
}

/// An anchor handed to `verify_store` directly is held to the same trust as the database's
/// digests: one signed by a key not trusted, or altered after signing, is reported as forged.
#[tokio::test]
async fn an_anchor_that_does_not_verify_is_reported() {
    let t = Trail::new();
    let anchors = t.dir.path().join("digests");
    let a = t.auditor_anchored(10, &anchors);
    fill(&a, 12, |i| now_ms() + i).await;
    let good = strongroom::audit::load_anchors(&anchors, &[t.public_key()]).unwrap();
    assert_eq!(good.len(), 2);
    let other = AuditKeys::ephemeral().unwrap();
    let foreign = strongroom::audit::signed_statement(
        &other,
        "chain-a",
        strongroom::audit::DIGEST,
        13,
        20,
        &"ab".repeat(32),
        now_ms(),
    );
    let altered = strongroom::store::rows::AuditDigestRow {
        seq_to: 30,
        record_count: 20,
        ..good[1].clone()
    };
    for bad in [foreign, altered] {
        let r = verify_store(
            &t.store,
            &VerifyOptions {
                trusted_keys: vec![t.public_key()],
                chain: None,
                anchors: vec![good[0].clone(), bad],
            },
        )
        .unwrap();
        let f = r.first_finding().cloned().unwrap();
        assert_eq!(f.kind, TamperKind::Forged, "{f}");
    }
    drop(a);
}

const TRAIL_STATUS: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.GetTrailStatus";

/// GetTrailStatus is decided on the ARN of the trail it names (the one trail is
/// `strongroom`): a Deny on that ARN refuses it although `*` is allowed; an Allow on that
/// ARN alone grants it; a name or ARN of any other trail is refused to a caller not allowed
/// on it (nothing learned) and answered `TrailNotFoundException` with CloudTrail's message to
/// one who is; another account's trail is refused.
#[test]
fn get_trail_status_is_decided_on_the_trail_arn() {
    let policies = tempfile::tempdir().unwrap();
    let p = policies.path();
    let trail = format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/strongroom");
    crate::common::write(
        p,
        &format!("accounts/{ACCOUNT}/account.json"),
        &format!(r#"{{"AccountId":"{ACCOUNT}"}}"#),
    );
    let user = |name: &str, statements: Value| {
        crate::common::write(
            p,
            &format!("accounts/{ACCOUNT}/users/{name}.json"),
            &json!({"UserName": name, "InlinePolicies": {"p": {
                "Version": "2012-10-17", "Statement": statements}}})
            .to_string(),
        );
    };
    user(
        "denied",
        json!([
            {"Effect": "Allow", "Action": "cloudtrail:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "cloudtrail:GetTrailStatus",
             "Resource": "arn:aws:cloudtrail:*:*:trail/*"}
        ]),
    );
    user(
        "scoped",
        json!([{"Effect": "Allow", "Action": "cloudtrail:GetTrailStatus", "Resource": trail}]),
    );
    user(
        "any",
        json!([{"Effect": "Allow", "Action": "cloudtrail:GetTrailStatus", "Resource": "*"}]),
    );
    let s = TestServer::start_with_policies(p);
    let call = |who: &str, body: Value| {
        let (akid, secret) = crate::common::key_for(&s, p, ACCOUNT, who);
        let sign = Signing {
            akid,
            secret,
            service: "cloudtrail".into(),
            ..Signing::default()
        };
        s.raw(&signed_request(
            TRAIL_STATUS,
            body.to_string().as_bytes(),
            sign,
        ))
    };

    // Attacker: allowed `*`, denied on trail ARNs: refused, by name, by ARN and without one.
    for body in [
        json!({"Name": "strongroom"}),
        json!({"Name": trail}),
        json!({}),
    ] {
        let r = call("denied", body);
        assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    }
    // Positive controls: allowed on the trail's ARN alone, or on `*`.
    for who in ["scoped", "any"] {
        for body in [
            json!({"Name": "strongroom"}),
            json!({"Name": trail}),
            json!({}),
        ] {
            let r = call(who, body);
            assert_eq!(r.status, 200, "{who}: {}", r.body);
            assert_eq!(r.json()["IsLogging"], true);
        }
    }
    // Another trail: refused to a caller not allowed on its ARN, not found for one who is.
    let r = call("scoped", json!({"Name": "other"}));
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let r = call("any", json!({"Name": "other"}));
    assert_eq!(r.error_type(), "TrailNotFoundException", "{}", r.body);
    assert_eq!(
        r.json()["message"].as_str().or(r.json()["Message"].as_str()),
        Some(
            format!(
                "Unknown trail: arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/other for the user: {ACCOUNT}"
            )
            .as_str()
        ),
        "{}",
        r.body
    );
    // Another account's trail: decided across accounts, refused.
    let r = call(
        "any",
        json!({"Name": "arn:aws:cloudtrail:us-east-1:999988887777:trail/strongroom"}),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
}
