//! Resource exhaustion and failing closed: a full disk under the data directory, and what
//! the server keeps serving (and recording) while it lasts and once it is over.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strongroom::audit::{verify_store, VerifyOptions};
use strongroom::store::Store;

use crate::common::{config_in, ok, signed_request, RawResponse, Signing, TestServer};

/// A small tmpfs mounted for one test (unmounted when dropped), so that filling it fills no
/// real disk. `None` (with a note) where this process may not mount one.
struct Tmpfs {
    mountpoint: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let mountpoint = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(mountpoint.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Self { mountpoint })
    }

    fn path(&self) -> &Path {
        self.mountpoint.path()
    }

    /// Fill what is left of the file system with one file; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        // What a whole block no longer fitted: a byte at a time.
        while f.write_all(&[0]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a file the test still holds open must not keep the mount.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.mountpoint.path())
            .status();
    }
}

fn put(s: &TestServer, id: &str, value: &str) -> RawResponse {
    s.call(
        "secretsmanager.PutSecretValue",
        &json!({"SecretId": id, "SecretString": value,
                "ClientRequestToken": uuid::Uuid::new_v4().to_string()})
        .to_string(),
    )
}

fn get(s: &TestServer, id: &str) -> RawResponse {
    s.call(
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": id}).to_string(),
    )
}

/// Every record of the store at `url`, as JSON, in chain order; and `audit verify`'s finding.
pub(crate) fn trail(url: &str) -> (Vec<Value>, Option<String>) {
    let store = Store::open(url).unwrap();
    let rows = store
        .read_blocking(|tx| {
            let mut out = Vec::new();
            for c in tx.audit_chains()? {
                out.extend(tx.audit_range(&c, 0, 1_000_000)?);
            }
            Ok(out)
        })
        .unwrap();
    let finding = verify_store(&store, &VerifyOptions::default())
        .unwrap()
        .first_finding()
        .map(|f| format!("{f:?}"));
    let records = rows
        .iter()
        .map(|r| serde_json::from_str(&r.record).unwrap())
        .collect();
    (records, finding)
}

/// The data directory's disk fills while callers keep writing and reading: no value leaves
/// without its record, no write is durable without its record (a write answered with an
/// error may have committed, as on any server error, but then its record is in the chain
/// too), errors name no path, and once space returns the server serves and records again
/// by itself, on a chain that verifies.
#[test]
fn a_full_disk_leaves_no_committed_write_without_its_record() {
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    let dir = tempfile::tempdir_in(fs.path()).unwrap();
    let cfg = config_in(dir.path(), None);
    let url = cfg.store.database_url.clone();
    let mut s = TestServer::launch_config(cfg, dir);
    assert_eq!(
        s.call(
            "secretsmanager.CreateSecret",
            &json!({"Name": "full/db", "SecretString": "v0",
                    "ClientRequestToken": uuid::Uuid::new_v4().to_string()})
            .to_string(),
        )
        .status,
        200
    );
    // A server that has been writing: its WAL files have room that a checkpoint freed.
    for i in 0..20 {
        assert_eq!(put(&s, "full/db", &"w".repeat(i * 1000)).status, 200);
    }
    std::thread::sleep(std::time::Duration::from_millis(600));
    let filler = fs.fill();
    let mut answered = Vec::new();
    // Until ten writes failed: the first ones may fit in room the database files hold.
    for i in 0..400 {
        if answered.iter().filter(|(w, _)| *w != 200).count() >= 10 {
            break;
        }
        let w = put(&s, "full/db", &format!("v{i}-{}", "x".repeat(2000)));
        let r = get(&s, "full/db");
        for resp in [&w, &r] {
            if resp.status != 200 {
                assert_eq!(resp.status, 500, "{}", resp.body);
                assert_eq!(resp.error_type(), "InternalServiceError", "{}", resp.body);
                assert!(!resp.body.contains('/'), "{}", resp.body);
            }
        }
        answered.push((w.status, r.status));
    }
    assert!(
        answered.iter().filter(|(w, _)| *w != 200).count() >= 10,
        "the disk never filled: {answered:?}"
    );
    std::fs::remove_file(filler).unwrap();
    // Space is back: served and recorded again, without a restart.
    let r = get(&s, "full/db");
    assert_eq!(r.status, 200, "{}", r.body);
    let versions = s.call(
        "secretsmanager.ListSecretVersionIds",
        r#"{"SecretId": "full/db", "IncludeDeprecated": true}"#,
    );
    assert_eq!(versions.status, 200, "{}", versions.body);
    let committed = versions.json()["Versions"].as_array().unwrap().len();
    s.stop();
    let (records, finding) = trail(&url);
    assert_eq!(finding, None);
    let recorded_writes = records
        .iter()
        .filter(|r| {
            ["CreateSecret", "PutSecretValue"].contains(&r["eventName"].as_str().unwrap_or(""))
                && r["errorCode"].is_null()
        })
        .count();
    assert_eq!(
        recorded_writes, committed,
        "every committed version has its successful write's record ({answered:?})"
    );
    let reads_ok = answered.iter().filter(|(_, r)| *r == 200).count() + 1;
    let recorded_reads = records
        .iter()
        .filter(|r| r["eventName"] == "GetSecretValue" && r["errorCode"].is_null())
        .count();
    assert!(
        recorded_reads >= reads_ok,
        "every value served has its record: {recorded_reads} < {reads_ok}"
    );
}

