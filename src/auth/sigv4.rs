//! AWS Signature Version 4 verification, header form
//! (`Authorization: AWS4-HMAC-SHA256 Credential=.., SignedHeaders=.., Signature=..`).
//!
//! [`parse`] reads the header; [`verify`] rebuilds the canonical request and the string to sign
//! as AWS does for non-S3 services and compares the signatures in constant time. Error messages
//! copy AWS's wording and never contain the secret, the signature or the full credential.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::macros::format_description;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::auth::{AuthError, RequestHead, SecretAccessKey};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const TERMINATOR: &str = "aws4_request";
const MAX_SKEW_SECS: i64 = 15 * 60;
const CACHE_LIMIT: usize = 10_000;
const MISMATCH: &str = "The request signature we calculated does not match the signature you \
provided. Check your AWS Secret Access Key and signing method. Consult the service documentation \
for details.";
const NO_DATE: &str =
    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ";
const HOST_NOT_SIGNED: &str =
    "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.";
const TARGET_NOT_SIGNED: &str =
    "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization, and sent once.";
const CONTENT_SHA_MISMATCH: &str =
    "The provided 'x-amz-content-sha256' header does not match what was computed.";

/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// As [`QUERY_SET`], but keeps the path separators.
const PATH_SET: &AsciiSet = &QUERY_SET.remove(b'/');

/// The parts of a SigV4 `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    pub access_key_id: String,
    /// `YYYYMMDD`, from the credential scope.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lowercased, in the order given.
    pub signed_headers: Vec<String>,
    /// Lowercase hex.
    pub signature: String,
}

impl fmt::Debug for ParsedAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedAuthorization")
            .field("access_key_id", &self.access_key_id)
            .field("date", &self.date)
            .field("region", &self.region)
            .field("service", &self.service)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &"<redacted>")
            .finish()
    }
}

fn incomplete(msg: impl Into<String>) -> AuthError {
    AuthError::Incomplete(msg.into())
}

fn mismatch() -> AuthError {
    AuthError::InvalidSignature(MISMATCH.to_owned())
}

/// A client-supplied value made safe to echo: printable ASCII only, at most 64 characters.
fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect();
    if s.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

