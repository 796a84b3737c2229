//! Replication to regions served by peer servers (`--peer REGION=URL`).
//!
//! The primary's server keeps, for each replica region served by a peer, an entry in
//! `secret_replicas` marked `peer`; each change of the primary leaves a row in the
//! replication outbox in the write's own transaction (`ops::replicas::sync`). The delivery
//! worker ([`worker`]) ships the secret's full state as it is when delivered (versions with
//! their values, decrypted in memory only, labels, description, tags, resource policy) to the
//! peer's `StrongroomApplyReplicaChange` operation over TLS, signed with SigV4 by the
//! replication principal's access key; the peer seals each value under its own region's key
//! (`ops::apply_replica_change`). Each delivery carries the outbox sequence number of the
//! latest change it covers; the peer ignores a change not newer than the last it applied.

pub mod client;
pub mod worker;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use zeroize::Zeroizing;

/// The X-Amz-Target operation name of the peer's apply operation.
pub const APPLY_OPERATION: &str = "StrongroomApplyReplicaChange";
/// The IAM action the peer authorizes it as (not granted by `secretsmanager:*`).
pub const APPLY_ACTION: &str = "strongroom:ApplyReplicaChange";

/// One peer: the region it serves and its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub region: String,
    /// `https` (or, for tests on loopback only, `http`).
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Peer {
    /// Parse `REGION=URL`. `http://` is accepted only for `127.0.0.1` with
    /// `allow_plain_loopback`; a URL has no path, query or credentials.
    pub fn parse(spec: &str, allow_plain_loopback: bool) -> Result<Self, String> {
        let (region, url) = spec
            .split_once('=')
            .ok_or_else(|| format!("--peer `{spec}`: expected REGION=URL"))?;
        Self::new(region.trim(), url.trim(), allow_plain_loopback)
    }

    pub fn new(region: &str, url: &str, allow_plain_loopback: bool) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("peer {region}: `{url}` must be an https:// URL"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "peer {region}: `{url}` must be scheme://host[:port] (no path, query or user)"
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.to_owned(),
                p.parse::<u16>()
                    .map_err(|_| format!("peer {region}: `{p}` is not a port"))?,
            ),
            _ => (rest.to_owned(), if tls { 443 } else { 80 }),
        };
        let plain_allowed = allow_plain_loopback && host == "127.0.0.1";
        if !(tls || plain_allowed) {
            return Err(format!(
                "peer {region}: `{url}` is not https; plain http is accepted only for 127.0.0.1 with --peer-allow-plain-http-loopback (tests)"
            ));
        }
        Ok(Self {
            region: region.to_owned(),
            tls,
            host,
            port,
        })
    }

    /// The URL as configured (for messages).
    pub fn url(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.tls { "https" } else { "http" },
            self.host,
            self.port
        )
    }
}

/// The replication principal's access key on the peers.
#[derive(Clone)]
pub struct PeerCredentials {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
}

impl std::fmt::Debug for PeerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Resolved peer settings.
#[derive(Debug, Clone, Default)]
pub struct PeerConfig {
    pub peers: Vec<Peer>,
    /// PEM CA certificates trusted for the peers' TLS certificates (default: the system's).
    pub ca_file: Option<PathBuf>,
    pub credentials: Option<PeerCredentials>,
}

impl PeerConfig {
    /// The peer serving `region`, if any.
    pub fn peer(&self, region: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.region == region)
    }

    /// The regions the peers serve.
    pub fn regions(&self) -> Vec<String> {
        self.peers.iter().map(|p| p.region.clone()).collect()
    }
}

/// The outbox's depth and oldest undelivered change per peer region, as the worker last
/// saw them (the metrics' `strongroom_replication_*` gauges).
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<Vec<(String, i64, Option<i64>)>>,
}

impl Stats {
    pub fn set(&self, v: Vec<(String, i64, Option<i64>)>) {
        *self.inner.lock().unwrap_or_else(PoisonError::into_inner) = v;
    }

    /// `(region, depth, oldest change's epoch ms)`.
    pub fn get(&self) -> Vec<(String, i64, Option<i64>)> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Shared between the worker and the metrics.
pub type SharedStats = Arc<Stats>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_https_or_loopback_http_when_allowed() {
        let p = Peer::parse("eu-west-1=https://peer.example:8443", false).unwrap();
        assert_eq!(
            (p.tls, p.host.as_str(), p.port),
            (true, "peer.example", 8443)
        );
        let p = Peer::parse("eu-west-1=https://peer.example/", false).unwrap();
        assert_eq!(p.port, 443);
        assert!(Peer::parse("eu-west-1=http://127.0.0.1:4599", false).is_err());
        assert!(Peer::parse("eu-west-1=http://10.0.0.1:4599", true).is_err());
        assert!(Peer::parse("eu-west-1=http://127.0.0.1:4599", true).is_ok());
        assert!(Peer::parse("eu-west-1=https://h/path", false).is_err());
        assert!(Peer::parse("eu-west-1=https://u@h", false).is_err());
        assert!(Peer::parse("eu-west-1", false).is_err());
        assert!(Peer::parse("eu-west-1=ftp://h", false).is_err());
    }
}