/// A server whose request bodies must arrive within one second of their heads.
fn start_with_body_timeout() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.client_timeouts.body = Duration::from_secs(1);
    TestServer::launch_config(cfg, dir)
}

/// Everything the server sends on `c` until it closes the connection (or 20 s pass).
fn read_until_closed(c: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    (out, started.elapsed())
}

/// A caller that sends a request's head and then stops sending its body (slowloris) no
/// longer holds the connection: once the body's time is up it gets `RequestTimeoutException`
/// (HTTP 408, which the SDKs retry), recorded like any refusal, and the connection is
/// closed. A body sent in pieces within the time is served.
#[test]
fn a_body_that_stops_arriving_is_cut_off_and_recorded() {
    let s = start_with_body_timeout();
    let body = br#"{"SecretId":"slow/one"}"#;
    let request = signed_request("secretsmanager.GetSecretValue", body, Signing::default());
    let split = request.len() - body.len() + 5;
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(&request[..split]).unwrap();
    let (out, elapsed) = read_until_closed(&mut c);
    let r = crate::common::parse_response(&out);
    assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(&out));
    assert_eq!(r.error_type(), "RequestTimeoutException", "{}", r.body);
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let request_id = r.header("x-amzn-RequestId").unwrap().to_owned();
    // Positive control: the same request, its body in two pieces well within the time.
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "slow/one", "SecretString": "v"}),
    );
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(&request[..split]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    c.write_all(&request[split..]).unwrap();
    let r = crate::common::parse_response(&read_until_closed(&mut c).0);
    assert_eq!(r.status, 200, "{}", r.body);
    let mut s = s;
    let url = s.database_url.clone();
    s.stop();
    let (records, _) = trail(&url);
    let refused: Vec<&Value> = records
        .iter()
        .filter(|r| r["requestID"] == request_id.as_str())
        .collect();
    assert_eq!(refused.len(), 1, "{records:?}");
    assert_eq!(refused[0]["errorCode"], "RequestTimeoutException");
}

/// A request just under the body limit whose validation error echoes every value it sent
/// (200 filters of 200 values: AWS's message lists them, about 1.9 MB) is answered in full,
/// but its record keeps a bounded `errorMessage`: no request makes a record the size of its
/// body, let alone twice it. A short error message is recorded whole.
#[test]
fn an_error_message_echoing_a_large_request_is_recorded_bounded() {
    let mut s = TestServer::start();
    let filters: Vec<Value> = (0..200)
        .map(|_| json!({"Key": "all", "Values": vec!["v".repeat(20); 200]}))
        .collect();
    let big = json!({"Filters": filters}).to_string();
    assert!(big.len() < 1024 * 1024, "{}", big.len());
    let r = s.call("secretsmanager.ListSecrets", &big);
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "ValidationException");
    assert!(r.body.len() > big.len(), "{}", r.body.len());
    let big_id = r.header("x-amzn-RequestId").unwrap().to_owned();
    let small = s.call("secretsmanager.ListSecrets", r#"{"MaxResults": 0}"#);
    assert_eq!(small.error_type(), "ValidationException", "{}", small.body);
    let small_id = small.header("x-amzn-RequestId").unwrap().to_owned();
    let small_message = small.json()["Message"].as_str().unwrap().to_owned();
    let url = s.database_url.clone();
    s.stop();
    let (records, finding) = trail(&url);
    assert_eq!(finding, None);
    let of = |id: &str| {
        records
            .iter()
            .find(|r| r["requestID"] == id)
            .cloned()
            .unwrap()
    };
    let big_record = of(&big_id);
    assert_eq!(big_record["errorCode"], "ValidationException");
    let size = big_record.to_string().len();
    assert!(size < 64 * 1024, "a record of {size} bytes");
    assert!(big_record["errorMessage"]
        .as_str()
        .unwrap()
        .starts_with("201 validation errors detected"));
    assert_eq!(of(&small_id)["errorMessage"], small_message.as_str());
}