/// Parse the Authorization header (and X-Amz-Date) of the head. `Err(AuthError::Missing)` when
/// there is no (or an empty) Authorization header; `Incomplete(msg)` with AWS's wording when
/// malformed.
pub fn parse(head: &RequestHead) -> Result<ParsedAuthorization, AuthError> {
    let value = head.header("authorization").map(str::trim).unwrap_or("");
    if value.is_empty() {
        return Err(AuthError::Missing);
    }
    let (algorithm, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        let shown = sanitize(algorithm.get(..32).unwrap_or(algorithm));
        return Err(incomplete(format!(
            "Unsupported AWS 'algorithm': '{shown}'"
        )));
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, val)) = part.split_once('=') else {
            return Err(incomplete(
                "A component of the Authorization header is not a valid key=value pair \
                 (missing equal-sign). Authorization=AWS4-HMAC-SHA256",
            ));
        };
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => continue,
        };
        slot.get_or_insert(val.trim());
    }
    let (credential, signed, signature) = (
        credential.filter(|v| !v.is_empty()),
        signed.filter(|v| !v.is_empty()),
        signature.filter(|v| !v.is_empty()),
    );
    let mut missing = String::new();
    for (value, name) in [
        (credential, "Credential"),
        (signature, "Signature"),
        (signed, "SignedHeaders"),
    ] {
        if value.is_none() {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    if head.header("x-amz-date").is_none() && head.header("date").is_none() {
        missing.push_str(NO_DATE);
    }
    let (Some(credential), Some(signed), Some(signature), true) =
        (credential, signed, signature, missing.is_empty())
    else {
        return Err(incomplete(format!("{missing}Authorization={ALGORITHM}")));
    };
    let parts: Vec<&str> = credential.split('/').collect();
    let (access_key_id, date, region, service) = match parts.as_slice() {
        [akid, date, region, service, term]
            if *term == TERMINATOR
                && !akid.is_empty()
                && !region.is_empty()
                && !service.is_empty() =>
        {
            (*akid, *date, *region, *service)
        }
        _ => return Err(credential_error(&parts)),
    };
    let signed_headers: Vec<String> = signed
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if signed_headers.iter().any(String::is_empty) {
        return Err(incomplete(format!(
            "Authorization header requires 'SignedHeaders' parameter. Authorization={ALGORITHM}"
        )));
    }
    let (amz_date, _) = request_time(head)?;
    check_scope_date(date, &amz_date)?;
    Ok(ParsedAuthorization {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

fn credential_error(parts: &[&str]) -> AuthError {
    let mut msg = String::new();
    let empty = |i: usize| parts.get(i).is_some_and(|p| p.is_empty());
    if parts.len() != 5 || empty(0) || empty(2) || empty(3) {
        msg.push_str("Credential should be scoped to a valid region. ");
    }
    // With a single part the only part is the access key id: do not echo it.
    let last = match parts {
        [_, .., last] => *last,
        _ => "",
    };
    if last != TERMINATOR {
        msg.push_str(&format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{}'.",
            sanitize(last)
        ));
    }
    incomplete(msg.trim_end().to_owned())
}

/// Verify the signature of a request whose Authorization header was parsed into `auth`.
pub fn verify(
    head: &RequestHead,
    body: &[u8],
    auth: &ParsedAuthorization,
    secret: &SecretAccessKey,
    now_unix: i64,
    cache: &SigningKeyCache,
) -> Result<(), AuthError> {
    let (amz_date, request_unix) = request_time(head)?;
    check_scope_date(&auth.date, &amz_date)?;
    if auth.access_key_id.is_empty() || auth.region.is_empty() || auth.service.is_empty() {
        return Err(incomplete(
            "Credential should be scoped to a valid region, service and access key id.",
        ));
    }
    check_skew(&amz_date, request_unix, now_unix)?;
    if !auth
        .signed_headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("host"))
    {
        return Err(AuthError::InvalidSignature(HOST_NOT_SIGNED.to_owned()));
    }
    // The header naming the operation: a signature that does not cover it (or covers two
    // values of which the server reads one) would run another operation than the one signed.
    let targets = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-amz-target"))
        .count();
    let target_signed = auth
        .signed_headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("x-amz-target"));
    if targets > 1 || (targets == 1 && !target_signed) {
        return Err(AuthError::InvalidSignature(TARGET_NOT_SIGNED.to_owned()));
    }
    let mut body_hash = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(body), &mut body_hash).map_err(|_| mismatch())?;
    // Lowercase hex digits: ASCII.
    let body_hash = std::str::from_utf8(&body_hash).map_err(|_| mismatch())?;
    if let Some(declared) = head.header("x-amz-content-sha256").map(str::trim) {
        let is_digest = declared.len() == 64 && declared.bytes().all(|b| b.is_ascii_hexdigit());
        if is_digest && !declared.eq_ignore_ascii_case(body_hash) {
            return Err(AuthError::InvalidSignature(CONTENT_SHA_MISMATCH.to_owned()));
        }
    }
    let cache_key = CacheKey::new(auth, secret);
    let key = match cache.get(&cache_key) {
        Some(key) => key,
        None => derive_signing_key(secret, auth).ok_or_else(mismatch)?,
    };
    // The provided signature, lowercased; any other length than a digest's never matches.
    let mut provided = [0u8; 64];
    let provided_ok = auth.signature.len() == provided.len();
    if provided_ok {
        provided.copy_from_slice(auth.signature.as_bytes());
        provided.make_ascii_lowercase();
    }
    let matches = |creq: &str| -> Result<bool, AuthError> {
        let computed = signature(&key, &amz_date, auth, creq).ok_or_else(mismatch)?;
        Ok(provided_ok && bool::from(computed.ct_eq(&provided)))
    };
    // aws-sigv4 collapses only spaces in header values, botocore all whitespace: accept either
    // (the second differs from the first only when a signed value holds a tab, CR, LF or FF).
    let spaces = canonical_request(head, auth, body_hash, false).ok_or_else(mismatch)?;
    if !matches(&spaces)? {
        let all_ws = canonical_request(head, auth, body_hash, true).ok_or_else(mismatch)?;
        if all_ws == spaces || !matches(&all_ws)? {
            return Err(mismatch());
        }
    }
    cache.insert(cache_key, key);
    Ok(())
}

