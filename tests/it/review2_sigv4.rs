//! SigV4 requests as an attacker on the path (or a signer trying its luck) shapes them: the
//! region, service, key id, payload hash, date and operation header of a signed request
//! cannot be moved after signing. Each refusal sits next to a positive control that must
//! still succeed. Requests are signed by the reference signer (`aws-sigv4`).

use std::time::{Duration, SystemTime};

use aws_sdk_secretsmanager::config::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_smithy_runtime_api::client::identity::Identity;

use crate::common::{
    example_policies, signed_query, signed_request, urlenc, RawResponse, Signing, TestServer, AKID,
    SECRET,
};

/// A raw request (`method` on `path_and_query`) with `headers` and `body`, signed as the
/// default root key for `us-east-1`/`service` at `time` by the reference signer with
/// `settings`, the payload given to it as `payload`. Headers the signer adds (`x-amz-date`, `authorization`, ...) follow ours.
#[expect(
    clippy::too_many_arguments,
    reason = "every part of a signed request is a choice of the attack"
)]
fn signed_raw(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    payload: SignableBody<'_>,
    service: &str,
    time: SystemTime,
    settings: SigningSettings,
) -> Vec<u8> {
    let identity: Identity = Credentials::new(AKID, SECRET, None, None, "t").into();
    let params: aws_sigv4::http_request::SigningParams<'_> =
        aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(service)
            .time(time)
            .settings(settings)
            .build()
            .unwrap()
            .into();
    let req = SignableRequest::new(
        method,
        format!("http://localhost{path_and_query}"),
        headers.iter().copied(),
        payload,
    )
    .unwrap();
    let (instructions, _) = sign(req, &params).unwrap().into_parts();
    let (added, query) = instructions.into_parts();
    let mut target = path_and_query.to_owned();
    if !query.is_empty() {
        let qs: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", urlenc(v)))
            .collect();
        target.push(if target.contains('?') { '&' } else { '?' });
        target.push_str(&qs.join("&"));
    }
    let mut out = format!("{method} {target} HTTP/1.1\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    for h in added {
        out.push_str(&format!("{}: {}\r\n", h.name(), h.value()));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// `request` with `headers` added after its request line, unsigned.
fn with_unsigned(request: &[u8], headers: &[(&str, &str)]) -> Vec<u8> {
    let text = String::from_utf8(request.to_vec()).unwrap();
    let (line, rest) = text.split_once("\r\n").unwrap();
    let added: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    format!("{line}\r\n{added}{rest}").into_bytes()
}

/// `request` without its header lines named `name`.
fn without_header(request: &[u8], name: &str) -> Vec<u8> {
    let text = String::from_utf8(request.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let kept: Vec<&str> = head
        .split("\r\n")
        .filter(|l| {
            !l.split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        })
        .collect();
    format!("{}\r\n\r\n{body}", kept.join("\r\n")).into_bytes()
}

/// The value of header `name` in `request`.
fn header_of(request: &[u8], name: &str) -> String {
    let text = String::from_utf8(request.to_vec()).unwrap();
    let (head, _) = text.split_once("\r\n\r\n").unwrap();
    head.split("\r\n")
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap()
}

fn create(s: &TestServer, name: &str, region: &str) {
    let body = serde_json::json!({
        "Name": name,
        "SecretString": format!("value of {name}"),
        "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
    });
    let r = s.raw(&signed_request(
        "secretsmanager.CreateSecret",
        body.to_string().as_bytes(),
        Signing {
            region: region.into(),
            ..Signing::default()
        },
    ));
    assert_eq!(r.status, 200, "{}", r.body);
}

fn get_in(region: &str, id: &str) -> Vec<u8> {
    signed_request(
        "secretsmanager.GetSecretValue",
        format!(r#"{{"SecretId":"{id}"}}"#).as_bytes(),
        Signing {
            region: region.into(),
            ..Signing::default()
        },
    )
}

/// A signed request acts in the region of its credential scope: neither the bearer path's
/// `X-Strongroom-Region` (or role) header added unsigned, nor a Host naming another region,
/// moves it to another region's secrets.
#[test]
fn a_signed_request_acts_in_its_scope_region_whatever_its_headers_say() {
    let s = TestServer::start_with(None, &["us-east-1", "eu-west-1"]);
    create(&s, "home/db", "us-east-1");
    // Positive controls: the secret is read in its region, and is not there in the other.
    let r = s.raw(&get_in("us-east-1", "home/db"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["ARN"].as_str().unwrap().contains(":us-east-1:"));
    let r = s.raw(&get_in("eu-west-1", "home/db"));
    assert_eq!(r.error_type(), "ResourceNotFoundException", "{}", r.body);

    let steer = [
        ("x-strongroom-region", "us-east-1"),
        (
            "x-strongroom-role",
            "arn:aws:iam::111122223333:role/anything",
        ),
    ];
    let r = s.raw(&with_unsigned(&get_in("eu-west-1", "home/db"), &steer));
    assert_eq!(r.error_type(), "ResourceNotFoundException", "{}", r.body);
    assert!(!r.body.contains("value of"), "{}", r.body);
    let r = s.raw(&with_unsigned(
        &get_in("us-east-1", "home/db"),
        &[("x-strongroom-region", "eu-west-1")],
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["ARN"].as_str().unwrap().contains(":us-east-1:"));

    // The Host is signed: a request moved to another region's endpoint name does not verify.
    let moved = String::from_utf8(get_in("eu-west-1", "home/db"))
        .unwrap()
        .replacen(
            "host: localhost",
            "host: secretsmanager.us-east-1.amazonaws.com",
            1,
        );
    let r = s.raw(moved.as_bytes());
    assert_eq!(r.error_type(), "InvalidSignatureException", "{}", r.body);
}

/// A Query-protocol action runs only under a signature scoped to its own service: an `sts`
/// scope does not reach IAM's actions, an `iam` scope not STS's, and no other service's
/// scope (nor another spelling) reaches either.
#[test]
fn query_actions_need_a_signature_scoped_to_their_own_service() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    let call = |service: &str, form: &str| {
        s.raw(&signed_query(
            form,
            Signing {
                service: service.into(),
                ..Signing::default()
            },
        ))
    };
    let who = "Action=GetCallerIdentity&Version=2011-06-15";
    let details = "Action=GetAccountAuthorizationDetails&Version=2010-05-08";
    // Positive controls.
    let r = call("sts", who);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call("iam", details);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("UserDetailList"), "{}", r.body);

    for (service, form) in [
        ("sts", details),
        ("iam", who),
        ("secretsmanager", who),
        ("secretsmanager", details),
        ("kms", who),
        ("STS", who),
        ("IAM", details),
        ("sts ", who),
    ] {
        let r = call(service, form);
        // IAM answers an action it does not serve (such as STS's) as not implemented (501).
        assert!(
            (400..500).contains(&r.status) || r.status == 501,
            "{service} {form}: {} {}",
            r.status,
            r.body
        );
        assert!(
            !r.body.contains("UserDetailList") && !r.body.contains("<Arn>"),
            "{service} {form}: {}",
            r.body
        );
    }
}

/// An access key id is matched exactly: another spelling of a valid id, signed with its
/// secret, is an unknown key (AWS key ids are upper-case and compared as sent).
#[test]
fn access_key_ids_are_matched_exactly() {
    let s = TestServer::start();
    let list = |akid: &str| {
        s.raw(&signed_request(
            "secretsmanager.ListSecrets",
            b"{}",
            Signing {
                akid: akid.into(),
                ..Signing::default()
            },
        ))
    };
    let r = list(AKID);
    assert_eq!(r.status, 200, "{}", r.body);
    let mut first_lower = AKID.to_owned();
    first_lower.replace_range(..1, "a");
    let fullwidth = AKID.replacen('A', "\u{FF21}", 1);
    for akid in [
        AKID.to_ascii_lowercase(),
        first_lower,
        format!("{AKID}X"),
        AKID[..AKID.len() - 1].to_owned(),
        format!("ASIA{}", &AKID[4..]),
        fullwidth,
    ] {
        let r = list(&akid);
        assert_eq!(r.status, 400, "{akid}: {}", r.body);
        assert_eq!(
            r.error_type(),
            "UnrecognizedClientException",
            "{akid}: {}",
            r.body
        );
    }
}

/// The body is always part of the signature: a request signed with `UNSIGNED-PAYLOAD`, a
/// streaming payload or a precomputed hash of another body does not verify, so its body
/// cannot be swapped on the way. A precomputed hash of the body sent is fine.
#[test]
fn a_payload_hash_other_than_the_body_s_is_refused() {
    let s = TestServer::start();
    create(&s, "pay/db", "us-east-1");
    create(&s, "pay/other", "us-east-1");
    let body = br#"{"SecretId":"pay/db"}"#;
    let swapped = br#"{"SecretId":"pay/other"}"#;
    let headers = [
        ("host", "localhost"),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "secretsmanager.GetSecretValue"),
    ];
    let with_sha_header = || {
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings
    };
    let send = |sent: &[u8], payload: SignableBody<'_>| {
        s.raw(&signed_raw(
            "POST",
            "/",
            &headers,
            sent,
            payload,
            "secretsmanager",
            SystemTime::now(),
            with_sha_header(),
        ))
    };
    let hash_of = |b: &[u8]| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b))
    };
    // Positive controls: the body signed, declared or not in x-amz-content-sha256.
    let r = send(body, SignableBody::Bytes(body));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["SecretString"], "value of pay/db");
    let r = send(body, SignableBody::Precomputed(hash_of(body)));
    assert_eq!(r.status, 200, "{}", r.body);

    for (what, sent, payload) in [
        ("unsigned payload", &body[..], SignableBody::UnsignedPayload),
        (
            "unsigned payload, body swapped",
            &swapped[..],
            SignableBody::UnsignedPayload,
        ),
        (
            "streaming unsigned payload",
            &body[..],
            SignableBody::StreamingUnsignedPayloadTrailer,
        ),
        (
            "streaming signed payload",
            &body[..],
            SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into()),
        ),
        (
            "another body's hash",
            &swapped[..],
            SignableBody::Precomputed(hash_of(body)),
        ),
        (
            "the hash in upper case of another body",
            &swapped[..],
            SignableBody::Precomputed(hash_of(body).to_ascii_uppercase()),
        ),
    ] {
        let r = send(sent, payload);
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert_eq!(
            r.error_type(),
            "InvalidSignatureException",
            "{what}: {}",
            r.body
        );
        assert!(!r.body.contains("value of"), "{what}: {}", r.body);
    }
}

