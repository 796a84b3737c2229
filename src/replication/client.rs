//! The primary's client of a peer's apply operation: HTTP/1.1 POSTs over TLS (or plain TCP
//! to 127.0.0.1 when allowed for tests), signed with SigV4 by the replication principal.
//! Blocking; the worker runs it on the blocking pool.
//!
//! Connections are kept alive and reused through a [`Pool`] (a delivery costs one request,
//! not a TCP and TLS handshake); a new TLS connection resumes the session cached in the
//! shared `ClientConfig`. An idle connection is reused for at most [`IDLE_FOR`], below the
//! peer's keep-alive timeout; a request on a reused connection that fails before a complete
//! answer is sent once more on a new connection (the peer applies a change at most once,
//! by its sequence number, so a repeat is harmless).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{Peer, PeerCredentials, APPLY_OPERATION};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest answer read from a peer.
const MAX_RESPONSE: usize = 1 << 20;
/// How long an idle connection is kept for reuse (a Strongroom peer closes idle
/// connections after 5 s).
pub const IDLE_FOR: Duration = Duration::from_secs(3);
/// Idle connections kept at most, over all peers.
const MAX_IDLE: usize = 64;
/// How long after a failed connection attempt a peer counts as unreachable (see
/// [`Pool::unreachable`]).
pub const UNREACHABLE_FOR: Duration = Duration::from_secs(1);

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
    tls_config_named(ca_file, "--peer-ca")
}

/// A TLS client configuration trusting the certificates of `ca_file` (named `what` in
/// errors: the option or field that gave it), or the system's roots without one. Shared by
/// the peers and the rotation webhooks.
pub(crate) fn tls_config_named(
    ca_file: Option<&std::path::Path>,
    what: &str,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read {what} `{}`: {e}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("{what} `{}`: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{what} `{}`: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{what} `{}` holds no certificate", path.display()));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    // The default resumption store keeps sessions in memory: new connections to a peer
    // resume them (an abbreviated handshake).
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// One connection to a peer.
enum Conn {
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Plain(TcpStream),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Tls(s) => s.read(buf),
            Self::Plain(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Tls(s) => s.write(buf),
            Self::Plain(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Tls(s) => s.flush(),
            Self::Plain(s) => s.flush(),
        }
    }
}

/// Idle keep-alive connections to the peers, by endpoint.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<(String, Instant, Conn)>>,
    /// Connections opened so far (for tests and measurements).
    opened: std::sync::atomic::AtomicU64,
    /// The endpoints whose last connection attempt failed: when, and the error.
    unreachable: Mutex<Vec<(String, Instant, String)>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

impl Pool {
    /// An idle connection to `endpoint` young enough to reuse (older ones are closed).
    fn take(&self, endpoint: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|(_, since, _)| since.elapsed() < IDLE_FOR);
        let i = idle.iter().rposition(|(e, _, _)| e == endpoint)?;
        Some(idle.swap_remove(i).2)
    }

    fn put(&self, endpoint: &str, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push((endpoint.to_owned(), Instant::now(), conn));
        }
    }

    /// Why `endpoint` is unreachable, if a connection attempt failed less than
    /// [`UNREACHABLE_FOR`] ago and none succeeded since: a delivery then fails with that error
    /// without reading and decrypting its secret (with a dead peer every due group would,
    /// only to be refused the connection).
    pub fn unreachable(&self, endpoint: &str) -> Option<String> {
        let down = self
            .unreachable
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        down.iter()
            .find(|(e, since, _)| e == endpoint && since.elapsed() < UNREACHABLE_FOR)
            .map(|(_, _, m)| m.clone())
    }

    fn connected(&self, endpoint: &str, error: Option<&str>) {
        let mut down = self
            .unreachable
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        down.retain(|(e, _, _)| e != endpoint);
        if let Some(m) = error {
            down.push((endpoint.to_owned(), Instant::now(), m.to_owned()));
        }
    }

    /// How many connections were opened.
    pub fn opened(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn connect(&self, peer: &Peer, tls: &Arc<rustls::ClientConfig>) -> Result<Conn, Transport> {
        let tcp = (|| {
            let addr = (peer.host.as_str(), peer.port)
                .to_socket_addrs()
                .map_err(|e| Transport(format!("cannot resolve {}: {e}", peer.host)))?
                .next()
                .ok_or_else(|| Transport(format!("cannot resolve {}", peer.host)))?;
            TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
                .map_err(|e| Transport(format!("cannot connect to {}: {e}", peer.url())))
        })();
        self.connected(
            &peer.url(),
            tcp.as_ref().err().map(|Transport(m)| m.as_str()),
        );
        let tcp = tcp?;
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
        let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
        let _ = tcp.set_nodelay(true);
        if !peer.tls {
            return Ok(Conn::Plain(tcp));
        }
        let name = rustls::pki_types::ServerName::try_from(peer.host.clone())
            .map_err(|e| Transport(format!("`{}` is not a server name: {e}", peer.host)))?;
        let conn = rustls::ClientConnection::new(Arc::clone(tls), name)
            .map_err(|e| Transport(format!("TLS to {}: {e}", peer.url())))?;
        Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }
}

