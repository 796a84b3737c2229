//! The PostgreSQL store keeps what reads resolved in memory too, checked before every use
//! against the sequence every server's writes advance (src/store/changes.rs). Two servers on
//! one database: what one acknowledges, the other's very next read sees, although it
//! answered the reads before from its cache.

use serde_json::json;

use crate::common::{
    config_in, fresh_postgres_db, ok, postgres_base_url, reads_follow_acknowledged_writes,
    version_with_stage, TestServer,
};

fn get(s: &TestServer, id: &str) -> crate::common::RawResponse {
    s.call(
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": id}).to_string(),
    )
}

/// Two servers on a fresh database, sharing the master key (their own data directories).
fn two_servers() -> Option<(TestServer, TestServer, tempfile::TempDir)> {
    two_servers_checking(std::time::Duration::ZERO)
}

/// [`two_servers`], the second checking for the first's writes every `check` (zero: before
/// every cached read).
fn two_servers_checking(
    check: std::time::Duration,
) -> Option<(TestServer, TestServer, tempfile::TempDir)> {
    let base = postgres_base_url()?;
    let url = fresh_postgres_db(&base);
    let a = TestServer::start_with(Some(url.clone()), &["us-east-1"]);
    let other = tempfile::tempdir().unwrap();
    let data = other.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(a.data_dir().join("master.key"), data.join("master.key")).unwrap();
    let mut config = config_in(other.path(), Some(url));
    config.store.pg_change_check = check;
    let b = TestServer::launch_config(config, tempfile::tempdir().unwrap());
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
    ok(
        &b,
        "secretsmanager.UpdateSecretVersionStage",
        &json!({"SecretId": "pgcache/one", "VersionStage": "AWSCURRENT",
                "MoveToVersionId": version_with_stage(&ids, "AWSPREVIOUS"),
                "RemoveFromVersionId": version_with_stage(&ids, "AWSCURRENT")}),
    );
    assert_eq!(get(&a, "pgcache/one").json()["SecretString"], "v9");
}

/// Readers hammer a secret through one server while a writer puts new values through the
/// other: every read after a write was acknowledged returns that value or a newer one, and
/// no reader sees a value older than one it saw before.
#[test]
fn reads_on_one_server_never_go_back_behind_a_write_acknowledged_by_another() {
    let Some((a, b, _dir)) = two_servers() else {
        return;
    };
    ok(
        &a,
        "secretsmanager.CreateSecret",
        &json!({"Name": "pgcache/hot", "SecretString": "0"}),
    );
    reads_follow_acknowledged_writes(&std::sync::Arc::new(b), &a, "pgcache/hot", 30);
}

/// With a change check every 200 ms on `b`: a write acknowledged through `a` reaches `b`'s
/// reads within a few intervals (never later), although `b` serves reads from its cache in
/// between; `b`'s own writes are read through `b` at once, every time; a deletion through
/// `a` is refused through `b` as soon as the check saw it.
#[test]
fn with_a_check_interval_another_servers_write_is_seen_within_it_and_ones_own_at_once() {
    let check = std::time::Duration::from_millis(200);
    let Some((a, b, _dir)) = two_servers_checking(check) else {
        return;
    };
    ok(
        &a,
        "secretsmanager.CreateSecret",
        &json!({"Name": "pgcache/interval", "SecretString": "v0"}),
    );
    let seen_within = |want: &str| {
        let start = std::time::Instant::now();
        loop {
            let r = get(&b, "pgcache/interval");
            if r.status == 200 && r.json()["SecretString"] == want {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < check * 10,
                "b still answers {} after {:?}",
                r.body,
                start.elapsed()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    seen_within("v0");
    for n in 1..=5 {
        ok(
            &a,
            "secretsmanager.PutSecretValue",
            &json!({"SecretId": "pgcache/interval", "SecretString": format!("v{n}a")}),
        );
        seen_within(&format!("v{n}a"));
        // Warm, then write through `b` itself: read back at once, no interval.
        assert_eq!(
            get(&b, "pgcache/interval").json()["SecretString"],
            format!("v{n}a")
        );
        ok(
            &b,
            "secretsmanager.PutSecretValue",
            &json!({"SecretId": "pgcache/interval", "SecretString": format!("v{n}b")}),
        );
        assert_eq!(
            get(&b, "pgcache/interval").json()["SecretString"],
            format!("v{n}b")
        );
        // And `a`, checking before every cached read, sees it at once.
        assert_eq!(
            get(&a, "pgcache/interval").json()["SecretString"],
            format!("v{n}b")
        );
    }
    ok(
        &a,
        "secretsmanager.DeleteSecret",
        &json!({"SecretId": "pgcache/interval", "RecoveryWindowInDays": 7}),
    );
    let start = std::time::Instant::now();
    while get(&b, "pgcache/interval").status == 200 {
        assert!(start.elapsed() < check * 10, "the deletion never reached b");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(
        get(&b, "pgcache/interval").error_type(),
        "InvalidRequestException"
    );
}
