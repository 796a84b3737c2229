//! Replication to a region served by a peer server: two servers (us-east-1 with
//! `--peer eu-west-1=http://127.0.0.1:PORT`, and eu-west-1), the outbox delivering through
//! stops and restarts of either side, promotion on the peer, removal, the lag shown, and the
//! peer's apply operation open only to the declared replication principal.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::types::ReplicaRegionType;
use strongroom::replication::{Peer, PeerConfig, PeerCredentials};

use crate::common::{config_in, Signing, TestServer, ACCOUNT};

const PEER_REGION: &str = "eu-west-1";

/// The peer's principals: `replicator` may only apply replica changes; `ops` has every
/// Secrets Manager right (which does not include applying replica changes).
fn peer_policies(dir: &Path) {
    let acct = dir.join(format!("accounts/{ACCOUNT}"));
    std::fs::create_dir_all(acct.join("users")).unwrap();
    std::fs::write(
        acct.join("account.json"),
        format!(r#"{{"AccountId":"{ACCOUNT}"}}"#),
    )
    .unwrap();
    std::fs::write(
        acct.join("users/replicator.json"),
        r#"{"UserName":"replicator","InlinePolicies":{"apply":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"strongroom:ApplyReplicaChange","Resource":"*"}]}}}"#,
    )
    .unwrap();
    std::fs::write(
        acct.join("users/app-replicator.json"),
        r#"{"UserName":"app-replicator","InlinePolicies":{"apply":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"strongroom:ApplyReplicaChange","Resource":"*",
             "Condition":{"StringLike":{"strongroom:PrimaryArn":"arn:aws:secretsmanager:us-east-1:*:secret:app/*"}}}]}}}"#,
    )
    .unwrap();
    std::fs::write(
        acct.join("users/ops.json"),
        r#"{"UserName":"ops","InlinePolicies":{"all":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["secretsmanager:*","kms:*"],"Resource":"*"}]}}}"#,
    )
    .unwrap();
}

fn key_of(s: &TestServer, policies: &Path, user: &str) -> (String, String) {
    let out =
        strongroom::cli::create_access_key(&s.store_config(), policies, ACCOUNT, user).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    (
        v["AccessKeyId"].as_str().unwrap().to_owned(),
        v["SecretAccessKey"].as_str().unwrap().to_owned(),
    )
}

fn start_peer(dir: tempfile::TempDir, policies: &Path, port: u16) -> TestServer {
    let mut cfg = config_in(dir.path(), None);
    cfg.regions = vec![PEER_REGION.into()];
    cfg.policies = Some(policies.to_path_buf());
    cfg.listen = format!("127.0.0.1:{port}");
    TestServer::launch_config(cfg, dir)
}

