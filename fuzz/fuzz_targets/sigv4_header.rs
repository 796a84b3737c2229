//! sigv4_header: SigV4 `Authorization` parsing and verification.
//!
//! Input (text, lossy UTF-8): `METHOD PATH[?QUERY]\nNOW_UNIX\nname: value\n...\n\nBODY`.
//!
//! A. On the request exactly as given (PBT):
//!    - `parse` never panics; when it succeeds the scope parts and every signed header name
//!      are non-empty and the signature is lowercase;
//!    - `verify` with a fixed secret never panics, and answers the same with a fresh signing-key
//!      cache and with a long-lived one (a cached key never changes a verdict);
//!    - no error message contains the secret key or the (long) signature the client sent.
//! B. Differential against an independent reference signer (DRT): the same data is shaped into
//!    a well-formed request (unreserved path/query characters, printable header values), signed
//!    by the reference implementation of the AWS algorithm below, and then `parse` + `verify`
//!    must accept it when the clock skew is within 15 minutes and reject it otherwise; any change
//!    to the signature, the body, a signed header or the secret must be rejected.
#![no_main]

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use strongroom::auth::sigv4::{parse, verify, SigningKeyCache};
use strongroom::auth::{AuthError, RequestHead, SecretAccessKey};
use time::macros::format_description;

const SECRET: &str = "fuzz/secret/KEY/0123456789abcdefghijklmnop";
const AKID: &str = "AKIAFUZZ000000000001";
/// 2026-01-01T00:00:00Z; used when the input has no usable clock line.
const T0: i64 = 1_767_225_600;

fn shared_cache() -> &'static SigningKeyCache {
    static CACHE: OnceLock<SigningKeyCache> = OnceLock::new();
    CACHE.get_or_init(SigningKeyCache::new)
}

fn secret() -> SecretAccessKey {
    SecretAccessKey::new(SECRET.to_owned())
}

fn message(e: &AuthError) -> String {
    e.to_string()
}

struct Input {
    method: String,
    path: String,
    query: String,
    now: i64,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn split_input(data: &[u8]) -> Input {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], data[i + 2..].to_vec()),
        None => (data, Vec::new()),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split('\n');
    let request_line = lines.next().unwrap_or("");
    let (method, target) = request_line.split_once(' ').unwrap_or((request_line, "/"));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let now = lines
        .next()
        .and_then(|l| l.trim().parse::<i64>().ok())
        .unwrap_or(T0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim_start().to_owned()))
        .collect();
    Input {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        now,
        headers,
        body,
    }
}

/// A. The request as given.
fn check_as_given(inp: &Input) {
    let head = RequestHead {
        method: inp.method.clone(),
        path: inp.path.clone(),
        query: inp.query.clone(),
        headers: inp.headers.clone(),
    };
    // The signature the client sent (if any), to make sure no message echoes it.
    let sent_signature = head
        .header("authorization")
        .and_then(|a| a.split("Signature=").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").trim().to_owned())
        .filter(|s| s.len() >= 40)
        .filter(|s| {
            // Echoing it is fine when the client also put it somewhere that is echoed.
            let elsewhere = inp.path.contains(s.as_str())
                || inp.query.contains(s.as_str())
                || inp
                    .headers
                    .iter()
                    .any(|(n, v)| n != "authorization" && v.contains(s.as_str()));
            !elsewhere
        });
    let no_leak = |e: &AuthError| {
        let m = message(e);
        assert!(!m.contains(SECRET), "message leaks the secret: {m}");
        if let Some(sig) = &sent_signature {
            assert!(
                !m.contains(sig.as_str()),
                "message echoes the signature: {m}"
            );
        }
    };
    match parse(&head) {
        Err(e) => no_leak(&e),
        Ok(p) => {
            assert!(!p.access_key_id.is_empty() && !p.region.is_empty() && !p.service.is_empty());
            assert!(p.signed_headers.iter().all(|h| !h.is_empty()));
            assert_eq!(p.signature, p.signature.to_ascii_lowercase());
            let fresh = verify(
                &head,
                &inp.body,
                &p,
                &secret(),
                inp.now,
                &SigningKeyCache::new(),
            );
            let cached = verify(&head, &inp.body, &p, &secret(), inp.now, shared_cache());
            assert_eq!(fresh, cached, "verdict depends on the signing-key cache");
            if let Err(e) = &fresh {
                no_leak(e);
            }
        }
    }
}

// ---------------------------------------------------------------- reference signer

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn iso_basic(t: i64) -> String {
    let f = format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::from_unix_timestamp(t)
        .expect("clamped")
        .format(f)
        .expect("formats")
}

fn keep(s: &str, ok: impl Fn(char) -> bool, max: usize) -> String {
    s.chars().filter(|&c| ok(c)).take(max).collect()
}

fn unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '~')
}

