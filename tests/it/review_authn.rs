//! Authentication and request context as an attacker tries them (review of the SigV4, STS,
//! JWT and proxy-header paths). Each refusal sits next to a positive control that must still
//! succeed, so that neither a hole nor an over-broad refusal passes.

use std::net::SocketAddr;
use std::path::Path;

use crate::common::{
    example_policies, mint, now_secs, signed_request, urlenc, write, xml_field, RawResponse,
    Signing, TestServer,
};

const HOME: &str = "111122223333";

/// A server on SQLite with the principals in `policies`, listening on `listen`, believing
/// forwarding headers from `trusted_proxies`.
fn start(policies: &Path, listen: &str, trusted_proxies: &[&str]) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::common::config_in(dir.path(), None);
    cfg.listen = listen.into();
    cfg.policies = Some(policies.to_path_buf());
    cfg.trusted_proxies = trusted_proxies.iter().map(|p| p.parse().unwrap()).collect();
    TestServer::launch_config(cfg, dir)
}

/// Send `request` to `to` from the local address `from` over plain TCP.
fn send_from(from: &str, to: SocketAddr, request: &[u8]) -> RawResponse {
    use std::io::{Read, Write};
    let from: std::net::IpAddr = from.parse().unwrap();
    let stream = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let sock = if from.is_ipv4() {
                tokio::net::TcpSocket::new_v4().unwrap()
            } else {
                tokio::net::TcpSocket::new_v6().unwrap()
            };
            sock.bind(SocketAddr::new(from, 0)).unwrap();
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

/// `request` with `headers` added after its request line, unsigned: what a reverse proxy
/// adds to a request the client signed.
fn with_unsigned(request: &[u8], headers: &[(&str, &str)]) -> Vec<u8> {
    let text = String::from_utf8(request.to_vec()).unwrap();
    let (line, rest) = text.split_once("\r\n").unwrap();
    let added: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    format!("{line}\r\n{added}{rest}").into_bytes()
}

/// A GetSecretValue of `id` signed by `akid`/`secret`.
fn get_request(akid: &str, secret: &str, id: &str) -> Vec<u8> {
    signed_request(
        "secretsmanager.GetSecretValue",
        format!(r#"{{"SecretId":"{id}"}}"#).as_bytes(),
        Signing {
            akid: akid.into(),
            secret: secret.into(),
            ..Signing::default()
        },
    )
}

/// A CreateSecret of `name` signed by the root key.
fn create_request(name: &str) -> Vec<u8> {
    signed_request(
        "secretsmanager.CreateSecret",
        serde_json::json!({
            "Name": name, "SecretString": "v",
            "ClientRequestToken": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        })
        .to_string()
        .as_bytes(),
        Signing::default(),
    )
}

/// A user allowed GetSecretValue from 198.51.100.0/24 only and denied it from 203.0.113.0/24.
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

/// A trusted proxy that adds its own `X-Forwarded-For` line (HAProxy's `option forwardfor`,
/// or any proxy that does not merge) after the one the client sent: HTTP makes the two lines
/// one list (RFC 9110 5.3), whose rightmost entry is the proxy's. Reading only the first
/// line would let the client pick its `aws:SourceIp` and walk past an IP deny.
#[tokio::test]
async fn forwarded_for_split_over_two_lines_is_one_list() {
    let (_t, dir) = example_policies();
    office_user(&dir);
    let s = start(&dir, "127.0.0.1:0", &["127.0.0.2/32"]);
    assert_eq!(s.raw(&create_request("office/db")).status, 200);
    let (k, sk) = mint(&s, &dir, "office");
    let via_proxy = |lines: &[&str]| {
        let headers: Vec<(&str, &str)> = lines.iter().map(|l| ("x-forwarded-for", *l)).collect();
        send_from(
            "127.0.0.2",
            s.addr,
            &with_unsigned(&get_request(&k, &sk, "office/db"), &headers),
        )
    };
    // Positive controls: one line, office caller allowed, blocked caller denied; the same
    // list in one line decides on its rightmost entry.
    assert_eq!(via_proxy(&["198.51.100.7"]).status, 200);
    let r = via_proxy(&["203.0.113.9"]);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let r = via_proxy(&["198.51.100.7, 203.0.113.9"]);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    // The client's forged line first, the proxy's line (the real caller) second.
    let r = via_proxy(&["198.51.100.7", "203.0.113.9"]);
    assert_eq!(
        r.error_type(),
        "AccessDeniedException",
        "a forged first X-Forwarded-For line chose aws:SourceIp: {} {}",
        r.status,
        r.body
    );
}

/// A trusted proxy that adds `X-Forwarded-Proto: http` for a plain-HTTP client after the
/// client's own `X-Forwarded-Proto: https` line: the lines are one list, and plain HTTP must
/// not count as `aws:SecureTransport`.
#[tokio::test]
async fn forwarded_proto_split_over_two_lines_is_one_list() {
    let (_t, dir) = example_policies();
    write(
        &dir,
        &format!("accounts/{HOME}/users/tls-only.json"),
        r#"{"UserName":"tls-only","InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"},
            {"Effect":"Deny","Action":"*","Resource":"*",
             "Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}}}"#,
    );
    let s = start(&dir, "127.0.0.1:0", &["127.0.0.2/32"]);
    assert_eq!(s.raw(&create_request("t/db")).status, 200);
    let (k, sk) = mint(&s, &dir, "tls-only");
    let via_proxy = |lines: &[&str]| {
        let headers: Vec<(&str, &str)> = lines.iter().map(|l| ("x-forwarded-proto", *l)).collect();
        send_from(
            "127.0.0.2",
            s.addr,
            &with_unsigned(&get_request(&k, &sk, "t/db"), &headers),
        )
    };
    assert_eq!(via_proxy(&["https"]).status, 200);
    let r = via_proxy(&["http"]);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let r = via_proxy(&["https, http"]);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let r = via_proxy(&["https", "http"]);
    assert_eq!(
        r.error_type(),
        "AccessDeniedException",
        "a forged first X-Forwarded-Proto line made plain HTTP secure: {} {}",
        r.status,
        r.body
    );
}

/// On a dual-stack listener (`--listen [::]:4599`) an IPv4 client's address arrives as the
/// IPv4-mapped `::ffff:a.b.c.d`; `aws:SourceIp` (and a trusted proxy's check) must see the
/// IPv4 address, or no IPv4 CIDR of a policy would match it and an IP `Deny` would not apply.
/// AWS never shows a mapped address.
#[tokio::test]
async fn an_ipv4_caller_on_a_dual_stack_listener_is_its_ipv4_address() {
    let (_t, dir) = example_policies();
    write(
        &dir,
        &format!("accounts/{HOME}/users/not-local.json"),
        r#"{"UserName":"not-local","InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"},
            {"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*",
             "Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}]}}}"#,
    );
    write(
        &dir,
        &format!("accounts/{HOME}/users/local-only.json"),
        r#"{"UserName":"local-only","InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*",
             "Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}]}}}"#,
    );
    // Positive control: an IPv4 listener, the deny applies.
    let v4 = start(&dir, "127.0.0.1:0", &[]);
    assert_eq!(v4.raw(&create_request("local/db")).status, 200);
    let (k, sk) = mint(&v4, &dir, "not-local");
    let r = send_from("127.0.0.1", v4.addr, &get_request(&k, &sk, "local/db"));
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);

    // An IPv6 listener on the IPv4-mapped loopback address: IPv4 callers arrive on it as
    // `::ffff:127.0.0.1`, as they do on a `[::]` listener, without leaving loopback.
    let dual = start(&dir, "[::ffff:127.0.0.1]:0", &[]);
    let to: SocketAddr = format!("127.0.0.1:{}", dual.addr.port()).parse().unwrap();
    assert_eq!(
        send_from("127.0.0.1", to, &create_request("local/db")).status,
        200
    );
    // Positive control: a user allowed only from 127.0.0.0/8 reads over that listener.
    let (k, sk) = mint(&dual, &dir, "local-only");
    let r = send_from("127.0.0.1", to, &get_request(&k, &sk, "local/db"));
    assert_eq!(r.status, 200, "{}", r.body);
    // The user denied from 127.0.0.0/8: the deny must apply.
    let (k, sk) = mint(&dual, &dir, "not-local");
    let r = send_from("127.0.0.1", to, &get_request(&k, &sk, "local/db"));
    assert_eq!(
        r.error_type(),
        "AccessDeniedException",
        "an IPv4 caller escaped an IPv4 deny on a dual-stack listener: {} {}",
        r.status,
        r.body
    );
}

/// Presigned (query-string) SigV4 is not a credential here, fresh or expired: only the
/// `Authorization` header authenticates. Positive control: the same request header-signed.
#[test]
fn presigned_query_signatures_are_not_credentials() {
    use aws_sdk_secretsmanager::config::Credentials;
    use aws_sigv4::http_request::{
        sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    };
    use aws_smithy_runtime_api::client::identity::Identity;

    let s = TestServer::start();
    assert_eq!(s.raw(&create_request("pre/db")).status, 200);
    let body = br#"{"SecretId":"pre/db"}"#;
    let presigned = |age: std::time::Duration, expires: std::time::Duration| {
        let identity: Identity =
            Credentials::new(crate::common::AKID, crate::common::SECRET, None, None, "t").into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
        let params: aws_sigv4::http_request::SigningParams<'_> =
            aws_sigv4::sign::v4::SigningParams::builder()
                .identity(&identity)
                .region("us-east-1")
                .name("secretsmanager")
                .time(std::time::SystemTime::now() - age)
                .settings(settings)
                .build()
                .unwrap()
                .into();
        let headers = [
            ("host", "localhost"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "secretsmanager.GetSecretValue"),
        ];
        let req = SignableRequest::new(
            "POST",
            "http://localhost/",
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(req, &params).unwrap().into_parts();
        let (_, query) = instructions.into_parts();
        assert!(query.iter().any(|(k, _)| *k == "X-Amz-Signature"));
        let qs: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", urlenc(v)))
            .collect();
        let mut out = format!("POST /?{} HTTP/1.1\r\n", qs.join("&"));
        for (n, v) in headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        ));
        let mut out = out.into_bytes();
        out.extend_from_slice(body);
        s.raw(&out)
    };
    for (what, age, expires) in [
        ("fresh", 0, 300),
        ("expired", 3600, 60),
        ("a week long", 0, 604_800),
    ] {
        let r = presigned(
            std::time::Duration::from_secs(age),
            std::time::Duration::from_secs(expires),
        );
        assert_eq!(
            r.error_type(),
            "MissingAuthenticationTokenException",
            "{what}: {} {}",
            r.status,
            r.body
        );
        assert!(!r.body.contains("\"SecretString\""), "{what}: {}", r.body);
    }
    let r = s.raw(&get_request(
        crate::common::AKID,
        crate::common::SECRET,
        "pre/db",
    ));
    assert_eq!(r.status, 200, "{}", r.body);
}

const ISSUER: &str = "https://authn.example.test";
const HMAC: &str = "review-authn-hmac-secret-0123456789abcdef";
const ROLE: &str = "arn:aws:iam::111122223333:role/tag-reader";

/// An HMAC issuer mapping claim `team_claim` to session tag `team`, and a role it may assume
/// that reads secrets only with `aws:PrincipalTag/team` = `payments` (and describes any).
fn tagging_issuer(dir: &Path) {
    write(
        dir,
        &format!("accounts/{HOME}/identity-providers/authn.hmac"),
        HMAC,
    );
    write(
        dir,
        &format!("accounts/{HOME}/identity-providers/authn.json"),
        &format!(
            r#"{{"Issuer":"{ISSUER}","Audiences":["strongroom"],"HmacSecretFile":"authn.hmac",
                "Algorithms":["HS256"],"SessionTagClaims":{{"team_claim":"team"}}}}"#
        ),
    );
    write(
        dir,
        &format!("accounts/{HOME}/roles/tag-reader.json"),
        &format!(
            r#"{{"RoleName":"tag-reader",
              "AssumeRolePolicyDocument":{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow",
                "Principal":{{"Federated":"{ISSUER}"}},"Action":"sts:AssumeRoleWithWebIdentity",
                "Condition":{{"StringEquals":{{"authn.example.test:aud":"strongroom"}}}}}}]}},
              "InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*",
                  "Condition":{{"StringEquals":{{"aws:PrincipalTag/team":"payments"}}}}}},
                {{"Effect":"Allow","Action":"secretsmanager:DescribeSecret","Resource":"*"}}]}}}}}}"#
        ),
    );
}

