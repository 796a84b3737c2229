//! Test harness: an in-process server on a temp dir (SQLite or a fresh PostgreSQL database),
//! an SDK client for it, and a raw SigV4 signer + HTTP/1.1 sender.

#![allow(dead_code, reason = "not every test module uses every helper")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aws_sdk_secretsmanager as sm;
use aws_sdk_secretsmanager::config::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_smithy_runtime_api::client::identity::Identity;
use strongroom::config::{ServeConfig, StoreConfig};

pub const AKID: &str = "AKIAINTEGRATION00001";
pub const SECRET: &str = "integration/secret/key/0000000000000000";
pub const ACCOUNT: &str = "111122223333";
/// A marker value that must never appear outside a GetSecretValue response.
pub const MARKER: &str = "MARKER-it-9d2b7e-plaintext";

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub database_url: String,
    /// The server's handle and thread, for [`TestServer::stop`].
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The base PostgreSQL URL from the test command, if any.
pub fn postgres_base_url() -> Option<String> {
    match std::env::var("STRONGROOM_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            // A PostgreSQL case without a database fails, unless the run says it skips
            // PostgreSQL (scripts/test.sh always starts one and never skips).
            assert!(
                std::env::var("STRONGROOM_SKIP_POSTGRES").is_ok_and(|v| v == "1")
                    && std::env::var("STRONGROOM_REQUIRE_POSTGRES").is_err(),
                "STRONGROOM_TEST_DATABASE_URL is not set: run scripts/test.sh (which starts \
                 PostgreSQL), set it, or set STRONGROOM_SKIP_POSTGRES=1 to skip the PostgreSQL cases"
            );
            None
        }
    }
}

/// Create a fresh database next to `base` and return its URL.
pub fn fresh_postgres_db(base: &str) -> String {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn = diesel::PgConnection::establish(base).expect("connect to test PostgreSQL");
    let name = format!("sr_it_{}", uuid::Uuid::new_v4().simple());
    conn.batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    match base.rfind('/') {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => panic!("bad base url {base}"),
    }
}

impl TestServer {
    /// A server on embedded SQLite.
    pub fn start() -> Self {
        Self::start_with(None, &["us-east-1", "eu-west-1"])
    }

    /// A server on a fresh PostgreSQL database.
    pub fn start_postgres(base: &str) -> Self {
        Self::start_with(Some(fresh_postgres_db(base)), &["us-east-1", "eu-west-1"])
    }

    pub fn start_with(database_url: Option<String>, regions: &[&str]) -> Self {
        Self::start_full(database_url, regions, None)
    }

    /// A server on embedded SQLite with a principals-as-code directory.
    pub fn start_with_policies(policies: &std::path::Path) -> Self {
        Self::start_configured(None, &["us-east-1"], None, Some(policies.to_path_buf()))
    }

