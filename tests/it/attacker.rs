//! Authorization as an attacker tries it: each test is a caller who must be refused, next to
//! a positive control (the caller who must still succeed), so that neither a hole nor an
//! over-broad refusal passes.

use std::path::Path;

use crate::common::{
    assume_role, example_policies, mint, signed_query, sts_as, urlenc, TestServer,
};

const HOME: &str = "111122223333";
const OTHER: &str = "444455556666";

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A user of `account` whose only identity policy allows `actions` on every resource.
fn user_allowing(dir: &Path, account: &str, name: &str, actions: &[&str]) {
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

/// A role of `account` trusting `principal` (an AWS principal ARN), with full Secrets Manager
/// rights.
fn role_trusting(dir: &Path, account: &str, name: &str, principal: &str) {
    write(
        dir,
        &format!("accounts/{account}/roles/{name}.json"),
        &format!(
            r#"{{"RoleName":"{name}","AssumeRolePolicyDocument":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"sts:AssumeRole"}}]}},
              "InlinePolicies":{{"all":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}}]}}}}}}"#
        ),
    );
}

/// An access key for `user` of `account`.
fn key_for(s: &TestServer, policies: &Path, account: &str, user: &str) -> (String, String) {
    let out =
        strongroom::cli::create_access_key(&s.store_config(), policies, account, user).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    (
        v["AccessKeyId"].as_str().unwrap().to_owned(),
        v["SecretAccessKey"].as_str().unwrap().to_owned(),
    )
}

fn try_assume(s: &TestServer, akid: &str, secret: &str, role: &str) -> crate::common::RawResponse {
    s.raw(&signed_query(
        &format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=attempt",
            urlenc(role)
        ),
        sts_as(akid, secret),
    ))
}

/// The decisions recorded for `event` calls by `principal_arn`, newest last.
fn recorded(s: &TestServer, event: &str, principal_arn: &str) -> Vec<serde_json::Value> {
    let r = s.call_signed(
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        &serde_json::json!({
            "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": event}],
            "MaxResults": 50
        })
        .to_string(),
        crate::common::Signing {
            service: "cloudtrail".into(),
            ..crate::common::Signing::default()
        },
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut out: Vec<serde_json::Value> = r.json()["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap())
        .filter(|rec: &serde_json::Value| rec["userIdentity"]["arn"] == principal_arn)
        .collect();
    out.reverse();
    out
}

