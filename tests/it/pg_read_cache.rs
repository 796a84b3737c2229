//! The PostgreSQL store keeps what reads resolved in memory too, checked before every use
//! against the sequence every server's writes advance (src/store/changes.rs). Two servers on
//! one database: what one acknowledges, the other's very next read sees, although it
//! answered the reads before from its cache.

use serde_json::{json, Value};

use crate::common::{config_in, fresh_postgres_db, postgres_base_url, TestServer};

fn ok(s: &TestServer, target: &str, body: &Value) -> Value {
    let mut body = body.clone();
    if (target == "secretsmanager.CreateSecret" || target == "secretsmanager.PutSecretValue")
        && body.get("ClientRequestToken").is_none()
    {
        body["ClientRequestToken"] = json!(uuid::Uuid::new_v4().to_string());
    }
    let r = s.call(target, &body.to_string());
    assert_eq!(r.status, 200, "{target} {body}: {}", r.body);
    r.json()
}

fn get(s: &TestServer, id: &str) -> crate::common::RawResponse {
    s.call(
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": id}).to_string(),
    )
}

/// Two servers on a fresh database, sharing the master key (their own data directories).
fn two_servers() -> Option<(TestServer, TestServer, tempfile::TempDir)> {
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

/// A value put through one server is read through the other at once; so are a deletion
/// and a restore, and a label moved back; through the same server too.
#[test]
fn a_write_through_either_server_decides_the_next_read_on_both() {
    let Some((a, b, _dir)) = two_servers() else {
        return;
    };
    ok(
        &a,
        "secretsmanager.CreateSecret",
        &json!({"Name": "pgcache/one", "SecretString": "v0"}),
    );
    for n in 1..=10 {
        // Warm both servers' caches.
        for s in [&a, &b, &a, &b] {
            assert_eq!(
                get(s, "pgcache/one").json()["SecretString"],
                format!("v{}", n - 1)
            );
        }
        let (writer, other) = if n % 2 == 0 { (&a, &b) } else { (&b, &a) };
        ok(
            writer,
            "secretsmanager.PutSecretValue",
            &json!({"SecretId": "pgcache/one", "SecretString": format!("v{n}")}),
        );
        assert_eq!(
            get(other, "pgcache/one").json()["SecretString"],
            format!("v{n}")
        );
        assert_eq!(
            get(writer, "pgcache/one").json()["SecretString"],
            format!("v{n}")
        );
    }
    ok(
        &a,
        "secretsmanager.DeleteSecret",
        &json!({"SecretId": "pgcache/one", "RecoveryWindowInDays": 7}),
    );
    assert_eq!(
        get(&b, "pgcache/one").error_type(),
        "InvalidRequestException"
    );
    ok(
        &b,
        "secretsmanager.RestoreSecret",
        &json!({"SecretId": "pgcache/one"}),
    );
    assert_eq!(get(&a, "pgcache/one").json()["SecretString"], "v10");
    assert_eq!(get(&a, "pgcache/one").json()["SecretString"], "v10");
    // A label moved back through `b` is read through `a` at once.
    let ids = ok(
        &b,
        "secretsmanager.ListSecretVersionIds",
        &json!({"SecretId": "pgcache/one"}),
    );
    let version_of = |stage: &str| {
        ids["Versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| {
                v["VersionStages"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(stage))
            })
            .unwrap()["VersionId"]
            .clone()
    };
    ok(
        &b,
        "secretsmanager.UpdateSecretVersionStage",
        &json!({"SecretId": "pgcache/one", "VersionStage": "AWSCURRENT",
                "MoveToVersionId": version_of("AWSPREVIOUS"),
                "RemoveFromVersionId": version_of("AWSCURRENT")}),
    );
    assert_eq!(get(&a, "pgcache/one").json()["SecretString"], "v9");
}

/// Readers hammer a secret through one server while a writer puts new values through the
/// other: every read after a write was acknowledged returns that value or a newer one, and
/// no reader sees a value older than one it saw before.
#[test]
fn reads_on_one_server_never_go_back_behind_a_write_acknowledged_by_another() {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::SeqCst};
    use std::sync::Arc;
    let Some((a, b, _dir)) = two_servers() else {
        return;
    };
    let b = Arc::new(b);
    ok(
        &a,
        "secretsmanager.CreateSecret",
        &json!({"Name": "pgcache/hot", "SecretString": "0"}),
    );
    let acked = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (b, acked, stop) = (b.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut seen, mut reads) = (0_i64, 0);
                while !stop.load(SeqCst) {
                    let floor = acked.load(SeqCst);
                    let r = get(&b, "pgcache/hot");
                    assert_eq!(r.status, 200, "{}", r.body);
                    let v: i64 = r.json()["SecretString"].as_str().unwrap().parse().unwrap();
                    assert!(v >= floor, "read {v} after {floor} was acknowledged");
                    assert!(v >= seen, "read {v} after reading {seen}");
                    seen = v;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for n in 1..=30_i64 {
        ok(
            &a,
            "secretsmanager.PutSecretValue",
            &json!({"SecretId": "pgcache/hot", "SecretString": n.to_string()}),
        );
        acked.store(n, SeqCst);
        assert_eq!(get(&b, "pgcache/hot").json()["SecretString"], n.to_string());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    stop.store(true, SeqCst);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}