    /// A server on embedded SQLite serving HTTPS with the test certificate.
    pub fn start_tls() -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
        Self::start_full(
            None,
            &["us-east-1"],
            Some((root.join("cert.pem"), root.join("key.pem"))),
        )
    }

    pub fn start_full(
        database_url: Option<String>,
        regions: &[&str],
        tls: Option<(PathBuf, PathBuf)>,
    ) -> Self {
        Self::start_configured(database_url, regions, tls, None)
    }

    pub fn start_configured(
        database_url: Option<String>,
        regions: &[&str],
        tls: Option<(PathBuf, PathBuf)>,
        policies: Option<PathBuf>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config_in(dir.path(), database_url);
        cfg.tls = tls;
        cfg.regions = regions.iter().map(|r| (*r).to_owned()).collect();
        cfg.policies = policies;
        Self::launch_config(cfg, dir)
    }

    /// Run a server with `cfg` (made by [`config_in`] under `dir`, then changed as needed).
    pub fn launch_config(cfg: ServeConfig, dir: tempfile::TempDir) -> Self {
        let database_url = cfg.store.database_url.clone();
        Self::launch(cfg, dir, database_url)
    }

    /// Run a server with `cfg` (its data under `dir`) on a thread of its own.
    pub fn launch(cfg: ServeConfig, dir: tempfile::TempDir, database_url: String) -> Self {
        // SAFETY of the env: every test server uses the same bootstrap pair.
        std::env::set_var("STRONGROOM_ROOT_ACCESS_KEY_ID", AKID);
        std::env::set_var("STRONGROOM_ROOT_SECRET_ACCESS_KEY", SECRET);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let sys = actix_web::rt::System::new();
            let r = sys.block_on(strongroom::server::run_with_handle(cfg, |a, h| {
                let _ = tx.send(Ok((a, h)));
            }));
            if let Err(e) = r {
                let _ = tx.send(Err(e));
            }
        });
        let (addr, handle) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server did not start")
            .expect("server failed to start");
        Self {
            addr,
            dir,
            database_url,
            handle,
            thread: Some(thread),
        }
    }

    /// Stop the server (its data stays), as an operator stops the process. A server still
    /// running when its test ends is stopped when it is dropped: the whole suite runs in one
    /// process, and servers left running would hold their threads and files to the end.
    pub fn stop(&mut self) {
        // The stop command is sent when `stop` is called; its future only awaits completion.
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// An SDK client for region `us-east-1` with the root credentials.
    pub fn client(&self) -> sm::Client {
        self.client_in("us-east-1", AKID, SECRET)
    }

    pub fn client_in(&self, region: &str, akid: &str, secret: &str) -> sm::Client {
        let conf = sm::Config::builder()
            .behavior_version(sm::config::BehaviorVersion::latest())
            .http_client(strongroom::client::https_client())
            .endpoint_url(self.endpoint())
            .region(sm::config::Region::new(region.to_owned()))
            .credentials_provider(Credentials::new(akid, secret, None, None, "test"))
            .build();
        sm::Client::from_conf(conf)
    }

    /// The store settings of this server (for offline commands).
    pub fn store_config(&self) -> StoreConfig {
        store_config_for(self.data_dir(), self.database_url.clone())
    }

    /// A raw request signed with the root key.
    pub fn call(&self, target: &str, body: &str) -> RawResponse {
        self.raw(&signed_request(target, body.as_bytes(), Signing::default()))
    }

    /// A raw JSON request with explicit signing settings.
    pub fn call_signed(&self, target: &str, body: &str, s: Signing) -> RawResponse {
        self.raw(&signed_request(target, body.as_bytes(), s))
    }

    /// Send raw bytes of an HTTP/1.1 request and read the response.
    pub fn raw(&self, request: &[u8]) -> RawResponse {
        send_raw(self.addr, request)
    }
}

/// A call as the root that must succeed; CreateSecret and PutSecretValue carry a fresh
/// ClientRequestToken when the body has none, as the SDKs send one.
pub fn ok(s: &TestServer, target: &str, body: &serde_json::Value) -> serde_json::Value {
    let mut body = body.clone();
    if matches!(
        target,
        "secretsmanager.CreateSecret" | "secretsmanager.PutSecretValue"
    ) && body.get("ClientRequestToken").is_none()
    {
        body["ClientRequestToken"] = serde_json::json!(uuid::Uuid::new_v4().to_string());
    }
    let r = s.call(target, &body.to_string());
    assert_eq!(r.status, 200, "{target} {body}: {}", r.body);
    r.json()
}

/// The `VersionId` of the version carrying `stage` in a ListSecretVersionIds answer.
pub fn version_with_stage(ids: &serde_json::Value, stage: &str) -> serde_json::Value {
    ids["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| {
            v["VersionStages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == stage)
        })
        .unwrap_or_else(|| panic!("no version is {stage}: {ids}"))["VersionId"]
        .clone()
}

