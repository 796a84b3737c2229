//! The `webhook` kind of rotation function: one HTTPS POST per step of the Lambda event
//! (`{"SecretId","ClientRequestToken","Step","RotationToken"}`, plus the execution role's
//! temporary credentials, the region and the endpoint when the function file opts in with
//! `IncludeCredentials`), signed so that the receiver can authenticate it and refuse a
//! replay:
//!
//! ```text
//! X-Strongroom-Timestamp: <Unix seconds>
//! X-Strongroom-Signature: sha256=<hex HMAC-SHA256(key, "<timestamp>.<body>")>
//! ```
//!
//! (the scheme of GitHub's `X-Hub-Signature-256`, with the timestamp signed as Stripe and
//! Standard Webhooks do). A 2xx answer is the step's success; any other status fails the
//! step with the answer's body (the engine redacts and truncates it); the function's timeout
//! bounds the whole exchange. TLS verifies the receiver's certificate and host name against
//! the function's `TlsCaFile` or the system's roots; plain http only to 127.0.0.1 when the
//! file opts in.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::identity::{RotationFunction, Webhook};
use crate::ops::sts::Credentials;

use super::command::Outcome;

/// The signature's header.
pub const SIGNATURE_HEADER: &str = "X-Strongroom-Signature";
/// The signed timestamp's header.
pub const TIMESTAMP_HEADER: &str = "X-Strongroom-Timestamp";
/// The largest answer read from a receiver.
const MAX_RESPONSE: u64 = 64 * 1024;
/// Connecting gives up after this (or the function's timeout, if shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What one step sends besides the event.
#[derive(Debug)]
pub struct Call<'a> {
    pub event: serde_json::Value,
    pub creds: &'a Credentials,
    pub region: &'a str,
    pub endpoint: &'a str,
}

/// `hex(HMAC-SHA256(key, "<timestamp>.<body>"))`, as `X-Strongroom-Signature` carries it
/// after `sha256=`.
pub fn signature(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length: the error cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The body of one step's POST.
fn body(hook: &Webhook, call: &Call<'_>) -> Zeroizing<Vec<u8>> {
    let mut event = call.event.clone();
    if hook.include_credentials {
        if let Some(m) = event.as_object_mut() {
            m.insert(
                "Credentials".into(),
                serde_json::json!({
                    "AccessKeyId": call.creds.access_key_id,
                    "SecretAccessKey": call.creds.secret_access_key,
                    "SessionToken": call.creds.session_token,
                    "Expiration": call.creds.expiration,
                }),
            );
            m.insert("Region".into(), call.region.into());
            m.insert("Endpoint".into(), call.endpoint.into());
        }
    }
    let text = Zeroizing::new(event.to_string());
    if let Some(m) = event.as_object_mut() {
        if let Some(serde_json::Value::Object(c)) = m.get_mut("Credentials") {
            for v in c.values_mut() {
                if let serde_json::Value::String(s) = v {
                    zeroize::Zeroize::zeroize(s);
                }
            }
        }
    }
    Zeroizing::new(text.as_bytes().to_vec())
}

/// POST one step's event to `function`'s receiver; the future resolves when it answers, fails
/// or the function's timeout passes.
pub async fn invoke(function: &RotationFunction, hook: &Webhook, call: Call<'_>) -> Outcome {
    let timeout = function.timeout;
    let tls = if hook.tls {
        match crate::replication::client::tls_config_named(
            function.tls_ca_file.as_deref(),
            "the TlsCaFile",
        ) {
            Ok(c) => Some(c),
            Err(e) => {
                return Outcome {
                    failure: Some(e),
                    output: String::new(),
                }
            }
        }
    } else {
        None
    };
    let body = body(hook, &call);
    let hook = hook.clone();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let run = tokio::task::spawn_blocking(move || post(&hook, tls, &body, now, timeout));
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok(Ok((status, _)))) if (200..300).contains(&status) => Outcome {
            failure: None,
            output: String::new(),
        },
        Ok(Ok(Ok((status, answer)))) => Outcome {
            failure: Some(format!("the webhook answered HTTP {status}")),
            output: answer,
        },
        Ok(Ok(Err(e))) => Outcome {
            failure: Some(e),
            output: String::new(),
        },
        Ok(Err(_)) => Outcome {
            failure: Some("the webhook's sender stopped".into()),
            output: String::new(),
        },
        Err(_) => Outcome {
            failure: Some(format!("timed out after {} seconds", timeout.as_secs())),
            output: String::new(),
        },
    }
}

/// The receiver as failure messages name it (scheme, host and port: never the path or
/// query, which may carry the receiver's own token).
fn origin(hook: &Webhook) -> String {
    let scheme = if hook.tls { "https" } else { "http" };
    format!("{scheme}://{}:{}", hook.host, hook.port)
}

