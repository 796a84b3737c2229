//! The AWS JSON 1.1 wire: which service and operation a request names, how its body is read,
//! and how errors are written. No business rules.
//!
//! May depend on: `error`. Never on `store`, `policy` or actix.

pub mod query;

use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The services this endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    SecretsManager,
    Kms,
    CloudTrail,
    Sts,
    Iam,
    /// AWS Organizations' reads of the organization declared in the principals directory.
    Organizations,
    /// Strongroom's own operations (`Strongroom.<Operation>`, actions `strongroom:*`).
    Strongroom,
}

impl Service {
    /// The SigV4 signing name (`secretsmanager`, `kms`).
    pub fn signing_name(self) -> &'static str {
        match self {
            Self::SecretsManager => "secretsmanager",
            Self::Kms => "kms",
            Self::CloudTrail => "cloudtrail",
            Self::Sts => "sts",
            Self::Iam => "iam",
            Self::Organizations => "organizations",
            Self::Strongroom => "strongroom",
        }
    }

    /// CloudTrail's `eventSource`.
    pub fn event_source(self) -> &'static str {
        match self {
            Self::SecretsManager => "secretsmanager.amazonaws.com",
            Self::Kms => "kms.amazonaws.com",
            Self::CloudTrail => "cloudtrail.amazonaws.com",
            Self::Sts => "sts.amazonaws.com",
            Self::Iam => "iam.amazonaws.com",
            Self::Organizations => "organizations.amazonaws.com",
            // The source of the server's own events (policy reloads, retention) too.
            Self::Strongroom => "strongroom.local",
        }
    }
}

/// Whether a request speaks the Query protocol (form body, no `X-Amz-Target`): STS and IAM.
pub fn is_query(target: Option<&str>, content_type: Option<&str>) -> bool {
    target.is_none()
        && content_type.is_some_and(|c| {
            c.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// The Query-protocol service a SigV4 signing name selects.
pub fn query_service(signing_name: &str) -> Option<Service> {
    match signing_name {
        "sts" => Some(Service::Sts),
        "iam" => Some(Service::Iam),
        _ => None,
    }
}

/// The Query-protocol service of an action, for a request with no credential scope to say
/// it (`Authorization: Bearer`): STS's actions, and IAM's for every other.
pub fn query_service_of_action(action: &str) -> Service {
    const STS: &[&str] = &[
        "AssumeRole",
        "AssumeRoleWithSAML",
        "AssumeRoleWithWebIdentity",
        "DecodeAuthorizationMessage",
        "GetAccessKeyInfo",
        "GetCallerIdentity",
        "GetFederationToken",
        "GetSessionToken",
    ];
    if STS.contains(&action) {
        Service::Sts
    } else {
        Service::Iam
    }
}

impl Service {
    /// The XML namespace of a Query-protocol service.
    pub fn xml_namespace(self) -> &'static str {
        match self {
            Self::Iam => "https://iam.amazonaws.com/doc/2010-05-08/",
            _ => "https://sts.amazonaws.com/doc/2011-06-15/",
        }
    }
}

/// Split `X-Amz-Target: secretsmanager.GetSecretValue` into service and operation name.
pub fn decode_target(target: Option<&str>) -> Result<(Service, String), ApiError> {
    let t = target.ok_or_else(|| {
        ApiError::UnknownOperation("Missing X-Amz-Target header: no operation was named.".into())
    })?;
    let (prefix, op) = t.rsplit_once('.').ok_or_else(|| unknown(t))?;
    let service = match prefix {
        "secretsmanager" => Service::SecretsManager,
        "TrentService" => Service::Kms,
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101" => Service::CloudTrail,
        "AWSOrganizationsV20161128" => Service::Organizations,
        "Strongroom" => Service::Strongroom,
        _ => return Err(unknown(t)),
    };
    if op.is_empty() || op.len() > 64 || !op.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(unknown(t));
    }
    Ok((service, op.to_owned()))
}

fn unknown(t: &str) -> ApiError {
    let shown: String = t.chars().take(128).collect();
    ApiError::UnknownOperation(format!(
        "The operation `{shown}` is not known to this server."
    ))
}

/// Accept the JSON content types the SDKs send.
pub fn check_content_type(ct: Option<&str>) -> Result<(), ApiError> {
    match ct.map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }) {
        None => Ok(()),
        Some(c)
            if c == "application/x-amz-json-1.1"
                || c == "application/x-amz-json-1.0"
                || c == "application/json" =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::Serialization(
            "Content-Type must be application/x-amz-json-1.1.".into(),
        )),
    }
}

/// Maximum nesting accepted in a request body (AWS inputs are shallow).
const MAX_DEPTH: usize = 32;