/// The signature (lowercase hex) of canonical request `creq` under the derived `key`: the
/// HMAC of the string to sign (`ALGORITHM \n date \n scope \n hex(SHA-256(creq))`), fed to
/// the MAC piece by piece.
fn signature(
    key: &SigningKey,
    amz_date: &str,
    auth: &ParsedAuthorization,
    creq: &str,
) -> Option<[u8; 64]> {
    let mut creq_hash = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(creq.as_bytes()), &mut creq_hash).ok()?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0).ok()?;
    for part in [
        ALGORITHM.as_bytes(),
        b"\n",
        amz_date.as_bytes(),
        b"\n",
        auth.date.as_bytes(),
        b"/",
        auth.region.as_bytes(),
        b"/",
        auth.service.as_bytes(),
        b"/",
        TERMINATOR.as_bytes(),
        b"\n",
        &creq_hash,
    ] {
        mac.update(part);
    }
    let mut out = [0u8; 64];
    hex::encode_to_slice(mac.finalize().into_bytes(), &mut out).ok()?;
    Some(out)
}

/// Sign `head` (method, path, query and headers already set, `host` among them) for `body`
/// with SigV4: adds `x-amz-date` and `authorization`, signing every header present. For the
/// server's own in-process callers (the built-in rotators), which call the pipeline as a
/// role's session.
pub fn sign(
    head: &mut RequestHead,
    body: &[u8],
    access_key_id: &str,
    secret: &SecretAccessKey,
    region: &str,
    service: &str,
    now_unix: i64,
) -> Option<()> {
    let amz_date = format_iso_basic(now_unix);
    let date = amz_date.get(..8)?.to_owned();
    head.headers
        .retain(|(n, _)| n != "authorization" && n != "x-amz-date");
    head.headers.push(("x-amz-date".into(), amz_date.clone()));
    let mut signed: Vec<String> = head
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    signed.sort();
    signed.dedup();
    let mut auth = ParsedAuthorization {
        access_key_id: access_key_id.to_owned(),
        date,
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed,
        signature: String::new(),
    };
    let body_hash = hex::encode(Sha256::digest(body));
    let creq = canonical_request(head, &auth, &body_hash, false)?;
    let scope = format!(
        "{}/{}/{}/{TERMINATOR}",
        auth.date, auth.region, auth.service
    );
    let creq_hash = hex::encode(Sha256::digest(creq.as_bytes()));
    let string_to_sign = format!("{ALGORITHM}\n{amz_date}\n{scope}\n{creq_hash}");
    let key = derive_signing_key(secret, &auth)?;
    auth.signature = hex::encode(hmac(&key.0, string_to_sign.as_bytes())?);
    head.headers.push((
        "authorization".into(),
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={}",
            auth.access_key_id,
            auth.signed_headers.join(";"),
            auth.signature
        ),
    ));
    Some(())
}

fn check_scope_date(scope_date: &str, amz_date: &str) -> Result<(), AuthError> {
    let day = amz_date.get(..8).unwrap_or(amz_date);
    if scope_date == day {
        return Ok(());
    }
    Err(incomplete(format!(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
         HTTP: '{}' != '{day}', from '{amz_date}'.",
        sanitize(scope_date)
    )))
}

fn check_skew(amz_date: &str, request_unix: i64, now_unix: i64) -> Result<(), AuthError> {
    let earliest = now_unix.saturating_sub(MAX_SKEW_SECS);
    let latest = now_unix.saturating_add(MAX_SKEW_SECS);
    if request_unix < earliest {
        return Err(AuthError::InvalidSignature(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
            format_iso_basic(earliest),
            format_iso_basic(now_unix)
        )));
    }
    if request_unix > latest {
        return Err(AuthError::InvalidSignature(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
            format_iso_basic(latest),
            format_iso_basic(now_unix)
        )));
    }
    Ok(())
}

/// The request's time as it goes into the string to sign (ISO-8601 basic) and as a Unix time:
/// from X-Amz-Date, else from Date (HTTP date or ISO-8601 basic).
fn request_time(head: &RequestHead) -> Result<(String, i64), AuthError> {
    let bad = |v: &str| {
        incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601",
            sanitize(v)
        ))
    };
    if let Some(v) = head.header("x-amz-date").map(str::trim) {
        let t = parse_time(v, ISO_BASIC).ok_or_else(|| bad(v))?;
        return Ok((v.to_owned(), t));
    }
    if let Some(v) = head.header("date").map(str::trim) {
        let t = parse_time(v, ISO_BASIC)
            .or_else(|| parse_time(v, HTTP_DATE))
            .ok_or_else(|| bad(v))?;
        return Ok((format_iso_basic(t), t));
    }
    Err(incomplete(format!("{NO_DATE}Authorization={ALGORITHM}")))
}

