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
    rfc3339_ms_direct(ms).unwrap_or_else(|| rfc3339_ms_by_time(ms))
}

/// [`rfc3339_ms`] for 1970-01-01 to 9999-12-31 (every record's time), written digit by digit
/// (days to a civil date as in Howard Hinnant's `civil_from_days`); `None` outside that range.
fn rfc3339_ms_direct(ms: i64) -> Option<String> {
    const END: i64 = 253_402_300_800_000; // 10000-01-01T00:00:00Z
    if !(0..END).contains(&ms) {
        return None;
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
    let mut out = String::with_capacity(24);
    push_digits(&mut out, year, 4);
    out.push('-');
    push_digits(&mut out, month, 2);
    out.push('-');
    push_digits(&mut out, day, 2);
    out.push('T');
    push_digits(&mut out, ms_of_day / 3_600_000, 2);
    out.push(':');
    push_digits(&mut out, ms_of_day / 60_000 % 60, 2);
    out.push(':');
    push_digits(&mut out, ms_of_day / 1000 % 60, 2);
    out.push('.');
    push_digits(&mut out, ms_of_day % 1000, 3);
    out.push('Z');
    Some(out)
}

/// The last `width` decimal digits of `n` (not negative), zero-padded.
fn push_digits(out: &mut String, n: i64, width: u32) {
    for i in (0..width).rev() {
        let digit = (n / 10_i64.pow(i)) % 10;
        out.push(char::from(b'0' + u8::try_from(digit).unwrap_or(0)));
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
    arn.split(':').nth(4).unwrap_or_default()
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

/// The record, serialized straight from borrowed fields (no `Value` tree to build and drop on
/// every request). Members sorted by name, the order in which a `serde_json::Value` object
/// prints them, so that every record of a chain has one format; a test holds the text to a
/// golden record.
#[derive(serde::Serialize)]
#[allow(non_snake_case, reason = "the fields are CloudTrail's member names")]
struct RecordOut<'a> {
    authorization: AuthorizationOut<'a>,
    awsRegion: &'a str,
    errorCode: Option<&'a str>,
    errorMessage: Option<&'a str>,
    eventCategory: &'static str,
    eventID: &'a str,
    eventName: &'a str,
    eventSource: &'a str,
    eventTime: String,
    eventType: &'a str,
    eventVersion: &'static str,
    managementEvent: bool,
    readOnly: Option<bool>,
    recipientAccountId: Option<&'a str>,
    requestID: &'a str,
    requestParameters: Value,
    resources: Vec<ResourceOut<'a>>,
    responseElements: Value,
    sourceIPAddress: Option<&'a str>,
    userAgent: Option<&'a str>,
    userIdentity: Option<UserIdentityOut<'a>>,
}

/// Who made the call: a principal, or (for a service event without one) the AWS service
/// that acted in the resource's account, as CloudTrail writes it
/// (`{"accountId": ..., "invokedBy": "secretsmanager.amazonaws.com"}`).
#[derive(serde::Serialize)]
#[serde(untagged)]
enum UserIdentityOut<'a> {
    Principal(IdentityOut<'a>),
    Service(ServiceIdentityOut<'a>),
}

#[derive(serde::Serialize)]
#[allow(non_snake_case, reason = "the fields are CloudTrail's member names")]
struct ServiceIdentityOut<'a> {
    accountId: &'a str,
    invokedBy: &'a str,
}

#[derive(serde::Serialize)]
#[allow(non_snake_case, reason = "the fields are CloudTrail's member names")]
struct AuthorizationOut<'a> {
    decidingPolicyType: Option<&'a str>,
    decision: Option<&'a str>,
    policyArnOrId: Option<&'a str>,
    reason: Option<&'a str>,
    statement: Option<&'a str>,
}

#[derive(serde::Serialize)]
#[allow(non_snake_case, reason = "the fields are CloudTrail's member names")]
struct ResourceOut<'a> {
    ARN: &'a str,
    accountId: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(serde::Serialize)]
#[allow(non_snake_case, reason = "the fields are CloudTrail's member names")]
struct IdentityOut<'a> {
    accessKeyId: &'a str,
    accountId: &'a str,
    arn: &'a str,
    principalId: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sessionContext: Option<SessionContextOut<'a>>,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    userName: Option<&'a str>,
}

#[derive(serde::Serialize)]
#[allow(non_snake_case, reason = "the fields are CloudTrail's member names")]
struct SessionContextOut<'a> {
    attributes: Option<SessionAttributesOut>,
    sessionIssuer: Option<IssuerOut<'a>>,
}

#[derive(serde::Serialize)]
#[allow(non_snake_case, reason = "the fields are CloudTrail's member names")]
struct SessionAttributesOut {
    creationDate: String,
    mfaAuthenticated: &'static str,
}

#[derive(serde::Serialize)]
#[allow(non_snake_case, reason = "the fields are CloudTrail's member names")]
struct IssuerOut<'a> {
    accountId: &'a str,
    arn: &'a str,
    principalId: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    userName: &'a str,
}

fn identity_kind(p: &Principal) -> &'static str {
    match p.kind {
        PrincipalKind::Root => "Root",
        PrincipalKind::User => "IAMUser",
        PrincipalKind::AssumedRole => "AssumedRole",
    }
}

