//! Values chosen by callers (secret JSON read by the built-in rotators, principal names and
//! tags substituted into policy variables) reaching places they must not.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{call_as, user_allowing, ACCOUNT};
use crate::rotation::{ok, token};
use crate::rotation_pg::{failed, fn_arn, rig};

const PG_SINGLE: &str = "SecretsManagerRDSPostgreSQLRotationSingleUser";
const PG_MULTI: &str = "SecretsManagerRDSPostgreSQLRotationMultiUser";

fn tls_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls")
}

fn server_tls() -> Arc<rustls::ServerConfig> {
    let certs: Vec<_> = rustls_pemfile::certs(
        &mut std::fs::read(tls_dir().join("cert.pem"))
            .unwrap()
            .as_slice(),
    )
    .map(Result::unwrap)
    .collect();
    let key = rustls_pemfile::private_key(
        &mut std::fs::read(tls_dir().join("key.pem")).unwrap().as_slice(),
    )
    .unwrap()
    .unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    )
}

/// A PostgreSQL impostor on 127.0.0.1: it accepts TLS (any certificate is fine for
/// `sslmode=require`), asks every client for its password in clear text (which libpq sends
/// unless told otherwise) and records it, then refuses the login, but for the one password
/// it may accept (it then answers every query with an empty success).
struct FakePg {
    port: u16,
    passwords: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FakePg {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_exact(r: &mut impl Read, n: usize) -> Option<Vec<u8>> {
    let mut b = vec![0_u8; n];
    r.read_exact(&mut b).ok()?;
    Some(b)
}

fn be32(b: &[u8]) -> usize {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
}

fn pg_message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// After a login it accepted: `SET`-like answers to simple queries until the client leaves.
fn pg_serve(tls: &mut (impl Read + Write)) {
    let mut out = pg_message(b'R', &[0, 0, 0, 0]);
    out.extend(pg_message(b'Z', b"I"));
    if tls.write_all(&out).and_then(|()| tls.flush()).is_err() {
        return;
    }
    while let Some(tag) = read_exact(tls, 1) {
        let Some(len) = read_exact(tls, 4) else {
            return;
        };
        if read_exact(tls, be32(&len).saturating_sub(4)).is_none() || tag == b"X" {
            return;
        }
        let mut out = pg_message(b'C', b"SET\0");
        out.extend(pg_message(b'Z', b"I"));
        if tls.write_all(&out).and_then(|()| tls.flush()).is_err() {
            return;
        }
    }
}

/// One client: TLS, startup, cleartext password request; the password it sent.
fn pg_exchange(
    tcp: std::net::TcpStream,
    config: &Arc<rustls::ServerConfig>,
    accept: Option<&str>,
) -> Option<String> {
    let mut tcp = tcp;
    loop {
        let head = read_exact(&mut tcp, 8)?;
        match be32(&head[4..]) {
            // GSSENCRequest: not offered.
            80_877_104 => tcp.write_all(b"N").ok()?,
            // SSLRequest: yes.
            80_877_103 => {
                tcp.write_all(b"S").ok()?;
                break;
            }
            _ => return None,
        }
    }
    let conn = rustls::ServerConnection::new(Arc::clone(config)).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let len = be32(&read_exact(&mut tls, 4)?);
    read_exact(&mut tls, len.checked_sub(4)?)?;
    // AuthenticationCleartextPassword.
    tls.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).ok()?;
    tls.flush().ok()?;
    let tag = read_exact(&mut tls, 1)?;
    if tag != b"p" {
        return None;
    }
    let len = be32(&read_exact(&mut tls, 4)?);
    let body = read_exact(&mut tls, len.checked_sub(4)?)?;
    let password = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body)).into_owned();
    if accept == Some(password.as_str()) {
        pg_serve(&mut tls);
        return Some(password);
    }
    let mut err = Vec::new();
    for (code, text) in [
        (b'S', "FATAL"),
        (b'C', "28P01"),
        (b'M', "password authentication failed"),
    ] {
        err.push(code);
        err.extend_from_slice(text.as_bytes());
        err.push(0);
    }
    err.push(0);
    let _ = tls.write_all(&pg_message(b'E', &err));
    let _ = tls.flush();
    Some(password)
}

