//! Verification: walk each chain in seq order and check every record's hash, link and
//! query columns, every digest's and anchor's signature, and that the records the digests
//! vouch for are still there with the hashes they signed. Reports the FIRST problem of each
//! chain and what kind of tampering it looks like.
//!
//! What a kind means (the chain alone cannot always tell them apart; the message says so):
//! - `Modified`: a record's contents no longer match its hash, or its query columns no
//!   longer match its contents.
//! - `Deleted`: a gap in seq (records missing), or the chain starts after 1 with no anchor.
//! - `Inserted`: a record that links to no predecessor while its successor links around it.
//! - `Reordered`: a record links to a record that comes after it.
//! - `Unlinked`: a record does not link to its predecessor and neither neighbour explains
//!   why: the predecessor was modified and re-hashed, or records were deleted and the rest
//!   renumbered.
//! - `Rewritten`: the record a digest ends at has another hash than the digest signed (the
//!   chain was rebuilt from somewhere in the digest's range).
//! - `Truncated`: a digest vouches for records past the end of the chain.
//! - `Forged`: a digest or anchor whose signature does not verify, or that is signed by a
//!   key not trusted; `DigestMissing`: a gap between digests.

use std::collections::{BTreeMap, VecDeque};

use super::chain::{chain_hash, statement_signature_ok, stored_index, ANCHOR, DIGEST, GENESIS};
use super::record::Index;
use crate::store::rows::{AuditDigestRow, AuditRow};
use crate::store::Store;

/// How many records ahead and behind a broken link is compared with.
const WINDOW: usize = 16;
/// Records read per query.
const PAGE: i64 = 2000;

/// What kind of tampering a finding looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamperKind {
    Modified,
    Deleted,
    Inserted,
    Reordered,
    Unlinked,
    Rewritten,
    Truncated,
    Forged,
    DigestMissing,
}

impl TamperKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Modified => "modified",
            Self::Deleted => "deleted",
            Self::Inserted => "inserted",
            Self::Reordered => "reordered",
            Self::Unlinked => "unlinked",
            Self::Rewritten => "rewritten",
            Self::Truncated => "truncated",
            Self::Forged => "forged",
            Self::DigestMissing => "digest-missing",
        }
    }
}

/// The first problem of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub chain_id: String,
    /// The first record concerned.
    pub seq: i64,
    pub kind: TamperKind,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "chain `{}`: record {} {} [{}]",
            self.chain_id,
            self.seq,
            self.message,
            self.kind.as_str()
        )
    }
}

/// What was checked in one chain.
#[derive(Debug, Clone, Default)]
pub struct ChainReport {
    pub chain_id: String,
    pub records: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub digests: usize,
    /// The last seq a trusted digest vouches for (records after it can be cut unnoticed).
    pub signed_through: Option<i64>,
    /// Records up to this seq were pruned under a signed anchor.
    pub pruned_through: Option<i64>,
    pub finding: Option<Finding>,
}

/// The result of verifying a store.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub chains: Vec<ChainReport>,
}

impl Report {
    pub fn records(&self) -> u64 {
        self.chains.iter().map(|c| c.records).sum()
    }
    /// The first finding (in chain order).
    pub fn first_finding(&self) -> Option<&Finding> {
        self.chains.iter().find_map(|c| c.finding.as_ref())
    }
}

/// What to trust and what to check.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Public keys (hex) whose digests and anchors are trusted. Empty: each statement is
    /// checked against the key it names only (detects edits, not a re-signing attacker).
    pub trusted_keys: Vec<String>,
    /// Only this chain.
    pub chain: Option<String>,
}

/// Verify every chain: the record count, or the first problem as text.
pub fn verify(store: &Store) -> Result<u64, String> {
    let report = verify_store(store, &VerifyOptions::default())?;
    match report.first_finding() {
        Some(f) => Err(f.to_string()),
        None => Ok(report.records()),
    }
}

/// Verify the chains of a store.
pub fn verify_store(store: &Store, opts: &VerifyOptions) -> Result<Report, String> {
    let chains = store
        .read_blocking(|tx| Ok(tx.audit_chains()?))
        .map_err(|e| e.to_string())?;
    let mut report = Report::default();
    for chain in chains {
        if opts.chain.as_ref().is_some_and(|c| *c != chain) {
            continue;
        }
        report.chains.push(verify_chain(store, &chain, opts)?);
    }
    Ok(report)
}

