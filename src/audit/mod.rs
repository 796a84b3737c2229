//! Audit events in CloudTrail's shape, appended to a hash chain before the response leaves.
//!
//! Every request gets one event, allowed, denied or failed. If the event cannot be written
//! (or is not committed within a bounded time) the request fails with
//! `InternalServiceError` (fail closed). Events never hold secret values, keys or
//! credentials: request parameters are an allow-list of safe fields, tokens among them are
//! a keyed HMAC, and response elements are identifiers only (`record`).
//!
//! Tamper evidence (`chain`, `verify`): one hash chain per server (`chain_id`, the server id
//! in its data dir). Several servers may share one PostgreSQL database; each owns its chain,
//! so appends never contend across servers for a global "last record" and each chain's
//! signed digests are made by the one key that wrote it. A global chain would need a
//! cross-server lock on every request. Digests (every N records or T seconds, and at
//! flush) are signed with the server's Ed25519 audit key (`keys`), kept beside the master
//! key; prune leaves a signed anchor so what remains still verifies.
//!
//! Durability: a write request's record is appended in the same transaction as its change
//! (`in_tx`, through a store handle carrying the record), so neither is durable without the
//! other. Every other record (reads, denials, failures, unauthenticated or malformed
//! requests) goes to one writer thread (`writer`) that groups the pending records of
//! concurrent requests into one transaction; each request waits for its record's commit.
//! Both append under the chain's tail lock (`tail`), held until their transaction ends.
//!
//! May depend on: `store`, `error`, `auth::Principal`, `config` (for `cli`).

pub mod anchor;
mod chain;
pub mod cli;
pub mod export;
mod in_tx;
pub mod keys;
mod record;
pub mod retention;
mod tail;
pub mod unauthenticated;
pub mod verify;
mod writer;

pub use chain::{
    chain_hash, digest_payload, row_for, signed_statement, statement_signature_ok, ANCHOR, DIGEST,
    GENESIS,
};
pub use in_tx::{Complete, TxRecord};
pub use keys::AuditKeys;
pub use record::{parse_rfc3339_ms, resource_short_name, safe_request_parameters, Draft, Index};
pub use verify::{
    load_anchors, verify, verify_store, ChainReport, Finding, Report, TamperKind, VerifyOptions,
};
pub use writer::{AuditOptions, Auditor};

/// A record's `eventID`: a UUID, time-ordered (version 7) so that the unique index on it grows
/// at its right edge (one page per commit) instead of touching a random page per record.
pub fn new_event_id() -> String {
    new_event_uuid().to_string()
}

/// [`new_event_id`]'s UUID, for a caller that writes its text itself.
pub(crate) fn new_event_uuid() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