/// Finding: a same-account identity allow for `sts:AssumeRole` on `*` was enough to assume
/// any role of the account, whatever its trust policy said.
#[tokio::test]
async fn assume_role_needs_the_trust_policy() {
    let (_t, dir) = example_policies();
    user_allowing(&dir, HOME, "mallory", &["sts:AssumeRole"]);
    user_allowing(&dir, HOME, "delegate", &["sts:AssumeRole"]);
    user_allowing(&dir, HOME, "bystander", &["secretsmanager:ListSecrets"]);
    user_allowing(&dir, OTHER, "partner", &["sts:AssumeRole"]);
    user_allowing(
        &dir,
        OTHER,
        "partner-no-identity",
        &["secretsmanager:ListSecrets"],
    );
    // Trusts the account: delegation, the caller's identity policy must allow too.
    role_trusting(
        &dir,
        HOME,
        "by-account",
        &format!("arn:aws:iam::{HOME}:root"),
    );
    // Trusts one user of another account: cross-account needs both sides.
    role_trusting(
        &dir,
        HOME,
        "for-partner",
        &format!("arn:aws:iam::{OTHER}:user/partner"),
    );
    role_trusting(
        &dir,
        HOME,
        "for-partner-no-identity",
        &format!("arn:aws:iam::{OTHER}:user/partner-no-identity"),
    );
    let s = TestServer::start_with_policies(&dir);
    s.client()
        .create_secret()
        .name("prod/db")
        .secret_string("v")
        .send()
        .await
        .unwrap();

    // The attacker: allowed sts:AssumeRole on *, not trusted by payments-app.
    let (mk, ms) = mint(&s, &dir, "mallory");
    let payments = "arn:aws:iam::111122223333:role/service/payments-app";
    let r = try_assume(&s, &mk, &ms, payments);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("AccessDenied"), "{}", r.body);
    assert!(!r.body.contains("ASIA"), "{}", r.body);
    // ... and a role that does not exist answers the same.
    let r2 = try_assume(&s, &mk, &ms, "arn:aws:iam::111122223333:role/nope");
    assert_eq!(r2.status, 403, "{}", r2.body);
    // The refusal is recorded as a denial.
    let recs = recorded(&s, "AssumeRole", "arn:aws:iam::111122223333:user/mallory");
    assert!(recs.len() >= 2, "{recs:?}");
    assert_eq!(recs[0]["errorCode"], "AccessDenied", "{}", recs[0]);

    // Positive control: the user the trust policy names directly (same account) needs no
    // identity allow for it (ci-bot's own policies do not mention sts:AssumeRole).
    let (ck, cs) = mint(&s, &dir, "ci-bot");
    let (sk, _, _) = assume_role(&s, &ck, &cs, payments, "ci");
    assert!(sk.starts_with("ASIA"));

    // A trust policy naming the account root only delegates: the identity policy decides.
    let by_account = format!("arn:aws:iam::{HOME}:role/by-account");
    let (dk, ds) = mint(&s, &dir, "delegate");
    let r = try_assume(&s, &dk, &ds, &by_account);
    assert_eq!(r.status, 200, "{}", r.body);
    let (bk, bs) = mint(&s, &dir, "bystander");
    let r = try_assume(&s, &bk, &bs, &by_account);
    assert_eq!(r.status, 403, "{}", r.body);

    // Cross-account: the trust policy and the caller's identity policy must both allow.
    let (pk, ps) = key_for(&s, &dir, OTHER, "partner");
    let r = try_assume(
        &s,
        &pk,
        &ps,
        &format!("arn:aws:iam::{HOME}:role/for-partner"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = try_assume(&s, &pk, &ps, &by_account);
    assert_eq!(r.status, 403, "not trusted: {}", r.body);
    let (nk, ns) = key_for(&s, &dir, OTHER, "partner-no-identity");
    let r = try_assume(
        &s,
        &nk,
        &ns,
        &format!("arn:aws:iam::{HOME}:role/for-partner-no-identity"),
    );
    assert_eq!(r.status, 403, "no identity allow: {}", r.body);

    // Root credentials cannot assume a role (AWS refuses the root user).
    let r = try_assume(&s, crate::common::AKID, crate::common::SECRET, &by_account);
    assert_eq!(r.status, 403, "{}", r.body);
}

/// A server on embedded SQLite with the principals in `policies`, believing X-Forwarded-For
/// from `trusted_proxies`, serving HTTPS with the test certificate when `tls`.
fn start(policies: &Path, trusted_proxies: &[&str], tls: bool) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let database_url = format!("sqlite://{}", data_dir.join("strongroom.db").display());
    let fixtures = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let cfg = strongroom::config::ServeConfig {
        store: strongroom::config::StoreConfig {
            data_dir: data_dir.clone(),
            database_url: database_url.clone(),
            master_key_file: data_dir.join("master.key"),
            read_mmap_bytes: 0,
        },
        listen: "127.0.0.1:0".into(),
        tls: tls.then(|| (fixtures.join("cert.pem"), fixtures.join("key.pem"))),
        account_id: HOME.into(),
        regions: vec!["us-east-1".into()],
        purge_interval_secs: 1,
        policies: Some(policies.to_path_buf()),
        trusted_proxies: trusted_proxies.iter().map(|p| p.parse().unwrap()).collect(),
        audit_retention: None,
    };
    TestServer::launch(cfg, dir, database_url)
}

/// Send `request` from the local address `from` (127.0.0.x) over plain TCP.
fn send_from(from: &str, to: std::net::SocketAddr, request: &[u8]) -> crate::common::RawResponse {
    use std::io::{Read, Write};
    // A socket bound to a source address before it connects: tokio's TcpSocket, on a
    // runtime of its own thread (the test may itself run on one).
    let from = from.to_owned();
    let stream = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
            sock.connect(to).await.unwrap().into_std().unwrap()
        })
    })
    .join()
    .unwrap();
    stream.set_nonblocking(false).unwrap();
    let mut stream = stream;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    crate::common::parse_response(&buf)
}