fn verify_chain(store: &Store, chain: &str, opts: &VerifyOptions) -> Result<ChainReport, String> {
    let c = chain.to_owned();
    let statements = store
        .read_blocking(move |tx| Ok(tx.audit_digests(&c)?))
        .map_err(|e| e.to_string())?;
    let mut rep = ChainReport {
        chain_id: chain.to_owned(),
        ..ChainReport::default()
    };
    let mut findings: Vec<Finding> = Vec::new();
    let found = |seq: i64, kind: TamperKind, message: String| Finding {
        chain_id: chain.to_owned(),
        seq,
        kind,
        message,
    };

    // Statements: signatures, trust, and the digests' continuity.
    let mut digests: Vec<&AuditDigestRow> = Vec::new();
    let mut anchor: Option<&AuditDigestRow> = None;
    for d in &statements {
        let trusted = opts.trusted_keys.is_empty() || opts.trusted_keys.contains(&d.public_key);
        if !statement_signature_ok(d) || d.record_count != d.seq_to - d.seq_from + 1 {
            findings.push(found(
                d.seq_from,
                TamperKind::Forged,
                format!(
                    "is covered by a {} (records {}..={}) whose signature does not verify",
                    d.kind, d.seq_from, d.seq_to
                ),
            ));
        } else if !trusted {
            findings.push(found(
                d.seq_from,
                TamperKind::Forged,
                format!(
                    "is covered by a {} (records {}..={}) signed by key {}, which is not trusted",
                    d.kind, d.seq_from, d.seq_to, d.key_id
                ),
            ));
        } else if d.kind == DIGEST {
            digests.push(d);
        } else if d.kind == ANCHOR && anchor.is_none_or(|a| a.seq_to < d.seq_to) {
            anchor = Some(d);
        }
    }
    let mut expect_from = 1;
    for d in &digests {
        if d.seq_from != expect_from {
            findings.push(found(
                expect_from,
                TamperKind::DigestMissing,
                format!(
                    "is in a range with no digest: the digests jump from {} to {} (a digest was deleted)",
                    expect_from - 1,
                    d.seq_from
                ),
            ));
        }
        expect_from = d.seq_to + 1;
    }
    rep.digests = digests.len();
    rep.signed_through = digests.last().map(|d| d.seq_to);
    rep.pruned_through = anchor.map(|a| a.seq_to);

    // Records.
    let (start, start_hash) = anchor.map_or((1, GENESIS.to_owned()), |a| {
        (a.seq_to + 1, a.last_hash.clone())
    });
    let by_end: BTreeMap<i64, &AuditDigestRow> = digests
        .iter()
        .filter(|d| d.seq_to >= start)
        .map(|d| (d.seq_to, *d))
        .collect();
    let c = chain.to_owned();
    let first = store
        .read_blocking(move |tx| Ok(tx.audit_range(&c, 0, 1)?))
        .map_err(|e| e.to_string())?;
    let after = match first.first() {
        Some(r) if r.seq < start => {
            findings.push(found(
                r.seq,
                TamperKind::Inserted,
                format!(
                    "is at or below the signed prune anchor ({}); it should not exist",
                    start - 1
                ),
            ));
            None
        }
        _ => Some(start - 1),
    };
    if let Some(after) = after {
        let mut walk = Walk::new(store, chain, after);
        let outcome = walk.run(start, start_hash, &by_end)?;
        rep.records = walk.count;
        rep.first_seq = walk.first_seq;
        rep.last_seq = walk.last_seq;
        if let Some(f) = outcome {
            findings.push(found(f.0, f.1, f.2));
        } else if let Some((to, d)) = by_end.range(walk.next_seq..).next() {
            findings.push(found(
                walk.next_seq,
                TamperKind::Truncated,
                format!(
                    "is missing: the chain ends at {} but a signed digest vouches for records {}..={} (the tail was cut)",
                    walk.next_seq - 1,
                    d.seq_from,
                    to
                ),
            ));
        }
    }
    rep.finding = findings.into_iter().min_by_key(|f| f.seq);
    Ok(rep)
}

/// A walk over one chain's records, in seq order, with a small look-ahead.
struct Walk<'a> {
    store: &'a Store,
    chain: String,
    after: i64,
    buf: VecDeque<AuditRow>,
    exhausted: bool,
    /// Recent hashes → seq (for classifying a broken link).
    behind: VecDeque<(String, i64)>,
    count: u64,
    first_seq: Option<i64>,
    last_seq: Option<i64>,
    next_seq: i64,
}

type Problem = (i64, TamperKind, String);

impl<'a> Walk<'a> {
    fn new(store: &'a Store, chain: &str, after: i64) -> Self {
        Self {
            store,
            chain: chain.to_owned(),
            after,
            buf: VecDeque::new(),
            exhausted: false,
            behind: VecDeque::new(),
            count: 0,
            first_seq: None,
            last_seq: None,
            next_seq: after + 1,
        }
    }

    /// Make sure `n` rows are buffered (unless the chain ends first).
    fn fill(&mut self, n: usize) -> Result<(), String> {
        while self.buf.len() < n && !self.exhausted {
            let (c, after) = (self.chain.clone(), self.after);
            let rows = self
                .store
                .read_blocking(move |tx| Ok(tx.audit_range(&c, after, PAGE)?))
                .map_err(|e| e.to_string())?;
            match rows.last() {
                Some(r) => self.after = r.seq,
                None => self.exhausted = true,
            }
            self.buf.extend(rows);
        }
        Ok(())
    }