fn jwt(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(HMAC.as_bytes()),
    )
    .unwrap()
}

fn claims(extra: &serde_json::Value) -> serde_json::Value {
    let mut c = serde_json::json!({
        "iss": ISSUER, "aud": "strongroom", "sub": "svc:payments",
        "exp": now_secs() + 600, "iat": now_secs()
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn bearer(s: &TestServer, token: &str, target: &str, body: &str) -> RawResponse {
    let req = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\nx-strongroom-role: {ROLE}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: {target}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.raw(req.as_bytes())
}

/// Only a claim the provider maps (`SessionTagClaims`), with a string value, becomes a
/// principal tag: not a claim named like the tag, not AWS's own session-tag claim
/// (`https://aws.amazon.com/tags`), not an array, object or number, not a case variant of the
/// mapped claim's name.
#[tokio::test]
async fn only_a_mapped_string_claim_becomes_a_principal_tag() {
    let (_t, dir) = example_policies();
    tagging_issuer(&dir);
    let s = TestServer::start_with_policies(&dir);
    assert_eq!(s.raw(&create_request("payments/db")).status, 200);
    let read = |extra: serde_json::Value| {
        bearer(
            &s,
            &jwt(&claims(&extra)),
            "secretsmanager.GetSecretValue",
            r#"{"SecretId":"payments/db"}"#,
        )
    };
    // Positive control.
    let r = read(serde_json::json!({"team_claim": "payments"}));
    assert_eq!(r.status, 200, "{}", r.body);
    for (what, extra) in [
        ("no claim", serde_json::json!({})),
        (
            "a claim named like the tag",
            serde_json::json!({"team": "payments"}),
        ),
        (
            "AWS's session tag claim",
            serde_json::json!({"https://aws.amazon.com/tags":
                {"principal_tags": {"team": ["payments"]}, "transitive_tag_keys": ["team"]}}),
        ),
        ("an array", serde_json::json!({"team_claim": ["payments"]})),
        (
            "an object",
            serde_json::json!({"team_claim": {"team": "payments"}}),
        ),
        (
            "another case",
            serde_json::json!({"TEAM_CLAIM": "payments"}),
        ),
        (
            "another value",
            serde_json::json!({"team_claim": "Payments"}),
        ),
        (
            "a longer value",
            serde_json::json!({"team_claim": "payments\u{0}admin"}),
        ),
    ] {
        let r = read(extra);
        assert_eq!(
            r.error_type(),
            "AccessDeniedException",
            "{what}: {}",
            r.body
        );
        assert!(!r.body.contains("\"SecretString\""), "{what}: {}", r.body);
    }
    // Case twins of the mapped claim: refused as a token.
    let r = read(serde_json::json!({"team_claim": "ops", "Team_Claim": "payments"}));
    assert_eq!(
        r.error_type(),
        "InvalidIdentityTokenException",
        "{}",
        r.body
    );
}

fn web_identity(s: &TestServer, token: &str, policy: Option<&str>) -> RawResponse {
    let mut form = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=review&WebIdentityToken={token}",
        urlenc(ROLE)
    );
    if let Some(p) = policy {
        form.push_str(&format!("&Policy={}", urlenc(p)));
    }
    let req = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
        form.len()
    );
    s.raw(req.as_bytes())
}

/// An inline session policy passed to AssumeRoleWithWebIdentity narrows the session, as
/// AssumeRole's does; the session tag from the token still counts.
#[tokio::test]
async fn a_web_identity_session_policy_narrows_the_session() {
    let (_t, dir) = example_policies();
    tagging_issuer(&dir);
    let s = TestServer::start_with_policies(&dir);
    assert_eq!(s.raw(&create_request("payments/db")).status, 200);
    let token = jwt(&claims(&serde_json::json!({"team_claim": "payments"})));
    let as_session = |r: &RawResponse, target: &str| {
        assert_eq!(r.status, 200, "{}", r.body);
        s.raw(&signed_request(
            target,
            br#"{"SecretId":"payments/db"}"#,
            Signing {
                akid: xml_field(&r.body, "AccessKeyId"),
                secret: xml_field(&r.body, "SecretAccessKey"),
                session_token: Some(xml_field(&r.body, "SessionToken")),
                ..Signing::default()
            },
        ))
    };
    // Positive control: without a session policy the session reads (its tag from the token).
    let wide = web_identity(&s, &token, None);
    assert_eq!(
        as_session(&wide, "secretsmanager.GetSecretValue").status,
        200
    );
    let narrow = web_identity(
        &s,
        &token,
        Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:DescribeSecret","Resource":"*"}]}"#,
        ),
    );
    assert_eq!(
        as_session(&narrow, "secretsmanager.DescribeSecret").status,
        200
    );
    let r = as_session(&narrow, "secretsmanager.GetSecretValue");
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
}