type Format = &'static [time::format_description::BorrowedFormatItem<'static>];
const ISO_BASIC: Format = format_description!("[year][month][day]T[hour][minute][second]Z");
const HTTP_DATE: Format = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

fn parse_time(s: &str, format: Format) -> Option<i64> {
    let t = time::PrimitiveDateTime::parse(s, format).ok()?;
    Some(t.assume_utc().unix_timestamp())
}

fn format_iso_basic(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(ISO_BASIC).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// The canonical request, or `None` when a signed header is absent. Written into one string.
fn canonical_request(
    head: &RequestHead,
    auth: &ParsedAuthorization,
    payload_hash: &str,
    all_whitespace: bool,
) -> Option<String> {
    let headers_len: usize = head
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum();
    let mut out = String::with_capacity(
        head.method.len() + 3 * head.path.len() + 3 * head.query.len() + 2 * headers_len + 80,
    );
    out.push_str(&head.method);
    out.push('\n');
    push_canonical_uri(&mut out, &head.path, &auth.service);
    out.push('\n');
    if !head.query.is_empty() {
        out.push_str(&canonical_query(&head.query));
    }
    out.push('\n');
    for name in &auth.signed_headers {
        out.push_str(name);
        out.push(':');
        let mut found = false;
        for (_, value) in head
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            if found {
                out.push(',');
            }
            found = true;
            push_normalized_header_value(&mut out, value, all_whitespace);
        }
        if !found {
            return None;
        }
        out.push('\n');
    }
    out.push('\n');
    for (i, name) in auth.signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name);
    }
    out.push('\n');
    out.push_str(payload_hash);
    Some(out)
}

/// Trim, and collapse inner runs of spaces (or of any ASCII whitespace) into one space.
#[cfg(test)]
fn normalize_header_value(value: &str, all_whitespace: bool) -> String {
    let mut out = String::new();
    push_normalized_header_value(&mut out, value, all_whitespace);
    out
}

/// [`normalize_header_value`], appended to `out`.
fn push_normalized_header_value(out: &mut String, value: &str, all_whitespace: bool) {
    let mut first = true;
    let mut push = |word: &str| {
        if !first {
            out.push(' ');
        }
        first = false;
        out.push_str(word);
    };
    if all_whitespace {
        value.split_ascii_whitespace().for_each(&mut push);
    } else {
        value
            .split(' ')
            .filter(|w| !w.is_empty())
            .for_each(&mut push);
    }
}

/// The path normalised (RFC 3986 dot segments, empty segments) and encoded once more
/// (AWS's double encoding for every service but S3, which takes the path as sent).
#[cfg(test)]
fn canonical_uri(path: &str, service: &str) -> String {
    let mut out = String::new();
    push_canonical_uri(&mut out, path, service);
    out
}

/// [`canonical_uri`], appended to `out`.
fn push_canonical_uri(out: &mut String, path: &str, service: &str) {
    if service == "s3" {
        out.push_str(if path.is_empty() { "/" } else { path });
        return;
    }
    if path == "/" {
        out.push('/');
        return;
    }
    for part in utf8_percent_encode(&normalize_path(path), PATH_SET) {
        out.push_str(part);
    }
}

fn normalize_path(path: &str) -> String {
    let absolute = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    if !absolute.contains('.') && !absolute.contains("//") {
        return absolute;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in absolute.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    let trailing = ["/", "/.", "/./", "/..", "/../"];
    if trailing.iter().any(|t| absolute.ends_with(t)) && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// Pairs decoded (`+` is a space) and re-encoded strictly, sorted by key then value.
fn canonical_query(query: &str) -> String {
    let encode = |s: &str| {
        let spaced = s.replace('+', " ");
        let decoded = percent_decode_str(&spaced).decode_utf8_lossy();
        utf8_percent_encode(&decoded, QUERY_SET).to_string()
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(k), encode(v))
        })
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join("&")
}

fn hmac(key: &[u8], data: &[u8]) -> Option<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(data);
    Some(mac.finalize().into_bytes().into())
}

fn derive_signing_key(secret: &SecretAccessKey, auth: &ParsedAuthorization) -> Option<SigningKey> {
    let k_secret = Zeroizing::new(format!("AWS4{}", secret.expose()));
    let k_date = Zeroizing::new(hmac(k_secret.as_bytes(), auth.date.as_bytes())?);
    let k_region = Zeroizing::new(hmac(k_date.as_ref(), auth.region.as_bytes())?);
    let k_service = Zeroizing::new(hmac(k_region.as_ref(), auth.service.as_bytes())?);
    Some(SigningKey(hmac(k_service.as_ref(), TERMINATOR.as_bytes())?))
}

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct SigningKey([u8; 32]);

