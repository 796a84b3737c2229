//! The AWS Query protocol (STS, IAM): form-encoded requests, XML responses and errors.

use crate::error::ApiError;

/// Parsed form parameters, in order.
#[derive(Debug, Clone, Default)]
pub struct Form {
    pub params: Vec<(String, String)>,
}

impl Form {
    /// The first value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `Prefix.member.N` values in order (`Tags.member.1.Key` style lists use `get`).
    pub fn members(&self, prefix: &str) -> Vec<&str> {
        let mut out = vec![];
        for i in 1..=1000 {
            match self.get(&format!("{prefix}.member.{i}")) {
                Some(v) => out.push(v),
                None => break,
            }
        }
        out
    }
}

fn decode_component(s: &str) -> Result<String, ApiError> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| {
            ApiError::Validation("The request body is not valid form data (bad UTF-8).".into())
        })
}

/// Parse `application/x-www-form-urlencoded` bytes.
pub fn parse_form(body: &[u8]) -> Result<Form, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| {
        ApiError::Validation("The request body is not valid form data (bad UTF-8).".into())
    })?;
    let mut params = vec![];
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode_component(k)?, decode_component(v)?);
        // No Query-protocol parameter holds a NUL (text columns and XML cannot either).
        if k.contains('\0') || v.contains('\0') {
            return Err(ApiError::Validation(
                "The request contains the NUL character (U+0000).".into(),
            ));
        }
        params.push((k, v));
        if params.len() > 5000 {
            return Err(ApiError::Validation("Too many request parameters.".into()));
        }
    }
    Ok(Form { params })
}

/// Escape text for XML content.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\r' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// `<{action}Response xmlns=...><{action}Result>{result}</...><ResponseMetadata>...`.
pub fn response(namespace: &str, action: &str, result_xml: &str, request_id: &str) -> Vec<u8> {
    format!(
        "<{action}Response xmlns=\"{namespace}\">\n  <{action}Result>\n{result_xml}  </{action}Result>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n",
        xml_escape(request_id)
    )
    .into_bytes()
}

/// A Query-protocol answer from an operation's output: `<{action}Response>` with the output as
/// `<{action}Result>`, each member an element named as the output serializes it (PascalCase),
/// a nested structure as nested elements, a list as `<member>` elements, a missing (`None`)
/// member left out; then `ResponseMetadata`.
pub fn encode<T: serde::Serialize>(
    namespace: &str,
    action: &str,
    output: &T,
    request_id: &str,
) -> Result<Vec<u8>, ApiError> {
    let value = serde_json::to_value(output).map_err(ApiError::internal)?;
    let mut result = String::new();
    if let serde_json::Value::Object(members) = &value {
        for (name, v) in members {
            element(&mut result, name, v, 2);
        }
    }
    Ok(response(namespace, action, &result, request_id))
}

/// One member as XML, indented `depth` levels.
fn element(out: &mut String, name: &str, v: &serde_json::Value, depth: usize) {
    use serde_json::Value;
    let pad = "  ".repeat(depth);
    match v {
        Value::Null => {}
        Value::Object(members) => {
            out.push_str(&format!("{pad}<{name}>\n"));
            for (n, m) in members {
                element(out, n, m, depth + 1);
            }
            out.push_str(&format!("{pad}</{name}>\n"));
        }
        Value::Array(items) if items.is_empty() => out.push_str(&format!("{pad}<{name}/>\n")),
        Value::Array(items) => {
            out.push_str(&format!("{pad}<{name}>\n"));
            for item in items {
                element(out, "member", item, depth + 1);
            }
            out.push_str(&format!("{pad}</{name}>\n"));
        }
        Value::String(text) => {
            out.push_str(&format!("{pad}<{name}>{}</{name}>\n", xml_escape(text)))
        }
        Value::Bool(b) => out.push_str(&format!("{pad}<{name}>{b}</{name}>\n")),
        Value::Number(n) => out.push_str(&format!("{pad}<{name}>{n}</{name}>\n")),
    }
}

