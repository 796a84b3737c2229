//! The wire, through raw signed and unsigned requests the SDK would not send.

use std::time::{Duration, SystemTime};

use crate::common::{signed_request, Signing, TestServer};

#[test]
fn request_id_and_error_shape() {
    let s = TestServer::start();
    let r = s.call("secretsmanager.GetSecretValue", r#"{"SecretId":"missing"}"#);
    assert_eq!(r.status, 400);
    assert!(r.header("x-amzn-RequestId").is_some_and(|v| v.len() >= 32));
    assert_eq!(r.error_type(), "ResourceNotFoundException");
    assert_eq!(
        r.json()["Message"],
        "Secrets Manager can't find the specified secret."
    );
    let ok = s.call("secretsmanager.ListSecrets", "{}");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.header("x-amzn-RequestId").is_some());
}

#[test]
fn unknown_and_unbuilt_operations() {
    let s = TestServer::start();
    let r = s.call("secretsmanager.FlyToTheMoon", "{}");
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "UnknownOperationException");
    let r = s.call("dynamodb.GetItem", "{}");
    assert_eq!(r.error_type(), "UnknownOperationException");
    let r = s.call("TrentService.CreateGrant", r#"{"KeyId":"x"}"#);
    assert_eq!(r.error_type(), "NotImplementedException");
    assert!(r.json()["Message"]
        .as_str()
        .unwrap()
        .contains("CreateGrant"));
    // every Secrets Manager operation of the model is served
    let r = s.call(
        "secretsmanager.AssociateCrossAccountReplica",
        r#"{"SecretId":"x"}"#,
    );
    assert_eq!(r.error_type(), "ValidationException", "{}", r.body);
    assert!(r.json()["Message"]
        .as_str()
        .unwrap()
        .contains("crossAccountReplicaARN"));
}

#[test]
fn malformed_bodies_are_4xx() {
    let s = TestServer::start();
    for body in [
        "{",
        "[]",
        "null",
        "{\"SecretId\": 5}",
        "{\"SecretId\": {\"a\": 1}}",
        "{\"Name\": \"x\", \"Tags\": \"notalist\"}",
        "{\"SecretId\": \"a\", \"VersionId\": 1e999}",
    ] {
        let r = s.call("secretsmanager.GetSecretValue", body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(!r.error_type().is_empty(), "{body}: {}", r.body);
    }
    let r = s.call("secretsmanager.GetSecretValue", "{}");
    assert_eq!(r.error_type(), "ValidationException");
}

#[test]
fn invalid_utf8_body() {
    let s = TestServer::start();
    let req = signed_request(
        "secretsmanager.ListSecrets",
        &[0xff, 0xfe, 0x7b],
        Signing::default(),
    );
    let r = s.raw(&req);
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "SerializationException");
}

#[test]
fn unsigned_and_malformed_signatures() {
    let s = TestServer::start();
    let body = "{}";
    let unsigned = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: secretsmanager.ListSecrets\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = s.raw(unsigned.as_bytes());
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "MissingAuthenticationTokenException");

    for auth in [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=x",
        "Basic dXNlcjpwYXNz",
        "AWS4-HMAC-SHA256 Credential=AKIA/20200101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=zz",
    ] {
        let req = format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\nx-amz-date: 20200101T000000Z\r\nauthorization: {auth}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: secretsmanager.ListSecrets\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
        );
        let r = s.raw(req.as_bytes());
        assert_eq!(r.status, 400, "{auth}: {}", r.body);
        assert!(
            ["IncompleteSignatureException", "InvalidSignatureException", "MissingAuthenticationTokenException", "UnrecognizedClientException"]
                .contains(&r.error_type().as_str()),
            "{auth}: {}",
            r.body
        );
    }
}

#[test]
fn tampered_and_expired_requests() {
    let s = TestServer::start();
    // body changed after signing
    let mut req = signed_request(
        "secretsmanager.ListSecrets",
        b"{\"MaxResults\":1}",
        Signing::default(),
    );
    let n = req.len();
    req[n - 2] = b'2';
    let r = s.raw(&req);
    assert_eq!(r.error_type(), "InvalidSignatureException", "{}", r.body);

    // 16 minutes old
    let old = Signing {
        time: SystemTime::now() - Duration::from_secs(16 * 60),
        ..Signing::default()
    };
    let r = s.raw(&signed_request("secretsmanager.ListSecrets", b"{}", old));
    assert_eq!(r.error_type(), "InvalidSignatureException");
    assert!(
        r.json()["Message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired:"),
        "{}",
        r.body
    );

    // 14 minutes old is fine
    let ok = Signing {
        time: SystemTime::now() - Duration::from_secs(14 * 60),
        ..Signing::default()
    };
    assert_eq!(
        s.raw(&signed_request("secretsmanager.ListSecrets", b"{}", ok))
            .status,
        200
    );

    // signed for another service
    let other = Signing {
        service: "s3".into(),
        ..Signing::default()
    };
    let r = s.raw(&signed_request("secretsmanager.ListSecrets", b"{}", other));
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "InvalidSignatureException", "{}", r.body);
    assert!(
        r.body
            .contains("Credential should be scoped to correct service"),
        "{}",
        r.body
    );

    // unknown key
    let unknown = Signing {
        akid: "AKIAUNKNOWN000000000".into(),
        ..Signing::default()
    };
    let r = s.raw(&signed_request(
        "secretsmanager.ListSecrets",
        b"{}",
        unknown,
    ));
    assert_eq!(r.error_type(), "UnrecognizedClientException");
    assert_eq!(
        r.json()["Message"],
        "The security token included in the request is invalid."
    );
}

#[test]
fn only_post_is_served() {
    let s = TestServer::start();
    let r = s.raw(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    assert!((400..500).contains(&r.status), "{}", r.status);
}

#[test]
fn tls_serves_signed_requests() {
    let s = TestServer::start_tls();
    let req = signed_request("secretsmanager.ListSecrets", b"{}", Signing::default());
    let r = crate::common::send_tls(s.addr, &req);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("SecretList"));

    // plain HTTP to the TLS port is not served
    let plain = s.raw(&signed_request(
        "secretsmanager.ListSecrets",
        b"{}",
        Signing::default(),
    ));
    // (no HTTP answer at all: the TLS listener does not speak plain HTTP)
    assert_eq!(plain.status, 0, "{}", plain.body);
}
