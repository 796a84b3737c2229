//! Envelope encryption: AES-256-GCM everywhere, three layers.
//!
//! master key (file, by id) → wraps KMS key material (one row per key and term)
//! KMS key material → wraps one data key per secret version
//! data key → encrypts the version's value, with the secret ARN and version id as AAD.
//!
//! May depend on: nothing in the crate but `error`-free types; pure, no I/O except
//! `master` (which reads and writes the master key file).

pub mod envelope;
pub mod master;
pub mod random;

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Format byte of every sealed blob we write.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;

/// Why a crypto operation failed. Never carries key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("decryption failed (wrong key or associated data)")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    #[error("master key file: {0}")]
    MasterKey(String),
    #[error("unknown master key id `{0}`")]
    UnknownMasterKey(u32),
}

/// A 256-bit symmetric key. Zeroized on drop, redacted in `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key256([u8; 32]);

impl Key256 {
    /// A fresh random key from the OS CSPRNG.
    pub fn random() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Self(k)
    }

    /// A key from exactly 32 bytes.
    pub fn from_slice(b: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = b.try_into().map_err(|_| CryptoError::Malformed)?;
        Ok(Self(arr))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Seal `plaintext` under this key: `format(1) || nonce(12) || ciphertext+tag`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let cipher = Aes256Gcm::new_from_slice(&self.0).map_err(|_| CryptoError::Encrypt)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Encrypt)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Open a blob made by [`Key256::seal`] with the same AAD.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (format, rest) = sealed.split_first().ok_or(CryptoError::Malformed)?;
        if *format != FORMAT_V1 || rest.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let cipher = Aes256Gcm::new_from_slice(&self.0).map_err(|_| CryptoError::Decrypt)?;
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Decrypt)
    }
}

impl fmt::Debug for Key256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key256(<redacted>)")
    }
}

/// Plaintext secret material (a secret value, a password). Zeroized on drop, redacted in `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(v: Vec<u8>) -> Self {
        Self(v)
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    /// Constant-time equality (for idempotency checks).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.len() == other.len() && bool::from(self.0.as_slice().ct_eq(other))
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let k = Key256::random();
        let sealed = k.seal(b"hello", b"aad-1").unwrap();
        assert_eq!(k.open(&sealed, b"aad-1").unwrap().as_slice(), b"hello");
        assert_eq!(k.open(&sealed, b"aad-2"), Err(CryptoError::Decrypt));
        let other = Key256::random();
        assert_eq!(other.open(&sealed, b"aad-1"), Err(CryptoError::Decrypt));
        assert_eq!(k.open(&sealed[..5], b"aad-1"), Err(CryptoError::Malformed));
        assert_eq!(k.open(&[], b"aad-1"), Err(CryptoError::Malformed));
        let mut flipped = sealed.clone();
        if let Some(b) = flipped.last_mut() {
            *b ^= 1;
        }
        assert_eq!(k.open(&flipped, b"aad-1"), Err(CryptoError::Decrypt));
    }

    #[test]
    fn debug_is_redacted() {
        let k = Key256::random();
        assert_eq!(format!("{k:?}"), "Key256(<redacted>)");
        let s = SecretBytes::new(b"topsecret".to_vec());
        assert!(!format!("{s:?}").contains("topsecret"));
    }
}
