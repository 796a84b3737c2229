//! The record: what the pipeline knows about a request ([`Draft`]), the CloudTrail-shaped
//! JSON made from it, and the query columns derived from that JSON ([`Index`]).
//!
//! Secret hygiene: request parameters are an allow-list of top-level fields; tokens among
//! them are replaced by a keyed HMAC; response elements are an allow-list of identifiers;
//! and a last pass removes any member whose name says it could carry secret material.

use serde_json::{Map, Value};

use super::keys::AuditKeys;
use crate::auth::{Principal, PrincipalKind};

/// Request fields that may be recorded as given. Everything else is left out.
const SAFE_FIELDS: &[&str] = &[
    "SecretId",
    "Name",
    "Description",
    "KmsKeyId",
    "Type",
    "VersionId",
    "VersionStage",
    "VersionStages",
    "ClientRequestToken",
    "RecoveryWindowInDays",
    "ForceDeleteWithoutRecovery",
    "MoveToVersionId",
    "RemoveFromVersionId",
    "IncludeDeprecated",
    "IncludePlannedDeletion",
    "MaxResults",
    "NextToken",
    "SortOrder",
    "Filters",
    "SecretIdList",
    "TagKeys",
    "Tags",
    "KeyId",
    "AliasName",
    "TargetKeyId",
    "PendingWindowInDays",
    "RotationPeriodInDays",
    "PasswordLength",
    "ExcludeCharacters",
    "ExcludeNumbers",
    "ExcludePunctuation",
    "ExcludeUppercase",
    "ExcludeLowercase",
    "IncludeSpace",
    "RequireEachIncludedType",
    "KeyUsage",
    "KeySpec",
    "Limit",
    "Marker",
    "LookupAttributes",
    "StartTime",
    "EndTime",
    "EventCategory",
];

/// Allowed fields that are recorded as `hmac-sha256:<hex>`: comparable between records
/// (same token, same value) without revealing the token.
/// Version ids are the client's tokens in Secrets Manager, so they are HMACed too.
const HMAC_FIELDS: &[&str] = &[
    "ClientRequestToken",
    "NextToken",
    "Marker",
    "VersionId",
    "MoveToVersionId",
    "RemoveFromVersionId",
];

/// Member names never written, at any depth (a second line of defence behind the lists).
const NEVER: &[&str] = &[
    "SecretString",
    "SecretBinary",
    "RandomPassword",
    "Password",
    "SecretAccessKey",
    "SessionToken",
    "RotationToken",
    "Plaintext",
    "CiphertextBlob",
    "GrantTokens",
    "WebIdentityToken",
];

/// Response fields that may be recorded: identifiers only.
/// (`VersionId` is left out: it equals the client's token, which is only recorded HMACed.)
const RESPONSE_FIELDS: &[&str] = &[
    "ARN",
    "Arn",
    "Name",
    "VersionStages",
    "KeyId",
    "AliasName",
    "DeletionDate",
    // ConsoleLogin's outcome (`Success` or `Failure`; recorded as `consoleLogin`).
    "ConsoleLogin",
];

/// Operations whose response is never recorded (AWS writes `responseElements: null` for
/// value reads).
const NO_RESPONSE: &[&str] = &[
    "GetSecretValue",
    "BatchGetSecretValue",
    "GetRandomPassword",
    "LookupEvents",
];

/// Keep only the safe top-level fields of a request body, in one streaming pass over it:
/// a member not on [`SAFE_FIELDS`] (`SecretString`, `SecretBinary`, ...) is skipped by the
/// parser without its value being copied anywhere (no `Value` is built for it, so no copy of
/// a secret is left behind un-zeroized), and inside the kept members any member named in
/// [`NEVER`] is skipped the same way. `Null` when the body is not one JSON object, and when
/// what is kept is larger than [`MAX_REQUEST_PARAMETERS`] (CloudTrail omits a
/// `requestParameters` over 100 KB): a request, signed or not, cannot make a record of the
/// size of its body (up to 1 MiB).
pub fn safe_request_parameters(body: &[u8]) -> Value {
    let mut de = serde_json::Deserializer::from_slice(body);
    let kept = serde::de::DeserializeSeed::deserialize(SafeMembers, &mut de);
    match kept.and_then(|v| de.end().map(|()| v)) {
        // What is kept is never longer than the body it came from: only a long body is
        // measured.
        Ok(v)
            if body.len() > MAX_REQUEST_PARAMETERS
                && serde_json::to_vec(&v).map_or(true, |t| t.len() > MAX_REQUEST_PARAMETERS) =>
        {
            Value::Null
        }
        Ok(v) => v,
        Err(_) => Value::Null,
    }
}

/// The largest `requestParameters` recorded, in bytes of JSON (CloudTrail's 100 KB).
pub const MAX_REQUEST_PARAMETERS: usize = 100 * 1024;

/// The longest `errorMessage` and `authorization.reason` recorded, in bytes. A validation
/// message echoes the values it refuses (AWS's wording), so a request near the body limit
/// could otherwise make a record larger than its body; the response still carries it whole.
pub const MAX_RECORDED_MESSAGE: usize = 8 * 1024;

/// `text` cut to at most [`MAX_RECORDED_MESSAGE`] bytes (at a character boundary), with a
/// marker saying how long it was.
fn bounded_message(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_RECORDED_MESSAGE {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = MAX_RECORDED_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!(
        "{}... (cut: {} bytes in all)",
        &text[..end],
        text.len()
    ))
}

/// The top level of a request body: the members of [`SAFE_FIELDS`], each [`Scrubbed`].
struct SafeMembers;

impl<'de> serde::de::DeserializeSeed<'de> for SafeMembers {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for SafeMembers {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if SAFE_FIELDS.contains(&name.as_ref()) {
                let v = map.next_value_seed(Scrubbed)?;
                out.insert(name.into_owned(), v);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(Value::Object(out))
    }
}

/// Any JSON value, as a `Value`, except that object members named in [`NEVER`] (in any case)
/// are skipped by the parser at every depth, never built.
struct Scrubbed;

impl<'de> serde::de::DeserializeSeed<'de> for Scrubbed {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Scrubbed {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Scrubbed)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if NEVER.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
                map.next_value::<serde::de::IgnoredAny>()?;
            } else {
                let v = map.next_value_seed(Scrubbed)?;
                out.insert(name.into_owned(), v);
            }
        }
        Ok(Value::Object(out))
    }
}

/// What the pipeline knows about a request, filled in as it goes.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub request_id: String,
    pub event_time_ms: i64,
    pub event_source: String,
    pub event_name: String,
    pub region: String,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub principal: Option<std::sync::Arc<Principal>>,
    pub read_only: Option<bool>,
    pub resource_arn: Option<String>,
    /// From [`safe_request_parameters`]; tokens in it are HMAC'd when recorded.
    pub request_parameters: Value,
    /// The operation's JSON response, if the pipeline passes it: only identifiers (ARN,
    /// Name, VersionId, KeyId, ...) are recorded, and nothing for value reads.
    pub response_elements: Option<Value>,
    pub decision: Option<String>,
    pub decision_reason: Option<String>,
    /// `Identity`, `Resource`, `SCP`, ... (the policy type that decided), when known.
    pub deciding_policy_type: Option<String>,
    /// The deciding policy's ARN or id, when known.
    pub policy_id: Option<String>,
    /// The deciding statement's Sid (or `#index`), when known.
    pub statement: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// `AwsApiCall` when `None`; background work uses `AwsServiceEvent`.
    pub event_type: Option<String>,
    /// Whether the request reached the server over TLS (`aws:SecureTransport`): the TLS
    /// listener, or a trusted proxy's `X-Forwarded-Proto: https`. Not part of the record.
    pub secure_transport: bool,
    /// Set by the pipeline when the record was already committed with the request's change
    /// (`Auditor::in_transaction`): it must not be recorded again. Not part of the record.
    pub recorded_with_change: bool,
}

impl Draft {
    /// What a further event of the same request starts from (BatchGetSecretValue's
    /// per-secret decisions): who called, from where, when, to which service and region.
    /// Everything the event decides for itself (its id, name, resource, parameters,
    /// decision, error) starts empty.
    pub fn per_secret_base(&self) -> Draft {
        Draft {
            event_time_ms: self.event_time_ms,
            event_source: self.event_source.clone(),
            region: self.region.clone(),
            source_ip: self.source_ip.clone(),
            user_agent: self.user_agent.clone(),
            principal: self.principal.clone(),
            event_type: self.event_type.clone(),
            secure_transport: self.secure_transport,
            ..Draft::default()
        }
    }
}

/// Epoch milliseconds as RFC 3339 UTC with exactly three fractional digits (so records'
/// times sort as text).
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    push_rfc3339_ms(&mut out, ms);
    out
}

/// [`rfc3339_ms`], appended to `out`; false when that text is empty (out of the `time`
/// crate's range).
fn push_rfc3339_ms(out: &mut String, ms: i64) -> bool {
    if push_rfc3339_ms_direct(out, ms) {
        return true;
    }
    let text = rfc3339_ms_by_time(ms);
    out.push_str(&text);
    !text.is_empty()
}

/// [`rfc3339_ms`] for 1970-01-01 to 9999-12-31 (every record's time), written digit by digit
/// (days to a civil date as in Howard Hinnant's `civil_from_days`); `None` outside that range.
#[cfg(test)]
fn rfc3339_ms_direct(ms: i64) -> Option<String> {
    let mut out = String::new();
    push_rfc3339_ms_direct(&mut out, ms).then_some(out)
}