#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    /// `access key id/date/region/service`.
    scope: String,
    secret_fingerprint: [u8; 32],
}

impl CacheKey {
    fn new(auth: &ParsedAuthorization, secret: &SecretAccessKey) -> Self {
        let mut scope = String::with_capacity(
            auth.access_key_id.len() + auth.date.len() + auth.region.len() + auth.service.len() + 3,
        );
        for (i, part) in [&auth.access_key_id, &auth.date, &auth.region, &auth.service]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                scope.push('/');
            }
            scope.push_str(part);
        }
        Self {
            scope,
            secret_fingerprint: *secret.fingerprint(),
        }
    }
}

/// Thread-safe, bounded cache of derived signing keys, keyed by access key id, date, region,
/// service and a fingerprint of the secret. Keys are zeroized on drop. Only keys that verified
/// a request are stored, so unauthenticated callers cannot fill it.
pub struct SigningKeyCache {
    entries: Mutex<HashMap<CacheKey, SigningKey>>,
}

impl SigningKeyCache {
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<CacheKey, SigningKey>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &CacheKey) -> Option<SigningKey> {
        self.lock().get(key).cloned()
    }

    fn insert(&self, key: CacheKey, value: SigningKey) {
        let mut entries = self.lock();
        if entries.len() >= CACHE_LIMIT {
            entries.clear();
        }
        entries.insert(key, value);
    }
}