/// A request captured more than 15 minutes ago cannot be made current again: its time is in
/// the string to sign, whether it came from `X-Amz-Date` or `Date`, and `X-Amz-Date` wins
/// over a fresh `Date`.
#[test]
fn a_captured_request_cannot_be_given_a_new_date() {
    let s = TestServer::start();
    let at = |t: SystemTime| {
        signed_request(
            "secretsmanager.ListSecrets",
            b"{}",
            Signing {
                time: t,
                ..Signing::default()
            },
        )
    };
    let now = SystemTime::now();
    // Positive control.
    let r = s.raw(&at(now));
    assert_eq!(r.status, 200, "{}", r.body);

    let old = at(now - Duration::from_secs(20 * 60));
    let fresh_iso = header_of(&at(now), "x-amz-date");
    let fresh_http = httpdate(now);
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("as captured", old.clone()),
        (
            "X-Amz-Date replaced",
            with_unsigned(
                &without_header(&old, "x-amz-date"),
                &[("x-amz-date", &fresh_iso)],
            ),
        ),
        (
            "X-Amz-Date replaced by a Date",
            with_unsigned(
                &without_header(&old, "x-amz-date"),
                &[("date", &fresh_http)],
            ),
        ),
        (
            "a fresh Date added",
            with_unsigned(&old, &[("date", &fresh_http)]),
        ),
        (
            "a fresh X-Amz-Date line before the signed one",
            with_unsigned(&old, &[("x-amz-date", &fresh_iso)]),
        ),
    ];
    for (what, request) in variants {
        let r = s.raw(&request);
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert!(
            ["InvalidSignatureException", "IncompleteSignatureException"]
                .contains(&r.error_type().as_str()),
            "{what}: {}",
            r.body
        );
    }
}

