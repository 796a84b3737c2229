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
//!   key not trusted; `DigestMissing`: a gap between digests, or a digest anchored outside
//!   the database (`VerifyOptions::anchors`) that the database no longer holds.
//! - `IndexAltered`: the lookup index that LookupEvents searches (entries, block time bounds,
//!   block terms; `sql/audit_lookup.sql`) no longer matches a record it covers, so a search
//!   would miss or misfile it. Derived data: `strongroom audit reindex` rebuilds it.
//!
//! Records after the last signed digest are vouched for by nothing the database cannot
//! rewrite: deleting them (with the digests, if any, that cover them) leaves a chain that
//! verifies. The report counts them (`ChainReport::unsigned`); digests anchored outside the
//! database (each digest also written to a directory or shipped elsewhere, see
//! `Auditor`'s digest directory and `strongroom audit digests export`) let `verify` detect
//! such a cut against the newest anchored digest.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::chain::{chain_hash, statement_signature_ok, stored_index, ANCHOR, DIGEST, GENESIS};
use super::record::Index;
use crate::store::rows::{AuditDigestRow, AuditLookupRow, AuditRow};
use crate::store::{lookup_block, record_terms, Store};

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
    IndexAltered,
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
            Self::IndexAltered => "index-altered",
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
    /// Records after the last signed digest (or, with none, after the prune anchor): no
    /// signature covers them, so deleting them would not be noticed without an anchored
    /// digest past them.
    pub unsigned: u64,
    /// The last seq a digest anchored outside the database vouches for.
    pub anchored_through: Option<i64>,
    /// Records checked against the lookup index (those it covers).
    pub indexed: u64,
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
    /// Digests kept outside the database (a digest directory, shipped copies): each must
    /// still be in the database, and the records it vouches for with the hash it signed.
    /// [`load_anchors`] reads them (refusing a bad signature); one that does not verify under
    /// a trusted key is reported as forged here too.
    pub anchors: Vec<AuditDigestRow>,
}

/// Read anchored digests: every `*.json` file under `path` (a digest directory: one digest
/// per file), or, for a file, one digest per line (`audit digests export`'s output). Each
/// must carry a valid signature, by a trusted key when `trusted_keys` is not empty.
pub fn load_anchors(
    path: &std::path::Path,
    trusted_keys: &[String],
) -> Result<Vec<AuditDigestRow>, String> {
    let mut texts: Vec<(String, String)> = Vec::new();
    if path.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
            for entry in entries {
                let p = entry
                    .map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?
                    .path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "json") {
                    let text = std::fs::read_to_string(&p)
                        .map_err(|e| format!("cannot read `{}`: {e}", p.display()))?;
                    texts.push((p.display().to_string(), text));
                }
            }
        }
    } else {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            if !line.trim().is_empty() {
                texts.push((format!("{}:{}", path.display(), i + 1), line.to_owned()));
            }
        }
    }
    let mut out = Vec::with_capacity(texts.len());
    for (at, text) in texts {
        let d = super::anchor::digest_from_json(&text).map_err(|e| format!("`{at}`: {e}"))?;
        if !statement_signature_ok(&d) || d.record_count != d.seq_to - d.seq_from + 1 {
            return Err(format!("`{at}`: the digest's signature does not verify"));
        }
        if !trusted_keys.is_empty() && !trusted_keys.contains(&d.public_key) {
            return Err(format!(
                "`{at}`: the digest is signed by key {}, which is not trusted",
                d.key_id
            ));
        }
        out.push(d);
    }
    out.sort_by(|a, b| (&a.chain_id, a.seq_to).cmp(&(&b.chain_id, b.seq_to)));
    out.dedup();
    Ok(out)
}

/// Verify every chain: the record count, or the first problem as text.
pub fn verify(store: &Store) -> Result<u64, String> {
    let report = verify_store(store, &VerifyOptions::default())?;
    match report.first_finding() {
        Some(f) => Err(f.to_string()),
        None => Ok(report.records()),
    }
}

