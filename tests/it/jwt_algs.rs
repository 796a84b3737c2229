//! JWT callers with asymmetric keys: RS256, ES256 and EdDSA, with the issuer's keys given as a
//! JWKS file and as PEM public keys, through AssumeRoleWithWebIdentity and `Bearer` callers.
//! Tokens signed by another key of the same algorithm, algorithm confusion (an HS256 token
//! "signed" with the RSA public key), and `kid` selection in a JWKS of several keys.

use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::common::{example_policies, now_secs, urlenc, xml_field, TestServer};

pub(crate) const ROLE: &str = "arn:aws:iam::111122223333:role/jwt-reader";
pub(crate) const JWKS_ISS: &str = "https://jwks.example.test";
const PEM_ISS: &str = "https://pem.example.test";
/// Same JWKS as `JWKS_ISS`, but only RS256 accepted.
const RS_ONLY_ISS: &str = "https://rs-only.example.test";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

/// The example directory plus three providers and a role trusting them.
pub(crate) fn add_providers(dir: &Path) {
    let acct = dir.join("accounts/111122223333");
    let idp = acct.join("identity-providers");
    std::fs::create_dir_all(&idp).unwrap();
    for f in ["keys.jwks", "rsa1.pub.pem", "ec1.pub.pem", "ed1.pub.pem"] {
        std::fs::copy(fixtures().join(f), idp.join(f)).unwrap();
    }
    std::fs::write(
        idp.join("jwks.json"),
        format!(
            r#"{{"Issuer":"{JWKS_ISS}","Audiences":["strongroom"],"JwksFile":"keys.jwks",
                "Algorithms":["RS256","ES256","EdDSA"]}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        idp.join("pem.json"),
        format!(
            r#"{{"Issuer":"{PEM_ISS}","Audiences":["strongroom"],
                "PublicKeyFiles":["rsa1.pub.pem","ec1.pub.pem","ed1.pub.pem"],
                "Algorithms":["RS256","ES256","EdDSA"]}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        idp.join("rs-only.json"),
        format!(
            r#"{{"Issuer":"{RS_ONLY_ISS}","Audiences":["strongroom"],"JwksFile":"keys.jwks",
                "Algorithms":["RS256"]}}"#
        ),
    )
    .unwrap();
    let stmt = |iss: &str| {
        let host = iss.trim_start_matches("https://");
        format!(
            r#"{{"Effect":"Allow","Principal":{{"Federated":"{iss}"}},
                "Action":"sts:AssumeRoleWithWebIdentity",
                "Condition":{{"StringEquals":{{"{host}:aud":"strongroom","{host}:sub":"workload"}}}}}}"#
        )
    };
    std::fs::write(
        acct.join("roles/jwt-reader.json"),
        format!(
            r#"{{"RoleName":"jwt-reader",
                "AttachedPolicies":["arn:aws:iam::111122223333:policy/payments-app-read"],
                "AssumeRolePolicyDocument":{{"Version":"2012-10-17","Statement":[{},{},{}]}}}}"#,
            stmt(JWKS_ISS),
            stmt(PEM_ISS),
            stmt(RS_ONLY_ISS)
        ),
    )
    .unwrap();
}

fn claims(iss: &str) -> serde_json::Value {
    serde_json::json!({"iss": iss, "aud": "strongroom", "sub": "workload",
                       "exp": now_secs() + 600, "iat": now_secs()})
}

/// The private key of fixture `name` (`rsa1`, `ec2`, `ed3`, …) for `alg`.
fn signing_key(name: &str) -> EncodingKey {
    let pem = fixture(&format!("{name}.key.pem"));
    if name.starts_with("rsa") {
        EncodingKey::from_rsa_pem(&pem).unwrap()
    } else if name.starts_with("ec") {
        EncodingKey::from_ec_pem(&pem).unwrap()
    } else {
        EncodingKey::from_ed_pem(&pem).unwrap()
    }
}

fn alg_of(name: &str) -> Algorithm {
    if name.starts_with("rsa") {
        Algorithm::RS256
    } else if name.starts_with("ec") {
        Algorithm::ES256
    } else {
        Algorithm::EdDSA
    }
}