impl FakePg {
    fn start() -> Self {
        Self::accepting(None)
    }

    fn accepting(accept: Option<&str>) -> Self {
        let accept = accept.map(str::to_owned);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let passwords = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stop2) = (Arc::clone(&passwords), Arc::clone(&stop));
        let config = server_tls();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        tcp.set_nonblocking(false).unwrap();
                        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        if let Some(p) = pg_exchange(tcp, &config, accept.as_deref()) {
                            seen.lock().unwrap().push(p);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
        });
        Self {
            port,
            passwords,
            stop,
            thread: Some(thread),
        }
    }

    fn passwords(&self) -> Vec<String> {
        self.passwords.lock().unwrap().clone()
    }
}

/// The rotation role and `function` (built-in `builtin`), and the user `writer`, who may
/// write any secret's value and rotate it, but read none.
fn writer_rig(function: &str, builtin: &str) -> crate::rotation_pg::Rig {
    let rig = rig("pg-rotator", &[(function, json!({"Builtin": builtin}))]);
    user_allowing(
        &rig.policies,
        ACCOUNT,
        "writer",
        &[
            "secretsmanager:PutSecretValue",
            "secretsmanager:RotateSecret",
            "lambda:InvokeFunction",
        ],
    );
    rig
}

/// An access key for `writer` (the server's data is under the rig's directory).
fn writer_key(rig: &crate::rotation_pg::Rig, s: &crate::common::TestServer) -> (String, String) {
    let data = rig.tmp.path().join("data");
    let cfg = strongroom::config::StoreConfig {
        data_dir: data.clone(),
        database_url: s.database_url.clone(),
        master_key_file: data.join("master.key"),
        read_mmap_bytes: 0,
        pg_change_check: Duration::ZERO,
    };
    let out = strongroom::cli::create_access_key(&cfg, &rig.policies, ACCOUNT, "writer").unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    (
        v["AccessKeyId"].as_str().unwrap().to_owned(),
        v["SecretAccessKey"].as_str().unwrap().to_owned(),
    )
}

fn pg_value(port: u16, username: &str, password: &str) -> Value {
    json!({"engine": "postgres", "host": "127.0.0.1", "port": port, "username": username,
           "password": password, "dbname": "app"})
}