    fn run(
        &mut self,
        start: i64,
        mut prev: String,
        digests: &BTreeMap<i64, &AuditDigestRow>,
    ) -> Result<Option<Problem>, String> {
        self.next_seq = start;
        loop {
            self.fill(WINDOW + 1)?;
            let Some(r) = self.buf.pop_front() else {
                return Ok(None);
            };
            let expect = self.next_seq;
            if r.seq != expect {
                let n = r.seq - expect;
                let what = if expect == 1 || self.count == 0 {
                    "is missing: the chain starts later with no signed prune anchor".to_owned()
                } else {
                    format!("is missing ({n} record(s) deleted before {})", r.seq)
                };
                return Ok(Some((expect, TamperKind::Deleted, what)));
            }
            if chain_hash(&r.prev_hash, &r.record) != r.hash {
                return Ok(Some((
                    r.seq,
                    TamperKind::Modified,
                    "was modified: its contents do not match its hash".to_owned(),
                )));
            }
            if r.prev_hash != prev {
                return Ok(Some(self.classify(&r, &prev)));
            }
            if let Some(col) = index_mismatch(&r) {
                return Ok(Some((
                    r.seq,
                    TamperKind::Modified,
                    format!("was modified: its `{col}` column does not match the record"),
                )));
            }
            if let Some(d) = digests.get(&r.seq) {
                if d.last_hash != r.hash {
                    return Ok(Some((
                        d.seq_from,
                        TamperKind::Rewritten,
                        format!(
                            "(or one after it, up to {}) was rewritten: record {} has another hash than the signed digest",
                            d.seq_to, d.seq_to
                        ),
                    )));
                }
            }
            if self.behind.len() >= 4 * WINDOW {
                self.behind.pop_front();
            }
            self.behind.push_back((r.hash.clone(), r.seq));
            prev.clone_from(&r.hash);
            self.count += 1;
            self.first_seq.get_or_insert(r.seq);
            self.last_seq = Some(r.seq);
            self.next_seq = r.seq + 1;
        }
    }

    /// `r` (self-consistent) does not link to `prev`: say why, if the neighbours tell.
    fn classify(&self, r: &AuditRow, prev: &str) -> Problem {
        if let Some(later) = self.buf.iter().find(|l| l.hash == r.prev_hash) {
            return (
                r.seq,
                TamperKind::Reordered,
                format!(
                    "is out of order: it links to record {}, which comes after it",
                    later.seq
                ),
            );
        }
        if let Some((_, j)) = self
            .behind
            .iter()
            .rev()
            .skip(1)
            .find(|(h, _)| *h == r.prev_hash)
        {
            return (
                j + 1,
                TamperKind::Inserted,
                format!(
                    "was inserted: record {} links to record {j}, skipping records {}..={}",
                    r.seq,
                    j + 1,
                    r.seq - 1
                ),
            );
        }
        if self.buf.front().is_some_and(|n| n.prev_hash == prev) {
            return (
                r.seq,
                TamperKind::Inserted,
                format!(
                    "was inserted: it links to nothing, and record {} links to the record before it",
                    r.seq + 1
                ),
            );
        }
        (
            r.seq,
            TamperKind::Unlinked,
            format!(
                "does not link to record {}: that record was modified and re-hashed, or records between them were deleted and the rest renumbered",
                r.seq - 1
            ),
        )
    }
}

/// The first query column that disagrees with the record it indexes.
fn index_mismatch(r: &AuditRow) -> Option<&'static str> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.record) else {
        return Some("record");
    };
    let want = Index::of(&v);
    let have = stored_index(r);
    // Rows written before the query columns existed have all of them NULL.
    let legacy = have.account_id.is_none()
        && have.event_source.is_none()
        && have.read_only.is_none()
        && have.user_name.is_none()
        && have.resource_type.is_none()
        && have.resource_name.is_none();
    let checks: [(&'static str, bool); 15] = [
        ("event_id", want.event_id == have.event_id),
        ("event_time", want.event_time == have.event_time),
        ("event_name", want.event_name == have.event_name),
        ("principal_arn", want.principal_arn == have.principal_arn),
        ("access_key_id", want.access_key_id == have.access_key_id),
        ("source_ip", want.source_ip == have.source_ip),
        ("resource_arn", want.resource_arn == have.resource_arn),
        ("error_code", want.error_code == have.error_code),
        ("decision", want.decision == have.decision),
        ("account_id", legacy || want.account_id == have.account_id),
        (
            "event_source",
            legacy || want.event_source == have.event_source,
        ),
        ("read_only", legacy || want.read_only == have.read_only),
        ("user_name", legacy || want.user_name == have.user_name),
        (
            "resource_type",
            legacy || want.resource_type == have.resource_type,
        ),
        (
            "resource_name",
            legacy || want.resource_name == have.resource_name,
        ),
    ];
    checks.iter().find(|(_, ok)| !ok).map(|(n, _)| *n)
}
