//! The policy engine through the server: identity policies, groups, boundaries, tag and IP
//! conditions, explicit deny, the existence oracle, AWS's denial wording.

use std::path::{Path, PathBuf};

use crate::common::{code, message, signed_request, Signing, TestServer};

fn example_policies() -> (tempfile::TempDir, PathBuf) {
    fn copy(from: &Path, to: &Path) {
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
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
        &dst,
    );
    (dir, dst)
}

fn mint(s: &TestServer, policies: &Path, user: &str) -> (String, String) {
    let out = strongroom::cli::create_access_key(&s.store_config(), policies, "111122223333", user)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    (
        v["AccessKeyId"].as_str().unwrap().to_owned(),
        v["SecretAccessKey"].as_str().unwrap().to_owned(),
    )
}

async fn seed(s: &TestServer) -> (String, String) {
    let root = s.client();
    let a = root
        .create_secret()
        .name("payments/db")
        .secret_string("p")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("team")
                .value("payments")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let b = root
        .create_secret()
        .name("other/db")
        .secret_string("o")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("team")
                .value("other")
                .build(),
        )
        .send()
        .await
        .unwrap();
    (a.arn().unwrap().to_owned(), b.arn().unwrap().to_owned())
}

#[tokio::test]
async fn identity_policies_groups_tags_and_denial_wording() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    let (_payments, other) = seed(&s).await;
    let (akid, secret) = mint(&s, &dir, "alice");
    let alice = s.client_in("us-east-1", &akid, &secret);

    // read-only group policy: reads anywhere
    assert_eq!(
        alice
            .get_secret_value()
            .secret_id("other/db")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("o")
    );
    assert_eq!(
        alice
            .list_secrets()
            .send()
            .await
            .unwrap()
            .secret_list()
            .len(),
        2
    );
    // inline policy: writes where the secret's team tag equals alice's team tag
    alice
        .put_secret_value()
        .secret_id("payments/db")
        .secret_string("p2")
        .send()
        .await
        .unwrap();
    let e = alice
        .put_secret_value()
        .secret_id("other/db")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    assert_eq!(
        message(&e),
        format!("User: arn:aws:iam::111122223333:user/engineering/alice is not authorized to perform: secretsmanager:PutSecretValue on resource: {other} because no identity-based policy allows the secretsmanager:PutSecretValue action")
    );
    // nothing grants CreateSecret
    let e = alice
        .create_secret()
        .name("payments/new")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    // the value was not changed by the denied call
    assert_eq!(
        s.client()
            .get_secret_value()
            .secret_id("other/db")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("o")
    );
}

#[tokio::test]
async fn boundary_limits_and_existence_oracle() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    seed(&s).await;
    let (akid, secret) = mint(&s, &dir, "ci-bot");
    let bot = s.client_in("us-east-1", &akid, &secret);
    assert_eq!(
        bot.get_secret_value()
            .secret_id("payments/db")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("p")
    );
    let e = bot
        .get_secret_value()
        .secret_id("other/db")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    // allowed on the would-be ARN: learns it does not exist
    let e = bot
        .describe_secret()
        .secret_id("payments/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    // not allowed there: cannot learn whether it exists
    let e = bot
        .describe_secret()
        .secret_id("other/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    // the identity policy does not allow writes, and the boundary would not either
    let e = bot
        .put_secret_value()
        .secret_id("payments/db")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
}

#[tokio::test]
async fn source_ip_conditions_with_an_explicit_deny() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    seed(&s).await;
    let (akid, secret) = mint(&s, &dir, "alice");
    let body = br#"{"SecretId":"payments/db","SecretString":"from-elsewhere"}"#;
    let sign = || {
        signed_request(
            "secretsmanager.PutSecretValue",
            body,
            Signing {
                akid: akid.clone(),
                secret: secret.clone(),
                ..Signing::default()
            },
        )
    };
    // from 127.0.0.2: outside the office ranges, the explicit deny applies
    let r = send_from("127.0.0.2", s.addr, &sign()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_type(), "AccessDeniedException");
    assert!(
        r.body
            .contains("with an explicit deny in an identity-based policy"),
        "{}",
        r.body
    );
    // from 127.0.0.1: allowed
    let r = send_from("127.0.0.1", s.addr, &sign()).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn send_from(ip: &str, to: std::net::SocketAddr, req: &[u8]) -> crate::common::RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    let mut stream = sock.connect(to).await.unwrap();
    stream.write_all(req).await.unwrap();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf).await;
    crate::common::parse_response(&buf)
}