/// An RFC 9110 HTTP date.
fn httpdate(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let dt = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap()).unwrap();
    dt.format(time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    ))
    .unwrap()
}

/// The operation header is read once: a request carrying two, even with both signed, is
/// refused rather than run as either.
#[test]
fn two_operation_headers_are_refused_even_when_signed() {
    let s = TestServer::start();
    create(&s, "two/db", "us-east-1");
    let body = br#"{"SecretId":"two/db","ForceDeleteWithoutRecovery":true}"#;
    let headers = |targets: &[&'static str]| {
        let mut h = vec![
            ("host", "localhost"),
            ("content-type", "application/x-amz-json-1.1"),
        ];
        h.extend(targets.iter().map(|t| ("x-amz-target", *t)));
        h
    };
    let send = |targets: &[&'static str]| {
        s.raw(&signed_raw(
            "POST",
            "/",
            &headers(targets),
            body,
            SignableBody::Bytes(body),
            "secretsmanager",
            SystemTime::now(),
            SigningSettings::default(),
        ))
    };
    for targets in [
        &[
            "secretsmanager.DescribeSecret",
            "secretsmanager.DeleteSecret",
        ][..],
        &[
            "secretsmanager.DeleteSecret",
            "secretsmanager.DescribeSecret",
        ][..],
    ] {
        let r = send(targets);
        assert_eq!(
            r.error_type(),
            "InvalidSignatureException",
            "{targets:?}: {}",
            r.body
        );
    }
    // Still there; positive control: one signed target runs.
    let r = send(&["secretsmanager.DescribeSecret"]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["Name"], "two/db");
}

