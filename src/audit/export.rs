//! Export to CloudTrail-style files and retention.
//!
//! `export` writes each chain's new records as gzip'd `{"Records":[...]}` files (the shape
//! CloudTrail delivers to S3 and SIEMs ingest) under `OUT/<chain>/`, and remembers per chain
//! the last seq exported in `OUT/.strongroom-export-state.json`; the next run writes only
//! newer records. File names are deterministic (`<from>-<to>`), so a run interrupted between
//! a file and the state update rewrites the same file.
//!
//! Beside each file, `<file>.digest.json` signs (with the audit signing key, as the chain's
//! digests) what the file is: its SHA-256, the chain and the records `from..=to` it holds,
//! the hash the record before `from` ended with and the hash `to` ends with. Files of one
//! chain therefore link as the chain does, and [`verify_export`] finds a file altered,
//! removed from the middle, inserted or not signed by a trusted key, after the records
//! themselves were pruned from the database (as CloudTrail's digest files vouch for its log
//! files).
//!
//! `prune` first exports, then for each chain deletes the oldest records older than the
//! cut-off that are already exported, leaving a signed anchor ("records up to N were pruned;
//! the last had hash H") from which `verify` continues: H is the last hash of an exported
//! file's digest.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::chain::{signed_statement, ANCHOR};
use super::keys::AuditKeys;
use super::verify::{verify_store, VerifyOptions};
use crate::store::Store;

/// The state file in the export directory.
pub const STATE_FILE: &str = ".strongroom-export-state.json";
/// Most records per exported file.
const FILE_RECORDS: i64 = 5000;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    chains: BTreeMap<String, ChainState>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChainState {
    last_seq: i64,
    last_hash: String,
}

/// What an export wrote.
#[derive(Debug, Default)]
pub struct ExportSummary {
    pub files: Vec<PathBuf>,
    pub records: u64,
    /// Gaps met (records missing between the last export and now: pruned elsewhere?).
    pub warnings: Vec<String>,
}

/// What one chain's prune transaction removed (its result, for a record made with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Records up to this seq are gone, under an anchor.
    pub through: i64,
    pub records: usize,
}

/// What a prune removed, per chain: `(chain, through_seq, records deleted)`.
#[derive(Debug, Default)]
pub struct PruneSummary {
    pub export: ExportSummary,
    pub pruned: Vec<(String, i64, usize)>,
    /// Chains left alone, and why.
    pub skipped: Vec<String>,
}

fn load_state(out: &Path) -> Result<State, String> {
    let p = out.join(STATE_FILE);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("`{}`: {e}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(format!("cannot read `{}`: {e}", p.display())),
    }
}

/// Write `bytes` to `path` atomically (temp file, fsync, rename).
/// A directory of the export, created readable by its owner only (0700 on Unix): the
/// records name principals, access key ids, source addresses and secrets.
fn owner_only_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .map_err(|e| format!("cannot write `{}`: {e}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write `{}`: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

fn save_state(out: &Path, s: &State) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(s).map_err(|e| e.to_string())?;
    write_atomic(&out.join(STATE_FILE), &bytes)
}

/// A chain id fit for a directory name.
fn dir_name(chain: &str) -> String {
    if !chain.is_empty()
        && chain.len() <= 64
        && chain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        chain.to_owned()
    } else {
        format!("x{}", hex::encode(chain.as_bytes()))
    }
}

/// Export every chain's records newer than the last export to `out`.
/// The signed statement beside an exported file (`<file>.digest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportDigest {
    pub chain_id: String,
    /// The exported file's name (in the chain's directory).
    pub file: String,
    pub seq_from: i64,
    pub seq_to: i64,
    /// The hash of the record before `seq_from` (the chain's genesis or an earlier record).
    pub previous_hash: String,
    /// The hash of record `seq_to`.
    pub last_hash: String,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub file_sha256: String,
    pub created_at: i64,
    pub public_key: String,
    pub signature: String,
}

impl ExportDigest {
    /// The bytes the signature covers.
    fn payload(&self) -> Vec<u8> {
        format!(
            "strongroom-audit-export-v1\nchain={}\nfile={}\nfrom={}\nto={}\nprevious_hash={}\nlast_hash={}\nfile_sha256={}\ncreated_at={}\nkey={}\n",
            self.chain_id,
            self.file,
            self.seq_from,
            self.seq_to,
            self.previous_hash,
            self.last_hash,
            self.file_sha256,
            self.created_at,
            self.public_key
        )
        .into_bytes()
    }
}

/// Where the digest of exported file `file` goes.
fn digest_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".digest.json");
    PathBuf::from(name)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// What [`verify_export`] found in an export directory.
#[derive(Debug, Default)]
pub struct ExportReport {
    /// Per chain directory: files checked, the first and last seq they hold, and the hash
    /// the last one ends with (to compare with the chain's prune anchor).
    pub chains: Vec<(String, usize, i64, i64, String)>,
    /// Every problem, first found first; empty when the export verifies.
    pub problems: Vec<String>,
}

