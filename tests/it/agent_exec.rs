//! `strongroom agent` and `strongroom exec` end to end: the built binary, with the standard
//! credential chain's environment variables, against a test server.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{send_raw, RawResponse, TestServer, AKID, MARKER, SECRET};

const BIN: &str = env!("CARGO_BIN_EXE_strongroom");
pub(crate) const TOKEN: &str = "agent-ssrf-token-it";

/// A command for the binary with only the credential chain's environment: the test's
/// credentials, region and endpoint, and no shared config or credentials files.
fn strongroom(server: &TestServer) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", AKID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", server.endpoint())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

/// A running agent, killed when dropped; its standard error goes to a file.
pub(crate) struct Agent {
    child: Child,
    pub(crate) addr: SocketAddr,
    stderr: std::path::PathBuf,
}

impl Agent {
    pub(crate) fn start(server: &TestServer, dir: &Path, config: &str) -> Self {
        let cfg = dir.join("agent.toml");
        std::fs::write(&cfg, config).unwrap();
        let stderr = dir.join("agent.stderr");
        let mut child = strongroom(server)
            .env("AWS_TOKEN", TOKEN)
            .env("STRONGROOM_LOG", "debug")
            .args(["agent", "--config"])
            .arg(&cfg)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "agent did not start: {line:?} {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            });
        Self {
            child,
            addr,
            stderr,
        }
    }

    pub(crate) fn get(&self, path: &str, headers: &[(&str, &str)]) -> RawResponse {
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        send_raw(self.addr, req.as_bytes())
    }

    pub(crate) fn get_with_token(&self, path: &str) -> RawResponse {
        self.get(path, &[("X-Aws-Parameters-Secrets-Token", TOKEN)])
    }