/// Raw requests to the peer signed with access key `k` in the peer's region.
fn signed_as(k: &(String, String)) -> Signing {
    Signing {
        akid: k.0.clone(),
        secret: k.1.clone(),
        region: PEER_REGION.into(),
        ..Signing::default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_primary(
    dir: tempfile::TempDir,
    peer_url: &str,
    key: &(String, String),
    metrics_port: u16,
    ca: Option<PathBuf>,
) -> TestServer {
    let mut cfg = config_in(dir.path(), None);
    cfg.regions = vec!["us-east-1".into()];
    cfg.metrics_listen = Some(format!("127.0.0.1:{metrics_port}"));
    cfg.peers = PeerConfig {
        peers: vec![Peer::new(PEER_REGION, peer_url, true).unwrap()],
        ca_file: ca,
        credentials: Some(PeerCredentials {
            access_key_id: key.0.clone(),
            secret_access_key: zeroize::Zeroizing::new(key.1.clone()),
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
        .expect("the peer region's status");
    (
        r.status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        r.status_message().unwrap_or_default().to_owned(),
    )
}

async fn wait_status(c: &aws_sdk_secretsmanager::Client, name: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (s, m) = status(c, name).await;
        if s == want {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "status of {name} stayed {s} ({m}), wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn value_on(c: &aws_sdk_secretsmanager::Client, name: &str) -> Option<String> {
    match c.get_secret_value().secret_id(name).send().await {
        Ok(v) => v.secret_string().map(str::to_owned),
        Err(e) => {
            assert_eq!(
                crate::common::code(&e),
                "ResourceNotFoundException",
                "{e:?}"
            );
            None
        }
    }
}

fn metric(port: u16, name: &str) -> Option<f64> {
    let r = crate::common::send_raw(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    r.body.lines().find_map(|l| {
        l.strip_prefix(&format!("{name}{{peer=\"{PEER_REGION}\"}} "))
            .and_then(|v| v.trim().parse().ok())
    })
}

fn take_dir(s: &mut TestServer) -> tempfile::TempDir {
    std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_region_follows_its_primary_through_restarts_until_promoted() {
    let policies_dir = tempfile::tempdir().unwrap();
    let policies = policies_dir.path().to_path_buf();
    peer_policies(&policies);
    let peer_port = free_port();
    let mut peer = start_peer(tempfile::tempdir().unwrap(), &policies, peer_port);
    let key = key_of(&peer, &policies, "replicator");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let metrics_port = free_port();
    let mut primary = start_primary(
        tempfile::tempdir().unwrap(),
        &peer_url,
        &key,
        metrics_port,
        None,
    );
    let p = primary.client();
    let mut r = peer.client_in(PEER_REGION, crate::common::AKID, crate::common::SECRET);

    // Replicate: InProgress at once, InSync once the peer applied it.
    let created = p
        .create_secret()
        .name("app/db")
        .secret_string("v1")
        .description("the database")
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap().to_owned();
    let out = p
        .replicate_secret_to_regions()
        .secret_id("app/db")
        .add_replica_regions(ReplicaRegionType::builder().region(PEER_REGION).build())
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.replication_status()[0].status().unwrap().as_str(),
        "InProgress"
    );
    wait_status(&p, "app/db", "InSync").await;
    assert_eq!(value_on(&r, "app/db").await.as_deref(), Some("v1"));
    let d = r
        .describe_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(d.primary_region(), Some("us-east-1"));
    assert_eq!(
        d.arn(),
        Some(arn.replace("us-east-1", PEER_REGION).as_str())
    );
    assert_eq!(d.description(), Some("the database"));
    // A replica refuses writes made on it.
    let e = r
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(crate::common::code(&e), "InvalidParameterException");

    // Writes on the primary reach the peer: value, tags.
    p.put_secret_value()
        .secret_id("app/db")
        .secret_string("v2")
        .send()
        .await
        .unwrap();
    p.tag_resource()
        .secret_id("app/db")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("team")
                .value("db")
                .build(),
        )
        .send()
        .await
        .unwrap();
    wait_status(&p, "app/db", "InSync").await;
    assert_eq!(value_on(&r, "app/db").await.as_deref(), Some("v2"));
    let d = r
        .describe_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(d.tags().len(), 1);
    assert_eq!(
        r.list_secret_version_ids()
            .secret_id("app/db")
            .send()
            .await
            .unwrap()
            .versions()
            .len(),
        2
    );

    // The peer down: the write stands, the replica is InProgress, the lag is shown.
    peer.stop();
    p.put_secret_value()
        .secret_id("app/db")
        .secret_string("v3")
        .send()
        .await
        .unwrap();
    let (s, m) = status(&p, "app/db").await;
    assert_eq!(s, "InProgress", "{m}");
    assert!(m.contains("seconds behind"), "{m}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(metrics_port, "strongroom_replication_outbox_depth").unwrap_or(0.0) < 1.0 {
        assert!(Instant::now() < deadline, "the outbox depth never showed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metric(metrics_port, "strongroom_replication_lag_seconds").is_some());
    // After the bounded attempts, Failed with the error; delivery goes on.
    let m = wait_status(&p, "app/db", "Failed").await;
    assert!(
        m.contains("failed 5 times") && m.contains("retrying"),
        "{m}"
    );
    assert!(!m.contains("v3"), "{m}");

    // The peer back: delivered, InSync again.
    let peer_dir = take_dir(&mut peer);
    peer = start_peer(peer_dir, &policies, peer_port);
    r = peer.client_in(PEER_REGION, crate::common::AKID, crate::common::SECRET);
    wait_status(&p, "app/db", "InSync").await;
    assert_eq!(value_on(&r, "app/db").await.as_deref(), Some("v3"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(metrics_port, "strongroom_replication_outbox_depth") != Some(0.0) {
        assert!(Instant::now() < deadline, "the outbox never drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The primary stopped with a change undelivered: delivery resumes when it restarts.
    peer.stop();
    p.put_secret_value()
        .secret_id("app/db")
        .secret_string("v4")
        .send()
        .await
        .unwrap();
    primary.stop();
    let peer_dir = take_dir(&mut peer);
    peer = start_peer(peer_dir, &policies, peer_port);
    r = peer.client_in(PEER_REGION, crate::common::AKID, crate::common::SECRET);
    let primary_dir = take_dir(&mut primary);
    primary = start_primary(primary_dir, &peer_url, &key, metrics_port, None);
    let p = primary.client();
    wait_status(&p, "app/db", "InSync").await;
    assert_eq!(value_on(&r, "app/db").await.as_deref(), Some("v4"));

    // Promotion on the peer: it stops following; the primary sees the refusal as Failed.
    r.stop_replication_to_replica()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    r.put_secret_value()
        .secret_id("app/db")
        .secret_string("peer-own")
        .send()
        .await
        .unwrap();
    p.put_secret_value()
        .secret_id("app/db")
        .secret_string("v5")
        .send()
        .await
        .unwrap();
    let m = wait_status(&p, "app/db", "Failed").await;
    assert!(m.contains("promoted"), "{m}");
    assert_eq!(value_on(&r, "app/db").await.as_deref(), Some("peer-own"));
    // Replicating again without force does not merge anything either ...
    p.replicate_secret_to_regions()
        .secret_id("app/db")
        .add_replica_regions(ReplicaRegionType::builder().region(PEER_REGION).build())
        .send()
        .await
        .unwrap();
    let m = wait_status(&p, "app/db", "Failed").await;
    assert!(m.contains("promoted"), "{m}");
    assert_eq!(value_on(&r, "app/db").await.as_deref(), Some("peer-own"));
    // ... the owner's explicit ForceOverwriteReplicaSecret replaces the promoted secret.
    p.replicate_secret_to_regions()
        .secret_id("app/db")
        .add_replica_regions(ReplicaRegionType::builder().region(PEER_REGION).build())
        .force_overwrite_replica_secret(true)
        .send()
        .await
        .unwrap();
    wait_status(&p, "app/db", "InSync").await;
    assert_eq!(value_on(&r, "app/db").await.as_deref(), Some("v5"));

    // A name taken on the peer: Failed with a clear message, nothing overwritten.
    r.create_secret()
        .name("app/taken")
        .secret_string("peer")
        .send()
        .await
        .unwrap();
    p.create_secret()
        .name("app/taken")
        .secret_string("primary")
        .add_replica_regions(ReplicaRegionType::builder().region(PEER_REGION).build())
        .send()
        .await
        .unwrap();
    let m = wait_status(&p, "app/taken", "Failed").await;
    assert!(m.contains("already exists in region eu-west-1"), "{m}");
    assert_eq!(value_on(&r, "app/taken").await.as_deref(), Some("peer"));
    // ... replaced with ForceOverwriteReplicaSecret.
    p.replicate_secret_to_regions()
        .secret_id("app/taken")
        .add_replica_regions(ReplicaRegionType::builder().region(PEER_REGION).build())
        .force_overwrite_replica_secret(true)
        .send()
        .await
        .unwrap();
    wait_status(&p, "app/taken", "InSync").await;
    assert_eq!(value_on(&r, "app/taken").await.as_deref(), Some("primary"));

    // RemoveRegionsFromReplication deletes the peer's replica.
    p.remove_regions_from_replication()
        .secret_id("app/taken")
        .remove_replica_regions(PEER_REGION)
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while value_on(&r, "app/taken").await.is_some() {
        assert!(Instant::now() < deadline, "the replica was not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    primary.stop();
    peer.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_replication_principal_applies_changes_and_it_reads_nothing() {
    let policies_dir = tempfile::tempdir().unwrap();
    let policies = policies_dir.path().to_path_buf();
    peer_policies(&policies);
    let peer = start_peer(tempfile::tempdir().unwrap(), &policies, 0);
    let replicator = key_of(&peer, &policies, "replicator");
    let ops = key_of(&peer, &policies, "ops");
    let change = |seq: i64| {
        serde_json::json!({
            "PrimaryArn": format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:forged-AbCdEf"),
            "Seq": seq,
            "Secret": {
                "Name": "forged", "LastChangedAt": 1, "TagList": false, "Tags": [],
                "Stages": {"AWSCURRENT": "11111111-1111-4111-8111-111111111111"},
                "Versions": [{"VersionId": "11111111-1111-4111-8111-111111111111",
                    "CreatedAt": 1, "ValueKind": "S", "Value": "c2VjcmV0"}]
            }
        })
        .to_string()
    };
    let signing = signed_as;
    let target = "secretsmanager.StrongroomApplyReplicaChange";
    // A replication principal narrowed to app/* by `strongroom:PrimaryArn`.
    let narrow = key_of(&peer, &policies, "app-replicator");
    let res = peer.call_signed(target, &change(1), signing(&narrow));
    assert_eq!(res.error_type(), "AccessDeniedException", "{}", res.body);
    let app_change = change(1)
        .replace("secret:forged-", "secret:app/x-")
        .replace("\"Name\":\"forged\"", "\"Name\":\"app/x\"");
    assert!(app_change.contains("app/x-"), "{app_change}");
    let res = peer.call_signed(target, &app_change, signing(&narrow));
    assert_eq!(res.status, 200, "{}", res.body);
    // A principal with every Secrets Manager right is not the replication principal.
    let res = peer.call_signed(target, &change(1), signing(&ops));
    assert_eq!(res.status, 400, "{}", res.body);
    assert_eq!(res.error_type(), "AccessDeniedException", "{}", res.body);
    assert!(
        res.body.contains("strongroom:ApplyReplicaChange"),
        "{}",
        res.body
    );
    let root = peer.client_in(PEER_REGION, crate::common::AKID, crate::common::SECRET);
    assert!(value_on(&root, "forged").await.is_none());
    // The replication principal applies it (positive control) ...
    let res = peer.call_signed(target, &change(1), signing(&replicator));
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["Applied"], true, "{}", res.body);
    assert_eq!(value_on(&root, "forged").await.as_deref(), Some("secret"));
    // ... once: a change already applied is acknowledged and ignored.
    let res = peer.call_signed(target, &change(1), signing(&replicator));
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["Applied"], false, "{}", res.body);
    // ... and it can read nothing on the peer.
    let rc = peer.client_in(PEER_REGION, &replicator.0, &replicator.1);
    let e = rc
        .get_secret_value()
        .secret_id("forged")
        .send()
        .await
        .unwrap_err();
    assert_eq!(crate::common::code(&e), "AccessDeniedException");
    let e = rc.list_secrets().send().await.unwrap_err();
    assert_eq!(crate::common::code(&e), "AccessDeniedException");
    // The peer's audit trail records each attempt, with its principal, never the value.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = peer.call_signed(
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
            &serde_json::json!({"LookupAttributes": [{"AttributeKey": "EventName",
                "AttributeValue": "StrongroomApplyReplicaChange"}]})
            .to_string(),
            Signing {
                service: "cloudtrail".into(),
                region: PEER_REGION.into(),
                ..Signing::default()
            },
        );
        assert_eq!(res.status, 200, "{}", res.body);
        assert!(!res.body.contains("c2VjcmV0"), "{}", res.body);
        let events = res.json()["Events"].as_array().cloned().unwrap_or_default();
        if events.len() >= 3 {
            let text = res.body;
            assert!(
                text.contains("user/replicator") && text.contains("user/ops"),
                "{text}"
            );
            assert!(text.contains("AccessDenied"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} events recorded",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A delivery may leave out the values of versions the replica already holds. The peer
/// checks each one: a value left out for a version it lacks (or holds without a value) is
/// refused as retryable, and nothing of the change is applied; one it holds keeps its value.
#[tokio::test(flavor = "multi_thread")]
async fn an_omitted_value_is_accepted_only_for_a_version_the_replica_holds() {
    let policies_dir = tempfile::tempdir().unwrap();
    let policies = policies_dir.path().to_path_buf();
    peer_policies(&policies);
    let peer = start_peer(tempfile::tempdir().unwrap(), &policies, 0);
    let signing = signed_as(&key_of(&peer, &policies, "replicator"));
    const V1: &str = "11111111-1111-4111-8111-111111111111";
    const V2: &str = "22222222-2222-4222-8222-222222222222";
    let change = |seq: i64, current: &str, versions: serde_json::Value| {
        serde_json::json!({
            "PrimaryArn": format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:omit-AbCdEf"),
            "Seq": seq,
            "Secret": {"Name": "omit", "LastChangedAt": seq, "TagList": false, "Tags": [],
                "Stages": {"AWSCURRENT": current}, "Versions": versions}
        })
        .to_string()
    };
    let target = "secretsmanager.StrongroomApplyReplicaChange";
    let root = peer.client_in(PEER_REGION, crate::common::AKID, crate::common::SECRET);
    // The first change omits the value of a version the replica does not have: refused,
    // with an error the primary retries (not one of its refusals), and nothing is created.
    let omitted_v1 = serde_json::json!([{"VersionId": V1, "CreatedAt": 1, "ValueKind": "S",
        "ValueOmitted": true}]);
    let res = peer.call_signed(target, &change(1, V1, omitted_v1.clone()), signing.clone());
    assert_eq!(res.status, 400, "{}", res.body);
    assert_eq!(
        res.error_type(),
        "PreconditionNotMetException",
        "{}",
        res.body
    );
    assert!(res.body.contains(V1), "{}", res.body);
    assert!(value_on(&root, "omit").await.is_none());
    // With its value it is applied (positive control), and says omission is understood.
    let full_v1 = serde_json::json!([{"VersionId": V1, "CreatedAt": 1, "ValueKind": "S",
        "Value": "b25l"}]);
    let res = peer.call_signed(target, &change(1, V1, full_v1), signing.clone());
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["Applied"], true, "{}", res.body);
    assert_eq!(res.json()["OmittedValuesAccepted"], true, "{}", res.body);
    assert_eq!(value_on(&root, "omit").await.as_deref(), Some("one"));
    // A later change omits V1's value (held) and brings V2 with its own: applied, and V1
    // keeps the value it had (an omitted value is never taken as "no value").
    let both = serde_json::json!([
        {"VersionId": V1, "CreatedAt": 1, "ValueKind": "S", "ValueOmitted": true},
        {"VersionId": V2, "CreatedAt": 2, "ValueKind": "S", "Value": "dHdv"}]);
    let res = peer.call_signed(target, &change(2, V2, both), signing.clone());
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["Applied"], true, "{}", res.body);
    assert_eq!(value_on(&root, "omit").await.as_deref(), Some("two"));
    let v1 = root
        .get_secret_value()
        .secret_id("omit")
        .version_id(V1)
        .send()
        .await
        .unwrap();
    assert_eq!(v1.secret_string(), Some("one"));
    // A change omitting the value of a version the replica never had, next to one it holds:
    // refused whole; AWSCURRENT stays where it was.
    const V3: &str = "33333333-3333-4333-8333-333333333333";
    let missing = serde_json::json!([
        {"VersionId": V2, "CreatedAt": 2, "ValueKind": "S", "ValueOmitted": true},
        {"VersionId": V3, "CreatedAt": 3, "ValueKind": "S", "ValueOmitted": true}]);
    let res = peer.call_signed(target, &change(3, V3, missing), signing);
    assert_eq!(
        res.error_type(),
        "PreconditionNotMetException",
        "{}",
        res.body
    );
    assert_eq!(value_on(&root, "omit").await.as_deref(), Some("two"));
}

#[tokio::test(flavor = "multi_thread")]
async fn delivery_to_a_tls_peer_trusts_the_configured_ca() {
    let policies_dir = tempfile::tempdir().unwrap();
    let policies = policies_dir.path().to_path_buf();
    peer_policies(&policies);
    let tls = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.regions = vec![PEER_REGION.into()];
    cfg.policies = Some(policies.clone());
    cfg.tls = Some((tls.join("cert.pem"), tls.join("key.pem")));
    let peer = TestServer::launch_config(cfg, dir);
    let key = key_of(&peer, &policies, "replicator");
    let url = format!("https://localhost:{}", peer.addr.port());
    // Without the CA the peer's certificate is not trusted: the change waits.
    let mut primary = start_primary(tempfile::tempdir().unwrap(), &url, &key, free_port(), None);
    let p = primary.client();
    p.create_secret()
        .name("tls/one")
        .secret_string("over-tls")
        .add_replica_regions(ReplicaRegionType::builder().region(PEER_REGION).build())
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, m) = status(&p, "tls/one").await;
        assert_ne!(s, "InSync", "{m}");
        if m.contains("certificate") || m.contains("TLS") || m.contains("UnknownIssuer") {
            break;
        }
        assert!(Instant::now() < deadline, "no TLS error shown: {s} {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    primary.stop();
    // With --peer-ca: delivered.
    let mut primary = start_primary(
        tempfile::tempdir().unwrap(),
        &url,
        &key,
        free_port(),
        Some(tls.join("ca.pem")),
    );
    let p = primary.client();
    p.create_secret()
        .name("tls/two")
        .secret_string("over-tls")
        .add_replica_regions(ReplicaRegionType::builder().region(PEER_REGION).build())
        .send()
        .await
        .unwrap();
    wait_status(&p, "tls/two", "InSync").await;
    let mut raw = crate::common::send_tls(
        peer.addr,
        &crate::common::signed_request(
            "secretsmanager.GetSecretValue",
            br#"{"SecretId":"tls/two"}"#,
            Signing {
                region: PEER_REGION.into(),
                ..Signing::default()
            },
        ),
    );
    assert_eq!(raw.status, 200, "{}", raw.body);
    assert_eq!(raw.json()["SecretString"], "over-tls");
    raw.body.clear();
    primary.stop();
}

/// The outbox on PostgreSQL (primary) delivering to a peer on SQLite; a peer on PostgreSQL.
#[tokio::test(flavor = "multi_thread")]
async fn the_outbox_and_the_apply_operation_on_postgresql() {
    let Some(base) = crate::common::postgres_base_url() else {
        return;
    };
    let policies_dir = tempfile::tempdir().unwrap();
    let policies = policies_dir.path().to_path_buf();
    peer_policies(&policies);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), Some(crate::common::fresh_postgres_db(&base)));
    cfg.regions = vec![PEER_REGION.into()];
    cfg.policies = Some(policies.clone());
    let mut peer = TestServer::launch_config(cfg, dir);
    let key = key_of(&peer, &policies, "replicator");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), Some(crate::common::fresh_postgres_db(&base)));
    cfg.peers = PeerConfig {
        peers: vec![Peer::new(
            PEER_REGION,
            &format!("http://127.0.0.1:{}", peer.addr.port()),
            true,
        )
        .unwrap()],
        ca_file: None,
        credentials: Some(PeerCredentials {
            access_key_id: key.0.clone(),
            secret_access_key: zeroize::Zeroizing::new(key.1.clone()),
        }),
    };
    let mut primary = TestServer::launch_config(cfg, dir);
    let p = primary.client();
    let r = peer.client_in(PEER_REGION, crate::common::AKID, crate::common::SECRET);
    p.create_secret()
        .name("pg/one")
        .secret_string("pg-v1")
        .add_replica_regions(ReplicaRegionType::builder().region(PEER_REGION).build())
        .send()
        .await
        .unwrap();
    wait_status(&p, "pg/one", "InSync").await;
    p.put_secret_value()
        .secret_id("pg/one")
        .secret_string("pg-v2")
        .send()
        .await
        .unwrap();
    wait_status(&p, "pg/one", "InSync").await;
    assert_eq!(value_on(&r, "pg/one").await.as_deref(), Some("pg-v2"));
    primary.stop();
    peer.stop();
}

fn client_at(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager as sm;
    let conf = sm::Config::builder()
        .behavior_version(sm::config::BehaviorVersion::latest())
        .http_client(strongroom::client::https_client())
        .endpoint_url(endpoint)
        .region(sm::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            crate::common::AKID,
            crate::common::SECRET,
            None,
            None,
            "test",
        ))
        .build();
    sm::Client::from_conf(conf)
}

/// The primary as a process of its own (so that it can be killed with SIGKILL).
struct PrimaryProcess {
    child: std::process::Child,
}

impl PrimaryProcess {
    fn spawn(
        data: &Path,
        database_url: Option<&str>,
        port: u16,
        metrics: u16,
        peer_url: &str,
        key: &(String, String),
    ) -> Self {
        let policies = data.join("no-policies");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"));
        command.args(["serve", "--data-dir"]).arg(data);
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
        }
        let child = command
            .args(["--policies"])
            .arg(&policies)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--metrics-listen",
                &format!("127.0.0.1:{metrics}"),
                "--regions",
                "us-east-1",
                "--account-id",
                ACCOUNT,
                "--peer",
                &format!("{PEER_REGION}={peer_url}"),
                "--peer-allow-plain-http-loopback",
                "--peer-access-key-id",
                &key.0,
            ])
            .env("STRONGROOM_PEER_SECRET_ACCESS_KEY", &key.1)
            .env("STRONGROOM_ROOT_ACCESS_KEY_ID", crate::common::AKID)
            .env("STRONGROOM_ROOT_SECRET_ACCESS_KEY", crate::common::SECRET)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the primary did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child }
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for PrimaryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_drained(metrics_port: u16, secs: u64) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if metric(metrics_port, "strongroom_replication_outbox_depth") == Some(0.0) {
            return started.elapsed();
        }
        assert!(Instant::now() < deadline, "the outbox did not drain");
    }
}

/// Issue 21, item 3: 1,000 secrets replicated to a peer; the primary killed with SIGKILL
/// while a round of writes is being delivered; the peer serves what was delivered, a
/// promoted secret accepts writes there; the restarted primary finishes delivering the rest
/// and sees the promoted one refuse it. The lag under a steady write load is printed.
#[tokio::test(flavor = "multi_thread")]
async fn disaster_recovery_with_a_thousand_secrets_and_kill_9() {
    disaster_recovery(None).await;
}

/// The same with each server on a PostgreSQL database of its own.
#[tokio::test(flavor = "multi_thread")]
async fn disaster_recovery_on_postgresql() {
    if let Some(base) = crate::common::postgres_base_url() {
        disaster_recovery(Some(base)).await;
    }
}

async fn disaster_recovery(postgres: Option<String>) {
    const N: usize = 1000;
    let policies_dir = tempfile::tempdir().unwrap();
    let policies = policies_dir.path().to_path_buf();
    peer_policies(&policies);
    let peer_port = free_port();
    let peer_dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(
        peer_dir.path(),
        postgres.as_deref().map(crate::common::fresh_postgres_db),
    );
    cfg.regions = vec![PEER_REGION.into()];
    cfg.policies = Some(policies.clone());
    cfg.listen = format!("127.0.0.1:{peer_port}");
    let peer = TestServer::launch_config(cfg, peer_dir);
    let primary_db = postgres.as_deref().map(crate::common::fresh_postgres_db);
    let key = key_of(&peer, &policies, "replicator");
    let r = peer.client_in(PEER_REGION, crate::common::AKID, crate::common::SECRET);
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics_port = free_port();
    let mut primary = PrimaryProcess::spawn(
        data.path(),
        primary_db.as_deref(),
        port,
        metrics_port,
        &peer_url,
        &key,
    );
    let p = client_at(&format!("http://127.0.0.1:{port}"));

    // 1,000 replicated secrets.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..16 {
        let p = p.clone();
        tasks.spawn(async move {
            for i in (w..N).step_by(16) {
                p.create_secret()
                    .name(format!("dr/{i}"))
                    .secret_string(format!("dr-{i}-v1"))
                    .add_replica_regions(ReplicaRegionType::builder().region(PEER_REGION).build())
                    .send()
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let created = started.elapsed();
    let drained = wait_drained(metrics_port, 120).await;
    eprintln!("1000 secrets created in {created:?}; all delivered {drained:?} later");

    // Lag under a steady PutSecretValue load (about 100 writes/s for 5 s).
    let mut samples = Vec::new();
    let load_end = Instant::now() + Duration::from_secs(5);
    let mut i = 0usize;
    while Instant::now() < load_end {
        p.put_secret_value()
            .secret_id(format!("dr/{}", i % N))
            .secret_string(format!("dr-{}-load-{i}", i % N))
            .send()
            .await
            .unwrap();
        i += 1;
        if i.is_multiple_of(10) {
            samples.push(metric(metrics_port, "strongroom_replication_lag_seconds").unwrap_or(0.0));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_drained(metrics_port, 60).await;
    samples.sort_by(f64::total_cmp);
    let p99 = samples
        .get(samples.len().saturating_mul(99) / 100)
        .copied()
        .unwrap_or(0.0);
    eprintln!(
        "steady load: {i} writes in 5 s; replication lag p99 {p99:.3} s, max {:.3} s",
        samples.last().copied().unwrap_or(0.0)
    );

    // A round of writes v2 to every secret; SIGKILL the primary midway.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8 {
        let p = p.clone();
        let acked = std::sync::Arc::clone(&acknowledged);
        tasks.spawn(async move {
            for i in (w..N).step_by(8) {
                let ok = p
                    .put_secret_value()
                    .secret_id(format!("dr/{i}"))
                    .secret_string(format!("dr-{i}-v2"))
                    .send()
                    .await
                    .is_ok();
                if !ok {
                    return;
                }
                acked.lock().unwrap().push(i);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < N / 2 {
        assert!(Instant::now() < deadline, "writes too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    primary.kill9();
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let acked: std::collections::BTreeSet<usize> =
        acknowledged.lock().unwrap().iter().copied().collect();
    assert!(
        acked.len() >= N / 2 && acked.len() < N,
        "{} acknowledged",
        acked.len()
    );

    // The peer serves, for every secret, a value the primary held: v2 only where it was
    // written (acknowledged, or in flight at the kill), never anything else.
    let mut on_peer_v2 = 0;
    for i in 0..N {
        let v = value_on(&r, &format!("dr/{i}")).await.unwrap();
        if v == format!("dr-{i}-v2") {
            on_peer_v2 += 1;
        } else {
            assert!(v.starts_with(&format!("dr-{i}-")), "dr/{i}: {v}");
        }
    }
    eprintln!(
        "killed with {} of {N} writes acknowledged; {on_peer_v2} delivered to the peer",
        acked.len()
    );

    // Fail-over: promote one secret on the peer, which then accepts writes.
    let promoted = *acked.iter().next().unwrap();
    r.stop_replication_to_replica()
        .secret_id(format!("dr/{promoted}"))
        .send()
        .await
        .unwrap();
    r.put_secret_value()
        .secret_id(format!("dr/{promoted}"))
        .secret_string("written-after-fail-over")
        .send()
        .await
        .unwrap();

    // The old primary restarts: it delivers what was left; the promoted secret refuses its
    // old primary's changes (Failed, nothing merged).
    let _primary = PrimaryProcess::spawn(
        data.path(),
        primary_db.as_deref(),
        port,
        metrics_port,
        &peer_url,
        &key,
    );
    let p = client_at(&format!("http://127.0.0.1:{port}"));
    wait_drained(metrics_port, 120).await;
    for &i in &acked {
        if i == promoted {
            continue;
        }
        assert_eq!(
            value_on(&r, &format!("dr/{i}")).await.as_deref(),
            Some(format!("dr-{i}-v2").as_str()),
            "dr/{i} acknowledged but not on the peer after the restart"
        );
    }
    for i in 0..N {
        let primary_value = value_on(&p, &format!("dr/{i}")).await.unwrap();
        let peer_value = value_on(&r, &format!("dr/{i}")).await.unwrap();
        if i == promoted {
            assert_eq!(peer_value, "written-after-fail-over");
        } else {
            assert_eq!(peer_value, primary_value, "dr/{i}");
        }
    }
    // The old primary's next write to the promoted secret is refused by the peer.
    p.put_secret_value()
        .secret_id(format!("dr/{promoted}"))
        .secret_string("old-primary-after-fail-over")
        .send()
        .await
        .unwrap();
    let m = wait_status(&p, &format!("dr/{promoted}"), "Failed").await;
    assert!(m.contains("promoted"), "{m}");
    assert_eq!(
        value_on(&r, &format!("dr/{promoted}")).await.as_deref(),
        Some("written-after-fail-over")
    );
    drop(peer);
}