/// Query-string (presigned) SigV4 is no credential on the Query protocol either: an STS call
/// presigned into its URL, by POST with its form or by GET with its parameters in the URL,
/// is unauthenticated.
#[test]
fn presigned_query_protocol_calls_are_not_credentials() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    let form = "Action=GetCallerIdentity&Version=2011-06-15";
    // Positive control: the same call signed in the header.
    let r = s.raw(&signed_query(
        form,
        Signing {
            service: "sts".into(),
            ..Signing::default()
        },
    ));
    assert_eq!(r.status, 200, "{}", r.body);

    let presigned = || {
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(300));
        settings
    };
    let post = signed_raw(
        "POST",
        "/",
        &[
            ("host", "localhost"),
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ],
        form.as_bytes(),
        SignableBody::Bytes(form.as_bytes()),
        "sts",
        SystemTime::now(),
        presigned(),
    );
    let get = signed_raw(
        "GET",
        &format!("/?{form}"),
        &[("host", "localhost")],
        b"",
        SignableBody::Bytes(b""),
        "sts",
        SystemTime::now(),
        presigned(),
    );
    for (what, request) in [("POST", post), ("GET", get)] {
        let r: RawResponse = s.raw(&request);
        assert!(
            (400..500).contains(&r.status),
            "{what}: {} {}",
            r.status,
            r.body
        );
        assert!(!r.body.contains("<Arn>"), "{what}: {}", r.body);
    }
}

/// An access key deleted stays deleted: deleting the last access key of a store that has
/// served requests (a deployment whose callers all use web identity, with no root access
/// key, as AWS advises) is not undone by the next start, which installs the root key only
/// in a new, empty store: neither the pair in the environment comes back nor is a new root
/// pair minted.
#[test]
fn a_deleted_last_root_key_is_not_installed_again_at_the_next_start() {
    let mut s = TestServer::start();
    create(&s, "kept/db", "us-east-1");
    let list = |s: &TestServer| {
        s.raw(&signed_request(
            "secretsmanager.ListSecrets",
            b"{}",
            Signing::default(),
        ))
    };
    // Positive control: the root key the server installed in its new store works.
    assert_eq!(list(&s).status, 200);
    let cfg = s.store_config();
    strongroom::cli::change_access_key(&cfg, AKID, strongroom::cli::KeyChange::Delete).unwrap();
    std::thread::sleep(Duration::from_millis(5200)); // past the key cache
    assert_eq!(list(&s).error_type(), "UnrecognizedClientException");

    let url = s.database_url.clone();
    let data = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    s.stop();
    let generated = data.path().join("data/root-credentials.json");
    assert!(!generated.exists());
    let cfg = crate::common::config_in(data.path(), Some(url));
    let s = TestServer::launch_config(cfg, data);
    let r = list(&s);
    assert_eq!(r.error_type(), "UnrecognizedClientException", "{}", r.body);
    assert!(!generated.exists(), "a new root key pair was minted");
    let keys = strongroom::cli::list_access_keys(&s.store_config(), None, None).unwrap();
    assert_eq!(keys, "", "{keys}");
}
