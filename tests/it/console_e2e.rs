//! The web console in a real browser (headless Chromium through chromedriver), run by
//! `scripts/e2e-console.sh`, which installs both and sets `STRONGROOM_CONSOLE_E2E=1` and
//! `WEBDRIVER_URL`; skipped otherwise. Screenshots of each main page go to
//! `STRONGROOM_CONSOLE_SCREENSHOTS` (default `target/console-screenshots`).
//!
//! The WebDriver client is the few W3C WebDriver commands the test needs, over plain HTTP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use super::console::fixture;
use crate::common::{parse_response, ACCOUNT, MARKER};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session.
struct Driver {
    addr: SocketAddr,
    session: String,
    shots: PathBuf,
}

fn wd(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(Value::to_string).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    // Read the head, then exactly Content-Length bytes (chromedriver may keep the
    // connection open).
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let mut need: Option<usize> = None;
    loop {
        if let Some(n) = need {
            if buf.len() >= n {
                break;
            }
        } else if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            match len {
                Some(l) => {
                    need = Some(end + 4 + l);
                    continue;
                }
                None => {
                    let _ = s.read_to_end(&mut buf);
                    break;
                }
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let r = parse_response(&buf);
    let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    assert!(
        r.status == 200,
        "{method} {path}: {} {}",
        r.status,
        r.body.chars().take(2000).collect::<String>()
    );
    v["value"].clone()
}

impl Driver {
    fn start(shots: PathBuf) -> Self {
        let url = std::env::var("WEBDRIVER_URL").unwrap_or_else(|_| "http://127.0.0.1:9515".into());
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        let profile = tempfile::tempdir().unwrap().keep();
        let binary =
            std::env::var("CHROMIUM_BINARY").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1100",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let v = wd(addr, "POST", "/session", Some(&caps));
        let session = v["sessionId"].as_str().unwrap().to_owned();
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            addr,
            session,
            shots,
        }
    }

    fn cmd(&self, method: &str, rel: &str, body: Option<&Value>) -> Value {
        wd(
            self.addr,
            method,
            &format!("/session/{}{rel}", self.session),
            body,
        )
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(&json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap().to_owned()
    }

    /// Wait (up to 10 s) until the page's URL ends with `suffix`.
    fn wait_for_url(&self, suffix: &str) {
        for _ in 0..100 {
            if self.url().ends_with(suffix) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("still at {}, not {suffix}:\n{}", self.url(), self.source());
    }

    /// Wait (up to 10 s) until the page's source contains `needle`.
    fn wait_for(&self, needle: &str) {
        for _ in 0..100 {
            if self.source().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no `{needle}` at {}:\n{}", self.url(), self.source());
    }

    /// Load `url` again until its page contains `needle` (up to 20 s): for what the server
    /// changes on its own, such as a reload of the principals directory.
    fn reload_until(&self, url: &str, needle: &str) {
        for _ in 0..100 {
            self.goto(url);
            if self.source().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("no `{needle}` at {url}:\n{}", self.source());
    }

    fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        );
        match v[ELEMENT].as_str() {
            Some(e) => e.to_owned(),
            None => panic!("no element {css} at {}: {v}\n{}", self.url(), self.source()),
        }
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/clear"), Some(&json!({})));
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(&json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/click"), Some(&json!({})));
    }

    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.cmd("GET", &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn resize(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(&json!({"width": width, "height": height})),
        );
    }

    fn screenshot(&self, name: &str) {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    fn sign_in(&self, base: &str, akid: &str, secret: &str) {
        self.goto(&format!("{base}/console/"));
        self.type_into("#access_key_id", akid);
        self.type_into("#secret_access_key", secret);
        self.click("#signin");
    }

    fn sign_out(&self) {
        self.click("header form button");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = std::panic::catch_unwind(|| wd(self.addr, "DELETE", &path, None));
    }
}

#[test]
fn the_console_in_a_real_browser() {
    if std::env::var("STRONGROOM_CONSOLE_E2E").as_deref() != Ok("1") {
        eprintln!("skipped: run scripts/e2e-console.sh (sets STRONGROOM_CONSOLE_E2E=1)");
        return;
    }
    let shots = std::env::var("STRONGROOM_CONSOLE_SCREENSHOTS").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots"),
        PathBuf::from,
    );
    let f = fixture();
    let base = format!("http://{}", f.s.addr);
    let d = Driver::start(shots);

    // Sign in as the reader.
    d.goto(&format!("{base}/console/"));
    d.screenshot("01-sign-in");
    d.sign_in(&base, &f.reader.0, &f.reader.1);
    d.wait_for_url("/console/secrets");

    // Find the secret.
    d.type_into("#q", "prod");
    d.click("#search");
    d.wait_for("team=payments");
    d.screenshot("02-secrets");
    d.click("a[href^='/console/secret?id=']");
    d.wait_for("AWSCURRENT");
    assert!(
        !d.source().contains(MARKER),
        "the value shows before it is asked for"
    );
    d.screenshot("03-secret");

    // A reveal whose form carries another CSRF token than this session's (as a form
    // planted by another site would) is refused and reveals nothing.
    let secret_page = d.url();
    d.cmd(
        "POST",
        "/execute/sync",
        Some(&json!({
            "script": "document.querySelectorAll(\"input[name='csrf']\").forEach(function (i) { i.value = 'forged'; });",
            "args": [],
        })),
    );
    d.click(".reveal-button");
    d.wait_for("security token is missing or not this session");
    assert!(!d.source().contains(MARKER));
    d.goto(&secret_page);
    d.wait_for("AWSCURRENT");

    // Reveal its value: a GetSecretValue by the reader.
    d.click(".reveal-button");
    d.wait_for("secret-value");
    assert_eq!(d.text("#secret-value"), MARKER);
    d.screenshot("04-secret-revealed");

    // See the read in the audit explorer, and why it was allowed.
    d.click("nav a[href='/console/audit']");
    d.wait_for_url("/console/audit");
    d.type_into("#f-event_name", "GetSecretValue");
    d.click("#filter");
    d.wait_for("matching, of");
    let page = d.source();
    assert!(
        page.contains("GetSecretValue") && page.contains("reader"),
        "{page}"
    );
    d.screenshot("05-audit");
    d.click("a[href^='/console/audit/event?id=']");
    d.wait_for("explanation");
    let why = d.text("#explanation");
    assert!(why.starts_with("Allowed: "), "{why}");
    d.screenshot("06-audit-event");

    // The trail's integrity: the verification status and the latest signed digest.
    d.goto(&format!("{base}/console/audit/integrity"));
    d.wait_for("every record checked is intact");
    d.screenshot("06b-audit-integrity");

    // Browse the principals and simulate one of them.
    d.click("nav a[href='/console/principals']");
    d.wait_for_url("/console/principals");
    d.wait_for("Inline policy p");
    d.screenshot("07-principals");
    d.click("#user-limited a.small");
    d.wait_for("id=\"simulate\"");
    assert!(d
        .source()
        .contains(&format!("value=\"arn:aws:iam::{ACCOUNT}:user/limited\"")));
    d.type_into("#actions", "secretsmanager:GetSecretValue");
    d.type_into("#resources", &f.arn);
    d.click("#simulate");
    d.wait_for("id=\"results\"");
    let page = d.source();
    assert!(
        page.contains("id=\"results\"") && page.contains(">implicitDeny<"),
        "{page}"
    );
    d.screenshot("08-simulator");

    // The rest of the directory: the organization's accounts and SCPs, the identity
    // providers, and the last reload's status, a refused reload with its error included.
    let p = f._policies.path();
    super::console_directory::declare_directory(p);
    d.reload_until(&format!("{base}/console/organization"), "payments-prod");
    d.wait_for("DenyLeavingTheOrganization");
    d.screenshot("07a-organization");
    d.click("nav.tabs a[href='/console/providers']");
    d.wait_for_url("/console/providers");
    d.wait_for("strongroom-console");
    d.screenshot("07b-providers");
    let broken = p.join(format!("accounts/{ACCOUNT}/users/broken.json"));
    std::fs::write(
        &broken,
        r#"{"UserName":"broken","Groups":["no-such-group"]}"#,
    )
    .unwrap();
    d.reload_until(&format!("{base}/console/reload"), "badge bad");
    assert!(d
        .text("#reload-errors")
        .contains("no group `no-such-group`"));
    d.screenshot("07c-reload-refused");
    std::fs::remove_file(&broken).unwrap();
    d.reload_until(&format!("{base}/console/reload"), "badge ok");

    // At phone width.
    d.resize(390, 844);
    d.goto(&format!("{base}/console/secrets"));
    d.screenshot("09-secrets-phone");
    d.resize(1280, 1100);

    // A limited user sees what its policies allow and is refused the rest with the API's
    // denial message.
    d.sign_out();
    d.wait_for_url("/console/");
    d.sign_in(&base, &f.limited.0, &f.limited.1);
    d.wait_for_url("/console/secrets");
    d.goto(&format!(
        "{base}/console/secret?id={}",
        crate::common::urlenc(&f.arn)
    ));
    d.click(".reveal-button");
    d.wait_for("is not authorized to perform: secretsmanager:GetSecretValue");
    let refused = d.text("main .error");
    assert!(
        refused.starts_with("AccessDeniedException: User: arn:aws:iam::")
            && refused.contains("is not authorized to perform: secretsmanager:GetSecretValue"),
        "{refused}"
    );
    assert!(!d.source().contains(MARKER));
    d.screenshot("10-limited-refused");

    // A forged cookie is no session.
    d.cmd("DELETE", "/cookie", None);
    d.cmd(
        "POST",
        "/cookie",
        Some(&json!({"cookie": {"name": "strongroom_console", "value": "forged", "path": "/console"}})),
    );
    d.goto(&format!("{base}/console/secrets"));
    d.wait_for_url("/console/");
    assert!(d.source().contains("Sign in"));
}