/// Three readers read secret `id` (whose value is "0") through `reader` while `writer` puts
/// the values 1..=`writes`, one after another: every read made after a put was acknowledged
/// returns that value or a newer one, no reader sees a value older than one it saw before,
/// and a read through `reader` right after each put returns that put's value.
pub fn reads_follow_acknowledged_writes(
    reader: &std::sync::Arc<TestServer>,
    writer: &TestServer,
    id: &str,
    writes: i64,
) {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::SeqCst};
    use std::sync::Arc;
    let get = serde_json::json!({ "SecretId": id }).to_string();
    // The last value whose PutSecretValue was acknowledged.
    let acked = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (reader, acked, stop, get) =
                (reader.clone(), acked.clone(), stop.clone(), get.clone());
            std::thread::spawn(move || {
                let (mut seen, mut reads) = (0_i64, 0);
                while !stop.load(SeqCst) {
                    let floor = acked.load(SeqCst);
                    let r = reader.call("secretsmanager.GetSecretValue", &get);
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
    for n in 1..=writes {
        ok(
            writer,
            "secretsmanager.PutSecretValue",
            &serde_json::json!({"SecretId": id, "SecretString": n.to_string()}),
        );
        acked.store(n, SeqCst);
        let r = reader.call("secretsmanager.GetSecretValue", &get);
        assert_eq!(r.json()["SecretString"], n.to_string());
        // A few reads between writes, so the cache fills before the next one.
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, SeqCst);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn error_type(&self) -> String {
        self.json()["__type"].as_str().unwrap_or("").to_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn send_raw(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// How to sign a raw request.
#[derive(Debug, Clone)]
pub struct Signing {
    pub akid: String,
    pub secret: String,
    pub region: String,
    pub service: String,
    pub time: SystemTime,
    pub extra_headers: Vec<(String, String)>,
    pub session_token: Option<String>,
}

impl Default for Signing {
    fn default() -> Self {
        Self {
            akid: AKID.into(),
            secret: SECRET.into(),
            region: "us-east-1".into(),
            service: "secretsmanager".into(),
            time: SystemTime::now(),
            extra_headers: vec![],
            session_token: None,
        }
    }
}

/// A complete form-encoded (Query protocol) request, signed with aws-sigv4.
pub fn signed_query(form: &str, s: Signing) -> Vec<u8> {
    signed_any(
        None,
        "application/x-www-form-urlencoded; charset=utf-8",
        form.as_bytes(),
        s,
    )
}

/// A complete HTTP/1.1 request for `X-Amz-Target: target`, signed with aws-sigv4.
pub fn signed_request(target: &str, body: &[u8], s: Signing) -> Vec<u8> {
    signed_any(Some(target), "application/x-amz-json-1.1", body, s)
}

/// A JSON request signed without any `X-Amz-Target` (the caller adds one, unsigned).
pub fn signed_json_without_target(body: &[u8], s: Signing) -> Vec<u8> {
    signed_any(None, "application/x-amz-json-1.1", body, s)
}

fn signed_any(target: Option<&str>, content_type: &str, body: &[u8], s: Signing) -> Vec<u8> {
    let service = match target {
        Some(t) if t.starts_with("TrentService.") && s.service == "secretsmanager" => {
            "kms".to_owned()
        }
        Some(t) if t.starts_with("com.amazonaws.cloudtrail") && s.service == "secretsmanager" => {
            "cloudtrail".to_owned()
        }
        Some(t) if t.starts_with("AWSOrganizationsV20161128.") && s.service == "secretsmanager" => {
            "organizations".to_owned()
        }
        Some(t) if t.starts_with("Strongroom.") && s.service == "secretsmanager" => {
            "strongroom".to_owned()
        }
        _ => s.service.clone(),
    };
    let identity: Identity =
        Credentials::new(&s.akid, &s.secret, s.session_token.clone(), None, "test").into();
    let params: aws_sigv4::http_request::SigningParams<'_> =
        aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&s.region)
            .name(&service)
            .time(s.time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), "localhost".into()),
        ("content-type".into(), content_type.into()),
    ];
    if let Some(t) = target {
        headers.push(("x-amz-target".into(), t.into()));
    }
    headers.extend(s.extra_headers.iter().cloned());
    let req = SignableRequest::new(
        "POST",
        "http://localhost/",
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(req, &params).unwrap().into_parts();
    let (extra, _) = instructions.into_parts();
    for h in extra {
        headers.push((h.name().to_owned(), h.value().to_owned()));
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"POST / HTTP/1.1\r\n");
    for (n, v) in &headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// The AWS error code of an SDK error.
pub fn code<E, R>(e: &aws_sdk_secretsmanager::error::SdkError<E, R>) -> String
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match e {
        aws_sdk_secretsmanager::error::SdkError::ServiceError(s) => {
            s.err().code().unwrap_or("").to_owned()
        }
        other => format!("not a service error: {other:?}"),
    }
}

/// The message of an SDK error.
pub fn message<E, R>(e: &aws_sdk_secretsmanager::error::SdkError<E, R>) -> String
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match e {
        aws_sdk_secretsmanager::error::SdkError::ServiceError(s) => {
            s.err().message().unwrap_or("").to_owned()
        }
        other => format!("not a service error: {other:?}"),
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A copy of the repository's example policies directory in a temp dir.
pub fn example_policies() -> (tempfile::TempDir, PathBuf) {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.path().is_dir() {
                copy(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("policies");
    copy(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies"),
        &dst,
    );
    (dir, dst)
}

/// Mint an access key for a user of the example account; returns (id, secret).
pub fn mint(s: &TestServer, policies: &std::path::Path, user: &str) -> (String, String) {
    let out = strongroom::cli::create_access_key(&s.store_config(), policies, "111122223333", user)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["AccessKeyId"].as_str().unwrap().starts_with("AKIA"));
    (
        v["AccessKeyId"].as_str().unwrap().to_owned(),
        v["SecretAccessKey"].as_str().unwrap().to_owned(),
    )
}

/// The text of the first `<tag>…</tag>` in an XML body ("" when absent).
pub fn xml_field(body: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open).map(|i| i + open.len()).unwrap_or(0);
    let end = body[start..]
        .find(&close)
        .map(|i| start + i)
        .unwrap_or(start);
    body[start..end].to_owned()
}

/// Percent-encode everything but letters and digits (form values).
pub fn urlenc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Now, in epoch seconds.
pub fn now_secs() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Signing as `akid`/`secret` for STS.
pub fn sts_as(akid: &str, secret: &str) -> Signing {
    Signing {
        akid: akid.into(),
        secret: secret.into(),
        service: "sts".into(),
        ..Signing::default()
    }
}

/// `AssumeRole` of `role` as session `name`, signed by `akid`/`secret`: the session's
/// (access key id, secret key, session token). Panics unless the call succeeded.
pub fn assume_role(
    s: &TestServer,
    akid: &str,
    secret: &str,
    role: &str,
    name: &str,
) -> (String, String, String) {
    let r = s.raw(&signed_query(
        &format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={name}",
            urlenc(role)
        ),
        sts_as(akid, secret),
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    (
        xml_field(&r.body, "AccessKeyId"),
        xml_field(&r.body, "SecretAccessKey"),
        xml_field(&r.body, "SessionToken"),
    )
}

/// The `authorization.reason` of the newest audit record of `event` (LookupEvents, signed by
/// the root key): which policy type decided a denial whose message does not say (a denial on
/// a secret names no reason, so that it reads alike whether the secret exists or not).
pub fn last_reason(s: &TestServer, event: &str) -> String {
    let r = s.call_signed(
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        &serde_json::json!({
            "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": event}],
            "MaxResults": 1
        })
        .to_string(),
        Signing {
            service: "cloudtrail".into(),
            ..Signing::default()
        },
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let event = &r.json()["Events"][0]["CloudTrailEvent"];
    let record: serde_json::Value = serde_json::from_str(event.as_str().unwrap_or("{}")).unwrap();
    record["authorization"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A test server's configuration for data under `dir` (SQLite in `dir/data` unless
/// `database_url`): us-east-1, the integration root key's account, no principals directory,
/// no TLS, no trusted proxies; change what a test needs, then [`TestServer::launch_config`].
pub fn config_in(dir: &std::path::Path, database_url: Option<String>) -> ServeConfig {
    let data_dir: PathBuf = dir.join("data");
    let database_url = database_url
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("strongroom.db").display()));
    ServeConfig {
        store: StoreConfig {
            data_dir: data_dir.clone(),
            database_url,
            master_key_file: data_dir.join("master.key"),
            read_mmap_bytes: 0,
            pg_change_check: std::time::Duration::ZERO,
        },
        listen: "127.0.0.1:0".into(),
        tls: None,
        account_id: ACCOUNT.into(),
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
    }
}

/// Send `request` over TLS to `addr`, trusting the test CA (`tests/fixtures/tls/ca.pem`).
pub fn send_tls(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let pem =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/ca.pem"))
            .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    parse_response(&buf)
}

/// `master-key rotate` right after the data's server was stopped: its HTTP workers drop their
/// hold on the key's lock as they exit, just after `stop` returns, so "in use" is waited out
/// (10 s at most); any other error fails. The number of rows re-sealed.
pub fn rotate_after_stop(cfg: &StoreConfig) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match strongroom::server::rotate_master_key(cfg) {
            Ok(n) => return n,
            Err(e)
                if e.contains("in use by a running server")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("master key rotation failed: {e}"),
        }
    }
}

/// Write `text` to `dir/rel`, creating its directories (principals files in tests).
pub fn write(dir: &std::path::Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// An empty principals directory (`<tmp>/policies`) declaring the default account.
pub fn account_directory() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("policies");
    write(
        &dir,
        &format!("accounts/{ACCOUNT}/account.json"),
        &format!(r#"{{"AccountId":"{ACCOUNT}"}}"#),
    );
    (t, dir)
}

/// Signing with temporary credentials: (access key id, secret, session token).
pub fn session_signing(session: &(String, String, String)) -> Signing {
    Signing {
        akid: session.0.clone(),
        secret: session.1.clone(),
        session_token: Some(session.2.clone()),
        ..Signing::default()
    }
}

/// A user of `account` whose only identity policy allows `actions` on every resource.
pub fn user_allowing(dir: &std::path::Path, account: &str, name: &str, actions: &[&str]) {
    if !dir
        .join(format!("accounts/{account}/account.json"))
        .exists()
    {
        write(
            dir,
            &format!("accounts/{account}/account.json"),
            &format!(r#"{{"AccountId":"{account}"}}"#),
        );
    }
    let actions = serde_json::to_string(actions).unwrap();
    write(
        dir,
        &format!("accounts/{account}/users/{name}.json"),
        &format!(
            r#"{{"UserName":"{name}","InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":{actions},"Resource":"*"}}]}}}}}}"#
        ),
    );
}

/// The store of a server whose data directory is `data_dir`, for offline commands.
pub fn store_config_for(data_dir: PathBuf, database_url: String) -> StoreConfig {
    StoreConfig {
        master_key_file: data_dir.join("master.key"),
        data_dir,
        database_url,
        read_mmap_bytes: 0,
        pg_change_check: std::time::Duration::ZERO,
    }
}

/// An access key for `user` of `account`.
pub fn key_for(
    s: &TestServer,
    policies: &std::path::Path,
    account: &str,
    user: &str,
) -> (String, String) {
    key_in(&s.store_config(), policies, account, user)
}

/// An access key for `user` of `account`, minted in `store` (`strongroom access-key create`).
pub fn key_in(
    store: &StoreConfig,
    policies: &std::path::Path,
    account: &str,
    user: &str,
) -> (String, String) {
    let out = strongroom::cli::create_access_key(store, policies, account, user).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    (
        v["AccessKeyId"].as_str().unwrap().to_owned(),
        v["SecretAccessKey"].as_str().unwrap().to_owned(),
    )
}

pub fn call_as(
    s: &TestServer,
    akid: &str,
    secret: &str,
    target: &str,
    body: &serde_json::Value,
) -> RawResponse {
    s.call_signed(
        target,
        &body.to_string(),
        Signing {
            akid: akid.into(),
            secret: secret.into(),
            ..Signing::default()
        },
    )
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            drop(self.handle.stop(false));
            if let Some(t) = self.thread.take() {
                // A test that failed has already panicked; do not panic again here.
                let _ = t.join();
            }
        }
    }
}