/// A caller who may write a secret's value and rotate it, but not read it, writes a version
/// pointing at its own server: the single-user rotator's fallback to AWSPREVIOUS must send
/// the previous password only to the previous version's own server (AWS's template logs in
/// with the previous version as it is, only its `ssl` taken from the current one), never to
/// the server the caller's version names.
#[test]
fn the_previous_password_is_sent_only_to_its_own_server() {
    let owners = FakePg::start();
    let attackers = FakePg::start();
    let rig = rig(
        "pg-rotator",
        &[("pg-single", json!({"Builtin": PG_SINGLE}))],
    );
    user_allowing(
        &rig.policies,
        ACCOUNT,
        "writer",
        &[
            "secretsmanager:PutSecretValue",
            "secretsmanager:RotateSecret",
            "lambda:InvokeFunction",
        ],
    );
    let s = rig.start();
    let (wk, ws) = writer_key(&rig, &s);
    let owner_password = "owner-password-never-for-writers";
    ok(
        &s,
        "CreateSecret",
        &json!({"Name": "db/app", "ClientRequestToken": token(),
                "SecretString": pg_value(owners.port, "app", owner_password).to_string()}),
    );
    // The writer cannot read the value.
    let r = call_as(
        &s,
        &wk,
        &ws,
        "secretsmanager.GetSecretValue",
        &json!({"SecretId": "db/app"}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = call_as(
        &s,
        &wk,
        &ws,
        "secretsmanager.PutSecretValue",
        &json!({"SecretId": "db/app", "ClientRequestToken": token(),
                "SecretString": pg_value(attackers.port, "app", "writers-own-password").to_string()}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call_as(
        &s,
        &wk,
        &ws,
        "secretsmanager.RotateSecret",
        &json!({"SecretId": "db/app", "ClientRequestToken": token(),
                "RotationLambdaARN": fn_arn("pg-single")}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    failed(&s, "db/app");
    let seen = attackers.passwords();
    // The server did log in at the writer's server with the writer's own version.
    assert!(seen.iter().any(|p| p == "writers-own-password"), "{seen:?}");
    assert!(
        !seen.iter().any(|p| p == owner_password),
        "the previous password reached the writer's server"
    );
    // The fallback itself still runs, on the previous version's server.
    assert_eq!(owners.passwords(), [owner_password]);
}

/// The multi-user rotator logs in as the master user (`masterarn`, read with the rotation
/// role's permissions) only on the master secret's own server: same host *and* port as the
/// rotated secret. Otherwise a caller who may write and rotate one secret, with a login on
/// another server of the same host (another cluster on another port), would have the master
/// of the first server create and grant a user of its choosing there.
#[test]
fn a_master_secret_is_used_only_on_its_own_server() {
    let master_server = FakePg::accepting(Some("member-password"));
    let writers_server = FakePg::accepting(Some("writers-own-password"));
    let rig = writer_rig("pg-multi", PG_MULTI);
    let s = rig.start();
    let (wk, ws) = writer_key(&rig, &s);
    let master_password = "master-password-of-another-server";
    let master_arn = ok(
        &s,
        "CreateSecret",
        &json!({"Name": "db/master", "ClientRequestToken": token(),
                "SecretString": pg_value(master_server.port, "master", master_password).to_string()}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &s,
        "CreateSecret",
        &json!({"Name": "db/app", "ClientRequestToken": token(),
                "SecretString": pg_value(writers_server.port, "app", "app-password-0").to_string()}),
    );
    let mut v = pg_value(writers_server.port, "app", "writers-own-password");
    v["masterarn"] = json!(master_arn);
    let r = call_as(
        &s,
        &wk,
        &ws,
        "secretsmanager.PutSecretValue",
        &json!({"SecretId": "db/app", "ClientRequestToken": token(), "SecretString": v.to_string()}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call_as(
        &s,
        &wk,
        &ws,
        "secretsmanager.RotateSecret",
        &json!({"SecretId": "db/app", "ClientRequestToken": token(),
                "RotationLambdaARN": fn_arn("pg-multi")}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let d = failed(&s, "db/app");
    assert!(
        !master_server
            .passwords()
            .iter()
            .any(|p| p == master_password),
        "the master logged in for a secret of another server: {d}"
    );
    let err = d["StrongroomRotation"]["LastError"].as_str().unwrap();
    assert!(err.contains("`host`/`port` differ"), "{err}");
    // Positive control: a secret of the master's own server has the master log in there.
    let mut v = pg_value(master_server.port, "member", "member-password");
    v["masterarn"] = json!(master_arn);
    ok(
        &s,
        "CreateSecret",
        &json!({"Name": "db/member", "ClientRequestToken": token(), "SecretString": v.to_string()}),
    );
    ok(
        &s,
        "RotateSecret",
        &json!({"SecretId": "db/member", "ClientRequestToken": token(),
                "RotationLambdaARN": fn_arn("pg-multi")}),
    );
    failed(&s, "db/member");
    assert!(
        master_server
            .passwords()
            .iter()
            .any(|p| p == master_password),
        "{:?}",
        master_server.passwords()
    );
}

const CI_HMAC: &str = "inject-ci-hmac-secret-0123456789abcdef0123";
const OTHER_HMAC: &str = "inject-other-hmac-secret-0123456789abcdef";
const CI_ROLE: &str = "arn:aws:iam::111122223333:role/ci-deployer";

fn provider(dir: &std::path::Path, name: &str, issuer: &str, secret: &str) {
    crate::common::write(
        dir,
        &format!("accounts/{ACCOUNT}/identity-providers/{name}.hmac"),
        secret,
    );
    crate::common::write(
        dir,
        &format!("accounts/{ACCOUNT}/identity-providers/{name}.json"),
        &json!({"Issuer": issuer, "Audiences": ["strongroom"], "HmacSecretFile": format!("{name}.hmac"),
                "Algorithms": ["HS256"]})
        .to_string(),
    );
}

/// The role `ci-deployer`, trusting the provider `https://ci.example.test` for one subject.
fn ci_role(dir: &std::path::Path) {
    crate::common::write(
        dir,
        &format!("accounts/{ACCOUNT}/roles/ci-deployer.json"),
        &json!({"RoleName": "ci-deployer",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
              "Principal": {"Federated": "https://ci.example.test"},
              "Action": "sts:AssumeRoleWithWebIdentity",
              "Condition": {"StringEquals": {"ci.example.test:aud": "strongroom",
                                             "ci.example.test:sub": "repo:payments/api"}}}]}})
        .to_string(),
    );
}

fn hs256(secret: &str, iss: &str) -> String {
    let now = crate::common::now_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": iss, "aud": "strongroom", "sub": "repo:payments/api",
                "exp": now + 600, "iat": now}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn assume_ci(s: &crate::common::TestServer, token: &str) -> crate::common::RawResponse {
    let form = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=build-1&WebIdentityToken={token}",
        crate::common::urlenc(CI_ROLE)
    );
    s.raw(
        format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
            form.len()
        )
        .as_bytes(),
    )
}

/// Trust policies and condition keys name an issuer without its scheme and trailing `/`
/// (`Federated: https://ci.example.test` is `ci.example.test`, as AWS's provider ARN
/// `oidc-provider/ci.example.test`), so two providers of one account whose issuers differ
/// only there would be one provider to them: the tokens of one would be trusted as the
/// other's. The directory refuses the second, as IAM refuses a second provider of one URL.
#[tokio::test]
async fn providers_whose_issuers_name_one_provider_are_refused() {
    let (_t, dir) = crate::common::example_policies();
    provider(&dir, "ci", "https://ci.example.test", CI_HMAC);
    ci_role(&dir);
    // Positive control: the provider alone loads and its token assumes the role.
    strongroom::identity::load_dir(&dir).unwrap();
    let s = crate::common::TestServer::start_with_policies(&dir);
    let r = assume_ci(&s, &hs256(CI_HMAC, "https://ci.example.test"));
    assert_eq!(r.status, 200, "{}", r.body);
    drop(s);
    for issuer in ["https://ci.example.test/", "http://ci.example.test"] {
        provider(&dir, "other", issuer, OTHER_HMAC);
        let errors = strongroom::identity::load_dir(&dir).unwrap_err();
        assert!(
            errors.iter().any(|e| e.path == "$.Issuer"
                && e.message.contains("ci.json")
                && e.message.contains("`ci.example.test`")),
            "{issuer}: {errors:?}"
        );
    }
    // Another issuer of the same host is another provider.
    provider(&dir, "other", "https://ci.example.test/other", OTHER_HMAC);
    strongroom::identity::load_dir(&dir).unwrap();
}

/// The role `ci-deployer`, trusting the provider ARN `federated` for one subject.
fn ci_role_trusting(dir: &std::path::Path, federated: &str) {
    crate::common::write(
        dir,
        &format!("accounts/{ACCOUNT}/roles/ci-deployer.json"),
        &json!({"RoleName": "ci-deployer",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
              "Principal": {"Federated": federated},
              "Action": "sts:AssumeRoleWithWebIdentity",
              "Condition": {"StringEquals": {"ci.example.test:aud": "strongroom",
                                             "ci.example.test:sub": "repo:payments/api"}}}]}})
        .to_string(),
    );
}

/// A trust policy naming another account's provider (`arn:aws:iam::B:oidc-provider/HOST`)
/// trusts no token of the role's own provider of that issuer: AWS looks the provider up in
/// the role's account, so such a statement matches no web identity caller. The same ARN in
/// the role's own account trusts it.
#[tokio::test]
async fn a_trust_policy_naming_another_account_s_provider_trusts_no_token_of_this_account() {
    let (_t, dir) = crate::common::example_policies();
    provider(&dir, "ci", "https://ci.example.test", CI_HMAC);
    ci_role_trusting(
        &dir,
        "arn:aws:iam::444455556666:oidc-provider/ci.example.test",
    );
    let s = crate::common::TestServer::start_with_policies(&dir);
    let r = assume_ci(&s, &hs256(CI_HMAC, "https://ci.example.test"));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("AccessDenied"), "{}", r.body);
    drop(s);
    // Control: the role's own account's provider ARN.
    ci_role_trusting(
        &dir,
        &format!("arn:aws:iam::{ACCOUNT}:oidc-provider/ci.example.test"),
    );
    let s = crate::common::TestServer::start_with_policies(&dir);
    let r = assume_ci(&s, &hs256(CI_HMAC, "https://ci.example.test"));
    assert_eq!(r.status, 200, "{}", r.body);
}

/// IAM names are unique regardless of case: a directory declaring users `deployer` and
/// `Deployer` (or two such roles) in one account is refused; users of
/// distinct names load.
#[test]
fn principals_whose_names_differ_only_by_case_are_refused() {
    let (_t, dir) = crate::common::example_policies();
    user_allowing(&dir, ACCOUNT, "deployer", &["secretsmanager:ListSecrets"]);
    user_allowing(&dir, ACCOUNT, "deployer2", &["secretsmanager:ListSecrets"]);
    strongroom::identity::load_dir(&dir).unwrap();
    user_allowing(&dir, ACCOUNT, "Deployer", &["secretsmanager:*"]);
    let errors = strongroom::identity::load_dir(&dir).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.path == "$.UserName" && e.message.contains("in another case")),
        "{errors:?}"
    );
    std::fs::remove_file(dir.join(format!("accounts/{ACCOUNT}/users/Deployer.json"))).unwrap();
    ci_role(&dir);
    crate::common::write(
        &dir,
        &format!("accounts/{ACCOUNT}/roles/CI-Deployer.json"),
        &json!({"RoleName": "CI-Deployer", "AssumeRolePolicyDocument": {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
                           "Action": "sts:AssumeRole"}]}})
        .to_string(),
    );
    let errors = strongroom::identity::load_dir(&dir).unwrap_err();
    assert!(errors.iter().any(|e| e.path == "$.RoleName"), "{errors:?}");
}