impl Draft {
    /// The record's text and its query columns (what [`Index::of`] derives from that text),
    /// without building a `Value` tree: the path every request's record takes. Tokens are
    /// HMAC'd with `keys`, or left out without them.
    pub fn to_text(&self, event_id: &str, keys: Option<&AuditKeys>) -> (String, Index) {
        let event_time = rfc3339_ms(self.event_time_ms);
        let resource = self.resource_arn.as_deref().filter(|a| *a != "*");
        let response = if NO_RESPONSE.contains(&self.event_name.as_str()) {
            Value::Null
        } else {
            self.response_elements
                .as_ref()
                .map_or(Value::Null, safe_response_elements)
        };
        let principal_identity = self.principal.as_ref().map(|p| IdentityOut {
            accessKeyId: &p.access_key_id,
            accountId: &p.account_id,
            arn: &p.arn,
            principalId: &p.user_id,
            sessionContext: (p.kind == PrincipalKind::AssumedRole).then(|| SessionContextOut {
                attributes: p.session.as_ref().map(|s| SessionAttributesOut {
                    creationDate: rfc3339_ms(s.created_ms),
                    mfaAuthenticated: "false",
                }),
                sessionIssuer: p.role_arn.as_deref().map(|r| IssuerOut {
                    accountId: &p.account_id,
                    arn: r,
                    // The role's id: an assumed role's principal id is `ROLEID:session`.
                    principalId: p.user_id.split(':').next().unwrap_or_default(),
                    kind: "Role",
                    userName: r.rsplit('/').next().unwrap_or_default(),
                }),
            }),
            kind: identity_kind(p),
            userName: p.name.as_deref().filter(|_| p.kind == PrincipalKind::User),
        });
        let service_event = self.event_type.as_deref() == Some("AwsServiceEvent");
        // A service event of an AWS service (not the server's own housekeeping) on a resource:
        // the service, invoked in the resource's account.
        let service_account = resource
            .filter(|_| service_event && self.event_source.ends_with(".amazonaws.com"))
            .map(arn_account)
            .filter(|a| !a.is_empty());
        let identity = match (principal_identity, service_account) {
            (Some(i), _) => Some(UserIdentityOut::Principal(i)),
            (None, Some(account)) => Some(UserIdentityOut::Service(ServiceIdentityOut {
                accountId: account,
                invokedBy: &self.event_source,
            })),
            (None, None) => None,
        };
        let error_message = self.error_message.as_deref().map(bounded_message);
        let reason = self.decision_reason.as_deref().map(bounded_message);
        let out = RecordOut {
            authorization: AuthorizationOut {
                decidingPolicyType: self.deciding_policy_type.as_deref(),
                decision: self.decision.as_deref(),
                policyArnOrId: self.policy_id.as_deref(),
                reason: reason.as_deref(),
                statement: self.statement.as_deref(),
            },
            awsRegion: &self.region,
            errorCode: self.error_code.as_deref(),
            errorMessage: error_message.as_deref(),
            eventCategory: "Management",
            eventID: event_id,
            eventName: &self.event_name,
            eventSource: &self.event_source,
            eventTime: event_time,
            eventType: self.event_type.as_deref().unwrap_or("AwsApiCall"),
            eventVersion: "1.08",
            managementEvent: true,
            readOnly: self.read_only,
            // A service event (no caller) belongs to the account of the resource it concerns.
            recipientAccountId: self.principal.as_ref().map_or_else(
                || {
                    resource
                        .filter(|_| self.event_type.as_deref() == Some("AwsServiceEvent"))
                        .map(arn_account)
                        .filter(|a| !a.is_empty())
                },
                |p| Some(p.account_id.as_str()),
            ),
            requestID: &self.request_id,
            requestParameters: recorded_parameters(&self.request_parameters, keys),
            resources: resource
                .map(|arn| ResourceOut {
                    ARN: arn,
                    accountId: arn_account(arn),
                    kind: resource_type_of(arn),
                })
                .into_iter()
                .collect(),
            responseElements: scrubbed_camel(&response),
            sourceIPAddress: self.source_ip.as_deref(),
            userAgent: self.user_agent.as_deref(),
            userIdentity: identity,
        };
        // Serializing borrowed strings, a bool and `Value`s cannot fail.
        let text = serde_json::to_string(&out).unwrap_or_default();
        let ident = match &out.userIdentity {
            Some(UserIdentityOut::Principal(i)) => Some(i),
            _ => None,
        };
        let principal_arn = ident.map(|i| i.arn.to_owned());
        let last_segment = || {
            ident
                .and_then(|i| i.arn.rsplit('/').next())
                .map(str::to_owned)
        };
        let user_name = match ident.map(|i| i.kind) {
            Some("Root") => Some("root".to_owned()),
            Some("IAMUser") => ident
                .and_then(|i| i.userName)
                .map(str::to_owned)
                .or_else(last_segment),
            Some(_) => last_segment(),
            None => None,
        };
        let index = Index {
            event_id: event_id.to_owned(),
            // What `Index::of` reads back from `eventTime` (empty when out of range).
            event_time: if out.eventTime.is_empty() {
                0
            } else {
                self.event_time_ms
            },
            event_name: self.event_name.clone(),
            principal_arn,
            access_key_id: ident.map(|i| i.accessKeyId.to_owned()),
            source_ip: self.source_ip.clone(),
            resource_arn: resource.map(str::to_owned),
            error_code: self.error_code.clone(),
            decision: self.decision.clone().unwrap_or_else(|| "None".to_owned()),
            account_id: out.recipientAccountId.map(str::to_owned),
            event_source: Some(self.event_source.clone()),
            read_only: self.read_only,
            user_name,
            resource_type: resource.map(|a| resource_type_of(a).to_owned()),
            resource_name: resource.map(resource_short_name),
        }
        .without_nul();
        (text, index)
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
            if s.contains('\0') {
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
mod tests {
    use super::*;
    use serde_json::json;

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
        }
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