/// POST `body` to `peer`'s apply operation in its region, on a pooled connection.
pub fn post(
    pool: &Pool,
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
            "POST / HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: {content_type}\r\nX-Amz-Date: {}\r\nX-Amz-Target: {target}\r\nAuthorization: {authorization}\r\nContent-Length: {}\r\n\r\n",
            amz_date(now),
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    let endpoint = peer.url();
    // A reused connection may have been closed by the peer meanwhile: once more on a new one.
    let mut reused = pool.take(&endpoint);
    loop {
        let was_reused = reused.is_some();
        let mut conn = match reused.take() {
            Some(c) => c,
            None => pool.connect(peer, tls)?,
        };
        match exchange(&mut conn, &request, peer) {
            Ok((answer, keep)) => {
                if keep {
                    pool.put(&endpoint, conn);
                }
                return Ok(answer);
            }
            Err(_) if was_reused => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Send `request` on `conn` and read one answer; whether the connection can be reused.
/// The longest one exchange may take, whatever each read's own timeout: a peer (or a path)
/// that trickles its answer a byte at a time would otherwise hold its region's round.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);

fn exchange(conn: &mut Conn, request: &[u8], peer: &Peer) -> Result<(Answer, bool), Transport> {
    let deadline = Instant::now() + EXCHANGE_TIMEOUT;
    conn.write_all(request)
        .and_then(|()| conn.flush())
        .map_err(|e| Transport(format!("sending to {}: {e}", peer.url())))?;
    let mut raw: Vec<u8> = Vec::with_capacity(1024);
    let mut buf = [0_u8; 8192];
    loop {
        if Instant::now() > deadline {
            return Err(Transport(format!(
                "the answer from {} took longer than {} s",
                peer.url(),
                EXCHANGE_TIMEOUT.as_secs()
            )));
        }
        if let Some(done) = complete(&raw) {
            let answer = parse(&raw)
                .ok_or_else(|| Transport(format!("malformed answer from {}", peer.url())))?;
            return Ok((answer, done));
        }
        if raw.len() > MAX_RESPONSE {
            return Err(Transport(format!("answer from {} too large", peer.url())));
        }
        let n = match conn.read(&mut buf) {
            Ok(n) => n,
            // A TLS peer closing without close_notify.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(Transport(format!("reading from {}: {e}", peer.url()))),
        };
        if n == 0 {
            // The peer closed: complete only when the answer's length is the connection's.
            return match head_of(&raw) {
                Some(h) if h.length.is_none() && !h.chunked => parse(&raw)
                    .map(|a| (a, false))
                    .ok_or_else(|| Transport(format!("malformed answer from {}", peer.url()))),
                _ => Err(Transport(format!(
                    "{} closed the connection before answering",
                    peer.url()
                ))),
            };
        }
        raw.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
}

/// What an answer's head says about its body.
struct Head {
    /// Where the body starts.
    body_at: usize,
    length: Option<usize>,
    chunked: bool,
    close: bool,
}

fn head_of(raw: &[u8]) -> Option<Head> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(raw.get(..split)?).ok()?;
    let mut h = Head {
        body_at: split.saturating_add(4),
        length: None,
        chunked: false,
        close: false,
    };
    for line in head.split("\r\n").skip(1) {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        let (n, v) = (n.trim(), v.trim());
        if n.eq_ignore_ascii_case("content-length") {
            h.length = v.parse().ok();
        } else if n.eq_ignore_ascii_case("transfer-encoding") {
            h.chunked = v.eq_ignore_ascii_case("chunked");
        } else if n.eq_ignore_ascii_case("connection") {
            h.close = v.eq_ignore_ascii_case("close");
        }
    }
    Some(h)
}

/// `Some(reusable)` once `raw` holds a whole answer (its length known from its head).
fn complete(raw: &[u8]) -> Option<bool> {
    let h = head_of(raw)?;
    let body = raw.get(h.body_at..)?;
    let whole = if h.chunked {
        dechunk(body).is_some()
    } else {
        body.len() >= h.length?
    };
    whole.then_some(!h.close)
}

/// An HTTP/1.1 answer's status and body (chunked, by length, or to the end); `None` when
/// malformed.
pub(crate) fn parse(raw: &[u8]) -> Option<Answer> {
    let h = head_of(raw)?;
    let status_line = std::str::from_utf8(raw.get(..h.body_at)?)
        .ok()?
        .split("\r\n")
        .next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let body = raw.get(h.body_at..)?;
    let body = if h.chunked {
        dechunk(body)?
    } else {
        match h.length {
            Some(n) => body.get(..n)?.to_vec(),
            None => body.to_vec(),
        }
    };
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

    /// A plain-HTTP stand-in for a peer on 127.0.0.1: answers `{}` to each request; counts
    /// the connections it accepts. `answers_per_conn` requests are answered on a connection
    /// before it is closed (without saying so, as a peer's idle timeout does); with
    /// `say_close`, each answer carries `Connection: close`.
    fn fake_peer(
        answers_per_conn: usize,
        say_close: bool,
    ) -> (Peer, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    for _ in 0..answers_per_conn {
                        let mut raw = Vec::new();
                        let mut buf = [0_u8; 4096];
                        loop {
                            if let Some(h) = head_of(&raw) {
                                if raw.len() >= h.body_at + h.length.unwrap_or(0) {
                                    break;
                                }
                            }
                            match conn.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => raw.extend_from_slice(&buf[..n]),
                            }
                        }
                        let close = if say_close {
                            "connection: close\r\n"
                        } else {
                            ""
                        };
                        let answer =
                            format!("HTTP/1.1 200 OK\r\n{close}content-length: 2\r\n\r\n{{}}");
                        if conn.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let peer = Peer::new("eu-west-1", &format!("http://127.0.0.1:{port}"), true).unwrap();
        (peer, accepted)
    }

    fn deliver_n(pool: &Pool, peer: &Peer, n: usize) {
        let tls = tls_config(None).unwrap();
        let creds = PeerCredentials {
            access_key_id: "AKIATEST".into(),
            secret_access_key: Zeroizing::new("secret".into()),
        };
        for _ in 0..n {
            let a = post(
                pool,
                peer,
                &tls,
                &creds,
                b"{}",
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
            assert_eq!((a.status, a.body.as_str()), (200, "{}"));
        }
    }

    #[test]
    fn deliveries_reuse_one_kept_alive_connection() {
        let (peer, accepted) = fake_peer(usize::MAX, false);
        let pool = Pool::default();
        deliver_n(&pool, &peer, 5);
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(pool.opened(), 1);
    }

    #[test]
    fn a_connection_the_peer_closed_is_replaced_and_the_request_sent_again() {
        // The peer closes each connection after one answer without saying so.
        let (peer, accepted) = fake_peer(1, false);
        let pool = Pool::default();
        deliver_n(&pool, &peer, 3);
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[test]
    fn an_answer_saying_connection_close_is_not_reused() {
        let (peer, accepted) = fake_peer(usize::MAX, true);
        let pool = Pool::default();
        deliver_n(&pool, &peer, 3);
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    /// A refused connection marks the peer unreachable for a while (deliveries then skip
    /// reading their secret); a connection that succeeds clears it at once.
    #[test]
    fn a_refused_connection_marks_the_peer_unreachable_until_one_succeeds() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let dead = Peer::new("eu-west-1", &format!("http://127.0.0.1:{port}"), true).unwrap();
        let pool = Pool::default();
        assert_eq!(pool.unreachable(&dead.url()), None);
        let tls = tls_config(None).unwrap();
        let creds = PeerCredentials {
            access_key_id: "AKIATEST".into(),
            secret_access_key: Zeroizing::new("secret".into()),
        };
        let Err(Transport(m)) = post(
            &pool,
            &dead,
            &tls,
            &creds,
            b"{}",
            time::OffsetDateTime::now_utc(),
        ) else {
            panic!("a closed port answered");
        };
        assert_eq!(pool.unreachable(&dead.url()), Some(m));
        // Another peer is not affected.
        let (live, _) = fake_peer(usize::MAX, false);
        assert_eq!(pool.unreachable(&live.url()), None);
        deliver_n(&pool, &live, 1);
        assert_eq!(pool.unreachable(&live.url()), None);
        assert!(pool.unreachable(&dead.url()).is_some());
        // Once the window is over it counts as reachable again (the next delivery tries).
        std::thread::sleep(UNREACHABLE_FOR);
        assert_eq!(pool.unreachable(&dead.url()), None);
    }
}
