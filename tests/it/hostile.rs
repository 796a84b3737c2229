//! Hostile input: each gets a 4xx (or a closed connection), and the server keeps serving.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::common::{signed_request, Signing, TestServer};

fn healthy(s: &TestServer) {
    let r = s.call("secretsmanager.ListSecrets", "{}");
    assert_eq!(r.status, 200, "server unhealthy: {}", r.body);
}

#[test]
fn ten_megabyte_body() {
    let s = TestServer::start();
    let body = vec![b'a'; 10 * 1024 * 1024];
    let req = signed_request("secretsmanager.ListSecrets", &body, Signing::default());
    let r = s.raw(&req);
    assert!(
        r.status == 413 || r.status == 400 || r.status == 0,
        "{}",
        r.status
    );
    healthy(&s);
}

#[test]
fn deep_nesting_and_huge_numbers() {
    let s = TestServer::start();
    let deep = format!(
        "{{\"Filters\":{}{}}}",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let r = s.call("secretsmanager.ListSecrets", &deep);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s.call(
        "secretsmanager.ListSecrets",
        &format!("{{\"MaxResults\": 1{}}}", "0".repeat(5000)),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s.call("secretsmanager.ListSecrets", "{\"MaxResults\": -1}");
    assert_eq!(r.status, 400, "{}", r.body);
    healthy(&s);
}

#[test]
fn very_long_names_and_arns() {
    let s = TestServer::start();
    let long = "a".repeat(100_000);
    let r = s.call(
        "secretsmanager.GetSecretValue",
        &format!("{{\"SecretId\":\"{long}\"}}"),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "ValidationException");
    let arn = format!(
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:{}",
        "b".repeat(3000)
    );
    let r = s.call(
        "secretsmanager.DescribeSecret",
        &format!("{{\"SecretId\":\"{arn}\"}}"),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "ValidationException", "{}", r.body);
    assert!(
        r.body
            .contains("Member must have length less than or equal to 2048"),
        "{}",
        r.body
    );
    let r = s.call(
        "secretsmanager.CreateSecret",
        &format!("{{\"Name\":\"{}\"}}", "n".repeat(513)),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "ValidationException", "{}", r.body);
    assert!(
        r.body
            .contains("Member must have length less than or equal to 512"),
        "{}",
        r.body
    );
    healthy(&s);
}

#[test]
fn thousands_of_headers() {
    let s = TestServer::start();
    let mut req = String::from("POST / HTTP/1.1\r\nhost: localhost\r\n");
    for i in 0..3000 {
        req.push_str(&format!("x-junk-{i}: {i}\r\n"));
    }
    req.push_str("content-length: 2\r\nconnection: close\r\n\r\n{}");
    let r = s.raw(req.as_bytes());
    assert!(
        r.status == 0 || (400..500).contains(&r.status),
        "{}",
        r.status
    );
    healthy(&s);
}

#[test]
fn wrong_types_for_every_field() {
    let s = TestServer::start();
    for (op, field) in [
        ("CreateSecret", "Name"),
        ("CreateSecret", "Tags"),
        ("CreateSecret", "SecretString"),
        ("CreateSecret", "SecretBinary"),
        ("PutSecretValue", "VersionStages"),
        ("DeleteSecret", "RecoveryWindowInDays"),
        ("DeleteSecret", "ForceDeleteWithoutRecovery"),
        ("ListSecrets", "MaxResults"),
        ("ListSecrets", "Filters"),
        ("GetRandomPassword", "PasswordLength"),
        ("GetRandomPassword", "ExcludeNumbers"),
    ] {
        for bad in ["{}", "[1]", "\"s\"", "true", "1.5"] {
            let string_field = ["Name", "SecretString"].contains(&field);
            let bool_field = ["ExcludeNumbers", "ForceDeleteWithoutRecovery"].contains(&field);
            if (string_field && bad == "\"s\"") || (bool_field && bad == "true") {
                continue; // the right type
            }
            let r = s.call(
                &format!("secretsmanager.{op}"),
                &format!("{{\"{field}\": {bad}}}"),
            );
            assert!(
                (400..500).contains(&r.status),
                "{op}.{field}={bad}: {} {}",
                r.status,
                r.body
            );
        }
    }
    healthy(&s);
}

#[test]
fn invalid_base64_binary() {
    let s = TestServer::start();
    let r = s.call(
        "secretsmanager.CreateSecret",
        r#"{"Name":"b","SecretBinary":"***","ClientRequestToken":"00000000-0000-4000-8000-000000000001"}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "SerializationException", "{}", r.body);
    let d = s.call("secretsmanager.DescribeSecret", r#"{"SecretId":"b"}"#);
    assert_eq!(d.error_type(), "ResourceNotFoundException", "{}", d.body);
    healthy(&s);
}

#[test]
fn slow_client_is_cut_off() {
    let s = TestServer::start();
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = c.write_all(b"POST / HTTP/1.1\r\nhost: local");
    // never finish the head: the server must answer 408 or close, and keep serving others
    healthy(&s);
    let mut buf = [0u8; 256];
    let started = std::time::Instant::now();
    let _ = std::io::Read::read(&mut c, &mut buf);
    assert!(started.elapsed() < Duration::from_secs(29));
    healthy(&s);
}