/// `sts:RoleSessionName` is the session name AssumeRoleWithWebIdentity asks for, as in
/// AssumeRole: a trust policy pinning it admits that name and refuses another.
#[tokio::test]
async fn a_web_identity_trust_policy_can_pin_the_session_name() {
    let (_t, dir) = crate::common::example_policies();
    provider(&dir, "ci", "https://ci.example.test", CI_HMAC);
    crate::common::write(
        &dir,
        &format!("accounts/{ACCOUNT}/roles/ci-deployer.json"),
        &json!({"RoleName": "ci-deployer",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
              "Principal": {"Federated": "https://ci.example.test"},
              "Action": "sts:AssumeRoleWithWebIdentity",
              "Condition": {"StringEquals": {"ci.example.test:aud": "strongroom",
                                             "sts:RoleSessionName": "build-1"}}}]}})
        .to_string(),
    );
    let s = crate::common::TestServer::start_with_policies(&dir);
    let token = hs256(CI_HMAC, "https://ci.example.test");
    let r = assume_ci(&s, &token);
    assert_eq!(r.status, 200, "{}", r.body);
    let form = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=build-2&WebIdentityToken={token}",
        crate::common::urlenc(CI_ROLE)
    );
    let r = s.raw(
        format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
            form.len()
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 403, "{}", r.body);
}