/// A token for `iss` signed by fixture key `key`, with header `kid`.
pub(crate) fn token(iss: &str, key: &str, kid: Option<&str>) -> String {
    let mut h = Header::new(alg_of(key));
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, &claims(iss), &signing_key(key)).unwrap()
}

fn web_identity(s: &TestServer, token: &str) -> crate::common::RawResponse {
    let form = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=w1&WebIdentityToken={}",
        urlenc(ROLE),
        urlenc(token)
    );
    s.raw(
        format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
            form.len()
        )
        .as_bytes(),
    )
}

fn bearer_get(s: &TestServer, token: &str) -> crate::common::RawResponse {
    let body = r#"{"SecretId":"payments/db"}"#;
    let req = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\nx-strongroom-role: {ROLE}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: secretsmanager.GetSecretValue\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.raw(req.as_bytes())
}

async fn server() -> (tempfile::TempDir, TestServer) {
    let (t, dir) = example_policies();
    add_providers(&dir);
    let s = TestServer::start_with_policies(&dir);
    s.client()
        .create_secret()
        .name("payments/db")
        .secret_string("p")
        .send()
        .await
        .unwrap();
    (t, s)
}

/// The token is accepted both ways: as a Bearer caller and through AssumeRoleWithWebIdentity,
/// whose credentials then read the secret.
async fn assert_accepted(s: &TestServer, what: &str, token: &str) {
    let r = bearer_get(s, token);
    assert_eq!(r.status, 200, "{what}: bearer: {}", r.body);
    assert_eq!(r.json()["SecretString"], "p", "{what}");

    let r = web_identity(s, token);
    assert_eq!(r.status, 200, "{what}: web identity: {}", r.body);
    assert!(
        r.body
            .contains("<SubjectFromWebIdentityToken>workload</SubjectFromWebIdentityToken>"),
        "{what}: {}",
        r.body
    );
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .http_client(strongroom::client::https_client())
        .endpoint_url(s.endpoint())
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            xml_field(&r.body, "AccessKeyId"),
            xml_field(&r.body, "SecretAccessKey"),
            Some(xml_field(&r.body, "SessionToken")),
            None,
            "web",
        ))
        .build();
    let c = aws_sdk_secretsmanager::Client::from_conf(conf);
    let v = c
        .get_secret_value()
        .secret_id("payments/db")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: session read: {e:?}"));
    assert_eq!(v.secret_string(), Some("p"), "{what}");
}