struct Shaped {
    head: RequestHead,
    body: Vec<u8>,
    now: i64,
    skew: i64,
    region: String,
    service: String,
}

/// Shape the input into a well-formed request whose canonical form is unambiguous.
fn shape(inp: &Input) -> Shaped {
    let method = keep(&inp.method, |c| c.is_ascii_uppercase(), 10);
    let method = if method.is_empty() {
        "POST".to_owned()
    } else {
        method
    };
    let segments: Vec<String> = inp
        .path
        .split('/')
        .map(|s| keep(s, unreserved, 40))
        .filter(|s| !s.is_empty())
        .take(8)
        .collect();
    let path = format!("/{}", segments.join("/"));
    let query: Vec<String> = inp
        .query
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            format!("{}={}", keep(k, unreserved, 20), keep(v, unreserved, 20))
        })
        .filter(|p| p != "=")
        .take(8)
        .collect();
    // The clock: keep 4-digit years; the request is off by at most ±1000 s.
    let now = inp.now.rem_euclid(253_402_300_799 - 2000) + 1000;
    let skew = inp.now.rem_euclid(2001) - 1000;
    let amz_date = iso_basic(now + skew);
    let mut headers: Vec<(String, String)> = vec![
        (
            "host".into(),
            "secretsmanager.us-east-1.amazonaws.com".into(),
        ),
        ("x-amz-date".into(), amz_date.clone()),
    ];
    for (n, v) in inp.headers.iter().take(16) {
        let n = keep(
            n,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
            32,
        );
        if n.is_empty()
            || matches!(
                n.as_str(),
                "authorization" | "host" | "x-amz-date" | "date" | "x-amz-content-sha256"
            )
        {
            continue;
        }
        // Printable ASCII, single inner spaces, trimmed: the canonical value is the value.
        let v = keep(v, |c| c.is_ascii_graphic() || c == ' ', 80);
        let v = v
            .split(' ')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        headers.push((n, v));
    }
    let regions = ["us-east-1", "eu-west-3", "ap-southeast-2"];
    let services = ["secretsmanager", "kms", "cloudtrail"];
    let pick = inp.body.len() + inp.headers.len();
    Shaped {
        head: RequestHead {
            method,
            path,
            query: query.join("&"),
            headers,
        },
        body: inp.body.clone(),
        now,
        skew,
        region: regions[pick % 3].to_owned(),
        service: services[(pick / 3) % 3].to_owned(),
    }
}

/// The AWS SigV4 algorithm (header form) for a shaped request; adds `Authorization`.
fn sign(s: &mut Shaped, secret: &str) {
    let amz_date = s.head.header("x-amz-date").expect("set").to_owned();
    let date = &amz_date[..8];
    let mut names: Vec<String> = s.head.headers.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    names.dedup();
    // Sorted by parameter name, then value (not as whole `k=v` strings).
    let mut query: Vec<(&str, &str)> = s
        .head
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    query.sort();
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut creq = format!("{}\n{}\n{}\n", s.head.method, s.head.path, query.join("&"));
    for n in &names {
        let vals: Vec<&str> = s
            .head
            .headers
            .iter()
            .filter(|(m, _)| m == n)
            .map(|(_, v)| v.as_str())
            .collect();
        creq.push_str(&format!("{n}:{}\n", vals.join(",")));
    }
    let signed = names.join(";");
    creq.push_str(&format!("\n{signed}\n{}", sha256_hex(&s.body)));
    let scope = format!("{date}/{}/{}/aws4_request", s.region, s.service);
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(creq.as_bytes())
    );
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, s.region.as_bytes());
    let k = hmac(&k, s.service.as_bytes());
    let k = hmac(&k, b"aws4_request");
    let sig = hex::encode(hmac(&k, sts.as_bytes()));
    s.head.headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/{scope}, SignedHeaders={signed}, Signature={sig}"
        ),
    ));
}