/// Blocking: send the POST, read the answer. `Ok((status, body))` or why no answer came.
fn post(
    hook: &Webhook,
    tls: Option<Arc<rustls::ClientConfig>>,
    body: &[u8],
    now: i64,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let host_header = if (hook.tls && hook.port == 443) || (!hook.tls && hook.port == 80) {
        bracketed(&hook.host)
    } else {
        format!("{}:{}", bracketed(&hook.host), hook.port)
    };
    let mut request = Zeroizing::new(Vec::with_capacity(body.len().saturating_add(512)));
    request.extend_from_slice(
        format!(
            "POST {} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: application/json\r\nUser-Agent: strongroom-rotation\r\n{TIMESTAMP_HEADER}: {now}\r\n{SIGNATURE_HEADER}: sha256={}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            hook.path,
            signature(hook.key.expose(), now, body),
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    let at = origin(hook);
    let addr = (hook.host.as_str(), hook.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve the webhook's host {}: {e}", hook.host))?
        .next()
        .ok_or_else(|| format!("cannot resolve the webhook's host {}", hook.host))?;
    let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT.min(timeout))
        .map_err(|e| format!("cannot connect to the webhook at {at}: {e}"))?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let mut raw = Vec::new();
    match tls {
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from(hook.host.clone())
                .map_err(|e| format!("`{}` is not a server name: {e}", hook.host))?;
            let conn = rustls::ClientConnection::new(config, name)
                .map_err(|e| format!("TLS to the webhook at {at}: {e}"))?;
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            stream
                .write_all(&request)
                .map_err(|e| format!("sending to the webhook at {at}: {e}"))?;
            read_all(&mut stream, &mut raw, &at)?;
        }
        None => {
            let mut stream = tcp;
            stream
                .write_all(&request)
                .map_err(|e| format!("sending to the webhook at {at}: {e}"))?;
            read_all(&mut stream, &mut raw, &at)?;
        }
    }
    crate::replication::client::parse(&raw)
        .map(|a| (a.status, a.body))
        .ok_or_else(|| format!("malformed answer from the webhook at {at}"))
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn read_all(r: &mut impl Read, out: &mut Vec<u8>, at: &str) -> Result<(), String> {
    match r.take(MAX_RESPONSE).read_to_end(out) {
        Ok(_) => Ok(()),
        // A TLS receiver closing without close_notify after a complete answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => Ok(()),
        Err(e) => Err(format!("reading from the webhook at {at}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::signature;
    use crate::identity::Webhook;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let key = b"0123456789abcdef0123456789abcdef";
        let s = signature(key, 1_700_000_000, br#"{"Step":"createSecret"}"#);
        assert_eq!(s.len(), 64);
        assert_ne!(
            s,
            signature(key, 1_700_000_001, br#"{"Step":"createSecret"}"#)
        );
        assert_ne!(
            s,
            signature(key, 1_700_000_000, br#"{"Step":"finishSecret"}"#)
        );
        assert_ne!(
            s,
            signature(
                b"another key of thirty-two bytes!",
                1_700_000_000,
                br#"{"Step":"createSecret"}"#
            )
        );
    }

    #[test]
    fn webhook_urls_are_https_or_loopback_http_when_allowed() {
        let ok = |u: &str, plain: bool| Webhook::parse_url(u, plain);
        assert_eq!(
            ok("https://hooks.example.com/rotate?x=1", false).unwrap(),
            (true, "hooks.example.com".into(), 443, "/rotate?x=1".into())
        );
        assert_eq!(
            ok("https://10.0.0.5:8443", false).unwrap(),
            (true, "10.0.0.5".into(), 8443, "/".into())
        );
        assert_eq!(
            ok("https://[::1]:8443/h", false).unwrap(),
            (true, "::1".into(), 8443, "/h".into())
        );
        assert_eq!(
            ok("http://127.0.0.1:9000/hook", true).unwrap(),
            (false, "127.0.0.1".into(), 9000, "/hook".into())
        );
        for (bad, plain) in [
            ("http://127.0.0.1:9000/hook", false),
            ("http://hooks.example.com/hook", true),
            ("ftp://hooks.example.com", false),
            ("https://user:pw@hooks.example.com/", false),
            ("https://hooks.example.com:0/", false),
            ("https:///path", false),
            ("https://hooks.example.com/a b", false),
            ("https://a:b:c/", false),
            ("https://[::1/", false),
            ("https://hooks.example.com:99999/", false),
        ] {
            assert!(ok(bad, plain).is_err(), "{bad}");
        }
    }
}