/// Session tag keys that differ only in case are refused, by the same folding the policy
/// context uses (Unicode `to_lowercase`, under which KELVIN SIGN U+212A is `k`): `desk` and
/// `des\u{212A}` would both feed `aws:RequestTag/desk` and `aws:PrincipalTag/desk`, one
/// shadowing the other.
#[tokio::test]
async fn session_tags_differing_only_in_unicode_case_are_refused() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    let (ck, cs) = mint(&s, &dir, "ci-bot");
    let role = urlenc("arn:aws:iam::111122223333:role/service/payments-app");
    let tagged = |tags: &str| {
        s.raw(&crate::common::signed_query(
            &format!(
                "Action=AssumeRole&Version=2011-06-15&RoleArn={role}&RoleSessionName=tags{tags}"
            ),
            crate::common::sts_as(&ck, &cs),
        ))
    };
    // Positive controls: distinct keys are fine; an ASCII case twin is refused.
    let r = tagged("&Tags.member.1.Key=desk&Tags.member.1.Value=red&Tags.member.2.Key=env&Tags.member.2.Value=prod");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = tagged("&Tags.member.1.Key=desk&Tags.member.1.Value=red&Tags.member.2.Key=DESK&Tags.member.2.Value=blue");
    assert!(
        r.body.contains("<Code>ValidationError</Code>"),
        "{}",
        r.body
    );
    // The same twin by Unicode case folding.
    let r = tagged(&format!(
        "&Tags.member.1.Key=desk&Tags.member.1.Value=red&Tags.member.2.Key={}&Tags.member.2.Value=blue",
        urlenc("des\u{212A}")
    ));
    assert!(
        r.body.contains("<Code>ValidationError</Code>"),
        "a Unicode case twin of a session tag key was accepted: {} {}",
        r.status,
        r.body
    );
}