/// Check every exported file of `out` against its signed digest: present, signed by one of
/// `trusted` (hex public keys; any key the digest names when `trusted` is empty), the file's
/// SHA-256 as signed, and each chain's files linked end to start (`seq_to + 1 = seq_from`,
/// `last_hash = previous_hash`). A file removed from the end is not seen (as a chain's tail
/// after its last digest); the chain's prune anchor names the hash the export reached.
pub fn verify_export(out: &Path, trusted: &[String]) -> Result<ExportReport, String> {
    let mut report = ExportReport::default();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .map_err(|e| format!("cannot read `{}`: {e}", out.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".json.gz"))
            .collect();
        files.sort();
        let mut before: Option<ExportDigest> = None;
        let mut first_seq = 0;
        for file in &files {
            let shown = file.display();
            let digest: ExportDigest = match std::fs::read(digest_path(file))
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_slice(&t).map_err(|e| e.to_string()))
            {
                Ok(d) => d,
                Err(e) => {
                    report
                        .problems
                        .push(format!("{shown}: no readable signed digest ({e})"));
                    continue;
                }
            };
            if !trusted.is_empty() && !trusted.contains(&digest.public_key) {
                report.problems.push(format!(
                    "{shown}: its digest is signed by a key not trusted"
                ));
                continue;
            }
            if !super::keys::signature_ok(&digest.public_key, &digest.payload(), &digest.signature)
            {
                report
                    .problems
                    .push(format!("{shown}: its digest's signature does not verify"));
                continue;
            }
            let own_name = file.file_name().map(|n| n.to_string_lossy().into_owned());
            if own_name.as_deref() != Some(digest.file.as_str()) {
                report
                    .problems
                    .push(format!("{shown}: its digest is for file `{}`", digest.file));
                continue;
            }
            match std::fs::read(file) {
                Ok(bytes) if sha256_hex(&bytes) == digest.file_sha256 => {}
                Ok(_) => {
                    report.problems.push(format!(
                        "{shown}: altered (its SHA-256 is not the one signed)"
                    ));
                    continue;
                }
                Err(e) => {
                    report
                        .problems
                        .push(format!("{shown}: cannot be read: {e}"));
                    continue;
                }
            }
            match &before {
                None if digest.seq_from != 1 => {
                    first_seq = digest.seq_from;
                    report.problems.push(format!(
                        "{shown}: the directory's first file holds records from {}: records before it are not here",
                        digest.seq_from
                    ));
                }
                None => first_seq = digest.seq_from,
                Some(b) if b.chain_id != digest.chain_id => report.problems.push(format!(
                    "{shown}: of chain `{}` among the files of chain `{}`",
                    digest.chain_id, b.chain_id
                )),
                Some(b)
                    if b.seq_to + 1 != digest.seq_from || b.last_hash != digest.previous_hash =>
                {
                    report.problems.push(format!(
                        "{shown}: does not continue `{}` (records {}..{} then {}..{}): a file is missing, inserted or out of place",
                        b.file, b.seq_from, b.seq_to, digest.seq_from, digest.seq_to
                    ));
                }
                Some(_) => {}
            }
            before = Some(digest);
        }
        if let Some(last) = before {
            report
                .chains
                .push((name, files.len(), first_seq, last.seq_to, last.last_hash));
        }
    }
    Ok(report)
}

/// Export every chain's new records into `out`, each file signed with `keys`.
pub fn export(store: &Store, keys: &AuditKeys, out: &Path) -> Result<ExportSummary, String> {
    export_chains(store, keys, out, None)
}

