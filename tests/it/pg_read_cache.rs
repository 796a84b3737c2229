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