/// The Query protocol's code and status for an error.
pub fn error_code(e: &ApiError) -> (&'static str, u16) {
    match e {
        ApiError::AccessDenied(_) => ("AccessDenied", 403),
        ApiError::UnrecognizedClient(_) => ("InvalidClientTokenId", 403),
        ApiError::InvalidSignature(_) => ("SignatureDoesNotMatch", 403),
        ApiError::IncompleteSignature(_) => ("IncompleteSignature", 400),
        ApiError::MissingAuthenticationToken(_) => ("MissingAuthenticationToken", 403),
        ApiError::ExpiredToken(_) => ("ExpiredToken", 400),
        ApiError::Validation(_) | ApiError::InvalidParameter(_) => ("ValidationError", 400),
        ApiError::MalformedPolicyDocument(_) => ("MalformedPolicyDocument", 400),
        ApiError::InvalidIdentityToken(_) => ("InvalidIdentityToken", 400),
        ApiError::IdentityTokenExpired(_) => ("ExpiredTokenException", 400),
        ApiError::IdpRejectedClaim(_) => ("IDPRejectedClaim", 403),
        ApiError::PackedPolicyTooLarge(_) => ("PackedPolicyTooLarge", 400),
        ApiError::NoSuchEntity(_) => ("NoSuchEntity", 404),
        ApiError::UnknownOperation(_) => ("InvalidAction", 400),
        ApiError::NotImplemented(_) => ("NotImplemented", 501),
        ApiError::Internal(_) => ("InternalFailure", 500),
        other => (other.code(), other.status()),
    }
}

/// The XML error body.
pub fn error_body(namespace: &str, e: &ApiError, request_id: &str) -> (u16, Vec<u8>) {
    let (code, status) = error_code(e);
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse xmlns=\"{namespace}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{code}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        xml_escape(e.message()),
        xml_escape(request_id)
    );
    (status, body.into_bytes())
}

/// Query parameters that may be recorded as given (never tokens, secrets or policies).
pub fn safe_parameters(form: &Form) -> serde_json::Value {
    const SAFE: &[&str] = &[
        "Action",
        "Version",
        "RoleArn",
        "RoleSessionName",
        "DurationSeconds",
        "ExternalId",
        "PolicySourceArn",
        "OpenIDConnectProviderArn",
        "ActionNames.member.1",
        "ResourceArns.member.1",
    ];
    serde_json::Value::Object(
        form.params
            .iter()
            .filter(|(k, _)| SAFE.contains(&k.as_str()))
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::Value::String(v.chars().take(512).collect()),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let f = parse_form(b"Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&RoleSessionName=a+b&Tags.member.1.Key=k").unwrap();
        assert_eq!(f.get("Action"), Some("AssumeRole"));
        assert_eq!(f.get("RoleArn"), Some("arn:aws:iam::1:role/r"));
        assert_eq!(f.get("RoleSessionName"), Some("a b"));
        assert!(parse_form(&[0xff]).is_err());
        assert!(parse_form(b"a=%ff").is_err());
        let f = parse_form(b"PolicyArns.member.1=x&PolicyArns.member.2=y").unwrap();
        assert_eq!(f.members("PolicyArns"), vec!["x", "y"]);
    }

    #[test]
    fn encoded_outputs() {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Inner {
            arn: String,
            gone: Option<String>,
        }
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Out {
            user: Inner,
            names: Vec<String>,
            none: Vec<String>,
            truncated: bool,
            size: u32,
        }
        let out = Out {
            user: Inner {
                arn: "a<b".into(),
                gone: None,
            },
            names: vec!["x".into(), "y".into()],
            none: vec![],
            truncated: false,
            size: 0,
        };
        let body = String::from_utf8(encode("ns", "Op", &out, "r1").unwrap()).unwrap();
        assert!(
            body.starts_with("<OpResponse xmlns=\"ns\">\n  <OpResult>\n"),
            "{body}"
        );
        assert!(
            body.contains("    <User>\n      <Arn>a&lt;b</Arn>\n    </User>\n"),
            "{body}"
        );
        assert!(!body.contains("Gone"), "{body}");
        assert!(
            body.contains(
                "    <Names>\n      <member>x</member>\n      <member>y</member>\n    </Names>\n"
            ),
            "{body}"
        );
        assert!(body.contains("    <None/>\n"), "{body}");
        assert!(body.contains("<Truncated>false</Truncated>"), "{body}");
        assert!(body.contains("<Size>0</Size>"), "{body}");
        assert!(body.contains("<RequestId>r1</RequestId>"), "{body}");
    }

    #[test]
    fn xml() {
        assert_eq!(xml_escape("<a & 'b'>"), "&lt;a &amp; &apos;b&apos;&gt;");
        let (status, body) = error_body("ns", &ApiError::AccessDenied("no <way>".into()), "r1");
        assert_eq!(status, 403);
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains("<Code>AccessDenied</Code>"));
        assert!(body.contains("no &lt;way&gt;"));
    }
}
