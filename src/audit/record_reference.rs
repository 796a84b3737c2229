//! The record builder as it was before the record text was written straight into one buffer,
//! kept verbatim (test builds only) as the reference that `record.rs`'s tests hold every
//! record's text and columns to, byte for byte.

#![allow(
    clippy::all,
    clippy::pedantic,
    reason = "the builder kept verbatim, as the reference"
)]

use serde_json::{Map, Value};

use super::Draft;
use super::{
    resource_short_name, Index, HMAC_FIELDS, NEVER, NO_RESPONSE, RESPONSE_FIELDS, SAFE_FIELDS,
};
use crate::audit::keys::AuditKeys;
use crate::auth::{Principal, PrincipalKind};

const MAX_RECORDED_MESSAGE: usize = 8 * 1024;

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

fn rfc3339_ms(ms: i64) -> String {
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

/// The record's text and its columns, as the builder before wrote them.
pub(super) fn to_text(draft: &Draft, event_id: &str, keys: Option<&AuditKeys>) -> (String, Index) {
    let this = draft;
    let event_time = rfc3339_ms(this.event_time_ms);
    let resource = this.resource_arn.as_deref().filter(|a| *a != "*");
    let response = if NO_RESPONSE.contains(&this.event_name.as_str()) {
        Value::Null
    } else {
        this.response_elements
            .as_ref()
            .map_or(Value::Null, safe_response_elements)
    };
    let principal_identity = this.principal.as_ref().map(|p| IdentityOut {
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
    let service_event = this.event_type.as_deref() == Some("AwsServiceEvent");
    // A service event of an AWS service (not the server's own housekeeping) on a resource:
    // the service, invoked in the resource's account.
    let service_account = resource
        .filter(|_| service_event && this.event_source.ends_with(".amazonaws.com"))
        .map(arn_account)
        .filter(|a| !a.is_empty());
    let identity = match (principal_identity, service_account) {
        (Some(i), _) => Some(UserIdentityOut::Principal(i)),
        (None, Some(account)) => Some(UserIdentityOut::Service(ServiceIdentityOut {
            accountId: account,
            invokedBy: &this.event_source,
        })),
        (None, None) => None,
    };
    let error_message = this.error_message.as_deref().map(bounded_message);
    let reason = this.decision_reason.as_deref().map(bounded_message);
    let out = RecordOut {
        authorization: AuthorizationOut {
            decidingPolicyType: this.deciding_policy_type.as_deref(),
            decision: this.decision.as_deref(),
            policyArnOrId: this.policy_id.as_deref(),
            reason: reason.as_deref(),
            statement: this.statement.as_deref(),
        },
        awsRegion: &this.region,
        errorCode: this.error_code.as_deref(),
        errorMessage: error_message.as_deref(),
        eventCategory: "Management",
        eventID: event_id,
        eventName: &this.event_name,
        eventSource: &this.event_source,
        eventTime: event_time,
        eventType: this.event_type.as_deref().unwrap_or("AwsApiCall"),
        eventVersion: "1.08",
        managementEvent: true,
        readOnly: this.read_only,
        // A service event (no caller) belongs to the account of the resource it concerns.
        recipientAccountId: this.principal.as_ref().map_or_else(
            || {
                resource
                    .filter(|_| this.event_type.as_deref() == Some("AwsServiceEvent"))
                    .map(arn_account)
                    .filter(|a| !a.is_empty())
            },
            |p| Some(p.account_id.as_str()),
        ),
        requestID: &this.request_id,
        requestParameters: recorded_parameters(&this.request_parameters, keys),
        resources: resource
            .map(|arn| ResourceOut {
                ARN: arn,
                accountId: arn_account(arn),
                kind: resource_type_of(arn),
            })
            .into_iter()
            .collect(),
        responseElements: scrubbed_camel(&response),
        sourceIPAddress: this.source_ip.as_deref(),
        userAgent: this.user_agent.as_deref(),
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
            this.event_time_ms
        },
        event_name: this.event_name.clone(),
        principal_arn,
        access_key_id: ident.map(|i| i.accessKeyId.to_owned()),
        source_ip: this.source_ip.clone(),
        resource_arn: resource.map(str::to_owned),
        error_code: this.error_code.clone(),
        decision: this.decision.clone().unwrap_or_else(|| "None".to_owned()),
        account_id: out.recipientAccountId.map(str::to_owned),
        event_source: Some(this.event_source.clone()),
        read_only: this.read_only,
        user_name,
        resource_type: resource.map(|a| resource_type_of(a).to_owned()),
        resource_name: resource.map(resource_short_name),
    }
    .without_nul();
    (text, index)
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