/// [`export`], of chain `only` when given.
pub fn export_chains(
    store: &Store,
    keys: &AuditKeys,
    out: &Path,
    only: Option<&str>,
) -> Result<ExportSummary, String> {
    owner_only_dir(out).map_err(|e| format!("cannot create `{}`: {e}", out.display()))?;
    let mut state = load_state(out)?;
    let mut summary = ExportSummary::default();
    let chains = store
        .read_blocking(|tx| Ok(tx.audit_chains()?))
        .map_err(|e| e.to_string())?;
    for chain in chains {
        if only.is_some_and(|o| o != chain) {
            continue;
        }
        let dir = out.join(dir_name(&chain));
        let mut cs = state.chains.get(&chain).cloned().unwrap_or_default();
        loop {
            let (c, after) = (chain.clone(), cs.last_seq);
            let rows = store
                .read_blocking(move |tx| Ok(tx.audit_range(&c, after, FILE_RECORDS)?))
                .map_err(|e| e.to_string())?;
            let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
                break;
            };
            if first.seq != cs.last_seq + 1 && cs.last_seq > 0 {
                summary.warnings.push(format!(
                    "chain `{chain}`: records {}..{} were not found (pruned before export?)",
                    cs.last_seq + 1,
                    first.seq
                ));
            }
            let records: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| serde_json::from_str(&r.record).unwrap_or(serde_json::Value::Null))
                .collect();
            let body = serde_json::to_vec(&serde_json::json!({ "Records": records }))
                .map_err(|e| e.to_string())?;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&body).map_err(|e| e.to_string())?;
            let gz = gz.finish().map_err(|e| e.to_string())?;
            owner_only_dir(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
            let file = dir.join(format!(
                "strongroom_{}_{:012}-{:012}.json.gz",
                dir_name(&chain),
                first.seq,
                last.seq
            ));
            let mut digest = ExportDigest {
                chain_id: chain.clone(),
                file: file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                seq_from: first.seq,
                seq_to: last.seq,
                previous_hash: first.prev_hash.clone(),
                last_hash: last.hash.clone(),
                file_sha256: sha256_hex(&gz),
                created_at: crate::ops::system_now_ms(),
                public_key: keys.public_hex().to_owned(),
                signature: String::new(),
            };
            digest.signature = keys.sign_hex(&digest.payload());
            let digest_text = serde_json::to_vec(&digest).map_err(|e| e.to_string())?;
            // The file, then its digest: a run interrupted between them leaves a file without
            // a digest, which the next run (the state not yet moved) writes again with one.
            write_atomic(&file, &gz)?;
            write_atomic(&digest_path(&file), &digest_text)?;
            summary.records += u64::try_from(rows.len()).unwrap_or(0);
            summary.files.push(file);
            cs = ChainState {
                last_seq: last.seq,
                last_hash: last.hash.clone(),
            };
            state.chains.insert(chain.clone(), cs.clone());
            save_state(out, &state)?;
        }
    }
    Ok(summary)
}

/// Export, then delete each chain's exported records older than `cutoff_ms`, under a
/// signed anchor. A chain that does not verify (with `keys` trusted) is left alone.
pub fn prune(
    store: &Store,
    keys: &AuditKeys,
    out: &Path,
    cutoff_ms: i64,
    now_ms: i64,
    anchors: &[crate::store::rows::AuditDigestRow],
) -> Result<PruneSummary, String> {
    prune_chains(store, keys, out, cutoff_ms, now_ms, None, anchors)
}

/// [`prune`], of chain `only` when given. Each chain's deletion (and anchor) is one write
/// transaction through `store`, whose result is `Option<`[`Pruned`]`>`.
pub fn prune_chains(
    store: &Store,
    keys: &AuditKeys,
    out: &Path,
    cutoff_ms: i64,
    now_ms: i64,
    only: Option<&str>,
    anchors: &[crate::store::rows::AuditDigestRow],
) -> Result<PruneSummary, String> {
    let export = export_chains(store, keys, out, only)?;
    let state = load_state(out)?;
    let mut summary = PruneSummary {
        export,
        ..PruneSummary::default()
    };
    for (chain, cs) in &state.chains {
        if only.is_some_and(|o| o != chain) {
            continue;
        }
        let c = chain.clone();
        let bounds = store
            .read_blocking(move |tx| {
                let first_new = tx.first_audit_seq_since(&c, cutoff_ms)?;
                let head = tx.audit_head(&c)?;
                let anchored = tx.last_audit_digest(&c, ANCHOR)?.map_or(0, |a| a.seq_to);
                Ok((first_new, head, anchored))
            })
            .map_err(|e| e.to_string())?;
        let (first_new, head, anchored) = bounds;
        let Some((head_seq, _)) = head else {
            continue;
        };
        let through = first_new.map_or(head_seq, |s| s - 1).min(cs.last_seq);
        if through <= anchored {
            continue;
        }
        // The digests kept outside the database take part: a rewrite whose digests were
        // deleted from the database verifies clean against the database alone, and pruning
        // it would take away the records that let the outside copies reveal it.
        let opts = VerifyOptions {
            trusted_keys: vec![keys.public_hex().to_owned()],
            chain: Some(chain.clone()),
            anchors: anchors
                .iter()
                .filter(|a| a.chain_id == *chain)
                .cloned()
                .collect(),
        };
        let report = verify_store(store, &opts)?;
        if let Some(f) = report.first_finding().filter(|f| f.seq <= through) {
            summary.skipped.push(format!(
                "chain `{chain}` not pruned: it fails verification: {f}"
            ));
            continue;
        }
        let c = chain.clone();
        let deleted = store
            .write_blocking(move |tx| {
                let Some(last) = tx.audit_record(&c, through)? else {
                    return Ok(None);
                };
                let anchor =
                    signed_statement(keys, &c, ANCHOR, anchored + 1, through, &last.hash, now_ms);
                tx.insert_audit_digest(&anchor)?;
                let records = tx.delete_audit_through(&c, through)?;
                Ok(Some(Pruned { through, records }))
            })
            .map_err(|e| format!("{e:?}"))?;
        match deleted {
            Some(p) => summary.pruned.push((chain.clone(), p.through, p.records)),
            None => summary
                .skipped
                .push(format!("chain `{chain}`: record {through} not found")),
        }
    }
    Ok(summary)
}