/// Send `request` over TLS (the test CA) to `to`.
fn send_tls(to: std::net::SocketAddr, request: &[u8]) -> crate::common::RawResponse {
    use std::io::{Read, Write};
    let pem = std::fs::read(format!(
        "{}/tests/fixtures/tls/ca.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
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
    let tcp = std::net::TcpStream::connect(to).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    crate::common::parse_response(&buf)
}

/// A GetSecretValue of `id` signed by `akid`/`secret`, with extra headers (signed too).
fn get_request(akid: &str, secret: &str, id: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    crate::common::signed_request(
        "secretsmanager.GetSecretValue",
        format!(r#"{{"SecretId":"{id}"}}"#).as_bytes(),
        crate::common::Signing {
            akid: akid.into(),
            secret: secret.into(),
            extra_headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..crate::common::Signing::default()
        },
    )
}

/// A user allowed GetSecretValue from the office (198.51.100.0/24) only, and denied it from
/// a blocked range (203.0.113.0/24).
fn office_user(dir: &Path) {
    write(
        dir,
        &format!("accounts/{HOME}/users/office.json"),
        r#"{"UserName":"office","InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*",
             "Condition":{"IpAddress":{"aws:SourceIp":"198.51.100.0/24"}}},
            {"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*",
             "Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}]}}}"#,
    );
}

/// Finding: `--trusted-proxies` was parsed but never applied: behind a proxy every request
/// had the proxy's address, so IP conditions saw the proxy, not the caller.
#[tokio::test]
async fn source_ip_comes_from_trusted_proxies_only() {
    let (_t, dir) = example_policies();
    office_user(&dir);
    let s = start(&dir, &["127.0.0.2/32"], false);
    s.client()
        .create_secret()
        .name("office/db")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let (k, sk) = mint(&s, &dir, "office");
    let via = |xff: &str, from: &str| {
        send_from(
            from,
            s.addr,
            &get_request(&k, &sk, "office/db", &[("x-forwarded-for", xff)]),
        )
    };
    // Positive control: the proxy forwards a caller from the office.
    let r = via("198.51.100.7", "127.0.0.2");
    assert_eq!(r.status, 200, "{}", r.body);
    // The caller behind the proxy is in the blocked range: the Deny applies.
    let r = via("203.0.113.9", "127.0.0.2");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    // A client-supplied office address in front of the real one does not help: the
    // rightmost address the trusted proxy did not add decides.
    let r = via("198.51.100.7, 203.0.113.9", "127.0.0.2");
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    // A caller that is not a trusted proxy cannot claim an address with the header.
    let r = via("198.51.100.7", "127.0.0.3");
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);

    // The audit records the forwarded caller's address.
    let recs = recorded(
        &s,
        "GetSecretValue",
        &format!("arn:aws:iam::{HOME}:user/office"),
    );
    let addrs: Vec<&str> = recs
        .iter()
        .map(|r| r["sourceIPAddress"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        addrs,
        ["198.51.100.7", "203.0.113.9", "203.0.113.9", "127.0.0.3"],
        "{recs:?}"
    );
}

/// A user allowed GetSecretValue, denied it without TLS.
fn tls_only_user(dir: &Path) {
    write(
        dir,
        &format!("accounts/{HOME}/users/tls-only.json"),
        r#"{"UserName":"tls-only","InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"},
            {"Effect":"Deny","Action":"*","Resource":"*",
             "Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}}}"#,
    );
}

/// Finding: `aws:SecureTransport` was false even on the TLS listener, so a policy requiring
/// TLS refused every request (and one denying TLS allowed every one).
#[tokio::test]
async fn secure_transport_is_true_on_tls_only() {
    let (_t, dir) = example_policies();
    tls_only_user(&dir);
    let tls = start(&dir, &[], true);
    let (k, sk) = mint(&tls, &dir, "tls-only");
    let create = crate::common::signed_request(
        "secretsmanager.CreateSecret",
        br#"{"Name":"t/db","SecretString":"v","ClientRequestToken":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#,
        crate::common::Signing::default(),
    );
    assert_eq!(send_tls(tls.addr, &create).status, 200);
    // Positive control: over TLS the request is allowed.
    let r = send_tls(tls.addr, &get_request(&k, &sk, "t/db", &[]));
    assert_eq!(r.status, 200, "{}", r.body);

    // Plain HTTP: denied, and a forged X-Forwarded-Proto from an untrusted peer changes
    // nothing; from a trusted proxy that terminated TLS it is believed.
    let plain = start(&dir, &["127.0.0.2/32"], false);
    let (k, sk) = mint(&plain, &dir, "tls-only");
    plain
        .client()
        .create_secret()
        .name("t/db")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let r = plain.raw(&get_request(&k, &sk, "t/db", &[]));
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let forged = get_request(&k, &sk, "t/db", &[("x-forwarded-proto", "https")]);
    let r = send_from("127.0.0.3", plain.addr, &forged);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let r = send_from("127.0.0.2", plain.addr, &forged);
    assert_eq!(r.status, 200, "{}", r.body);
}