/// [`rfc3339_ms_direct`]'s text appended to `out`; false (nothing appended) outside its range.
fn push_rfc3339_ms_direct(out: &mut String, ms: i64) -> bool {
    const END: i64 = 253_402_300_800_000; // 10000-01-01T00:00:00Z
    if !(0..END).contains(&ms) {
        return false;
    }
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = *b"0000-00-00T00:00:00.000Z";
    put_digits(&mut text[0..4], year);
    put_digits(&mut text[5..7], month);
    put_digits(&mut text[8..10], day);
    put_digits(&mut text[11..13], ms_of_day / 3_600_000);
    put_digits(&mut text[14..16], ms_of_day / 60_000 % 60);
    put_digits(&mut text[17..19], ms_of_day / 1000 % 60);
    put_digits(&mut text[20..23], ms_of_day % 1000);
    // ASCII digits and separators: always UTF-8.
    out.push_str(std::str::from_utf8(&text).unwrap_or_default());
    true
}

/// The last `digits.len()` decimal digits of `n` (not negative), zero-padded, into `digits`.
fn put_digits(digits: &mut [u8], mut n: i64) {
    for d in digits.iter_mut().rev() {
        *d = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
    }
}

/// [`rfc3339_ms`] by the `time` crate's formatter (empty when out of its range).
fn rfc3339_ms_by_time(ms: i64) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// Parse an RFC 3339 time to epoch milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The resource type of an ARN.
fn resource_type_of(arn: &str) -> &'static str {
    if arn.starts_with("arn:aws:kms") {
        "AWS::KMS::Key"
    } else if arn.starts_with("arn:aws:iam:") && arn.contains(":role/") {
        "AWS::IAM::Role"
    } else if arn.starts_with("arn:aws:iam:") && arn.contains(":user/") {
        "AWS::IAM::User"
    } else {
        "AWS::SecretsManager::Secret"
    }
}

/// The account field of an ARN.
fn arn_account(arn: &str) -> &str {
    // `arn.split(':').nth(4)`, or empty.
    let mut field = 0;
    let mut start = 0;
    for (i, b) in arn.bytes().enumerate() {
        if b == b':' {
            if field == 4 {
                return &arn[start..i];
            }
            field += 1;
            start = i + 1;
        }
    }
    if field == 4 {
        &arn[start..]
    } else {
        ""
    }
}

pub use crate::store::rows::resource_short_name;

impl Draft {
    /// The CloudTrail-shaped record, with tokens left out (see [`Draft::to_record_with`]).
    pub fn to_record(&self, event_id: &str) -> Value {
        self.record_value(event_id, None)
    }

    /// The CloudTrail-shaped record, tokens HMAC'd with `keys`.
    pub fn to_record_with(&self, event_id: &str, keys: &AuditKeys) -> Value {
        self.record_value(event_id, Some(keys))
    }

    /// [`Draft::to_text`]'s record as a `Value` (tests, tools).
    fn record_value(&self, event_id: &str, keys: Option<&AuditKeys>) -> Value {
        serde_json::from_str(&self.to_text(event_id, keys).0).unwrap_or(Value::Null)
    }
}

/// The member names of [`SAFE_FIELDS`] as recorded ([`lower_camel`] of each, in the same
/// order; a test holds the two lists to each other). They are distinct, so the top level of
/// the recorded parameters has no two members of one name.
const SAFE_FIELDS_CAMEL: &[&str] = &[
    "secretId",
    "name",
    "description",
    "kmsKeyId",
    "type",
    "versionId",
    "versionStage",
    "versionStages",
    "clientRequestToken",
    "recoveryWindowInDays",
    "forceDeleteWithoutRecovery",
    "moveToVersionId",
    "removeFromVersionId",
    "includeDeprecated",
    "includePlannedDeletion",
    "maxResults",
    "nextToken",
    "sortOrder",
    "filters",
    "secretIdList",
    "tagKeys",
    "tags",
    "keyId",
    "aliasName",
    "targetKeyId",
    "pendingWindowInDays",
    "rotationPeriodInDays",
    "passwordLength",
    "excludeCharacters",
    "excludeNumbers",
    "excludePunctuation",
    "excludeUppercase",
    "excludeLowercase",
    "includeSpace",
    "requireEachIncludedType",
    "keyUsage",
    "keySpec",
    "limit",
    "marker",
    "lookupAttributes",
    "startTime",
    "endTime",
    "eventCategory",
];

fn identity_kind(p: &Principal) -> &'static str {
    match p.kind {
        PrincipalKind::Root => "Root",
        PrincipalKind::User => "IAMUser",
        PrincipalKind::AssumedRole => "AssumedRole",
    }
}

/// What a record's text starts with room for: a GetSecretValue record is about 1.3 KB.
const RECORD_CAPACITY: usize = 1536;

