//! The primary's client of a peer's apply operation: one HTTP/1.1 POST per delivery over
//! TLS (or plain TCP to 127.0.0.1 when allowed for tests), signed with SigV4 by the
//! replication principal. Blocking; the worker runs it on the blocking pool.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{Peer, PeerCredentials, APPLY_OPERATION};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest answer read from a peer.
const MAX_RESPONSE: u64 = 1 << 20;

/// What the peer answered: its HTTP status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Why no answer came (connection, TLS, malformed response).
#[derive(Debug)]
pub struct Transport(pub String);

/// The TLS settings for the peers: the CA file's certificates, or the system's.
pub fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read --peer-ca `{}`: {e}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("--peer-ca `{}`: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("--peer-ca `{}`: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "--peer-ca `{}` holds no certificate",
                    path.display()
                ));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// POST `body` to `peer`'s apply operation in its region.
pub fn post(
    peer: &Peer,
    tls: &Arc<rustls::ClientConfig>,
    creds: &PeerCredentials,
    body: &[u8],
    now: time::OffsetDateTime,
) -> Result<Answer, Transport> {
    let host_header = if (peer.tls && peer.port == 443) || (!peer.tls && peer.port == 80) {
        peer.host.clone()
    } else {
        format!("{}:{}", peer.host, peer.port)
    };
    let target = format!("secretsmanager.{APPLY_OPERATION}");
    let content_type = "application/x-amz-json-1.1";
    let authorization = sign(
        creds,
        &peer.region,
        &[
            ("content-type", content_type),
            ("host", &host_header),
            ("x-amz-date", &amz_date(now)),
            ("x-amz-target", &target),
        ],
        body,
        now,
    );
    let mut request = Zeroizing::new(Vec::with_capacity(body.len().saturating_add(1024)));
    request.extend_from_slice(
        format!(
            "POST / HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: {content_type}\r\nX-Amz-Date: {}\r\nX-Amz-Target: {target}\r\nAuthorization: {authorization}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            amz_date(now),
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    let addr = (peer.host.as_str(), peer.port)
        .to_socket_addrs()
        .map_err(|e| Transport(format!("cannot resolve {}: {e}", peer.host)))?
        .next()
        .ok_or_else(|| Transport(format!("cannot resolve {}", peer.host)))?;
    let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| Transport(format!("cannot connect to {}: {e}", peer.url())))?;
    let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
    let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
    let mut raw = Vec::new();
    if peer.tls {
        let name = rustls::pki_types::ServerName::try_from(peer.host.clone())
            .map_err(|e| Transport(format!("`{}` is not a server name: {e}", peer.host)))?;
        let conn = rustls::ClientConnection::new(Arc::clone(tls), name)
            .map_err(|e| Transport(format!("TLS to {}: {e}", peer.url())))?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        stream
            .write_all(&request)
            .map_err(|e| Transport(format!("sending to {}: {e}", peer.url())))?;
        read_all(&mut stream, &mut raw, peer)?;
    } else {
        let mut stream = tcp;
        stream
            .write_all(&request)
            .map_err(|e| Transport(format!("sending to {}: {e}", peer.url())))?;
        read_all(&mut stream, &mut raw, peer)?;
    }
    parse(&raw).ok_or_else(|| Transport(format!("malformed answer from {}", peer.url())))
}

fn read_all(r: &mut impl Read, out: &mut Vec<u8>, peer: &Peer) -> Result<(), Transport> {
    match r.take(MAX_RESPONSE).read_to_end(out) {
        Ok(_) => Ok(()),
        // A TLS peer closing without close_notify after a complete answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => Ok(()),
        Err(e) => Err(Transport(format!("reading from {}: {e}", peer.url()))),
    }
}

/// An HTTP/1.1 answer's status and body (chunked or not); `None` when malformed.
pub(crate) fn parse(raw: &[u8]) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(raw.get(..split)?).ok()?;
    let mut body = raw.get(split.saturating_add(4)..)?.to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Some(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(data.get(..eol)?).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = data.get(eol.saturating_add(2)..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size.saturating_add(2)..)?;
    }
}

fn amz_date(now: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    now.format(&fmt).unwrap_or_default()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: the error cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The SigV4 `Authorization` header of a POST / with `headers` (lowercase names, sorted).
fn sign(
    creds: &PeerCredentials,
    region: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    now: time::OffsetDateTime,
) -> String {
    let stamp = amz_date(now);
    let date = stamp.get(..8).unwrap_or_default();
    let mut canonical = String::from("POST\n/\n\n");
    for (n, v) in headers {
        canonical.push_str(&format!("{n}:{}\n", v.trim()));
    }
    let signed: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
    let signed = signed.join(";");
    canonical.push_str(&format!(
        "\n{signed}\n{}",
        hex::encode(Sha256::digest(body))
    ));
    let scope = format!("{date}/{region}/secretsmanager/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_secret = Zeroizing::new(format!("AWS4{}", creds.secret_access_key.as_str()));
    let k_date = Zeroizing::new(hmac(k_secret.as_bytes(), date.as_bytes()));
    let k_region = Zeroizing::new(hmac(&k_date, region.as_bytes()));
    let k_service = Zeroizing::new(hmac(&k_region, b"secretsmanager"));
    let k_signing = Zeroizing::new(hmac(&k_service, b"aws4_request"));
    let signature = hex::encode(hmac(&k_signing, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        creds.access_key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_plain_answers_parse() {
        let a = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((a.status, a.body.as_str()), (200, "{}"));
        let a = parse(b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!((a.status, a.body.as_str()), (400, "abcde"));
        assert!(parse(b"garbage").is_none());
    }
}
