//! The audit signing key: Ed25519, generated on first use and kept beside the master key
//! (`audit-signing.key`, mode 0600; its public half in `audit-signing.pub` for verifiers).
//! The HMAC key that makes tokens comparable without revealing them is derived from it.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The signing key file name (beside the master key).
pub const KEY_FILE: &str = "audit-signing.key";
/// The public key file name.
pub const PUB_FILE: &str = "audit-signing.pub";

/// Where the signing key lives for a master key file: the same directory.
pub fn key_path_beside(master_key_file: &Path) -> PathBuf {
    master_key_file.with_file_name(KEY_FILE)
}

/// The public key file for a signing key file.
pub fn pub_path_for(key_file: &Path) -> PathBuf {
    key_file.with_file_name(PUB_FILE)
}

/// The signing key pair and the derived HMAC key.
pub struct AuditKeys {
    pair: Ed25519KeyPair,
    hmac: ring::hmac::Key,
    public_hex: String,
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKeys")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl AuditKeys {
    /// Load the key at `path`, or generate it (and its `.pub`) if the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        let keys = match std::fs::read(path) {
            Ok(bytes) => Self::parse(&Zeroizing::new(bytes), path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path)?,
            Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
        };
        keys.check_or_write_public(&pub_path_for(path))?;
        Ok(keys)
    }

    /// Load an existing key.
    pub fn load(path: &Path) -> Result<Self, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        Self::parse(&Zeroizing::new(bytes), path)
    }

    /// A fresh key that lives only in memory (tests; servers without a key path).
    pub fn ephemeral() -> Result<Self, String> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| e.to_string())?;
        Self::from_pkcs8(doc.as_ref())
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| format!("not an Ed25519 PKCS#8 key: {e}"))?;
        let mut h = Sha256::new();
        h.update(b"strongroom-audit-hmac-v1\0");
        h.update(pkcs8);
        let derived = Zeroizing::new(h.finalize().to_vec());
        let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &derived);
        let public_hex = hex::encode(pair.public_key().as_ref());
        Ok(Self {
            pair,
            hmac,
            public_hex,
        })
    }

    fn parse(bytes: &[u8], path: &Path) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| format!("`{}` is not an audit signing key", path.display()))?;
        let der = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| format!("`{}` is not base64", path.display()))?,
        );
        Self::from_pkcs8(&der).map_err(|e| format!("`{}`: {e}", path.display()))
    }

    /// Generate a key and create the file atomically (a concurrent starter may win; then
    /// its key is used).
    fn create(path: &Path) -> Result<Self, String> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| e.to_string())?;
        let text = Zeroizing::new(format!(
            "{}\n",
            base64::engine::general_purpose::STANDARD.encode(doc.as_ref())
        ));
        let tmp = path.with_file_name(format!(".{KEY_FILE}.{}", uuid::Uuid::new_v4().simple()));
        write_private(&tmp, text.as_bytes())?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Self::from_pkcs8(doc.as_ref()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(format!("cannot create `{}`: {e}", path.display())),
        }
    }

    /// Write `audit-signing.pub` if missing; refuse to start if it names another key.
    fn check_or_write_public(&self, pub_path: &Path) -> Result<(), String> {
        match std::fs::read_to_string(pub_path) {
            Ok(s) if s.trim() == self.public_hex => Ok(()),
            Ok(_) => Err(format!(
                "`{}` does not match the audit signing key beside it",
                pub_path.display()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::write(pub_path, format!("{}\n", self.public_hex))
                    .map_err(|e| format!("cannot write `{}`: {e}", pub_path.display()))
            }
            Err(e) => Err(format!("cannot read `{}`: {e}", pub_path.display())),
        }
    }

    /// The public key, hex.
    pub fn public_hex(&self) -> &str {
        &self.public_hex
    }

    /// A short name for the public key.
    pub fn key_id(&self) -> String {
        key_id_of(&self.public_hex)
    }

    /// Ed25519 signature, hex.
    pub fn sign_hex(&self, msg: &[u8]) -> String {
        hex::encode(self.pair.sign(msg).as_ref())
    }

    /// `hmac-sha256:<hex>` of a value, with the derived key.
    pub fn hmac(&self, value: &str) -> String {
        let tag = ring::hmac::sign(&self.hmac, value.as_bytes());
        format!("hmac-sha256:{}", hex::encode(tag.as_ref()))
    }

    /// [`AuditKeys::hmac`], appended to `out`.
    pub fn hmac_into(&self, value: &str, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let tag = ring::hmac::sign(&self.hmac, value.as_bytes());
        out.reserve(12 + 2 * tag.as_ref().len());
        out.push_str("hmac-sha256:");
        for b in tag.as_ref() {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// First 16 hex digits of SHA-256 of a hex public key's bytes.
pub fn key_id_of(public_hex: &str) -> String {
    let bytes = hex::decode(public_hex).unwrap_or_default();
    let d = hex::encode(Sha256::digest(bytes));
    d.chars().take(16).collect()
}

/// Whether `sig_hex` is a valid signature of `msg` by `public_hex`.
pub fn signature_ok(public_hex: &str, msg: &[u8], sig_hex: &str) -> bool {
    match (hex::decode(public_hex), hex::decode(sig_hex)) {
        (Ok(pk), Ok(sig)) => UnparsedPublicKey::new(&ED25519, pk)
            .verify(msg, &sig)
            .is_ok(),
        _ => false,
    }
}

/// Read a public key file (hex, as written beside the signing key).
pub fn read_public(path: &Path) -> Result<String, String> {
    let s = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let s = s.trim().to_ascii_lowercase();
    match hex::decode(&s) {
        Ok(b) if b.len() == 32 => Ok(s),
        _ => Err(format!(
            "`{}` is not an Ed25519 public key (64 hex digits)",
            path.display()
        )),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_reloaded_and_public_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let a = AuditKeys::load_or_create(&path).unwrap();
        let b = AuditKeys::load_or_create(&path).unwrap();
        assert_eq!(a.public_hex(), b.public_hex());
        assert_eq!(a.hmac("x"), b.hmac("x"));
        assert_ne!(a.hmac("x"), a.hmac("y"));
        assert_eq!(read_public(&pub_path_for(&path)).unwrap(), a.public_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sig = a.sign_hex(b"m");
        assert!(signature_ok(a.public_hex(), b"m", &sig));
        assert!(!signature_ok(a.public_hex(), b"n", &sig));
        // a .pub naming another key is refused
        std::fs::write(pub_path_for(&path), format!("{}\n", "00".repeat(32))).unwrap();
        let err = AuditKeys::load_or_create(&path).unwrap_err();
        assert!(
            err.contains("does not match the audit signing key beside it"),
            "{err}"
        );
    }
}