impl Draft {
    /// The record's text and its query columns (what [`Index::of`] derives from that text),
    /// written member by member into one buffer: the path every request's record takes.
    /// Tokens are HMAC'd with `keys`, or left out without them.
    ///
    /// The text is the one `serde_json` prints for the record as a `Value`: members sorted by
    /// name at every depth (the order of a `serde_json::Value` object, so that every record of
    /// a chain has one format), no whitespace, strings escaped as [`push_json_str`] says,
    /// numbers as `serde_json::Number` prints them. Tests hold the text, byte for byte, to
    /// the `serde`-derived builder kept in `record_reference.rs`.
    pub fn to_text(&self, event_id: &str, keys: Option<&AuditKeys>) -> (String, Index) {
        let resource = self.resource_arn.as_deref().filter(|a| *a != "*");
        let service_event = self.event_type.as_deref() == Some("AwsServiceEvent");
        let principal = self.principal.as_deref();
        let error_message = self.error_message.as_deref().map(bounded_message);
        let reason = self.decision_reason.as_deref().map(bounded_message);
        let mut out = Text {
            buf: String::with_capacity(
                RECORD_CAPACITY
                    + error_message.as_deref().map_or(0, str::len)
                    + reason.as_deref().map_or(0, str::len)
                    + self.user_agent.as_deref().map_or(0, str::len),
            ),
            nul: false,
        };

        out.push_str(r#"{"authorization":{"decidingPolicyType":"#);
        push_json_opt(&mut out, self.deciding_policy_type.as_deref());
        out.push_str(r#","decision":"#);
        push_json_opt(&mut out, self.decision.as_deref());
        out.push_str(r#","policyArnOrId":"#);
        push_json_opt(&mut out, self.policy_id.as_deref());
        out.push_str(r#","reason":"#);
        push_json_opt(&mut out, reason.as_deref());
        out.push_str(r#","statement":"#);
        push_json_opt(&mut out, self.statement.as_deref());
        out.push_str(r#"},"awsRegion":"#);
        push_json_str(&mut out, &self.region);
        out.push_str(r#","errorCode":"#);
        push_json_opt(&mut out, self.error_code.as_deref());
        out.push_str(r#","errorMessage":"#);
        push_json_opt(&mut out, error_message.as_deref());
        out.push_str(r#","eventCategory":"Management","eventID":"#);
        push_json_str(&mut out, event_id);
        out.push_str(r#","eventName":"#);
        push_json_str(&mut out, &self.event_name);
        out.push_str(r#","eventSource":"#);
        push_json_str(&mut out, &self.event_source);
        out.push_str(r#","eventTime":""#);
        // Digits, `-`, `:`, `.`, `T` and `Z` only: nothing to escape.
        let timed = push_rfc3339_ms(&mut out.buf, self.event_time_ms);
        out.push_str(r#"","eventType":"#);
        push_json_str(&mut out, self.event_type.as_deref().unwrap_or("AwsApiCall"));
        out.push_str(r#","eventVersion":"1.08","managementEvent":true,"readOnly":"#);
        out.push_str(match self.read_only {
            None => "null",
            Some(true) => "true",
            Some(false) => "false",
        });
        // A service event (no caller) belongs to the account of the resource it concerns.
        let recipient_account = match principal {
            Some(p) => Some(p.account_id.as_str()),
            None => resource
                .filter(|_| service_event)
                .map(arn_account)
                .filter(|a| !a.is_empty()),
        };
        out.push_str(r#","recipientAccountId":"#);
        push_json_opt(&mut out, recipient_account);
        out.push_str(r#","requestID":"#);
        push_json_str(&mut out, &self.request_id);
        out.push_str(r#","requestParameters":"#);
        push_recorded_parameters(&mut out, &self.request_parameters, keys);
        out.push_str(r#","resources":["#);
        if let Some(arn) = resource {
            out.push_str(r#"{"ARN":"#);
            push_json_str(&mut out, arn);
            out.push_str(r#","accountId":"#);
            push_json_str(&mut out, arn_account(arn));
            out.push_str(r#","type":""#);
            out.push_str(resource_type_of(arn));
            out.push_str(r#""}"#);
        }
        out.push_str(r#"],"responseElements":"#);
        match &self.response_elements {
            Some(resp) if !NO_RESPONSE.contains(&self.event_name.as_str()) => {
                push_scrubbed_camel(&mut out, &safe_response_elements(resp));
            }
            _ => out.push_str("null"),
        }
        out.push_str(r#","sourceIPAddress":"#);
        push_json_opt(&mut out, self.source_ip.as_deref());
        out.push_str(r#","userAgent":"#);
        push_json_opt(&mut out, self.user_agent.as_deref());
        out.push_str(r#","userIdentity":"#);
        match principal {
            Some(p) => push_identity(&mut out, p),
            None => {
                // A service event of an AWS service (not the server's own housekeeping) on a
                // resource: the service, invoked in the resource's account.
                let service_account = resource
                    .filter(|_| service_event && self.event_source.ends_with(".amazonaws.com"))
                    .map(arn_account)
                    .filter(|a| !a.is_empty());
                match service_account {
                    Some(account) => {
                        out.push_str(r#"{"accountId":"#);
                        push_json_str(&mut out, account);
                        out.push_str(r#","invokedBy":"#);
                        push_json_str(&mut out, &self.event_source);
                        out.push('}');
                    }
                    None => out.push_str("null"),
                }
            }
        }
        out.push('}');

        let last_segment = || {
            principal
                .and_then(|p| p.arn.rsplit('/').next())
                .map(str::to_owned)
        };
        let user_name = match principal.map(|p| p.kind) {
            Some(PrincipalKind::Root) => Some("root".to_owned()),
            Some(PrincipalKind::User) => {
                principal.and_then(|p| p.name.clone()).or_else(last_segment)
            }
            Some(PrincipalKind::AssumedRole) => last_segment(),
            None => None,
        };
        let index = Index {
            event_id: event_id.to_owned(),
            // What `Index::of` reads back from `eventTime` (empty when out of range).
            event_time: if timed { self.event_time_ms } else { 0 },
            event_name: self.event_name.clone(),
            principal_arn: principal.map(|p| p.arn.clone()),
            access_key_id: principal.map(|p| p.access_key_id.clone()),
            source_ip: self.source_ip.clone(),
            resource_arn: resource.map(str::to_owned),
            error_code: self.error_code.clone(),
            decision: self.decision.clone().unwrap_or_else(|| "None".to_owned()),
            account_id: recipient_account.map(str::to_owned),
            event_source: Some(self.event_source.clone()),
            read_only: self.read_only,
            user_name,
            resource_type: resource.map(|a| resource_type_of(a).to_owned()),
            resource_name: resource.map(resource_short_name),
        };
        // Every column is, or is cut from, a string written into the text above, or a
        // constant: without a NUL written, there is none to replace.
        let index = if out.nul { index.without_nul() } else { index };
        (out.buf, index)
    }
}

/// A record's text being written, and whether a NUL character was written into it.
struct Text {
    buf: String,
    nul: bool,
}

impl Text {
    fn push_str(&mut self, s: &str) {
        self.buf.push_str(s);
    }

    fn push(&mut self, c: char) {
        self.buf.push(c);
    }
}

/// The caller as `userIdentity`: `sessionContext` for role sessions only, `userName` for
/// users only.
fn push_identity(out: &mut Text, p: &Principal) {
    out.push_str(r#"{"accessKeyId":"#);
    push_json_str(out, &p.access_key_id);
    out.push_str(r#","accountId":"#);
    push_json_str(out, &p.account_id);
    out.push_str(r#","arn":"#);
    push_json_str(out, &p.arn);
    out.push_str(r#","principalId":"#);
    push_json_str(out, &p.user_id);
    if p.kind == PrincipalKind::AssumedRole {
        out.push_str(r#","sessionContext":{"attributes":"#);
        match &p.session {
            Some(s) => {
                out.push_str(r#"{"creationDate":""#);
                push_rfc3339_ms(&mut out.buf, s.created_ms);
                out.push_str(r#"","mfaAuthenticated":"false"}"#);
            }
            None => out.push_str("null"),
        }
        out.push_str(r#","sessionIssuer":"#);
        match p.role_arn.as_deref() {
            Some(r) => {
                out.push_str(r#"{"accountId":"#);
                push_json_str(out, &p.account_id);
                out.push_str(r#","arn":"#);
                push_json_str(out, r);
                // The role's id: an assumed role's principal id is `ROLEID:session`.
                out.push_str(r#","principalId":"#);
                push_json_str(out, p.user_id.split(':').next().unwrap_or_default());
                out.push_str(r#","type":"Role","userName":"#);
                push_json_str(out, r.rsplit('/').next().unwrap_or_default());
                out.push('}');
            }
            None => out.push_str("null"),
        }
        out.push('}');
    }
    out.push_str(r#","type":""#);
    out.push_str(identity_kind(p));
    out.push('"');
    if let Some(name) = p.name.as_deref().filter(|_| p.kind == PrincipalKind::User) {
        out.push_str(r#","userName":"#);
        push_json_str(out, name);
    }
    out.push('}');
}

/// `s` as a JSON string, escaped as `serde_json` escapes it: `"` and `\` with a backslash,
/// U+0000 to U+001F as `\b`, `\t`, `\n`, `\f`, `\r` or `\u00xx` (lowercase hex digits), every
/// other character as itself.
fn push_json_str(out: &mut Text, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none of them is to be escaped.
        if let Some(word) = bytes
            .get(i..i + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
        {
            if !any_to_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        i += 1;
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        let i = i - 1;
        // `i` is the position of an ASCII byte: a character boundary.
        out.push_str(&s[start..i]);
        start = i + 1;
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            _ => {
                out.nul |= b == 0;
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Whether any of the eight bytes of `word` is one [`push_json_str`] escapes (below 0x20,
/// `"` or `\`): the "has a byte less than n" and "has a zero byte" tests of
/// <https://graphics.stanford.edu/~seander/bithacks.html#HasLessInWord>, exact for whether
/// there is one (the position they would point to is not used).
fn any_to_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    let quote = zero_in(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(word ^ (ONES * u64::from(b'\\')));
    control | quote | backslash != 0
}

/// [`push_json_str`], or `null`.
fn push_json_opt(out: &mut Text, s: Option<&str>) {
    match s {
        Some(s) => push_json_str(out, s),
        None => out.push_str("null"),
    }
}

/// The request parameters as recorded (`camel_keys(scrub(redact_tokens(params, keys)))`),
/// written from the borrowed value: the top level's members are named from
/// [`SAFE_FIELDS_CAMEL`] and sorted in place, tokens written as their HMAC.
fn push_recorded_parameters(out: &mut Text, params: &Value, keys: Option<&AuditKeys>) {
    let Value::Object(map) = params else {
        return push_scrubbed_camel(out, params);
    };
    static NULL: Value = Value::Null;
    // At most one member per safe field (the source's names are distinct and
    // `SAFE_FIELDS_CAMEL`'s are too).
    let mut kept: [(&str, &Value, bool); SAFE_FIELDS.len()] =
        [("", &NULL, false); SAFE_FIELDS.len()];
    let mut n = 0;
    for (k, v) in map {
        if NEVER.iter().any(|never| never.eq_ignore_ascii_case(k)) {
            continue;
        }
        let Some(at) = SAFE_FIELDS.iter().position(|f| f == k) else {
            continue;
        };
        let hmac = HMAC_FIELDS.contains(&k.as_str());
        // Without a key, or when it is not a string, a token is left out.
        if hmac && (keys.is_none() || !v.is_string()) {
            continue;
        }
        if let (Some(slot), Some(name)) = (kept.get_mut(n), SAFE_FIELDS_CAMEL.get(at)) {
            *slot = (name, v, hmac);
            n += 1;
        }
    }
    let kept = &mut kept[..n];
    kept.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (name, v, hmac)) in kept.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        match (hmac, keys, v.as_str()) {
            (true, Some(keys), Some(token)) => {
                // `hmac-sha256:` and hex digits: nothing to escape.
                out.push('"');
                keys.hmac_into(token, &mut out.buf);
                out.push('"');
            }
            _ => push_scrubbed_camel(out, v),
        }
    }
    out.push('}');
}

/// `camel_keys(scrub(v))` written from the borrowed value: members named in [`NEVER`] left
/// out, the others renamed by [`lower_camel`] and sorted by their new names; of members whose
/// new names are equal, the last in the source's order is written (what inserting them into
/// a `Map` one after the other keeps).
fn push_scrubbed_camel(out: &mut Text, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            use std::fmt::Write as _;
            // Writing into a `String` cannot fail.
            let _ = write!(out.buf, "{n}");
        }
        Value::String(s) => push_json_str(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_scrubbed_camel(out, item);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut members: Vec<(std::borrow::Cow<'_, str>, &Value)> = m
                .iter()
                .filter(|(k, _)| !NEVER.iter().any(|n| n.eq_ignore_ascii_case(k)))
                .map(|(k, v)| (lower_camel_cow(k), v))
                .collect();
            // Stable: equal names keep the source's order, and the last of them is written.
            members.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            let mut first = true;
            for (i, (name, v)) in members.iter().enumerate() {
                if members.get(i + 1).is_some_and(|next| next.0 == *name) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                push_json_str(out, name);
                out.push(':');
                push_scrubbed_camel(out, v);
            }
            out.push('}');
        }
    }
}

/// [`lower_camel`], borrowing `k` when it is already in lowerCamelCase.
fn lower_camel_cow(k: &str) -> std::borrow::Cow<'_, str> {
    // An ASCII name that does not start with a capital is left as it is (`lower_camel` lower-
    // cases its first character only).
    if k.as_bytes()
        .first()
        .is_none_or(|b| b.is_ascii() && !b.is_ascii_uppercase())
    {
        std::borrow::Cow::Borrowed(k)
    } else {
        std::borrow::Cow::Owned(lower_camel(k))
    }
}

/// Replace tokens (top level of the request parameters) by their HMAC. Without a key the
/// token is dropped instead.
#[cfg(test)]
fn redact_tokens(params: &Value, keys: Option<&AuditKeys>) -> Value {
    let Value::Object(map) = params else {
        return params.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        if HMAC_FIELDS.contains(&k.as_str()) {
            if let (Some(keys), Some(s)) = (keys, v.as_str()) {
                out.insert(k.clone(), Value::String(keys.hmac(s)));
            }
        } else if SAFE_FIELDS.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// Identifiers only from a response body (top level, plus `KeyMetadata`'s ids).
fn safe_response_elements(resp: &Value) -> Value {
    let Value::Object(map) = resp else {
        return Value::Null;
    };
    let mut out = Map::new();
    for (k, v) in map {
        if RESPONSE_FIELDS.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        } else if k == "KeyMetadata" {
            if let Value::Object(km) = v {
                let ids: Map<String, Value> = km
                    .iter()
                    .filter(|(n, _)| matches!(n.as_str(), "KeyId" | "Arn" | "KeyState"))
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect();
                out.insert(k.clone(), Value::Object(ids));
            }
        }
    }
    if out.is_empty() {
        Value::Null
    } else {
        Value::Object(out)
    }
}

/// The request parameters as recorded: `camel_keys(scrub(redact_tokens(params, keys)))`,
/// built in one pass without the intermediate trees.
#[cfg(test)]
fn recorded_parameters(params: &Value, keys: Option<&AuditKeys>) -> Value {
    let Value::Object(map) = params else {
        return scrubbed_camel(params);
    };
    let mut out = Map::new();
    for (k, v) in map {
        if NEVER.iter().any(|n| n.eq_ignore_ascii_case(k)) {
            continue;
        }
        if HMAC_FIELDS.contains(&k.as_str()) {
            if let (Some(keys), Some(s)) = (keys, v.as_str()) {
                out.insert(lower_camel(k), Value::String(keys.hmac(s)));
            }
        } else if SAFE_FIELDS.contains(&k.as_str()) {
            out.insert(lower_camel(k), scrubbed_camel(v));
        }
    }
    Value::Object(out)
}

/// `camel_keys(scrub(v))`, built in one pass from a borrowed value.
#[cfg(test)]
fn scrubbed_camel(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !NEVER.iter().any(|n| n.eq_ignore_ascii_case(k)))
                .map(|(k, v)| (lower_camel(k), scrubbed_camel(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(scrubbed_camel).collect()),
        other => other.clone(),
    }
}

/// Remove every member named in [`NEVER`] (in any case), at any depth.
#[cfg(test)]
fn scrub(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !NEVER.iter().any(|n| n.eq_ignore_ascii_case(k)))
                .map(|(k, v)| (k, scrub(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(scrub).collect()),
        other => other,
    }
}

/// CloudTrail writes request parameters and response elements with lowerCamelCase member
/// names (`secretId`, `clientRequestToken`), at every depth.
#[cfg(test)]
fn camel_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (lower_camel(&k), camel_keys(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(camel_keys).collect()),
        other => other,
    }
}

/// A member name in lowerCamelCase: a leading capital, or a leading acronym, in lower case
/// (`SecretId` → `secretId`, `ARN` → `arn`, `KMSKeyId` → `kmsKeyId`), as CloudTrail writes
/// Secrets Manager's `arn`.
fn lower_camel(k: &str) -> String {
    let upper = k.chars().take_while(char::is_ascii_uppercase).count();
    let lower = match upper {
        // `ARN`: all of it; `KMSKeyId`: the acronym, not the capital that starts the next word.
        n if n == k.chars().count() => n,
        0 | 1 => 1,
        n => n - 1,
    };
    let mut out = String::with_capacity(k.len());
    for (i, c) in k.chars().enumerate() {
        if i < lower {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The query columns of a record, derived from its JSON alone (so `verify` can check that
/// nobody edited them to hide a record from queries).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Index {
    pub event_id: String,
    pub event_time: i64,
    pub event_name: String,
    pub principal_arn: Option<String>,
    pub access_key_id: Option<String>,
    pub source_ip: Option<String>,
    pub resource_arn: Option<String>,
    pub error_code: Option<String>,
    pub decision: String,
    pub account_id: Option<String>,
    pub event_source: Option<String>,
    pub read_only: Option<bool>,
    pub user_name: Option<String>,
    pub resource_type: Option<String>,
    pub resource_name: Option<String>,
}

fn string_at(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().map(str::to_owned)
}

impl Index {
    /// The columns with every NUL character replaced by U+FFFD. PostgreSQL's text columns
    /// cannot hold a NUL, and a request can carry one into a recorded field (the record's JSON
    /// text escapes it): one such record would fail its whole group commit, and with it
    /// every request waiting on that commit. `Index::of` applies the same, so a record and
    /// its columns still agree.
    #[must_use]
    pub fn without_nul(mut self) -> Self {
        fn clean(s: &mut String) {
            if s.as_bytes().contains(&0) {
                *s = s.replace('\0', "\u{FFFD}");
            }
        }
        for s in [&mut self.event_id, &mut self.event_name, &mut self.decision] {
            clean(s);
        }
        for s in [
            &mut self.principal_arn,
            &mut self.access_key_id,
            &mut self.source_ip,
            &mut self.resource_arn,
            &mut self.error_code,
            &mut self.account_id,
            &mut self.event_source,
            &mut self.user_name,
            &mut self.resource_type,
            &mut self.resource_name,
        ]
        .into_iter()
        .flatten()
        {
            clean(s);
        }
        self
    }

    /// Derive the columns from a record.
    pub fn of(record: &Value) -> Self {
        let ident = record.get("userIdentity").unwrap_or(&Value::Null);
        let kind = string_at(ident, &["type"]);
        let principal_arn = string_at(ident, &["arn"]);
        let user_name = match kind.as_deref() {
            Some("Root") => Some("root".to_owned()),
            Some("IAMUser") => string_at(ident, &["userName"]).or_else(|| {
                principal_arn
                    .as_deref()
                    .and_then(|a| a.rsplit('/').next())
                    .map(str::to_owned)
            }),
            Some(_) => principal_arn
                .as_deref()
                .and_then(|a| a.rsplit('/').next())
                .map(str::to_owned),
            None => None,
        };
        let resource_arn = record
            .get("resources")
            .and_then(|r| r.get(0))
            .and_then(|r| string_at(r, &["ARN"]));
        Self {
            event_id: string_at(record, &["eventID"]).unwrap_or_default(),
            event_time: string_at(record, &["eventTime"])
                .and_then(|t| parse_rfc3339_ms(&t))
                .unwrap_or_default(),
            event_name: string_at(record, &["eventName"]).unwrap_or_default(),
            access_key_id: string_at(ident, &["accessKeyId"]),
            source_ip: string_at(record, &["sourceIPAddress"]),
            error_code: string_at(record, &["errorCode"]),
            decision: string_at(record, &["authorization", "decision"])
                .unwrap_or_else(|| "None".to_owned()),
            account_id: string_at(record, &["recipientAccountId"]),
            event_source: string_at(record, &["eventSource"]),
            read_only: record.get("readOnly").and_then(Value::as_bool),
            user_name,
            resource_type: resource_arn
                .as_deref()
                .map(|a| resource_type_of(a).to_owned()),
            resource_name: resource_arn.as_deref().map(resource_short_name),
            resource_arn,
            principal_arn,
        }
        .without_nul()
    }
}

#[cfg(test)]
#[path = "record_reference.rs"]
mod reference;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Drafts of every shape a record takes: callers (none, root, users, role sessions from
    /// STS and from a web identity, a session without its context), resources, decisions,
    /// errors (messages cut at 8 KB, at and around a character boundary), request parameters
    /// (nesting, unicode, control characters, tokens, numbers, member names that collide in
    /// lowerCamelCase, values that are not objects), responses, service events, times at and
    /// past the edges, and BatchGetSecretValue's per-secret events.
    fn reference_drafts() -> Vec<Draft> {
        let account = "111122223333";
        let role = |issuer: &str, session: bool, role_arn: bool| Principal {
            kind: PrincipalKind::AssumedRole,
            arn: format!("arn:aws:sts::{account}:assumed-role/deploy/ci-42"),
            user_id: "AROADEPLOY:ci-42".into(),
            access_key_id: "ASIATEMP".into(),
            name: Some("ci-42".into()),
            role_arn: role_arn.then(|| format!("arn:aws:iam::{account}:role/path/deploy")),
            session: session.then(|| crate::auth::SessionContext {
                issuer: issuer.into(),
                created_ms: 1_780_000_000_000,
                expires_ms: 1_780_003_600_000,
                policy: Some("{}".into()),
            }),
            ..Principal::root(account, "AKIAROOT")
        };
        let user = |name: Option<&str>, arn: &str| Principal {
            kind: PrincipalKind::User,
            arn: arn.into(),
            user_id: "AIDAALICE".into(),
            access_key_id: "AKIAALICE".into(),
            name: name.map(str::to_owned),
            ..Principal::root(account, "AKIAROOT")
        };
        let mut odd_session = role("sts.amazonaws.com", true, true);
        odd_session.user_id = "no-colon".into();
        odd_session.role_arn = Some("no-slash".into());
        if let Some(s) = odd_session.session.as_mut() {
            s.created_ms = -5;
        }
        let principals: Vec<Option<std::sync::Arc<Principal>>> = [
            None,
            Some(Principal::root(account, "AKIAROOT")),
            Some(user(
                Some("alice"),
                &format!("arn:aws:iam::{account}:user/team/alice"),
            )),
            Some(user(None, &format!("arn:aws:iam::{account}:user/team/bob"))),
            Some(user(
                Some("q\"u\u{0}te\u{7f}\u{2028}é"),
                "arn:aws:iam::1:user/ü\"\n",
            )),
            Some(role("sts.amazonaws.com", true, true)),
            Some(role(
                "https://token.actions.githubusercontent.com",
                true,
                true,
            )),
            Some(role("sts.amazonaws.com", false, false)),
            Some(role("sts.amazonaws.com", true, false)),
            Some(odd_session),
        ]
        .into_iter()
        .map(|p| p.map(std::sync::Arc::new))
        .collect();
        let secret = format!("arn:aws:secretsmanager:us-east-1:{account}:secret:db/pw-AbCdEf");
        let resources: Vec<Option<String>> = vec![
            None,
            Some("*".into()),
            Some(secret.clone()),
            Some(format!(
                "arn:aws:secretsmanager:us-east-1:{account}:secret:plain"
            )),
            Some(format!(
                "arn:aws:kms:us-east-1:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            )),
            Some(format!("arn:aws:iam::{account}:role/deploy")),
            Some(format!("arn:aws:iam::{account}:user/alice")),
            Some("arn:x".into()),
            Some(String::new()),
            Some("arn:aws:secretsmanager:r:\u{0}acct:secret:n\"ul-AbCdEf".into()),
        ];
        let bodies: Vec<Value> = [
            &br#"{"SecretId":"db/pw"}"#[..],
            br#"{"SecretId":"db/pw","VersionStage":"AWSCURRENT"}"#,
            br#"{"SecretId":"a","ClientRequestToken":"TOKEN-0123456789abcdef0123456789ab","VersionId":"v1","NextToken":7,"Marker":null,"MoveToVersionId":"m","RemoveFromVersionId":"r","SecretString":"MARK"}"#,
            br#"{"Tags":[{"Key":"k","key":"lower","Value":"v","SecretString":"MARK","Nested":{"PASSWORD":"MARK","ARNList":["x"],"\u00c9a":1,"\u01c5b":2,"KMSKeyId":3,"X":4,"":5}}],"Filters":[{"Key":"name","Values":["a","b"]}],"MaxResults":3}"#,
            br#"{"Name":"n\u0000\u0001\u001f\u007f\u2028\ud83d\ude00\"\\/","Description":null,"KmsKeyId":"k","ForceDeleteWithoutRecovery":true,"RecoveryWindowInDays":7.5}"#,
            br#"{"SecretIdList":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q","r","s","t"],"Filters":[]}"#,
            br#"{"MaxResults":-9223372036854775808,"Limit":18446744073709551615,"PasswordLength":1e300,"StartTime":-0.0,"EndTime":0.1,"RotationPeriodInDays":1.0E-7,"IncludeSpace":false}"#,
            br#"{"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"GetSecretValue"}],"StartTime":1780000000.5,"EventCategory":"Management"}"#,
            r#"{"Description":"ünïcödé — 日本語 \t\r\n\b\f"}"#.as_bytes(),
            br#"{}"#,
            br#"[1,2,3]"#,
        ]
        .into_iter()
        .map(safe_request_parameters)
        .chain([
            json!({"secretId": secret}),
            json!({"SecretId": {"Password": "MARK", "Deep": [[{"Plaintext": 1, "ok": [null, true]}]]}}),
            json!({"ClientRequestToken": {"not": "a string"}, "NextToken": "tok", "Nope": 1}),
            json!("a string"),
            json!(12),
            Value::Null,
        ])
        .collect();
        let responses: Vec<Option<Value>> = vec![
            None,
            Some(
                json!({"ARN": "arn:x", "Name": "db/pw", "VersionId": "v", "SecretString": "MARK"}),
            ),
            Some(
                json!({"ARN": "arn:upper", "Arn": "arn:mixed", "VersionStages": ["AWSCURRENT"], "DeletionDate": 1_780_000_000.5}),
            ),
            Some(
                json!({"KeyMetadata": {"KeyId": "k1", "Arn": "arn:k", "KeyState": "Enabled", "Description": "d"}, "KeyId": "k1", "AliasName": "alias/x"}),
            ),
            Some(json!({"KeyMetadata": {"Description": "d"}})),
            Some(json!({"KeyMetadata": "not an object", "Other": 1})),
            Some(json!({"ConsoleLogin": "Success", "Name": {"Password": "MARK", "Inner": 1}})),
            Some(json!([{"ARN": "a"}])),
            Some(Value::Null),
        ];
        let long = |n: usize| -> String {
            // Multi-byte characters around the cut, so that it falls inside one.
            let mut s = "x".repeat(n.saturating_sub(7));
            while s.len() < n {
                s.push('é');
            }
            s
        };
        let messages: Vec<Option<String>> = vec![
            None,
            Some("User: arn:aws:iam::1:user/x is not \n authorized \"quoted\"".into()),
            Some(long(MAX_RECORDED_MESSAGE)),
            Some(long(MAX_RECORDED_MESSAGE + 1)),
            Some(long(MAX_RECORDED_MESSAGE + 2)),
            Some(format!("{}\u{0}\u{1}", long(20_000))),
            Some(String::new()),
        ];
        let events = [
            ("GetSecretValue", "secretsmanager.amazonaws.com", None),
            ("BatchGetSecretValue", "secretsmanager.amazonaws.com", None),
            ("PutSecretValue", "secretsmanager.amazonaws.com", None),
            ("DescribeKey", "kms.amazonaws.com", None),
            (
                "RotationSucceeded",
                "secretsmanager.amazonaws.com",
                Some("AwsServiceEvent"),
            ),
            (
                "RetentionPruned",
                "strongroom.local",
                Some("AwsServiceEvent"),
            ),
            (
                "ConsoleLogin",
                "signin.amazonaws.com",
                Some("AwsConsoleSignIn"),
            ),
            ("", "", None),
        ];
        let times = [
            1_780_000_000_123,
            0,
            -1,
            951_782_400_000,
            253_402_300_799_999,
            253_402_300_800_000,
            -62_135_596_800_001,
            i64::MAX,
            i64::MIN,
        ];
        let decisions = [
            (None, None, None, None, None),
            (
                Some("Allow"),
                None,
                Some("IdentityPolicy"),
                Some("readers"),
                Some("0"),
            ),
            (
                Some("ExplicitDeny"),
                Some("denied by statement Deny1"),
                Some("ResourcePolicy"),
                Some("arn:aws:secretsmanager:r:1:secret:x"),
                Some("Deny1"),
            ),
            (
                Some("ImplicitDeny"),
                Some("no statement allows"),
                None,
                None,
                None,
            ),
        ];
        let mut drafts = Vec::new();
        // Every principal with every resource, and the other dimensions turned over by
        // steps that are prime to each other, so that each value meets many others.
        let mut n = 0_usize;
        for (i, principal) in principals.iter().enumerate() {
            for (j, resource) in resources.iter().enumerate() {
                for round in 0..6 {
                    n += 1;
                    let (name, source, kind) = events[(n + round) % events.len()];
                    let (decision, reason, ptype, pid, sid) =
                        decisions[(i + j + round) % decisions.len()];
                    let failed = decision.is_some_and(|d| d != "Allow") || n.is_multiple_of(5);
                    let message = &messages[(n * 3 + round) % messages.len()];
                    drafts.push(Draft {
                        request_id: format!("req-{i}-{j}-{round}"),
                        event_time_ms: times[(n + i) % times.len()],
                        event_source: source.into(),
                        event_name: name.into(),
                        region: ["us-east-1", "eu-west-1", ""][n % 3].into(),
                        source_ip: (n % 4 != 1)
                            .then(|| ["127.0.0.1", "::1", "10.0.0.\u{0}"][n % 3].to_owned()),
                        user_agent: (n % 7 != 2)
                            .then(|| "aws-cli/2 \"quoted\" ünïcode \u{1}".to_owned()),
                        principal: principal.clone(),
                        read_only: [None, Some(true), Some(false)][n % 3],
                        resource_arn: resource.clone(),
                        request_parameters: bodies[(n * 5 + round) % bodies.len()].clone(),
                        response_elements: responses[(n * 7 + j) % responses.len()].clone(),
                        decision: decision.map(str::to_owned),
                        decision_reason: reason.map(str::to_owned).or_else(|| {
                            messages[(n + 2) % messages.len()]
                                .clone()
                                .filter(|_| n.is_multiple_of(3))
                        }),
                        deciding_policy_type: ptype.map(str::to_owned),
                        policy_id: pid.map(str::to_owned),
                        statement: sid.map(str::to_owned),
                        error_code: failed.then(|| {
                            [
                                "AccessDeniedException",
                                "ResourceNotFoundException",
                                "\u{0}",
                            ][n % 3]
                                .to_owned()
                        }),
                        error_message: if failed { message.clone() } else { None },
                        event_type: kind.map(str::to_owned),
                        ..Draft::default()
                    });
                }
            }
        }
        // BatchGetSecretValue: the call's record and its per-secret events, as the per-secret
        // authorizer makes them.
        for principal in &principals {
            let call = Draft {
                request_id: "batch-1".into(),
                event_time_ms: 1_780_000_000_456,
                event_source: "secretsmanager.amazonaws.com".into(),
                event_name: "BatchGetSecretValue".into(),
                region: "us-east-1".into(),
                source_ip: Some("127.0.0.1".into()),
                user_agent: Some("Boto3/1.34".into()),
                principal: principal.clone(),
                read_only: Some(true),
                resource_arn: Some("*".into()),
                request_parameters: bodies[5].clone(),
                decision: Some("Allow".into()),
                ..Draft::default()
            };
            for k in 0..20 {
                let arn =
                    format!("arn:aws:secretsmanager:us-east-1:{account}:secret:s{k}-AbCdE{k}");
                let mut d = call.per_secret_base();
                d.request_id = format!("per-secret-{k}");
                d.event_name = "GetSecretValue".into();
                d.read_only = Some(true);
                d.resource_arn = Some(arn.clone());
                d.request_parameters = json!({ "secretId": arn });
                d.decision = Some(if k % 4 == 3 { "ImplicitDeny" } else { "Allow" }.into());
                if k % 4 == 3 {
                    d.decision_reason = Some("no identity-based policy allows the action".into());
                    d.error_code = Some("AccessDeniedException".into());
                    d.error_message = Some(format!("User: x is not authorized to perform: secretsmanager:GetSecretValue on resource: {arn}"));
                } else {
                    d.deciding_policy_type = Some("IdentityPolicy".into());
                    d.policy_id = Some("readers".into());
                    d.statement = Some("0".into());
                }
                drafts.push(d);
            }
            drafts.push(call);
        }
        drafts
    }

    /// Every record's text and columns are byte for byte what the builder kept in
    /// `record_reference.rs` makes of the same draft, with and without the HMAC key.
    #[test]
    fn record_text_equals_the_reference_builder_byte_for_byte() {
        let keys = AuditKeys::ephemeral().unwrap();
        let drafts = reference_drafts();
        assert!(drafts.len() > 700, "{}", drafts.len());
        let mut bytes = 0;
        for (n, d) in drafts.iter().enumerate() {
            for (k, event_id) in [
                (None, "0190b7c5-8e2a-7c3d-9f1e-2b3c4d5e6f70"),
                (Some(&keys), "e\"1\u{0}"),
            ] {
                let (text, index) = d.to_text(event_id, k);
                let (want_text, want_index) = reference::to_text(d, event_id, k);
                assert_eq!(text, want_text, "draft {n}: {d:?}");
                assert_eq!(index, want_index, "draft {n}: {d:?}");
                bytes += text.len();
            }
        }
        assert!(bytes > 1_000_000, "{bytes}");
    }

    /// The text of one BatchGetSecretValue per-secret event and one GetSecretValue record,
    /// as fixed strings (beside the reference builder, which shares the field lists).
    #[test]
    fn record_text_snapshots() {
        let keys = AuditKeys::ephemeral().unwrap();
        let drafts = reference_drafts();
        let per_secret = drafts
            .iter()
            .find(|d| {
                d.request_id == "per-secret-3"
                    && d.principal
                        .as_ref()
                        .is_some_and(|p| p.kind == PrincipalKind::AssumedRole)
            })
            .unwrap();
        assert_eq!(
            per_secret.to_text("e-1", Some(&keys)).0,
            SNAPSHOT_PER_SECRET
        );
        let get = Draft {
            request_id: "7d4f0c56-1b8e-4f5a-9c1d-0e2f3a4b5c6d".into(),
            event_time_ms: 1_780_000_000_123,
            event_source: "secretsmanager.amazonaws.com".into(),
            event_name: "GetSecretValue".into(),
            region: "us-east-1".into(),
            source_ip: Some("127.0.0.1".into()),
            user_agent: Some("python-requests/2.31".into()),
            principal: Some(std::sync::Arc::new(Principal {
                kind: PrincipalKind::User,
                arn: "arn:aws:iam::111122223333:user/bench-reader".into(),
                user_id: "AIDABENCH".into(),
                access_key_id: "AKIABENCH".into(),
                name: Some("bench-reader".into()),
                ..Principal::root("111122223333", "AKIAROOT")
            })),
            read_only: Some(true),
            resource_arn: Some(
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:bench/s-1-AbCdEf".into(),
            ),
            request_parameters: safe_request_parameters(
                br#"{"SecretId":"bench/s-1","VersionStage":"AWSCURRENT"}"#,
            ),
            decision: Some("Allow".into()),
            deciding_policy_type: Some("IdentityPolicy".into()),
            policy_id: Some("bench-reader".into()),
            statement: Some("0".into()),
            ..Draft::default()
        };
        assert_eq!(
            get.to_text("0190b7c5-8e2a-7c3d-9f1e-2b3c4d5e6f70", Some(&keys))
                .0,
            SNAPSHOT_GET
        );
        // The strings are the builder's before this one too.
        assert_eq!(
            reference::to_text(&get, "0190b7c5-8e2a-7c3d-9f1e-2b3c4d5e6f70", Some(&keys)).0,
            SNAPSHOT_GET
        );
        assert_eq!(
            reference::to_text(per_secret, "e-1", Some(&keys)).0,
            SNAPSHOT_PER_SECRET
        );
    }

    const SNAPSHOT_PER_SECRET: &str = "{\"authorization\":{\"decidingPolicyType\":null,\"decision\":\"ImplicitDeny\",\"policyArnOrId\":null,\"reason\":\"no identity-based policy allows the action\",\"statement\":null},\"awsRegion\":\"us-east-1\",\"errorCode\":\"AccessDeniedException\",\"errorMessage\":\"User: x is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:111122223333:secret:s3-AbCdE3\",\"eventCategory\":\"Management\",\"eventID\":\"e-1\",\"eventName\":\"GetSecretValue\",\"eventSource\":\"secretsmanager.amazonaws.com\",\"eventTime\":\"2026-05-28T20:26:40.456Z\",\"eventType\":\"AwsApiCall\",\"eventVersion\":\"1.08\",\"managementEvent\":true,\"readOnly\":true,\"recipientAccountId\":\"111122223333\",\"requestID\":\"per-secret-3\",\"requestParameters\":{},\"resources\":[{\"ARN\":\"arn:aws:secretsmanager:us-east-1:111122223333:secret:s3-AbCdE3\",\"accountId\":\"111122223333\",\"type\":\"AWS::SecretsManager::Secret\"}],\"responseElements\":null,\"sourceIPAddress\":\"127.0.0.1\",\"userAgent\":\"Boto3/1.34\",\"userIdentity\":{\"accessKeyId\":\"ASIATEMP\",\"accountId\":\"111122223333\",\"arn\":\"arn:aws:sts::111122223333:assumed-role/deploy/ci-42\",\"principalId\":\"AROADEPLOY:ci-42\",\"sessionContext\":{\"attributes\":{\"creationDate\":\"2026-05-28T20:26:40.000Z\",\"mfaAuthenticated\":\"false\"},\"sessionIssuer\":{\"accountId\":\"111122223333\",\"arn\":\"arn:aws:iam::111122223333:role/path/deploy\",\"principalId\":\"AROADEPLOY\",\"type\":\"Role\",\"userName\":\"deploy\"}},\"type\":\"AssumedRole\"}}";
    const SNAPSHOT_GET: &str = "{\"authorization\":{\"decidingPolicyType\":\"IdentityPolicy\",\"decision\":\"Allow\",\"policyArnOrId\":\"bench-reader\",\"reason\":null,\"statement\":\"0\"},\"awsRegion\":\"us-east-1\",\"errorCode\":null,\"errorMessage\":null,\"eventCategory\":\"Management\",\"eventID\":\"0190b7c5-8e2a-7c3d-9f1e-2b3c4d5e6f70\",\"eventName\":\"GetSecretValue\",\"eventSource\":\"secretsmanager.amazonaws.com\",\"eventTime\":\"2026-05-28T20:26:40.123Z\",\"eventType\":\"AwsApiCall\",\"eventVersion\":\"1.08\",\"managementEvent\":true,\"readOnly\":true,\"recipientAccountId\":\"111122223333\",\"requestID\":\"7d4f0c56-1b8e-4f5a-9c1d-0e2f3a4b5c6d\",\"requestParameters\":{\"secretId\":\"bench/s-1\",\"versionStage\":\"AWSCURRENT\"},\"resources\":[{\"ARN\":\"arn:aws:secretsmanager:us-east-1:111122223333:secret:bench/s-1-AbCdEf\",\"accountId\":\"111122223333\",\"type\":\"AWS::SecretsManager::Secret\"}],\"responseElements\":null,\"sourceIPAddress\":\"127.0.0.1\",\"userAgent\":\"python-requests/2.31\",\"userIdentity\":{\"accessKeyId\":\"AKIABENCH\",\"accountId\":\"111122223333\",\"arn\":\"arn:aws:iam::111122223333:user/bench-reader\",\"principalId\":\"AIDABENCH\",\"type\":\"IAMUser\",\"userName\":\"bench-reader\"}}";

    /// The one-pass builders give exactly what the three passes they stand for give, with
    /// and without a key, for safe and unsafe members, tokens, nesting, arrays, member names
    /// that collide once in lowerCamelCase, and bodies that are not objects.
    #[test]
    fn one_pass_parameters_equal_the_three_passes() {
        let keys = AuditKeys::ephemeral().unwrap();
        let bodies: [&[u8]; 6] = [
            br#"{"SecretId":"db/pw"}"#,
            br#"{"SecretId":"a","ClientRequestToken":"TOK-1","VersionId":"v1","NextToken":7,"SecretString":"MARK"}"#,
            br#"{"Tags":[{"Key":"k","key":"lower","Value":"v","SecretString":"MARK","Nested":{"PASSWORD":"MARK","ARNList":["x"]}}],"Filters":[{"Key":"name","Values":["a","b"]}],"MaxResults":3}"#,
            br#"{"Name":"n","Description":null,"KmsKeyId":"k","ForceDeleteWithoutRecovery":true,"RecoveryWindowInDays":7.5}"#,
            br#"[1,2,3]"#,
            br#"{}"#,
        ];
        for body in bodies {
            let params = safe_request_parameters(body);
            for k in [None, Some(&keys)] {
                assert_eq!(
                    recorded_parameters(&params, k),
                    camel_keys(scrub(redact_tokens(&params, k))),
                    "{}",
                    String::from_utf8_lossy(body)
                );
            }
        }
        let responses = [
            json!({"ARN": "a", "Name": "n", "VersionId": "v", "SecretString": "MARK"}),
            json!({"KeyMetadata": {"KeyId": "k", "Arn": "a", "Description": "d"}, "KMSKeyId": "x"}),
            json!(["a", {"Password": "MARK", "ARN": "b"}]),
            Value::Null,
        ];
        for r in responses {
            assert_eq!(scrubbed_camel(&r), camel_keys(scrub(r.clone())), "{r}");
            let safe = safe_response_elements(&r);
            assert_eq!(
                scrubbed_camel(&safe),
                camel_keys(scrub(safe.clone())),
                "{r}"
            );
        }
    }

    /// The digit-by-digit time text is the `time` crate's, across the range it covers, and
    /// out of that range the crate's formatter answers.
    #[test]
    fn record_times_are_formatted_as_the_time_crate_does() {
        const END: i64 = 253_402_300_800_000;
        let mut ms: i64 = 0;
        let mut step: i64 = 1;
        while ms < END {
            assert_eq!(rfc3339_ms_direct(ms), Some(rfc3339_ms_by_time(ms)), "{ms}");
            ms += step;
            step = step * 3 + 7;
            if step > 40_000_000_000 {
                step = 999_983;
            }
        }
        for ms in [
            0,
            951_782_400_000,   // 2000-02-29
            4_107_542_399_999, // 2100-02-28T23:59:59.999
            1_767_225_599_999, // 2025-12-31T23:59:59.999
            END - 1,
        ] {
            assert_eq!(rfc3339_ms_direct(ms), Some(rfc3339_ms_by_time(ms)), "{ms}");
        }
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms_direct(-1), None);
        assert_eq!(rfc3339_ms_direct(END), None);
        assert_eq!(rfc3339_ms(-1), rfc3339_ms_by_time(-1));
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(i64::MAX), "");
    }

    /// The parameters keep every safe member as given (nested values, escapes, numbers)
    /// and nothing of a secret, at the top level or nested in a kept member.
    #[test]
    fn request_parameters_over_100_kb_are_omitted() {
        let long = "d".repeat(MAX_REQUEST_PARAMETERS);
        let body = serde_json::json!({"SecretId": "s", "Description": long}).to_string();
        assert_eq!(safe_request_parameters(body.as_bytes()), Value::Null);
        // A long body whose kept members are short keeps them.
        let body = serde_json::json!({"SecretId": "s", "SecretString": long}).to_string();
        assert_eq!(
            safe_request_parameters(body.as_bytes()),
            serde_json::json!({"SecretId": "s"})
        );
        let near = "d".repeat(MAX_REQUEST_PARAMETERS - 100);
        let body = serde_json::json!({"Description": near}).to_string();
        assert_eq!(
            safe_request_parameters(body.as_bytes())["Description"],
            Value::String(near)
        );
    }

    #[test]
    fn request_parameters_keep_the_safe_members_only() {
        let body =
            br#"{"SecretId":"app/db\u00e9\n","SecretString":"MARK-1","SecretBinary":"TUFSSy0y",
            "Tags":[{"Key":"k","Value":"v","SecretString":"MARK-3"}],"RecoveryWindowInDays":7,
            "ForceDeleteWithoutRecovery":false,"Description":null,
            "Filters":[{"Key":"name","Values":["a","b"],"nested":{"PASSWORD":"MARK-4","ok":1.5}}],
            "Unknown":{"SecretString":"MARK-5"}}"#;
        let v = safe_request_parameters(body);
        assert_eq!(
            v,
            json!({
                "SecretId": "app/db\u{e9}\n",
                "Tags": [{"Key": "k", "Value": "v"}],
                "RecoveryWindowInDays": 7,
                "ForceDeleteWithoutRecovery": false,
                "Description": null,
                "Filters": [{"Key": "name", "Values": ["a", "b"], "nested": {"ok": 1.5}}],
            })
        );
        assert!(!v.to_string().contains("MARK"), "{v}");
        for not_an_object in [&b"[1]"[..], b"\"s\"", b"{", b"{} x", b""] {
            assert_eq!(safe_request_parameters(not_an_object), Value::Null);
        }
    }

    /// A member left out is skipped by the parser, never built into a value: one that no
    /// `Value` can hold (a number out of range) does not stop the safe members from being
    /// recorded, as it would if the whole body were parsed into a tree first.
    #[test]
    fn members_left_out_are_never_built() {
        let v = safe_request_parameters(
            br#"{"SecretId":"s","SecretString":1e400,"Tags":[{"Key":"k","SecretBinary":-1e999}]}"#,
        );
        assert_eq!(v, json!({"SecretId": "s", "Tags": [{"Key": "k"}]}));
    }

    #[test]
    fn unsafe_fields_are_dropped() {
        let v = safe_request_parameters(
            br#"{"SecretId":"a","SecretString":"MARK","SecretBinary":"TUFSSw==","RotationToken":"x"}"#,
        );
        let s = v.to_string();
        assert!(s.contains("\"SecretId\""));
        assert!(!s.contains("MARK"));
        assert!(!s.contains("TUFSSw"));
        assert!(!s.contains("RotationToken"));
    }

    #[test]
    fn tokens_are_hmaced_and_responses_are_identifiers_only() {
        let keys = AuditKeys::ephemeral().unwrap();
        let d = Draft {
            event_name: "PutSecretValue".into(),
            event_time_ms: 1_780_000_000_123,
            request_parameters: safe_request_parameters(
                br#"{"SecretId":"s","ClientRequestToken":"TOKEN-0123456789abcdef0123456789ab","SecretString":"MARK"}"#,
            ),
            response_elements: Some(json!({
                "ARN": "arn:aws:secretsmanager:us-east-1:111122223333:secret:s-AbCdEf",
                "Name": "s", "VersionId": "v1", "SecretString": "MARK",
                "Nested": {"SecretString": "MARK"}
            })),
            ..Draft::default()
        };
        let r = d.to_record_with("e1", &keys);
        let s = r.to_string();
        assert!(!s.contains("MARK"), "{s}");
        assert!(!s.contains("TOKEN-0123"), "{s}");
        assert_eq!(
            r["requestParameters"]["clientRequestToken"],
            json!(keys.hmac("TOKEN-0123456789abcdef0123456789ab"))
        );
        assert!(r["responseElements"].get("versionId").is_none());
        assert_eq!(r["requestParameters"]["secretId"], "s");
        assert!(r["responseElements"].get("nested").is_none());
        // value reads never record a response
        let g = Draft {
            event_name: "GetSecretValue".into(),
            response_elements: Some(json!({"Name": "s", "SecretString": "MARK"})),
            ..Draft::default()
        };
        assert_eq!(
            g.to_record_with("e2", &keys)["responseElements"],
            Value::Null
        );
        // a nested secret-bearing member is scrubbed even inside allowed fields
        let t = Draft {
            request_parameters: json!({"Filters": [{"Key": "name", "SecretString": "MARK"}]}),
            ..Draft::default()
        };
        assert!(!t.to_record("e3").to_string().contains("MARK"));
    }

    /// `to_text`'s index is what `Index::of` derives from its text, for every kind of caller,
    /// resource, decision and error; and its members are in `Value`'s order.
    #[test]
    fn to_text_index_is_derived_from_its_text() {
        let keys = AuditKeys::ephemeral().unwrap();
        let account = "111122223333";
        let user = |name: Option<&str>| Principal {
            kind: PrincipalKind::User,
            arn: format!("arn:aws:iam::{account}:user/team/alice"),
            user_id: "AIDAALICE".into(),
            access_key_id: "AKIAALICE".into(),
            name: name.map(str::to_owned),
            ..Principal::root(account, "AKIAROOT")
        };
        let role = |session: bool, issuer: bool| Principal {
            kind: PrincipalKind::AssumedRole,
            arn: format!("arn:aws:sts::{account}:assumed-role/deploy/ci-42"),
            user_id: "AROADEPLOY:ci-42".into(),
            access_key_id: "ASIATEMP".into(),
            role_arn: issuer.then(|| format!("arn:aws:iam::{account}:role/deploy")),
            session: session.then(|| crate::auth::SessionContext {
                issuer: "sts".into(),
                created_ms: 1_780_000_000_000,
                expires_ms: 1_780_003_600_000,
                policy: None,
            }),
            ..Principal::root(account, "AKIAROOT")
        };
        let principals = [
            None,
            Some(Principal::root(account, "AKIAROOT")),
            Some(user(Some("alice"))),
            Some(user(None)),
            Some(role(true, true)),
            Some(role(false, false)),
        ];
        let secret = format!("arn:aws:secretsmanager:us-east-1:{account}:secret:db/pw-AbCdEf");
        let key =
            format!("arn:aws:kms:us-east-1:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab");
        let resources = [None, Some("*".to_owned()), Some(secret), Some(key)];
        let mut n = 0;
        for (i, principal) in principals.iter().enumerate() {
            for (j, resource) in resources.iter().enumerate() {
                let failed = (i + j) % 2 == 1;
                let d = Draft {
                    request_id: format!("req-{i}-{j}"),
                    event_time_ms: 1_780_000_000_123 + i64::try_from(i * 7 + j).unwrap(),
                    event_source: "secretsmanager.amazonaws.com".into(),
                    event_name: ["PutSecretValue", "GetSecretValue", "DescribeSecret"][j % 3]
                        .into(),
                    region: "us-east-1".into(),
                    source_ip: (j != 1).then(|| "127.0.0.1".to_owned()),
                    user_agent: (i != 2).then(|| "aws-cli/2 \"quoted\" ünïcode".to_owned()),
                    principal: principal.clone().map(std::sync::Arc::new),
                    read_only: [None, Some(true), Some(false)][(i + j) % 3],
                    resource_arn: resource.clone(),
                    request_parameters: safe_request_parameters(
                        br#"{"SecretId":"db/pw","ClientRequestToken":"TOKEN-0123456789abcdef0123456789ab","SecretString":"MARK","Tags":[{"Key":"k","Value":"v"}]}"#,
                    ),
                    response_elements: (j != 0).then(|| {
                        json!({"ARN": "arn:x", "Name": "db/pw", "SecretString": "MARK",
                               "KeyMetadata": {"KeyId": "k1", "Arn": "arn:k", "Description": "d"}})
                    }),
                    decision: (i != 0).then(|| if failed { "ExplicitDeny" } else { "Allow" }.to_owned()),
                    decision_reason: failed.then(|| "denied by statement Deny1".to_owned()),
                    deciding_policy_type: (!failed).then(|| "IdentityPolicy".to_owned()),
                    policy_id: (!failed).then(|| "readers".to_owned()),
                    statement: (!failed).then(|| "0".to_owned()),
                    error_code: failed.then(|| "AccessDeniedException".to_owned()),
                    error_message: failed.then(|| "User: x is not \n authorized".to_owned()),
                    event_type: (j == 3).then(|| "AwsServiceEvent".to_owned()),
                    ..Draft::default()
                };
                for k in [None, Some(&keys)] {
                    let (text, index) = d.to_text("e-1", k);
                    let record: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(index, Index::of(&record), "principal {i}, resource {j}");
                    assert_eq!(record.to_string(), text, "members out of order");
                    n += 1;
                }
            }
        }
        assert_eq!(n, 48);
        // Times at and past the edges of what RFC 3339 can write: the index still holds what
        // the text says.
        for at in [
            0,
            -1,
            253_402_300_799_999,
            253_402_300_800_000,
            -62_135_596_800_000,
            -62_135_596_800_001,
            i64::MAX,
            i64::MIN,
        ] {
            let d = Draft {
                event_time_ms: at,
                ..Draft::default()
            };
            let (text, index) = d.to_text("e-1", None);
            let record: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(index, Index::of(&record), "{at}: {text}");
        }
    }

    fn golden_draft() -> Draft {
        let account = "111122223333";
        Draft {
            request_id: "req-1".into(),
            event_time_ms: 1_780_000_000_123,
            event_source: "secretsmanager.amazonaws.com".into(),
            event_name: "PutSecretValue".into(),
            region: "us-east-1".into(),
            source_ip: Some("127.0.0.1".into()),
            user_agent: Some("aws-cli/2 \"q\" \u{fc}".into()),
            principal: Some(std::sync::Arc::new(Principal {
                kind: PrincipalKind::AssumedRole,
                arn: format!("arn:aws:sts::{account}:assumed-role/deploy/ci-42"),
                user_id: "AROADEPLOY:ci-42".into(),
                access_key_id: "ASIATEMP".into(),
                role_arn: Some(format!("arn:aws:iam::{account}:role/deploy")),
                session: Some(crate::auth::SessionContext {
                    issuer: "sts".into(),
                    created_ms: 1_780_000_000_000,
                    expires_ms: 1_780_003_600_000,
                    policy: None,
                }),
                ..Principal::root(account, "AKIAROOT")
            })),
            read_only: Some(false),
            resource_arn: Some(format!(
                "arn:aws:secretsmanager:us-east-1:{account}:secret:db/pw-AbCdEf"
            )),
            request_parameters: safe_request_parameters(
                br#"{"SecretId":"db/pw","SecretString":"MARK","Tags":[{"Key":"k","Value":"v"}]}"#,
            ),
            response_elements: Some(
                json!({"ARN": "arn:x", "Name": "db/pw", "SecretString": "MARK"}),
            ),
            decision: Some("ExplicitDeny".into()),
            decision_reason: Some("denied by statement Deny1".into()),
            deciding_policy_type: Some("IdentityPolicy".into()),
            policy_id: Some("readers".into()),
            statement: Some("Deny1".into()),
            error_code: Some("AccessDeniedException".into()),
            error_message: Some("not \n authorized".into()),
            ..Draft::default()
        }
    }

    /// The record's text has its members in the order a `serde_json::Value` prints them
    /// (sorted by name, at every depth) and its values scrubbed. Its shape is checked against
    /// CloudTrail's documented record contents by the integration tests
    /// (`tests/it/audit.rs`, `cloudtrail_shape`).
    #[test]
    fn the_record_text_is_in_value_order_and_scrubbed() {
        let (text, _) = golden_draft().to_text("e-1", None);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.to_string(), text);
        assert!(!text.contains("MARK"));
        assert_eq!(
            v["responseElements"],
            json!({"arn": "arn:x", "name": "db/pw"})
        );
        assert_eq!(
            v["userIdentity"]["sessionContext"]["sessionIssuer"]["principalId"],
            "AROADEPLOY"
        );
    }

    /// Strings are escaped as `serde_json` escapes them: every ASCII character and a few
    /// others, at every position relative to the eight-byte steps.
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut specials: Vec<char> = (0_u8..0x80).map(char::from).collect();
        specials.extend(['é', '\u{2028}', '\u{ffff}', '😀', '\u{80}']);
        for c in specials {
            for at in 0..20 {
                for len in [at, at + 1, at + 9, 24] {
                    let mut s: String = "abcdefghijklmnopqrstuvwxyz".chars().take(at).collect();
                    s.push(c);
                    s.extend("0123456789ABCDEFGHIJKLM".chars().take(len - at));
                    let mut out = Text {
                        buf: String::new(),
                        nul: false,
                    };
                    push_json_str(&mut out, &s);
                    assert_eq!(out.buf, serde_json::to_string(&s).unwrap(), "{s:?}");
                    assert_eq!(out.nul, c == '\0', "{s:?}");
                }
            }
        }
        let all: String = (0_u8..0x80).map(char::from).collect::<String>().repeat(3);
        let mut out = Text {
            buf: String::new(),
            nul: false,
        };
        push_json_str(&mut out, &all);
        assert_eq!(out.buf, serde_json::to_string(&all).unwrap());
    }

    #[test]
    fn member_names_are_lower_camel_case() {
        for (k, want) in [
            ("SecretId", "secretId"),
            ("ARN", "arn"),
            ("Arn", "arn"),
            ("KMSKeyId", "kmsKeyId"),
            ("KmsKeyId", "kmsKeyId"),
            ("secretId", "secretId"),
            ("X", "x"),
            ("", ""),
            ("Éa", "éa"),
        ] {
            assert_eq!(lower_camel(k), want, "{k}");
            assert_eq!(lower_camel_cow(k), want, "{k}");
        }
        for k in ["ǅb", "éa", "1a", "_A", "a", "aB", "ABc"] {
            assert_eq!(lower_camel_cow(k), lower_camel(k), "{k}");
        }
        let camel: Vec<String> = SAFE_FIELDS.iter().map(|f| lower_camel(f)).collect();
        assert_eq!(camel, SAFE_FIELDS_CAMEL);
        let distinct: std::collections::BTreeSet<&str> =
            SAFE_FIELDS_CAMEL.iter().copied().collect();
        assert_eq!(distinct.len(), SAFE_FIELDS_CAMEL.len());
        // Every token field is a safe field (the recorded parameters' top level comes from
        // `SAFE_FIELDS` alone).
        assert!(HMAC_FIELDS.iter().all(|f| SAFE_FIELDS.contains(f)));
    }

    #[test]
    fn index_is_derived_from_the_record() {
        let d = Draft {
            event_name: "DescribeSecret".into(),
            event_source: "secretsmanager.amazonaws.com".into(),
            event_time_ms: 1_780_000_000_123,
            principal: Some(std::sync::Arc::new(Principal::root(
                "111122223333",
                "AKIAX",
            ))),
            resource_arn: Some(
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:db/pw-AbCdEf".into(),
            ),
            read_only: Some(true),
            decision: Some("Allow".into()),
            ..Draft::default()
        };
        let r = d.to_record("e1");
        assert_eq!(r["eventTime"], "2026-05-28T20:26:40.123Z");
        let i = Index::of(&r);
        assert_eq!(i.event_time, 1_780_000_000_123);
        assert_eq!(i.user_name.as_deref(), Some("root"));
        assert_eq!(i.account_id.as_deref(), Some("111122223333"));
        assert_eq!(i.resource_name.as_deref(), Some("db/pw"));
        assert_eq!(i.read_only, Some(true));
        assert_eq!(i.decision, "Allow");
        assert_eq!(resource_short_name("arn:aws:kms:r:1:key/abc"), "abc");
        assert_eq!(
            resource_short_name("arn:aws:secretsmanager:r:1:secret:plain"),
            "plain"
        );
    }
}