impl Default for SigningKeyCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("entries", &self.lock().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::config::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_smithy_runtime_api::client::identity::Identity;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn the_in_process_signer_is_verified_and_any_change_breaks_it() {
        let secret = SecretAccessKey::new(SECRET.into());
        let body = br#"{"SecretId":"a"}"#;
        let mut head = RequestHead {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: JSON
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .chain([(
                    "host".to_owned(),
                    "secretsmanager.us-east-1.amazonaws.com".to_owned(),
                )])
                .collect(),
        };
        super::sign(
            &mut head,
            body,
            AKID,
            &secret,
            "us-east-1",
            "secretsmanager",
            T0,
        )
        .unwrap();
        let auth = parse(&head).unwrap();
        let cache = SigningKeyCache::new();
        verify(&head, body, &auth, &secret, T0, &cache).unwrap();
        assert!(verify(&head, b"{}", &auth, &secret, T0, &cache).is_err());
        let other = SecretAccessKey::new("x".repeat(40));
        assert!(verify(&head, body, &auth, &other, T0, &SigningKeyCache::new()).is_err());
    }

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const T0: i64 = 1_440_938_160; // 2015-08-30T12:36:00Z
    const JSON: &[(&str, &str)] = &[
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "secretsmanager.GetSecretValue"),
    ];
    const BODY: &[u8] = br#"{"SecretId":"prod/db"}"#;

    /// Signs with the official aws-sigv4 signer (default settings) and returns the head as the
    /// server sees it.
    fn signed(
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        at: i64,
    ) -> RequestHead {
        let identity: Identity = Credentials::new(AKID, SECRET, None, None, "test").into();
        let params: aws_sigv4::http_request::SigningParams<'_> =
            aws_sigv4::sign::v4::SigningParams::builder()
                .identity(&identity)
                .region("us-east-1")
                .name("secretsmanager")
                .time(UNIX_EPOCH + Duration::from_secs(at.try_into().unwrap()))
                .settings(SigningSettings::default())
                .build()
                .unwrap()
                .into();
        let mut all = vec![("host", "example.amazonaws.com")];
        all.extend_from_slice(headers);
        let uri = format!("https://example.amazonaws.com{target}");
        let body = SignableBody::Bytes(body);
        let req = SignableRequest::new(method, uri, all.iter().copied(), body).unwrap();
        let (extra, _) = sign(req, &params).unwrap().into_parts().0.into_parts();
        let extra = extra.iter().map(|h| (h.name(), h.value()));
        let headers = all.into_iter().chain(extra);
        let headers = headers.map(|(n, v)| (n.into(), v.into())).collect();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let (method, path, query) = (method.into(), path.into(), query.into());
        RequestHead {
            method,
            path,
            query,
            headers,
        }
    }

    fn post() -> RequestHead {
        signed("POST", "/", JSON, BODY, T0)
    }

    fn check_with(head: &RequestHead, body: &[u8], key: &str, now: i64) -> Result<(), AuthError> {
        let (secret, cache) = (SecretAccessKey::new(key.into()), SigningKeyCache::new());
        verify(head, body, &parse(head)?, &secret, now, &cache)
    }

    fn check(head: &RequestHead, body: &[u8], now: i64) -> Result<(), AuthError> {
        check_with(head, body, SECRET, now)
    }

    fn set(head: &mut RequestHead, name: &str, value: &str) {
        head.headers.retain(|(n, _)| n != name);
        head.headers.push((name.into(), value.into()));
    }

    fn with_auth(auth: &str) -> RequestHead {
        let mut head = post();
        set(&mut head, "authorization", auth);
        head
    }

    fn invalid(msg: &str) -> Result<(), AuthError> {
        Err(AuthError::InvalidSignature(msg.into()))
    }

    #[test]
    fn aws_documentation_example() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
            SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500";
        let head = RequestHead {
            method: "GET".into(),
            path: "/".into(),
            query: "Param2=value2&Param1=value1".into(),
            headers: vec![
                ("host".into(), "example.amazonaws.com".into()),
                ("x-amz-date".into(), "20150830T123600Z".into()),
                ("authorization".into(), auth.into()),
            ],
        };
        assert_eq!(check(&head, b"", T0), Ok(()));
        let parsed = parse(&head).unwrap();
        assert_eq!([&parsed.region, &parsed.service], ["us-east-1", "service"]);
        assert!(!format!("{parsed:?}").contains("b97d918c"));
    }

    #[test]
    fn post_json_verifies_and_tampering_fails() {
        let head = post();
        assert_eq!(check(&head, BODY, T0), Ok(()));
        let auth = parse(&head).unwrap();
        assert_eq!(
            auth.signed_headers,
            ["content-type", "host", "x-amz-date", "x-amz-target"]
        );
        assert_eq!(
            (auth.access_key_id.as_str(), auth.date.as_str()),
            (AKID, "20150830")
        );
        assert_eq!(
            check(&head, br#"{"SecretId":"prod/dc"}"#, T0),
            Err(mismatch())
        );
        assert_eq!(
            check_with(&head, BODY, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz", T0),
            Err(mismatch())
        );
        let auth = head.header("authorization").unwrap();
        let (no_host, bad_sig) = (auth.replace(";host;", ";"), format!("{auth}0000"));
        let no_target = auth.replace(";x-amz-target", "");
        assert_ne!(no_target, auth);
        let body_hash = hex::encode(Sha256::digest(BODY)).to_uppercase();
        let zeros = "0".repeat(64);
        type Tamper<'a> = Box<dyn Fn(&mut RequestHead) + 'a>;
        let hdr = |n: &'static str, v: &str| -> Tamper<'_> {
            let v = v.to_owned();
            Box::new(move |h| set(h, n, &v))
        };
        let cases: Vec<(Tamper<'_>, Result<(), AuthError>)> = vec![
            (
                hdr("x-amz-target", "secretsmanager.DeleteSecret"),
                Err(mismatch()),
            ),
            (
                Box::new(|h| h.headers.retain(|(n, _)| n != "x-amz-target")),
                Err(mismatch()),
            ),
            (Box::new(|h| h.method = "PUT".into()), Err(mismatch())),
            (Box::new(|h| h.query = "a=b".into()), Err(mismatch())),
            (hdr("x-unsigned", "anything"), Ok(())),
            (
                Box::new(|h| {
                    h.headers
                        .push(("x-amz-target".into(), "secretsmanager.DeleteSecret".into()));
                }),
                invalid(TARGET_NOT_SIGNED),
            ),
            (hdr("x-amz-content-sha256", "UNSIGNED-PAYLOAD"), Ok(())),
            (hdr("x-amz-content-sha256", &body_hash), Ok(())),
            (
                hdr("x-amz-content-sha256", &zeros),
                invalid(CONTENT_SHA_MISMATCH),
            ),
            (hdr("authorization", &no_host), invalid(HOST_NOT_SIGNED)),
            (hdr("authorization", &no_target), invalid(TARGET_NOT_SIGNED)),
            (hdr("authorization", &bad_sig), Err(mismatch())),
        ];
        for (i, (tamper, expected)) in cases.into_iter().enumerate() {
            let mut h = head.clone();
            tamper(&mut h);
            assert_eq!(check(&h, BODY, T0), expected, "case {i}");
        }
    }

    #[test]
    fn clock_skew_uses_aws_messages() {
        let head = post();
        assert_eq!(check(&head, BODY, T0 + 15 * 60), Ok(()));
        assert_eq!(check(&head, BODY, T0 - 15 * 60), Ok(()));
        assert_eq!(check(&head, BODY, T0 + 16 * 60), invalid("Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z (20150830T125200Z - 15 min.)"));
        assert_eq!(check(&head, BODY, T0 + 20 * 60), invalid("Signature expired: 20150830T123600Z is now earlier than 20150830T124100Z (20150830T125600Z - 15 min.)"));
        assert_eq!(check(&head, BODY, T0 - 16 * 60), invalid("Signature not yet current: 20150830T123600Z is still later than 20150830T123500Z (20150830T122000Z + 15 min.)"));
        let future = signed("POST", "/", JSON, BODY, T0 + 30 * 60);
        assert_eq!(check(&future, BODY, T0 + 10 * 60), invalid("Signature not yet current: 20150830T130600Z is still later than 20150830T130100Z (20150830T124600Z + 15 min.)"));
        assert!(matches!(
            check(&head, BODY, i64::MAX),
            Err(AuthError::InvalidSignature(_))
        ));
    }

    #[test]
    fn query_strings_paths_and_header_values_match_the_reference_signer() {
        let query = "/?b=2&a=x%20y&a=1&c=%2F%3D%26%3F&d=&e&%E2%82%AC=%7E-_.&z=a+b";
        let head = signed("GET", query, &[], b"", T0);
        assert_eq!(check(&head, b"", T0), Ok(()));
        assert_eq!(
            canonical_query(&head.query),
            "%E2%82%AC=~-_.&a=1&a=x%20y&b=2&c=%2F%3D%26%3F&d=&e=&z=a%20b"
        );
        let mut swapped = head.clone();
        swapped.query = swapped.query.replace("a=1", "a=2");
        assert_eq!(check(&swapped, b"", T0), Err(mismatch()));
        for path in [
            "/foo%20bar/a%2Fb/%C3%A9t%C3%A9",
            "//x//./y/../z/",
            "/a/b/..",
            "/a:b@c!$'()*,;=",
            "/%40c/J%3D",
        ] {
            assert_eq!(
                check(&signed("GET", path, &[], b"", T0), b"", T0),
                Ok(()),
                "{path}"
            );
        }
        assert_eq!(
            canonical_uri("/test/@connections/JBDvjfGEIAMCERw%3D", "x"),
            "/test/%40connections/JBDvjfGEIAMCERw%253D"
        );
        assert_eq!(canonical_uri("//example//", "x"), "/example/");
        let mut moved = signed("GET", "/foo%20bar", &[], b"", T0);
        moved.path = "/foo+bar".into();
        assert_eq!(check(&moved, b"", T0), Err(mismatch()));
        let odd = [
            ("x-meta", "  café  au \t  lait  "),
            ("x-multi", "a"),
            ("x-multi", " b  c "),
        ];
        assert_eq!(
            check(&signed("POST", "/", &odd, BODY, T0), BODY, T0),
            Ok(())
        );
        assert_eq!(normalize_header_value(" a \t b  c ", true), "a b c");
    }

    #[test]
    fn scope_date_must_match_the_request_date() {
        let head = post();
        let auth = head.header("authorization").unwrap();
        let auth = auth.replace("/20150830/", "/20150831/");
        let msg = "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                   from HTTP: '20150831' != '20150830', from '20150830T123600Z'.";
        assert_eq!(parse(&with_auth(&auth)), Err(incomplete(msg)));
        let mut parsed = parse(&head).unwrap();
        parsed.date = "20150831".into();
        let (secret, cache) = (SecretAccessKey::new(SECRET.into()), SigningKeyCache::new());
        let result = verify(&head, BODY, &parsed, &secret, T0, &cache);
        assert_eq!(result, Err(incomplete(msg)));
    }

    #[test]
    fn malformed_headers_are_incomplete() {
        let mut head = post();
        head.headers.retain(|(n, _)| n != "authorization");
        assert_eq!(parse(&head), Err(AuthError::Missing));
        assert_eq!(parse(&with_auth("")), Err(AuthError::Missing));
        let mut no_date = with_auth("AWS4-HMAC-SHA256 SignedHeaders=host");
        no_date.headers.retain(|(n, _)| n != "x-amz-date");
        let all =
            "Authorization header requires 'Credential' parameter. Authorization header requires \
                   'Signature' parameter. ";
        let date =
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ";
        assert_eq!(
            parse(&no_date),
            Err(incomplete(format!(
                "{all}{date}Authorization=AWS4-HMAC-SHA256"
            )))
        );
        let cred = |c: &str| {
            with_auth(&format!(
                "AWS4-HMAC-SHA256 Credential={c}, SignedHeaders=host, Signature=abc"
            ))
        };
        let cases = [
            (with_auth("Basic dXNlcjpwYXNz"), "Unsupported AWS 'algorithm': 'Basic'".to_owned()),
            (with_auth("AWS4-HMAC-SHA256"), format!("{all}Authorization header requires 'SignedHeaders' parameter. Authorization=AWS4-HMAC-SHA256")),
            (cred("AKID/20150830/us-east-1/secretsmanager/xxx"), "Credential should be scoped with a valid terminator: 'aws4_request', not 'xxx'.".to_owned()),
            (cred("AKIDEXAMPLE"), "Credential should be scoped to a valid region. Credential should be scoped with a valid terminator: 'aws4_request', not ''.".to_owned()),
        ];
        for (head, msg) in cases {
            assert_eq!(parse(&head), Err(incomplete(msg)));
        }
        let mut bad_date = post();
        set(&mut bad_date, "x-amz-date", "2015-08-30");
        assert_eq!(parse(&bad_date), Err(incomplete("Date must be in ISO-8601 'basic format'. Got '2015-08-30'. See http://en.wikipedia.org/wiki/ISO_8601")));
        let huge_sig = "f".repeat(100_000);
        for garbage in [
            "AWS4-HMAC-SHA256 garbage".to_owned(),
            "AWS4-HMAC-SHA256 \u{0}\u{7f}ü=é, ;;;".to_owned(),
            format!(
                "AWS4-HMAC-SHA256 Credential={}, SignedHeaders=host, Signature={huge_sig}",
                "A/".repeat(500_000)
            ),
            "X".repeat(1_000_000),
        ] {
            match parse(&with_auth(&garbage)) {
                Err(AuthError::Incomplete(m)) => assert!(
                    m.len() < 300 && !m.contains("ffff") && !m.contains(SECRET),
                    "{m}"
                ),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_time("Sun, 30 Aug 2015 12:36:00 GMT", HTTP_DATE),
            Some(T0)
        );
        assert_eq!(parse_time("20150830T123600Z", ISO_BASIC), Some(T0));
        for bad in [
            "20151330T123600Z",
            "2015083OT123600Z",
            "020150830T123600Z",
            "20150830T123600",
        ] {
            assert_eq!(parse_time(bad, ISO_BASIC), None, "{bad}");
        }
        let mut head = post();
        head.headers.retain(|(n, _)| n != "x-amz-date");
        set(&mut head, "date", "Sun, 30 Aug 2015 12:36:00 GMT");
        assert_eq!(request_time(&head), Ok(("20150830T123600Z".to_owned(), T0)));
    }

    #[test]
    fn cache_is_keyed_by_secret_bounded_and_survives_poisoning() {
        let (head, cache) = (post(), SigningKeyCache::default());
        let auth = parse(&head).unwrap();
        let good = SecretAccessKey::new(SECRET.into());
        let bad = SecretAccessKey::new("other".into());
        assert_eq!(
            verify(&head, BODY, &auth, &bad, T0, &cache),
            Err(mismatch())
        );
        assert_eq!(cache.lock().len(), 0);
        assert_eq!(verify(&head, BODY, &auth, &good, T0, &cache), Ok(()));
        assert_eq!(verify(&head, BODY, &auth, &good, T0, &cache), Ok(()));
        assert_eq!(cache.lock().len(), 1);
        assert_eq!(
            verify(&head, BODY, &auth, &bad, T0, &cache),
            Err(mismatch())
        );
        let _ = std::thread::scope(|s| {
            s.spawn(|| {
                let _guard = cache.entries.lock();
                panic!("poison the lock");
            })
            .join()
        });
        assert!(cache.entries.is_poisoned());
        assert_eq!(verify(&head, BODY, &auth, &good, T0, &cache), Ok(()));
        for i in 0..CACHE_LIMIT {
            let mut other = auth.clone();
            other.region = i.to_string();
            cache.insert(CacheKey::new(&other, &good), SigningKey([0; 32]));
        }
        assert_eq!(cache.lock().len(), 1);
        assert!(format!("{cache:?}").contains("entries: 1"));
    }
}
