//! Digests kept outside the database, as CloudTrail delivers digest files beside its logs: a
//! server started with a digest directory writes each signed digest there too (one JSON file
//! per digest, `<chain>/<seq_to>.json`, written after the digest committed), and
//! `strongroom audit digests export` prints them for shipping. `audit verify --anchor` then
//! holds the database to them: someone who can rewrite the database but not the anchors
//! cannot cut the chain's tail (with the digests that cover it) unnoticed. See
//! `verify::load_anchors`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::store::rows::AuditDigestRow;

/// A digest as JSON (one object; one line).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DigestJson {
    chain_id: String,
    kind: String,
    seq_from: i64,
    seq_to: i64,
    last_hash: String,
    record_count: i64,
    created_at: i64,
    key_id: String,
    public_key: String,
    signature: String,
}

/// A digest's JSON text (one line).
pub fn digest_to_json(d: &AuditDigestRow) -> String {
    let j = DigestJson {
        chain_id: d.chain_id.clone(),
        kind: d.kind.clone(),
        seq_from: d.seq_from,
        seq_to: d.seq_to,
        last_hash: d.last_hash.clone(),
        record_count: d.record_count,
        created_at: d.created_at,
        key_id: d.key_id.clone(),
        public_key: d.public_key.clone(),
        signature: d.signature.clone(),
    };
    serde_json::to_string(&j).unwrap_or_default()
}

/// A digest from [`digest_to_json`]'s text (its signature is not checked here).
pub fn digest_from_json(text: &str) -> Result<AuditDigestRow, String> {
    let j: DigestJson = serde_json::from_str(text).map_err(|e| format!("not a digest: {e}"))?;
    Ok(AuditDigestRow {
        chain_id: j.chain_id,
        kind: j.kind,
        seq_from: j.seq_from,
        seq_to: j.seq_to,
        last_hash: j.last_hash,
        record_count: j.record_count,
        created_at: j.created_at,
        key_id: j.key_id,
        public_key: j.public_key,
        signature: j.signature,
    })
}

/// Where in a digest directory the digest goes: `<chain>/<seq_to, 20 digits>.json` (so that
/// names sort by position in the chain). A chain id that is not a plain name (server ids are
/// UUIDs) is written as hex.
pub fn digest_file(dir: &Path, d: &AuditDigestRow) -> PathBuf {
    let plain = !d.chain_id.is_empty()
        && !d.chain_id.starts_with('.')
        && d.chain_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let chain = if plain {
        d.chain_id.clone()
    } else {
        format!("x-{}", hex::encode(d.chain_id.as_bytes()))
    };
    dir.join(chain)
        .join(format!("{:020}-{}.json", d.seq_to.max(0), d.kind))
}

/// Write a digest into a digest directory, durably (a temporary file, synced, then renamed
/// into place, and the directory synced).
pub fn write_digest_file(dir: &Path, d: &AuditDigestRow) -> Result<PathBuf, String> {
    let path = digest_file(dir, d);
    let parent = path.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
    let tmp = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(digest_to_json(d).as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(parent)?.sync_all()
    };
    write().map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{signed_statement, statement_signature_ok, DIGEST};
    use crate::audit::AuditKeys;

    #[test]
    fn a_digest_round_trips_through_its_file() {
        let keys = AuditKeys::ephemeral().unwrap();
        let d = signed_statement(&keys, "c-1", DIGEST, 11, 20, &"ab".repeat(32), 5);
        let dir = tempfile::tempdir().unwrap();
        let path = write_digest_file(dir.path(), &d).unwrap();
        assert_eq!(
            path,
            dir.path()
                .join("c-1")
                .join("00000000000000000020-digest.json")
        );
        let back = digest_from_json(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
        assert_eq!(back, d);
        assert!(statement_signature_ok(&back));
        // a chain id that could leave the directory is written as hex
        let odd = AuditDigestRow {
            chain_id: "../x".into(),
            ..d
        };
        assert_eq!(
            digest_file(dir.path(), &odd).parent().unwrap(),
            dir.path().join("x-2e2e2f78")
        );
    }
}