    pub(crate) fn value(&self, path: &str) -> String {
        let r = self.get_with_token(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()["SecretString"].as_str().unwrap().to_owned()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn put(server: &TestServer, id: &str, value: &str) {
    server
        .client()
        .put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn agent_caches_refreshes_expires_and_requires_the_token() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let v1 = format!("{MARKER}-v1");
    server
        .client()
        .create_secret()
        .name("app/agent")
        .secret_string(&v1)
        .send()
        .await
        .unwrap();
    let agent = Agent::start(
        &server,
        dir.path(),
        "ttl_seconds = 2\ncache_size = \"10\"\nvalidate_credentials = true\n",
    );
    let q = "/secretsmanager/get?secretId=app%2Fagent";

    // The SSRF token: missing, wrong, then forwarded requests are refused.
    let r = agent.get(q, &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(!r.body.contains(MARKER));
    let r = agent.get(q, &[("X-Aws-Parameters-Secrets-Token", "wrong")]);
    assert_eq!(r.status, 403, "{}", r.body);
    let r = agent.get(
        q,
        &[
            ("X-Aws-Parameters-Secrets-Token", TOKEN),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // The health check needs no token.
    let r = agent.get("/ping", &[]);
    assert_eq!((r.status, r.body.as_str()), (200, "healthy"));
    // Only GET is served.
    let post = format!(
        "POST {q} HTTP/1.1\r\nHost: localhost\r\nX-Aws-Parameters-Secrets-Token: {TOKEN}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(send_raw(agent.addr, post.as_bytes()).status, 405);

    // First read: GetSecretValue's JSON.
    let r = agent.get_with_token(q);
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["Name"], "app/agent");
    assert_eq!(j["SecretString"], v1.as_str());
    assert_eq!(j["VersionStages"], serde_json::json!(["AWSCURRENT"]));
    assert!(j["ARN"].as_str().unwrap().contains(":secret:app/agent-"));
    assert!(j["VersionId"].is_string() && j["CreatedDate"].is_number());
    // The second header AWS's agent accepts by default works too.
    let r = agent.get(q, &[("X-Vault-Token", TOKEN)]);
    assert_eq!(r.status, 200);

    // A new value on the server: the agent answers from its cache (query and path forms).
    let v2 = format!("{MARKER}-v2");
    put(&server, "app/agent", &v2).await;
    assert_eq!(agent.value(q), v1, "a cache hit");
    assert_eq!(
        agent.value("/v1/app/agent"),
        v1,
        "the path form, same entry"
    );
    // refreshNow bypasses the cache and refreshes it.
    assert_eq!(agent.value(&format!("{q}&refreshNow=true")), v2);
    assert_eq!(agent.value(q), v2, "the refreshed entry is cached");
    // After the TTL, the next read fetches again.
    let v3 = format!("{MARKER}-v3");
    put(&server, "app/agent", &v3).await;
    assert_eq!(agent.value(q), v2);
    std::thread::sleep(Duration::from_millis(2300));
    assert_eq!(agent.value(q), v3, "the TTL expired");
    // A version stage is a request of its own.
    assert_eq!(
        agent.value("/v1/app/agent?versionStage=AWSPREVIOUS"),
        v2,
        "AWSPREVIOUS"
    );

    // A missing secret: the server's status and error, as AWS's agent answers them.
    let r = agent.get_with_token("/secretsmanager/get?secretId=no/such");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_type(), "ResourceNotFoundException");
    assert!(r.json()["message"].is_string());
    // Bad requests.
    assert_eq!(agent.get_with_token("/secretsmanager/get").status, 400);
    assert_eq!(
        agent
            .get_with_token("/secretsmanager/get?secretId=a&refreshNow=maybe")
            .status,
        400
    );
    assert_eq!(agent.get_with_token("/elsewhere").status, 404);

    // Nothing the agent logged (at debug level) holds a value.
    let log = std::fs::read_to_string(&agent.stderr).unwrap();
    assert!(!log.contains(MARKER), "{log}");
}

#[test]
fn agent_refuses_a_non_loopback_address_and_a_missing_token() {
    let server = TestServer::start();
    let out = strongroom(&server)
        .env("AWS_TOKEN", TOKEN)
        .args(["agent", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");

    let out = strongroom(&server)
        .args(["agent", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no SSRF token") && err.contains("AWS_TOKEN"),
        "{err}"
    );
}

async fn exec_secret(server: &TestServer) -> String {
    let value = format!("{{\"password\":\"{MARKER}-pw\",\"port\":5432}}");
    server
        .client()
        .create_secret()
        .name("app/exec")
        .secret_string(&value)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn exec_sets_the_variables_and_runs_the_command() {
    let server = TestServer::start();
    let arn = exec_secret(&server).await;
    // The endpoint from the flag this time (the other tests use AWS_ENDPOINT_URL).
    let out = strongroom(&server)
        .env_remove("AWS_ENDPOINT_URL")
        .args([
            "exec",
            "--endpoint-url",
            &server.endpoint(),
            "--env",
            "DB_PASSWORD=app/exec:password",
            "--env",
            &format!("DB_PORT={arn}:port:AWSCURRENT"),
            "--env",
            &format!("WHOLE={arn}"),
            "--",
            "sh",
            "-c",
            "printf '%s|%s|%s' \"$DB_PASSWORD\" \"$DB_PORT\" \"$WHOLE\"",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{MARKER}-pw|5432|{{\"password\":\"{MARKER}-pw\",\"port\":5432}}")
    );
    assert!(!stderr.contains(MARKER), "{stderr}");
}

#[tokio::test]
async fn exec_fails_before_the_command_on_a_missing_key_or_secret() {
    let server = TestServer::start();
    exec_secret(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let touch = format!("touch {}", started.display());
    for (reference, expect) in [
        ("app/exec:user", "has no JSON key `user`"),
        ("no/such/secret", "ResourceNotFoundException"),
    ] {
        let out = strongroom(&server)
            .args([
                "exec",
                "--env",
                "OK=app/exec:password",
                "--env",
                &format!("BAD={reference}"),
                "--",
                "sh",
                "-c",
                &touch,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{reference}");
        assert!(
            stderr.contains("BAD") && stderr.contains(expect),
            "{stderr}"
        );
        assert!(
            !stderr.contains(MARKER) && out.stdout.is_empty(),
            "{stderr}"
        );
        assert!(!started.exists(), "the command started for {reference}");
    }
    // A command that does not exist: the shell's status.
    let out = strongroom(&server)
        .args([
            "exec",
            "--env",
            "OK=app/exec:password",
            "--",
            "/nonexistent/strongroom-it-command",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(MARKER));
}

#[tokio::test]
async fn exec_replaces_itself_so_signals_reach_the_command() {
    let server = TestServer::start();
    exec_secret(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let marker = dir.path().join("got-term");
    let script = format!(
        "trap 'echo \"$DB_PASSWORD\" > {m}; exit 0' TERM; touch {r}; \
         while :; do sleep 0.1; done",
        m = marker.display(),
        r = ready.display()
    );
    let mut child = strongroom(&server)
        .args([
            "exec",
            "--env",
            "DB_PASSWORD=app/exec:password",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The pid we started is now the shell itself, not a parent of it.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap();
    assert_eq!(comm.trim(), "sh");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        format!("{MARKER}-pw")
    );
}

/// The other links of the credential chain: a shared credentials file (a profile), and a web
/// identity token file exchanged with Strongroom's STS for a role's session.
#[tokio::test]
async fn exec_signs_with_a_profile_and_with_a_web_identity_token_file() {
    use crate::jwt_algs::{add_providers, token, JWKS_ISS, ROLE};
    let (_t, policies) = crate::common::example_policies();
    add_providers(&policies);
    let server = TestServer::start_with_policies(&policies);
    server
        .client()
        .create_secret()
        .name("payments/db")
        .secret_string(format!("{{\"password\":\"{MARKER}-wi\"}}"))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let print = ["--", "sh", "-c", "printf '%s' \"$P\""];

    // A profile in the shared files, no key in the environment.
    let creds = dir.path().join("credentials");
    std::fs::write(
        &creds,
        format!("[ops]\naws_access_key_id = {AKID}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    let out = strongroom(&server)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
        .env("AWS_PROFILE", "ops")
        .args(["exec", "--env", "P=payments/db:password"])
        .args(print)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{MARKER}-wi"));

    // A web identity token file: the role's session reads the secret.
    let jwt = dir.path().join("token");
    std::fs::write(&jwt, token(JWKS_ISS, "rsa1", Some("rsa1"))).unwrap();
    let out = strongroom(&server)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_ROLE_ARN", ROLE)
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &jwt)
        .env("AWS_ROLE_SESSION_NAME", "exec-it")
        .args(["exec", "--env", "P=payments/db:password"])
        .args(print)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{MARKER}-wi"));
}

/// When Strongroom cannot be reached, an expired entry is served (AWS's
/// `ignore_transient_errors`, on by default) and an uncached secret is a 502.
#[tokio::test]
async fn agent_serves_a_stale_entry_when_the_server_is_unreachable() {
    let mut server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    server
        .client()
        .create_secret()
        .name("app/stale")
        .secret_string(MARKER)
        .send()
        .await
        .unwrap();
    let agent = Agent::start(&server, dir.path(), "ttl_seconds = 1\n");
    let q = "/secretsmanager/get?secretId=app/stale";
    assert_eq!(agent.value(q), MARKER);
    server.stop();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(agent.value(q), MARKER, "the stale entry");
    let r = agent.get_with_token("/secretsmanager/get?secretId=app/never-cached");
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.error_type(), "ConnectionError");
}

/// An HTTPS endpoint, trusted through `SSL_CERT_FILE` (the test CA).
#[tokio::test]
async fn exec_reads_over_https() {
    let server = TestServer::start_tls();
    let ca = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/ca.pem");
    let tls = crate::common::send_tls(
        server.addr,
        &crate::common::signed_request(
            "secretsmanager.CreateSecret",
            format!(
                r#"{{"Name":"app/tls","SecretString":"{MARKER}-tls","ClientRequestToken":"{}"}}"#,
                uuid::Uuid::new_v4()
            )
            .as_bytes(),
            crate::common::Signing::default(),
        ),
    );
    assert_eq!(tls.status, 200, "{}", tls.body);
    let out = strongroom(&server)
        .env(
            "AWS_ENDPOINT_URL",
            format!("https://localhost:{}", server.addr.port()),
        )
        .env("SSL_CERT_FILE", &ca)
        .args([
            "exec",
            "--env",
            "V=app/tls",
            "--",
            "sh",
            "-c",
            "printf '%s' \"$V\"",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{MARKER}-tls")
    );
}