fn too_deep(body: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Parse a request body into an operation's input. An empty body is `{}`.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    if std::str::from_utf8(body).is_err() {
        return Err(ApiError::Serialization(
            "The request body is not valid UTF-8.".into(),
        ));
    }
    if too_deep(body) {
        return Err(ApiError::Serialization(
            "The request body is nested too deeply.".into(),
        ));
    }
    refuse_nul(body)?;
    serde_json::from_slice(body).map_err(|e| {
        let shown: String = redact_serde(&e).chars().take(200).collect();
        ApiError::Serialization(format!("Failed to read the request body: {shown}"))
    })
}

/// Refuse a NUL character (`\u0000`) anywhere in a JSON body but in a secret's value
/// (`SecretString`): names, descriptions, tokens, tags, ARNs and policies are stored as text,
/// which PostgreSQL cannot hold with a NUL (the write would fail as a server error), and no
/// AWS identifier contains one. Only a body whose text has the escape is parsed twice.
fn refuse_nul(body: &[u8]) -> Result<(), ApiError> {
    fn has_nul(v: &serde_json::Value, top: bool) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(|i| has_nul(i, false)),
            serde_json::Value::Object(m) => m.iter().any(|(k, v)| {
                k.contains('\0') || (!(top && k == "SecretString") && has_nul(v, false))
            }),
            _ => false,
        }
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Ok(());
    };
    if !text.contains("\\u0000") {
        return Ok(());
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) if has_nul(&v, true) => Err(ApiError::Validation(
            "1 validation error detected: the request contains the NUL character (U+0000), which only a SecretString may hold.".into(),
        )),
        _ => Ok(()),
    }
}

/// serde_json's message without any value the request carried: it quotes strings (`"..."`)
/// and back-quotes numbers, booleans, variants and field names (`` `...` ``), so the text
/// is cut at the first quote of either kind and the position is added from the error
/// itself. The message is sent to the client and stored in the audit record: a secret value
/// sent with the wrong JSON type must appear in neither.
fn redact_serde(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let Some(i) = msg.find(['"', '`']) else {
        return msg;
    };
    let (head, _) = msg.split_at(i);
    if e.line() == 0 {
        format!("{head}(value hidden)")
    } else {
        format!(
            "{head}(value hidden) at line {} column {}",
            e.line(),
            e.column()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            decode_target(Some("secretsmanager.GetSecretValue")).unwrap(),
            (Service::SecretsManager, "GetSecretValue".to_owned())
        );
        assert_eq!(
            decode_target(Some("TrentService.CreateKey")).unwrap().0,
            Service::Kms
        );
        for bad in [
            "",
            "secretsmanager",
            "s3.GetObject",
            "secretsmanager.",
            "secretsmanager.a.b",
        ] {
            assert_eq!(
                decode_target(Some(bad)).unwrap_err().code(),
                "UnknownOperationException",
                "{bad}"
            );
        }
        assert_eq!(
            decode_target(None).unwrap_err().code(),
            "UnknownOperationException"
        );
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        #[expect(dead_code, reason = "only parsed")]
        secret_id: Option<String>,
    }

    #[test]
    fn bodies() {
        assert!(parse_body::<In>(b"").is_ok());
        assert!(parse_body::<In>(b"{\"SecretId\":\"a\"}").is_ok());
        let e = parse_body::<In>(b"{\"SecretId\":5}").unwrap_err();
        assert_eq!(e.code(), "SerializationException");
        assert_eq!(
            parse_body::<In>(b"{\"Secr").unwrap_err().code(),
            "SerializationException"
        );
        assert_eq!(
            parse_body::<In>(&[0xff, 0xfe]).unwrap_err().code(),
            "SerializationException"
        );
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            parse_body::<In>(deep.as_bytes()).unwrap_err().code(),
            "SerializationException"
        );
        let e = parse_body::<In>(b"{\"SecretId\":[\"MARKER\"]}").unwrap_err();
        assert!(!e.message().contains("MARKER"));
        for body in [
            &b"{\"SecretId\":987654321}"[..],
            b"{\"SecretId\":98765.4321}",
            b"{\"SecretId\":-987654321}",
            b"{\"SecretId\":true}",
            b"{\"SecretId\":{\"MARKER\":1}}",
        ] {
            let e = parse_body::<In>(body).unwrap_err();
            let m = e.message();
            for leaked in ["987654321", "98765", "4321", "true", "MARKER", "`", "\""] {
                assert!(!m.contains(leaked), "{m}");
            }
            assert!(m.contains(" at line 1 column "), "{m}");
        }
    }
}