/// The newest digest of each chain (by the last seq it vouches for).
pub fn latest_digests(store: &Store) -> Result<Vec<AuditDigestRow>, String> {
    store
        .read_blocking(|tx| {
            let mut out = Vec::new();
            for chain in tx.audit_chains()? {
                let newest = tx
                    .audit_digests(&chain)?
                    .into_iter()
                    .filter(|d| d.kind == DIGEST)
                    .max_by_key(|d| d.seq_to);
                out.extend(newest);
            }
            Ok(out)
        })
        .map_err(|e| e.to_string())
}

/// Verify the chains of a store.
pub fn verify_store(store: &Store, opts: &VerifyOptions) -> Result<Report, String> {
    let mut chains = store
        .read_blocking(|tx| Ok(tx.audit_chains()?))
        .map_err(|e| e.to_string())?;
    // A chain the anchors know of and the database lost entirely is checked too.
    chains.extend(opts.anchors.iter().map(|a| a.chain_id.clone()));
    chains.sort();
    chains.dedup();
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
    let pruned = rep.pruned_through.unwrap_or(0);

    // Records.
    let (start, start_hash) = anchor.map_or((1, GENESIS.to_owned()), |a| {
        (a.seq_to + 1, a.last_hash.clone())
    });
    let mut by_end: BTreeMap<i64, &AuditDigestRow> = digests
        .iter()
        .filter(|d| d.seq_to >= start)
        .map(|d| (d.seq_to, *d))
        .collect();
    // Digests anchored outside the database: the database must still hold each one (unless
    // its records were pruned under the anchor), and the records it vouches for.
    let mut anchored_missing: Vec<&AuditDigestRow> = Vec::new();
    for a in opts
        .anchors
        .iter()
        .filter(|a| a.chain_id == chain && a.kind == DIGEST && a.seq_to > pruned)
    {
        let trusted = opts.trusted_keys.is_empty() || opts.trusted_keys.contains(&a.public_key);
        if !trusted || !statement_signature_ok(a) || a.record_count != a.seq_to - a.seq_from + 1 {
            findings.push(found(
                a.seq_from,
                TamperKind::Forged,
                format!(
                    "is covered by an anchored digest (records {}..={}) whose signature does not verify under a trusted key",
                    a.seq_from, a.seq_to
                ),
            ));
            continue;
        }
        rep.anchored_through = rep.anchored_through.max(Some(a.seq_to));
        match by_end.get(&a.seq_to) {
            Some(d) if d.seq_from == a.seq_from && d.last_hash == a.last_hash => {}
            Some(d) => findings.push(found(
                a.seq_from,
                TamperKind::Rewritten,
                format!(
                    "(or one after it, up to {}) was rewritten: the database's digest of records {}..={} differs from the one anchored outside it",
                    a.seq_to, d.seq_from, d.seq_to
                ),
            )),
            None => {
                anchored_missing.push(a);
                by_end.insert(a.seq_to, a);
            }
        }
    }
    let c = chain.to_owned();
    // The lowest record, whatever its number: one numbered 0 or below is outside the chain's
    // numbering (which starts at 1) and would otherwise never be read, yet queries find it.
    let first = store
        .read_blocking(move |tx| Ok(tx.audit_range(&c, i64::MIN, 1)?))
        .map_err(|e| e.to_string())?;
    let after = match first.first() {
        Some(r) if r.seq < start => {
            let why = if start == 1 {
                "is numbered below the chain's first record (1); it should not exist".to_owned()
            } else {
                format!(
                    "is at or below the signed prune anchor ({}); it should not exist",
                    start - 1
                )
            };
            findings.push(found(r.seq, TamperKind::Inserted, why));
            None
        }
        _ => Some(start - 1),
    };
    if let Some(after) = after {
        let mut walk = Walk::new(store, chain, after)?;
        let outcome = walk.run(start, start_hash, &by_end)?;
        rep.records = walk.count;
        rep.first_seq = walk.first_seq;
        rep.last_seq = walk.last_seq;
        rep.indexed = walk.indexed;
        let signed = rep.signed_through.unwrap_or(0).max(pruned);
        rep.unsigned = match walk.last_seq {
            Some(last) if last > signed => {
                u64::try_from(last - signed.max(walk.first_seq.unwrap_or(1) - 1)).unwrap_or(0)
            }
            _ => 0,
        };
        for a in &anchored_missing {
            if walk.last_seq.is_some_and(|l| l >= a.seq_to) {
                findings.push(found(
                    a.seq_from,
                    TamperKind::DigestMissing,
                    format!(
                        "is in a range whose digest (records {}..={}), anchored outside the database, is missing from it (a digest was deleted)",
                        a.seq_from, a.seq_to
                    ),
                ));
            }
        }
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
    lookup: Lookup,
    /// Records compared with the lookup index.
    indexed: u64,
}

/// The chain's lookup index, as far as it goes (`mark`): entries of the buffered records,
/// and every block's time bounds; the terms the records of the current block need (checked
/// against the block's terms when the walk leaves it: one look-up of those terms per block).
#[derive(Default)]
struct Lookup {
    mark: i64,
    entries: HashMap<i64, AuditLookupRow>,
    blocks: HashMap<i64, (i64, i64)>,
    /// The current block, and each term its records carry with the first record carrying it.
    needed: Option<(i64, BTreeMap<String, i64>)>,
}

type Problem = (i64, TamperKind, String);

impl<'a> Walk<'a> {
    fn new(store: &'a Store, chain: &str, after: i64) -> Result<Self, String> {
        let c = chain.to_owned();
        let lookup = store
            .read_blocking(move |tx| {
                let Some(mark) = tx.audit_index_mark(&c)? else {
                    return Ok(Lookup::default());
                };
                let blocks = tx
                    .audit_lookup_blocks(&c)?
                    .into_iter()
                    .map(|(blk, lo, hi)| (blk, (lo, hi)))
                    .collect();
                Ok(Lookup {
                    mark,
                    entries: HashMap::new(),
                    blocks,
                    needed: None,
                })
            })
            .map_err(|e| e.to_string())?;
        Ok(Self {
            lookup,
            indexed: 0,
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
        })
    }

    /// Make sure `n` rows are buffered (unless the chain ends first).
    fn fill(&mut self, n: usize) -> Result<(), String> {
        while self.buf.len() < n && !self.exhausted {
            let (c, after) = (self.chain.clone(), self.after);
            let rows = self
                .store
                .read_blocking(move |tx| Ok(tx.audit_range(&c, after, PAGE)?))
                .map_err(|e| e.to_string())?;
            let from = self.after;
            match rows.last() {
                Some(r) => self.after = r.seq,
                None => self.exhausted = true,
            }
            let through = self.after.min(self.lookup.mark);
            if through > from {
                let c = self.chain.clone();
                let entries = self
                    .store
                    .read_blocking(move |tx| Ok(tx.audit_lookup_range(&c, from, through)?))
                    .map_err(|e| e.to_string())?;
                self.lookup
                    .entries
                    .extend(entries.into_iter().map(|e| (e.seq, e)));
            }
            self.buf.extend(rows);
        }
        Ok(())
    }

    /// Walk from `start` (whose predecessor has hash `prev`) to the end of the chain or its
    /// first problem.
    fn run(
        &mut self,
        start: i64,
        prev: String,
        digests: &BTreeMap<i64, &AuditDigestRow>,
    ) -> Result<Option<Problem>, String> {
        let found = self.walk(start, prev, digests)?;
        // The terms of the block the walk ended in: a problem there may come first.
        let terms = self.check_terms()?;
        Ok(match (found, terms) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        })
    }

    /// Check the terms the current block's records need against the block's terms.
    fn check_terms(&mut self) -> Result<Option<Problem>, String> {
        let Some((blk, needed)) = self.lookup.needed.take() else {
            return Ok(None);
        };
        let (c, names): (String, Vec<String>) =
            (self.chain.clone(), needed.keys().cloned().collect());
        let present: HashSet<String> = self
            .store
            .read_blocking(move |tx| Ok(tx.audit_lookup_terms_in(&c, blk, &names)?))
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        Ok(needed
            .into_iter()
            .filter(|(t, _)| !present.contains(t))
            .min_by_key(|(_, seq)| *seq)
            .map(|(t, seq)| {
                (
                    seq,
                    TamperKind::IndexAltered,
                    format!(
                        "is hidden from or misfiled in LookupEvents: its lookup block {blk} lacks the term `{t}`"
                    ),
                )
            }))
    }

    fn walk(
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
            let blk = lookup_block(r.seq);
            if self.lookup.needed.as_ref().is_some_and(|(b, _)| *b != blk) {
                if let Some(p) = self.check_terms()? {
                    return Ok(Some(p));
                }
            }
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
            if r.seq <= self.lookup.mark {
                let entry = self.lookup.entries.remove(&r.seq);
                if let Some(why) = self.lookup.mismatch(&r, entry.as_ref()) {
                    return Ok(Some((
                        r.seq,
                        TamperKind::IndexAltered,
                        format!("is hidden from or misfiled in LookupEvents: {why}"),
                    )));
                }
                self.indexed += 1;
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

impl Lookup {
    /// Why the lookup index does not find `r` where a search for its attributes looks (its
    /// columns already match its record), if it does not; the terms `r` needs in its block are
    /// noted for [`Walk::check_terms`].
    fn mismatch(&mut self, r: &AuditRow, entry: Option<&AuditLookupRow>) -> Option<String> {
        let want = AuditLookupRow::of(r);
        let Some(have) = entry else {
            return Some(format!(
                "the lookup index, which covers records through {}, has no entry for it",
                self.mark
            ));
        };
        let columns: [(&str, bool); 14] = [
            ("event_time", want.event_time == have.event_time),
            ("event_name", want.event_name == have.event_name),
            ("principal_arn", want.principal_arn == have.principal_arn),
            ("access_key_id", want.access_key_id == have.access_key_id),
            ("source_ip", want.source_ip == have.source_ip),
            ("resource_arn", want.resource_arn == have.resource_arn),
            ("error_code", want.error_code == have.error_code),
            ("decision", want.decision == have.decision),
            ("account_id", want.account_id == have.account_id),
            ("event_source", want.event_source == have.event_source),
            ("read_only", want.read_only == have.read_only),
            ("user_name", want.user_name == have.user_name),
            ("resource_type", want.resource_type == have.resource_type),
            ("resource_name", want.resource_name == have.resource_name),
        ];
        if let Some((col, _)) = columns.iter().find(|(_, ok)| !ok) {
            return Some(format!(
                "its lookup index entry's `{col}` does not match the record"
            ));
        }
        let blk = lookup_block(r.seq);
        match self.blocks.get(&blk) {
            Some((lo, hi)) if (*lo..=*hi).contains(&r.event_time) => {}
            Some((lo, hi)) => {
                return Some(format!(
                    "its lookup block {blk}'s time bounds ({lo}..={hi}) leave out its time ({})",
                    r.event_time
                ))
            }
            None => return Some(format!("its lookup block {blk} is missing")),
        }
        let (_, needed) = self.needed.get_or_insert_with(|| (blk, BTreeMap::new()));
        for t in record_terms(&want) {
            needed.entry(t).or_insert(r.seq);
        }
        None
    }
}

/// The first query column that disagrees with the record it indexes.
fn index_mismatch(r: &AuditRow) -> Option<&'static str> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.record) else {
        return Some("record");
    };
    let want = Index::of(&v);
    // Columns written before NULs were replaced compare as they would be written now.
    let have = stored_index(r).without_nul();
    // Every column, NULL or not: a column set to NULL hides the record from a search on it.
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
        ("account_id", want.account_id == have.account_id),
        ("event_source", want.event_source == have.event_source),
        ("read_only", want.read_only == have.read_only),
        ("user_name", want.user_name == have.user_name),
        ("resource_type", want.resource_type == have.resource_type),
        ("resource_name", want.resource_name == have.resource_name),
    ];
    checks.iter().find(|(_, ok)| !ok).map(|(n, _)| *n)
}
