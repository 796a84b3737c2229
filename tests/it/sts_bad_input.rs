//! Bad input to STS and to session credentials: malformed Query bodies, unknown principals,
//! tampered, forged, cross-bound and replayed session tokens, orphaned sessions. Each gets a
//! clear AWS-shaped error (XML for the Query protocol), never a 5xx, never access.

use std::time::{Duration, SystemTime};

use crate::common::{
    example_policies, mint, send_raw, signed_query, sts_as, urlenc, Signing, TestServer,
};

const ROLE: &str = "arn:aws:iam::111122223333:role/service/payments-app";

/// A raw Query request with an arbitrary body, signed with `s`.
fn query_bytes(s: &TestServer, body: &[u8], signing: Signing) -> crate::common::RawResponse {
    // signed_query takes text; for non-UTF-8 bodies sign the bytes through the JSON helper's
    // twin by building the request by hand.
    match std::str::from_utf8(body) {
        Ok(text) => s.raw(&signed_query(text, signing)),
        Err(_) => {
            let mut req = format!(
                "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            req.extend_from_slice(body);
            s.raw(&req)
        }
    }
}

/// An XML Query error with `code` and a status in 4xx.
fn assert_query_error(what: &str, r: &crate::common::RawResponse, code: &str) {
    assert!(
        (400..500).contains(&r.status),
        "{what}: status {} {}",
        r.status,
        r.body
    );
    assert!(
        r.body.contains("<ErrorResponse") && r.body.contains(&format!("<Code>{code}</Code>")),
        "{what}: want {code}: {}",
        r.body
    );
}

#[test]
fn malformed_sts_requests_and_unknown_principals_get_clear_errors() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    let (akid, secret) = mint(&s, &dir, "ci-bot");
    let role = urlenc(ROLE);
    let ok_base = format!("Action=AssumeRole&Version=2011-06-15&RoleArn={role}");
    let many: String = (0..6000).map(|i| format!("p{i}=v&")).collect();
    let long_name = "n".repeat(65);
    let cases: Vec<(&str, String, &str)> = vec![
        ("no Action", "Version=2011-06-15".into(), "InvalidAction"),
        (
            "unknown Action",
            "Action=GetFederationTokenX&Version=2011-06-15".into(),
            "InvalidAction",
        ),
        (
            "bad percent-encoding",
            "Action=AssumeRole&RoleArn=%ff%fe".into(),
            "ValidationError",
        ),
        ("too many parameters", many, "ValidationError"),
        (
            "no RoleArn",
            "Action=AssumeRole&Version=2011-06-15&RoleSessionName=x1".into(),
            "ValidationError",
        ),
        (
            "no RoleSessionName",
            ok_base.clone(),
            "ValidationError",
        ),
        (
            "session name with a space",
            format!("{ok_base}&RoleSessionName=a+b"),
            "ValidationError",
        ),
        (
            "session name too long",
            format!("{ok_base}&RoleSessionName={long_name}"),
            "ValidationError",
        ),
        (
            "duration not a number",
            format!("{ok_base}&RoleSessionName=x1&DurationSeconds=abc"),
            "ValidationError",
        ),
        (
            "duration negative",
            format!("{ok_base}&RoleSessionName=x1&DurationSeconds=-5"),
            "ValidationError",
        ),
        (
            "session policy not JSON",
            format!("{ok_base}&RoleSessionName=x1&Policy=%7Bnope"),
            "MalformedPolicyDocument",
        ),
        (
            "unknown role in a known account",
            format!(
                "Action=AssumeRole&Version=2011-06-15&RoleSessionName=x1&RoleArn={}",
                urlenc("arn:aws:iam::111122223333:role/nobody")
            ),
            "AccessDenied",
        ),
        (
            "role in an unknown account",
            format!(
                "Action=AssumeRole&Version=2011-06-15&RoleSessionName=x1&RoleArn={}",
                urlenc("arn:aws:iam::999999999999:role/service/payments-app")
            ),
            "AccessDenied",
        ),
        (
            "RoleArn not an ARN",
            "Action=AssumeRole&Version=2011-06-15&RoleSessionName=x1&RoleArn=payments-app"
                .into(),
            "",
        ),
        (
            "web identity without a token",
            format!(
                "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleSessionName=x1&RoleArn={role}"
            ),
            "ValidationError",
        ),
        (
            "web identity token not a JWT",
            format!(
                "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleSessionName=x1&RoleArn={role}&WebIdentityToken=%01%02"
            ),
            "InvalidIdentityToken",
        ),
        (
            "a NUL character in a parameter",
            format!(
                "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleSessionName=x1&RoleArn={role}&WebIdentityToken=%00%01"
            ),
            "ValidationError",
        ),
    ];
    for (what, body, code) in &cases {
        let r = query_bytes(&s, body.as_bytes(), sts_as(&akid, &secret));
        if code.is_empty() {
            // either answer is AWS-like; what matters is a clear 4xx
            assert!(
                r.body.contains("<Code>ValidationError</Code>")
                    || r.body.contains("<Code>AccessDenied</Code>"),
                "{what}: {}",
                r.body
            );
            assert!((400..500).contains(&r.status), "{what}: {}", r.body);
        } else {
            assert_query_error(what, &r, code);
        }
    }
    // a body that is not UTF-8 (unsigned: refused for its body or its missing signature)
    let r = query_bytes(&s, &[b'A', 0xff, 0xfe, b'=', 0x80], Signing::default());
    assert!((400..500).contains(&r.status), "{}", r.body);
    assert!(r.body.contains("<ErrorResponse"), "{}", r.body);
    // AssumeRole without any signature
    let form = format!("{ok_base}&RoleSessionName=x1");
    let r = s.raw(
        format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
            form.len()
        )
        .as_bytes(),
    );
    assert_query_error("unsigned AssumeRole", &r, "MissingAuthenticationToken");
    // a Bearer caller naming an unknown role
    let body = r#"{"SecretId":"x"}"#;
    let r = s.raw(
        format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer a.b.c\r\nx-strongroom-role: arn:aws:iam::111122223333:role/nobody\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: secretsmanager.GetSecretValue\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert!((400..500).contains(&r.status), "{}", r.body);
    // still healthy
    let r = s.raw(&signed_query(
        &format!("{ok_base}&RoleSessionName=fine"),
        sts_as(&akid, &secret),
    ));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn tampered_forged_cross_bound_replayed_and_orphaned_sessions_are_refused() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    let (akid, secret) = mint(&s, &dir, "ci-bot");
    let assume = |name: &str| crate::common::assume_role(&s, &akid, &secret, ROLE, name);
    let (ak1, sk1, st1) = assume("one");
    let (ak2, sk2, st2) = assume("two");
    let who = |akid: &str, secret: &str, token: Option<String>, time: SystemTime| {
        s.raw(&signed_query(
            "Action=GetCallerIdentity&Version=2011-06-15",
            Signing {
                session_token: token,
                time,
                ..sts_as(akid, secret)
            },
        ))
    };
    let now = SystemTime::now();
    assert_eq!(who(&ak1, &sk1, Some(st1.clone()), now).status, 200);
    assert_eq!(who(&ak2, &sk2, Some(st2.clone()), now).status, 200);

    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&st1)
        .unwrap();
    let reencode = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut flipped = raw.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let mut other_key_id = raw.clone();
    other_key_id[3] ^= 0x7f;
    let forged = reencode(
        &[
            &raw[..4],
            br#"{"akid":"ASIAFORGED","secret":"x","account":"111122223333"}"#.as_slice(),
        ]
        .concat(),
    );
    let cases: Vec<(&str, &str, &str, Option<String>)> = vec![
        ("no session token", &ak1, &sk1, None),
        (
            "a bit flipped in the sealed claims",
            &ak1,
            &sk1,
            Some(reencode(&flipped)),
        ),
        (
            "another master key id",
            &ak1,
            &sk1,
            Some(reencode(&other_key_id)),
        ),
        (
            "truncated",
            &ak1,
            &sk1,
            Some(st1[..st1.len() / 2].to_owned()),
        ),
        ("only the key id", &ak1, &sk1, Some(reencode(&raw[..4]))),
        ("not base64", &ak1, &sk1, Some("!!not-base64!!".into())),
        ("empty", &ak1, &sk1, Some(String::new())),
        ("oversized", &ak1, &sk1, Some("A".repeat(20_000))),
        ("unsealed claims", "ASIAFORGED", "x", Some(forged)),
        // session two's token with session one's key: tokens are bound to their key id
        ("another session's token", &ak1, &sk1, Some(st2.clone())),
        // session one's key id with session two's secret and token
        ("another session's secret", &ak1, &sk2, Some(st2.clone())),
        // a long-term key with a (valid) session token: AWS refuses the pair
        (
            "a long-term key with a session token",
            &akid,
            &secret,
            Some(st1.clone()),
        ),
    ];
    for (what, a, k, token) in &cases {
        let r = who(a, k, token.clone(), now);
        assert!(
            r.status == 403 || r.status == 400,
            "{what}: {} {}",
            r.status,
            r.body
        );
        assert!(
            r.body.contains("<Code>InvalidClientTokenId</Code>")
                || r.body.contains("<Code>SignatureDoesNotMatch</Code>")
                || r.body.contains("<Code>IncompleteSignature</Code>"),
            "{what}: {}",
            r.body
        );
        assert!(!r.body.contains(&st1[..32]), "{what}: token echoed");
        assert!(!r.body.contains(&sk1), "{what}: secret echoed");
    }

    // a request signed by the session 16 minutes ago, replayed now: the signature has expired
    let r = who(
        &ak1,
        &sk1,
        Some(st1.clone()),
        now - Duration::from_secs(16 * 60),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("Signature expired"), "{}", r.body);
    // the same session signs a fresh request: still fine
    assert_eq!(who(&ak1, &sk1, Some(st1.clone()), now).status, 200);

    // the role leaves the files: its live sessions stop working after the reload
    std::fs::remove_file(dir.join("accounts/111122223333/roles/payments-app.json")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = who(&ak1, &sk1, Some(st1.clone()), SystemTime::now());
        if r.body.contains("<Code>InvalidClientTokenId</Code>") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "session of a removed role still accepted: {}",
            r.body
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // through the JSON protocol too
    let r = send_raw(
        s.addr,
        &crate::common::signed_request(
            "secretsmanager.ListSecrets",
            b"{}",
            Signing {
                akid: ak2.clone(),
                secret: sk2.clone(),
                session_token: Some(st2.clone()),
                ..Signing::default()
            },
        ),
    );
    assert_eq!(r.error_type(), "UnrecognizedClientException", "{}", r.body);
}
