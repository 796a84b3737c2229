//! The hash chain and the signed statements about it. Pure: no I/O.
//!
//! Each record carries `seq`, `prev_hash` (the previous record's hash, or [`GENESIS`]) and
//! `hash = SHA-256(prev_hash || "\n" || record)`. A digest signs "records `seq_from..=seq_to`
//! of chain C end with hash H"; an anchor signs "records up to `seq_to` were pruned; the
//! last had hash H". Both are Ed25519 signatures over [`digest_payload`].

use sha2::{Digest, Sha256};

use super::keys::AuditKeys;
use super::record::Index;
use crate::store::rows::{AuditDigestRow, AuditRow, NewAuditRow};

/// The hash a chain starts from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `kind` of a periodic digest.
pub const DIGEST: &str = "digest";
/// `kind` of a prune anchor.
pub const ANCHOR: &str = "anchor";

/// `SHA-256(prev_hash || "\n" || record)` as lowercase hex.
pub fn chain_hash(prev_hash: &str, record: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(record.as_bytes());
    hex::encode(h.finalize())
}

/// The bytes a digest or anchor signature covers.
pub fn digest_payload(d: &AuditDigestRow) -> Vec<u8> {
    format!(
        "strongroom-audit-digest-v1\nchain={}\nkind={}\nfrom={}\nto={}\nlast_hash={}\ncount={}\ncreated_at={}\nkey={}\n",
        d.chain_id, d.kind, d.seq_from, d.seq_to, d.last_hash, d.record_count, d.created_at, d.public_key
    )
    .into_bytes()
}

/// A signed digest or anchor.
pub fn signed_statement(
    keys: &AuditKeys,
    chain_id: &str,
    kind: &str,
    seq_from: i64,
    seq_to: i64,
    last_hash: &str,
    created_at: i64,
) -> AuditDigestRow {
    let mut d = AuditDigestRow {
        chain_id: chain_id.to_owned(),
        kind: kind.to_owned(),
        seq_from,
        seq_to,
        last_hash: last_hash.to_owned(),
        record_count: seq_to - seq_from + 1,
        created_at,
        key_id: keys.key_id(),
        public_key: keys.public_hex().to_owned(),
        signature: String::new(),
    };
    d.signature = keys.sign_hex(&digest_payload(&d));
    d
}

/// Whether a digest's signature is valid under the key it names.
pub fn statement_signature_ok(d: &AuditDigestRow) -> bool {
    super::keys::signature_ok(&d.public_key, &digest_payload(d), &d.signature)
}

/// The row of record `text` appended after `(seq - 1, prev_hash)`, whose chain hash is `hash`
/// ([`chain_hash`] of the two), borrowing every string.
pub fn new_row<'a>(
    chain_id: &'a str,
    seq: i64,
    prev_hash: &'a str,
    hash: &'a str,
    text: &'a str,
    ix: &'a Index,
) -> NewAuditRow<'a> {
    NewAuditRow {
        chain_id,
        seq,
        event_id: &ix.event_id,
        event_time: ix.event_time,
        event_name: &ix.event_name,
        principal_arn: ix.principal_arn.as_deref(),
        access_key_id: ix.access_key_id.as_deref(),
        source_ip: ix.source_ip.as_deref(),
        resource_arn: ix.resource_arn.as_deref(),
        error_code: ix.error_code.as_deref(),
        decision: &ix.decision,
        record: text,
        prev_hash,
        hash,
        account_id: ix.account_id.as_deref(),
        event_source: ix.event_source.as_deref(),
        read_only: ix.read_only,
        user_name: ix.user_name.as_deref(),
        resource_type: ix.resource_type.as_deref(),
        resource_name: ix.resource_name.as_deref(),
    }
}

/// The stored row of record `text` appended after `(seq - 1, prev_hash)`.
pub fn row_for(chain_id: &str, seq: i64, prev_hash: &str, text: &str, ix: &Index) -> AuditRow {
    AuditRow {
        chain_id: chain_id.to_owned(),
        seq,
        event_id: ix.event_id.clone(),
        event_time: ix.event_time,
        event_name: ix.event_name.clone(),
        principal_arn: ix.principal_arn.clone(),
        access_key_id: ix.access_key_id.clone(),
        source_ip: ix.source_ip.clone(),
        resource_arn: ix.resource_arn.clone(),
        error_code: ix.error_code.clone(),
        decision: ix.decision.clone(),
        record: text.to_owned(),
        prev_hash: prev_hash.to_owned(),
        hash: chain_hash(prev_hash, text),
        account_id: ix.account_id.clone(),
        event_source: ix.event_source.clone(),
        read_only: ix.read_only,
        user_name: ix.user_name.clone(),
        resource_type: ix.resource_type.clone(),
        resource_name: ix.resource_name.clone(),
    }
}

/// The index columns as stored in a row (to compare with [`Index::of`] its record).
pub fn stored_index(r: &AuditRow) -> Index {
    Index {
        event_id: r.event_id.clone(),
        event_time: r.event_time,
        event_name: r.event_name.clone(),
        principal_arn: r.principal_arn.clone(),
        access_key_id: r.access_key_id.clone(),
        source_ip: r.source_ip.clone(),
        resource_arn: r.resource_arn.clone(),
        error_code: r.error_code.clone(),
        decision: r.decision.clone(),
        account_id: r.account_id.clone(),
        event_source: r.event_source.clone(),
        read_only: r.read_only,
        user_name: r.user_name.clone(),
        resource_type: r.resource_type.clone(),
        resource_name: r.resource_name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_changes_with_record_and_link() {
        let a = chain_hash(GENESIS, "{}");
        assert_ne!(a, chain_hash(GENESIS, "{ }"));
        assert_ne!(a, chain_hash(&a, "{}"));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn statements_are_signed_over_every_field() {
        let k = AuditKeys::ephemeral().unwrap();
        let d = signed_statement(&k, "c", DIGEST, 1, 10, &"ab".repeat(32), 5);
        assert!(statement_signature_ok(&d));
        assert_eq!(d.record_count, 10);
        for tamper in [
            AuditDigestRow {
                seq_to: 11,
                ..d.clone()
            },
            AuditDigestRow {
                last_hash: "00".repeat(32),
                ..d.clone()
            },
            AuditDigestRow {
                chain_id: "other".into(),
                ..d.clone()
            },
            AuditDigestRow {
                kind: ANCHOR.into(),
                ..d.clone()
            },
            AuditDigestRow {
                record_count: 3,
                ..d.clone()
            },
        ] {
            assert!(!statement_signature_ok(&tamper), "{tamper:?}");
        }
        // a re-signature with another key is valid under that key only
        let other = AuditKeys::ephemeral().unwrap();
        let forged = signed_statement(&other, "c", DIGEST, 1, 10, &"ab".repeat(32), 5);
        assert!(statement_signature_ok(&forged));
        assert_ne!(forged.public_key, d.public_key);
    }
}