/// The token is refused both ways, before the trust policy, without being echoed.
fn assert_refused(s: &TestServer, what: &str, token: &str) {
    let r = bearer_get(s, token);
    assert_eq!(
        r.error_type(),
        "InvalidIdentityTokenException",
        "{what}: bearer: {}",
        r.body
    );
    assert!(!r.body.contains(token), "{what}: token echoed");
    let r = web_identity(s, token);
    assert_eq!(r.status, 400, "{what}: web identity: {}", r.body);
    assert!(
        r.body.contains("<Code>InvalidIdentityToken</Code>"),
        "{what}: {}",
        r.body
    );
    assert!(!r.body.contains(token), "{what}: token echoed");
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_are_accepted_from_jwks_and_pem_keys() {
    let (_t, s) = server().await;
    for (iss, key, kid) in [
        // JWKS: the kid picks the key, including the second key of a type
        (JWKS_ISS, "rsa1", Some("rsa1")),
        (JWKS_ISS, "rsa2", Some("rsa2")),
        (JWKS_ISS, "ec1", Some("ec1")),
        (JWKS_ISS, "ec2", Some("ec2")),
        (JWKS_ISS, "ed1", Some("ed1")),
        (JWKS_ISS, "ed2", Some("ed2")),
        // no kid: every key of the token's algorithm is tried
        (JWKS_ISS, "rsa2", None),
        (JWKS_ISS, "ec2", None),
        (JWKS_ISS, "ed2", None),
        // PEM keys have no id: with or without a kid in the token
        (PEM_ISS, "rsa1", None),
        (PEM_ISS, "ec1", None),
        (PEM_ISS, "ed1", None),
        (PEM_ISS, "rsa1", Some("cluster-key-7")),
        (PEM_ISS, "ed1", Some("cluster-key-7")),
        (RS_ONLY_ISS, "rsa2", Some("rsa2")),
    ] {
        let what = format!("{iss} {key} kid {kid:?}");
        assert_accepted(&s, &what, &token(iss, key, kid)).await;
    }
}

#[tokio::test]
async fn tokens_signed_by_another_key_or_with_a_confused_algorithm_are_refused() {
    let (_t, s) = server().await;
    let mut cases: Vec<(String, String)> = vec![];
    for iss in [JWKS_ISS, PEM_ISS] {
        // a key of the same algorithm the issuer does not have
        for key in ["rsa3", "ec3", "ed3"] {
            cases.push((format!("{iss}: foreign {key}"), token(iss, key, None)));
            cases.push((
                format!("{iss}: foreign {key}, kid of a known key"),
                token(iss, key, Some(&format!("{}1", key.trim_end_matches('3')))),
            ));
        }
    }
    // the PEM issuer only has key 1 of each type
    for key in ["rsa2", "ec2", "ed2"] {
        cases.push((
            format!("pem: {key} not declared"),
            token(PEM_ISS, key, None),
        ));
    }
    // the kid names another key of the JWKS: only that key is tried
    cases.push((
        "jwks: rsa2 signs, kid rsa1".into(),
        token(JWKS_ISS, "rsa2", Some("rsa1")),
    ));
    cases.push((
        "jwks: ec1 signs, kid ec2".into(),
        token(JWKS_ISS, "ec1", Some("ec2")),
    ));
    // the kid names a key of another type than the token's algorithm
    cases.push((
        "jwks: ES256 token, kid rsa1".into(),
        token(JWKS_ISS, "ec1", Some("rsa1")),
    ));
    cases.push((
        "jwks: EdDSA token, kid ec1".into(),
        token(JWKS_ISS, "ed1", Some("ec1")),
    ));
    // an algorithm the provider does not list, signed by a key it has
    cases.push((
        "rs-only: ES256".into(),
        token(RS_ONLY_ISS, "ec1", Some("ec1")),
    ));
    cases.push(("rs-only: EdDSA".into(), token(RS_ONLY_ISS, "ed1", None)));
    // key confusion: HS256 with the issuer's public key (PEM bytes, or the JWK) as the secret
    let rsa_pub = fixture("rsa1.pub.pem");
    let jwks: serde_json::Value = serde_json::from_slice(&fixture("keys.jwks")).unwrap();
    let rsa_jwk = jwks["keys"][0].to_string();
    for iss in [JWKS_ISS, PEM_ISS, RS_ONLY_ISS] {
        for (label, secret, kid) in [
            ("pem", rsa_pub.as_slice(), None),
            ("pem", rsa_pub.as_slice(), Some("rsa1")),
            ("jwk", rsa_jwk.as_bytes(), Some("rsa1")),
        ] {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = kid.map(str::to_owned);
            let t =
                jsonwebtoken::encode(&h, &claims(iss), &EncodingKey::from_secret(secret)).unwrap();
            cases.push((
                format!("{iss}: HS256 with the RSA public key ({label}, kid {kid:?})"),
                t,
            ));
        }
    }
    // other algorithms of a known key's family
    let mut h = Header::new(Algorithm::RS384);
    h.kid = Some("rsa1".into());
    cases.push((
        "jwks: RS384 by rsa1".into(),
        jsonwebtoken::encode(&h, &claims(JWKS_ISS), &signing_key("rsa1")).unwrap(),
    ));
    let h = Header::new(Algorithm::PS256);
    cases.push((
        "pem: PS256 by rsa1".into(),
        jsonwebtoken::encode(&h, &claims(PEM_ISS), &signing_key("rsa1")).unwrap(),
    ));
    // a valid signature over other claims, spliced onto this token's header and payload
    let good = token(JWKS_ISS, "rsa1", Some("rsa1"));
    let mut other = claims(JWKS_ISS);
    other["sub"] = serde_json::json!("someone-else");
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa1".into());
    let donor = jsonwebtoken::encode(&h, &other, &signing_key("rsa1")).unwrap();
    let spliced = format!(
        "{}.{}",
        good.rsplit_once('.').unwrap().0,
        donor.rsplit_once('.').unwrap().1
    );
    cases.push(("jwks: spliced signature".into(), spliced));
    // an unsigned token naming a known kid
    use base64::Engine;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    cases.push((
        "jwks: alg none".into(),
        format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg":"none","kid":"rsa1"})),
            b64(&claims(JWKS_ISS))
        ),
    ));

    for (what, t) in &cases {
        assert_refused(&s, what, t);
    }
    // and the server still accepts a good token afterwards
    assert_accepted(&s, "good after bad", &good).await;
}