/// A caller that pipelines requests for a large secret and never reads the answers no longer
/// holds its connection: once the server's data has waited unacknowledged (the caller's
/// window shut) for the send timeout, the connection is dropped, well before every answer
/// was sent. The same requests read as they come are all answered.
#[test]
fn a_client_that_never_reads_its_answers_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.client_timeouts.send = Duration::from_secs(1);
    let s = TestServer::launch_config(cfg, dir);
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "big/one", "SecretString": "s".repeat(60_000)}),
    );
    let one = signed_request(
        "secretsmanager.GetSecretValue",
        br#"{"SecretId":"big/one"}"#,
        Signing::default(),
    );
    // Beyond what the kernel buffers of both ends hold (about 5 MB here).
    let n = 120;
    let pipelined: Vec<u8> = one.repeat(n);
    let count = |bytes: &[u8]| {
        bytes
            .windows(b"HTTP/1.1 200".len())
            .filter(|w| *w == b"HTTP/1.1 200")
            .count()
    };
    // Positive control: read as they come, every answer arrives.
    let mut c = TcpStream::connect(s.addr).unwrap();
    let writer = {
        let mut w = c.try_clone().unwrap();
        let data = pipelined.clone();
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        })
    };
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut answered = 0;
    // The last bytes read, so that a status line split between two reads is counted.
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    while answered < n {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                tail.extend_from_slice(&buf[..k]);
                answered += count(&tail);
                let keep = tail.len().min(b"HTTP/1.1 200".len() - 1);
                tail.drain(..tail.len() - keep);
            }
        }
    }
    writer.join().unwrap();
    assert_eq!(answered, n);
    drop(c);
    // The same, never read until the connection had time to be dropped.
    let mut c = TcpStream::connect(s.addr).unwrap();
    let writer = {
        let mut w = c.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(&pipelined);
        })
    };
    std::thread::sleep(Duration::from_secs(6));
    let (out, elapsed) = read_until_closed(&mut c);
    let _ = c.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    assert!(
        count(&out) < n,
        "every answer was sent to a caller not reading"
    );
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    // Others are still served.
    let r = get(&s, "big/one");
    assert_eq!(r.status, 200);
}

/// An unauthenticated request is recorded with what its headers say, not with its body's
/// parameters: anyone on the network, with no rate limit for them, could otherwise write
/// 100 KB of audit trail per request (the `requestParameters` limit) and fill the disk the
/// trail shares with the secrets. An authenticated request's parameters are recorded.
#[test]
fn an_unauthenticated_request_records_no_request_parameters() {
    let mut s = TestServer::start();
    let filters: Vec<Value> = (0..18)
        .map(|_| json!({"Key": "name", "Values": vec!["v".repeat(500); 10]}))
        .collect();
    let body = json!({"Filters": filters}).to_string();
    let unsigned = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-amz-json-1.1\r\n\
         x-amz-target: secretsmanager.ListSecrets\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = s.raw(unsigned.as_bytes());
    assert_eq!(
        r.error_type(),
        "MissingAuthenticationTokenException",
        "{}",
        r.body
    );
    let unsigned_id = r.header("x-amzn-RequestId").unwrap().to_owned();
    let bad_key = Signing {
        secret: "not/the/secret/000000000000000000000000".into(),
        ..Signing::default()
    };
    let r = s.call_signed("secretsmanager.ListSecrets", &body, bad_key);
    assert_eq!(r.error_type(), "InvalidSignatureException", "{}", r.body);
    let bad_id = r.header("x-amzn-RequestId").unwrap().to_owned();
    let form = format!(
        "Action=GetCallerIdentity&Version=2011-06-15&RoleSessionName={}",
        "n".repeat(90_000)
    );
    let r = s.raw(
        format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{form}",
            form.len()
        )
        .as_bytes(),
    );
    let query_id = r.header("x-amzn-RequestId").unwrap().to_owned();
    // Positive control: the root's request, refused for its input, keeps its parameters.
    let r = s.call(
        "secretsmanager.ListSecrets",
        r#"{"Filters": [{"Key": "name", "Values": ["prod"]}], "MaxResults": 0}"#,
    );
    assert_eq!(r.error_type(), "ValidationException", "{}", r.body);
    let signed_id = r.header("x-amzn-RequestId").unwrap().to_owned();
    let url = s.database_url.clone();
    s.stop();
    let (records, _) = trail(&url);
    let of = |id: &str| {
        records
            .iter()
            .find(|r| r["requestID"] == id)
            .cloned()
            .unwrap()
    };
    for id in [&unsigned_id, &bad_id, &query_id] {
        let record = of(id);
        assert!(record["requestParameters"].is_null(), "{record}");
        assert!(record.to_string().len() < 8 * 1024, "{record}");
    }
    assert_eq!(
        of(&signed_id)["requestParameters"]["filters"][0]["key"],
        "name"
    );
}