/// `Forwarded` (RFC 7239) and `X-Real-IP` never set `aws:SourceIp`, from a trusted proxy or
/// any other peer: only a trusted proxy's `X-Forwarded-For` is believed.
#[tokio::test]
async fn forwarded_and_real_ip_headers_are_not_believed() {
    let (_t, dir) = example_policies();
    office_user(&dir);
    let s = start(&dir, "127.0.0.1:0", &["127.0.0.2/32"]);
    assert_eq!(s.raw(&create_request("office/db")).status, 200);
    let (k, sk) = mint(&s, &dir, "office");
    let send = |from: &str, headers: &[(&str, &str)]| {
        send_from(
            from,
            s.addr,
            &with_unsigned(&get_request(&k, &sk, "office/db"), headers),
        )
    };
    // Positive control: the trusted proxy's X-Forwarded-For.
    assert_eq!(
        send("127.0.0.2", &[("x-forwarded-for", "198.51.100.7")]).status,
        200
    );
    for from in ["127.0.0.2", "127.0.0.3"] {
        for headers in [
            &[("x-real-ip", "198.51.100.7")][..],
            &[("forwarded", "for=198.51.100.7;proto=https")],
            &[
                ("true-client-ip", "198.51.100.7"),
                ("x-client-ip", "198.51.100.7"),
            ],
        ] {
            let r = send(from, headers);
            assert_eq!(
                r.error_type(),
                "AccessDeniedException",
                "{from} {headers:?}: {}",
                r.body
            );
        }
    }
}