#[test]
fn provider_key_declarations_are_checked_when_loading() {
    let (_t, dir) = example_policies();
    add_providers(&dir);
    assert!(strongroom::cli::validate_policies(&dir).is_ok());
    let idp = dir.join("accounts/111122223333/identity-providers");

    // HS256 with public keys: an HMAC token must never be checked against a public key
    std::fs::write(
        idp.join("pem.json"),
        format!(
            r#"{{"Issuer":"{PEM_ISS}","Audiences":["strongroom"],
                "PublicKeyFiles":["rsa1.pub.pem"],"Algorithms":["RS256","HS256"]}}"#
        ),
    )
    .unwrap();
    let err = strongroom::cli::validate_policies(&dir).unwrap_err();
    assert!(err.contains("pem.json: $.Algorithms"), "{err}");
    assert!(err.contains("HS256"), "{err}");

    // a private key given as a public key is refused, and its bytes are not echoed
    std::fs::copy(fixtures().join("ec1.key.pem"), idp.join("ec1.key.pem")).unwrap();
    std::fs::write(
        idp.join("pem.json"),
        format!(
            r#"{{"Issuer":"{PEM_ISS}","Audiences":["strongroom"],
                "PublicKeyFiles":["ec1.key.pem"],"Algorithms":["ES256"]}}"#
        ),
    )
    .unwrap();
    let err = strongroom::cli::validate_policies(&dir).unwrap_err();
    assert!(
        err.contains("pem.json") && err.contains("private key"),
        "{err}"
    );
    let pem = String::from_utf8(fixture("ec1.key.pem")).unwrap();
    let body_line = pem.lines().nth(1).unwrap();
    assert!(!err.contains(body_line), "{err}");

    // a symmetric key in a JWKS is refused
    std::fs::write(
        idp.join("pem.json"),
        format!(
            r#"{{"Issuer":"{PEM_ISS}","Audiences":["strongroom"],
                "PublicKeyFiles":["ec1.pub.pem"],"Algorithms":["ES256"]}}"#
        ),
    )
    .unwrap();
    assert!(strongroom::cli::validate_policies(&dir).is_ok());
    std::fs::write(
        idp.join("keys.jwks"),
        r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}"#,
    )
    .unwrap();
    let err = strongroom::cli::validate_policies(&dir).unwrap_err();
    assert!(
        err.contains("jwks.json") && err.contains("HmacSecretFile"),
        "{err}"
    );
    assert!(!err.contains("c2VjcmV0"), "{err}");

    // a JWKS key whose alg contradicts its type is refused; unknown key types are skipped
    let mut jwks: serde_json::Value = serde_json::from_slice(&fixture("keys.jwks")).unwrap();
    jwks["keys"][0]["alg"] = serde_json::json!("ES256");
    std::fs::write(idp.join("keys.jwks"), jwks.to_string()).unwrap();
    let err = strongroom::cli::validate_policies(&dir).unwrap_err();
    assert!(err.contains("keys[0]"), "{err}");
    let mut jwks: serde_json::Value = serde_json::from_slice(&fixture("keys.jwks")).unwrap();
    jwks["keys"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"kty":"EC","crv":"P-521","kid":"big","x":"AA","y":"AA"}));
    jwks["keys"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"kty":"RSA","use":"enc","kid":"enc","n":"AQAB","e":"AQAB"}));
    std::fs::write(idp.join("keys.jwks"), jwks.to_string()).unwrap();
    let ok = strongroom::cli::validate_policies(&dir);
    assert!(ok.is_ok(), "{ok:?}");
}