fn check(
    head: &RequestHead,
    body: &[u8],
    now: i64,
    cache: &SigningKeyCache,
) -> Result<(), AuthError> {
    let p = parse(head)?;
    verify(head, body, &p, &secret(), now, cache)
}

fn set_header(head: &mut RequestHead, name: &str, value: String) {
    for (n, v) in head.headers.iter_mut() {
        if n == name {
            *v = value;
            return;
        }
    }
}

/// B. A correctly signed request is accepted; any change is rejected.
fn check_reference(inp: &Input) {
    let mut s = shape(inp);
    sign(&mut s, SECRET);
    let p = parse(&s.head).unwrap_or_else(|e| panic!("well-formed header rejected: {e}"));
    assert_eq!(p.access_key_id, AKID);
    assert_eq!(
        (p.region.as_str(), p.service.as_str()),
        (s.region.as_str(), s.service.as_str())
    );
    let cache = SigningKeyCache::new();
    let verdict = check(&s.head, &s.body, s.now, &cache);
    // X-Amz-Target sent twice names two operations: refused however it is signed (the
    // server decides one operation, and the signature must cover exactly that one).
    let targets = s.head.headers.iter().filter(|(n, _)| n == "x-amz-target").count();
    if targets > 1 {
        assert!(
            matches!(verdict, Err(AuthError::InvalidSignature(_))),
            "a request with {targets} X-Amz-Target headers accepted: {verdict:?}"
        );
        return;
    }
    if s.skew.abs() <= 900 {
        if let Err(e) = verdict {
            panic!("reference-signed request rejected: {e}\n{:?}", s.head);
        }
    } else {
        assert!(
            matches!(verdict, Err(AuthError::InvalidSignature(_))),
            "request {} s off accepted: {verdict:?}",
            s.skew
        );
        return;
    }
    // Changed signature (one hex digit).
    let mut h = s.head.clone();
    let auth = h.header("authorization").expect("set").to_owned();
    let flip = (inp.body.first().copied().unwrap_or(0) as usize) % 64;
    let at = auth.len() - 64 + flip;
    let old = auth.as_bytes()[at];
    let new = if old == b'0' { '1' } else { '0' };
    let changed = format!("{}{new}{}", &auth[..at], &auth[at + 1..]);
    set_header(&mut h, "authorization", changed);
    assert!(
        check(&h, &s.body, s.now, &cache).is_err(),
        "changed signature accepted"
    );
    // Changed body.
    let mut body = s.body.clone();
    body.push(b' ');
    assert!(
        check(&s.head, &body, s.now, &cache).is_err(),
        "changed body accepted"
    );
    // Changed signed header (host).
    let mut h = s.head.clone();
    set_header(&mut h, "host", "evil.example.com".into());
    assert!(
        check(&h, &s.body, s.now, &cache).is_err(),
        "changed host accepted"
    );
    // Changed method.
    let mut h = s.head.clone();
    h.method.push('X');
    assert!(
        check(&h, &s.body, s.now, &cache).is_err(),
        "changed method accepted"
    );
    // Wrong secret.
    let p = parse(&s.head).expect("parsed above");
    let wrong = SecretAccessKey::new(format!("{SECRET}x"));
    assert!(
        verify(&s.head, &s.body, &p, &wrong, s.now, &cache).is_err(),
        "wrong secret accepted"
    );
}

fuzz_target!(|data: &[u8]| {
    let inp = split_input(data);
    check_as_given(&inp);
    check_reference(&inp);
});