/// A bearer token's session was issued when the token was (`iat` is `aws:TokenIssueTime`):
/// a role policy revoking the sessions issued before a time (AWS's "revoke active
/// sessions") refuses a token issued before it and one that does not say when it was
/// issued, and lets a token issued after it.
#[tokio::test]
async fn a_bearer_token_issued_before_a_revocation_is_refused() {
    let (_t, dir) = example_policies();
    tagging_issuer(&dir);
    let cutoff = now_secs() - 60;
    let cutoff_text = time::OffsetDateTime::from_unix_timestamp(cutoff)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    write(
        &dir,
        &format!("accounts/{HOME}/roles/tag-reader.json"),
        &serde_json::json!({"RoleName": "tag-reader",
          "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Federated": ISSUER}, "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"authn.example.test:aud": "strongroom"}}}]},
          "InlinePolicies": {"p": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": "*"},
            {"Effect": "Deny", "Action": "*", "Resource": "*",
             "Condition": {"DateLessThan": {"aws:TokenIssueTime": cutoff_text}}}]}}})
        .to_string(),
    );
    let s = TestServer::start_with_policies(&dir);
    assert_eq!(s.raw(&create_request("payments/db")).status, 200);
    let describe = |c: serde_json::Value| {
        bearer(
            &s,
            &jwt(&c),
            "secretsmanager.DescribeSecret",
            r#"{"SecretId":"payments/db"}"#,
        )
    };
    // Control: issued after the cutoff.
    let r = describe(claims(&serde_json::json!({})));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = describe(claims(&serde_json::json!({"iat": cutoff - 3600})));
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let mut no_iat = claims(&serde_json::json!({}));
    no_iat.as_object_mut().unwrap().remove("iat");
    let r = describe(no_iat);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
}
