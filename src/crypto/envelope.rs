//! Per-version data keys and the associated data that binds each ciphertext to its place.

use zeroize::Zeroizing;

use super::{CryptoError, Key256};

/// A sealed secret value plus its data key, wrapped by a KMS key term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    pub ciphertext: Vec<u8>,
    pub wrapped_dek: Vec<u8>,
}

/// `parts` joined with NUL bytes (each AAD below: a label, then its fields). Built on the
/// request path for every value opened: appended into one buffer, without `format!`.
fn joined(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(p.as_bytes());
    }
    out
}

/// AAD for a secret value: binds the ciphertext to the secret ARN and version id.
pub fn value_aad(secret_arn: &str, version_id: &str) -> Vec<u8> {
    joined(&["strongroom:value:v1", secret_arn, version_id])
}

/// AAD for a data key wrapped by a KMS key (like KMS's encryption context
/// `{SecretARN, SecretVersionId}` plus the key and term that wrapped it).
pub fn dek_aad(key_id: &str, term: i32, secret_arn: &str, version_id: &str) -> Vec<u8> {
    let term = term.to_string();
    joined(&["strongroom:dek:v1", key_id, &term, secret_arn, version_id])
}

/// AAD for KMS key material wrapped by a master key.
pub fn material_aad(key_id: &str, term: i32) -> Vec<u8> {
    format!("strongroom:kms-material:v1\0{key_id}\0{term}").into_bytes()
}

/// AAD for an access key's secret wrapped by a master key.
pub fn access_key_aad(access_key_id: &str) -> Vec<u8> {
    format!("strongroom:access-key:v1\0{access_key_id}").into_bytes()
}

/// Encrypt one version's value with a fresh data key, wrapped by `kek` (`key_id`, `term`).
pub fn seal_value(
    kek: &Key256,
    key_id: &str,
    term: i32,
    secret_arn: &str,
    version_id: &str,
    plaintext: &[u8],
) -> Result<SealedValue, CryptoError> {
    let dek = Key256::random();
    let ciphertext = dek.seal(plaintext, &value_aad(secret_arn, version_id))?;
    let wrapped_dek = kek.seal(
        dek.as_bytes(),
        &dek_aad(key_id, term, secret_arn, version_id),
    )?;
    Ok(SealedValue {
        ciphertext,
        wrapped_dek,
    })
}

/// Decrypt one version's value.
pub fn open_value(
    kek: &Key256,
    key_id: &str,
    term: i32,
    secret_arn: &str,
    version_id: &str,
    sealed: &SealedValue,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let dek_bytes = kek.open(
        &sealed.wrapped_dek,
        &dek_aad(key_id, term, secret_arn, version_id),
    )?;
    let dek = Key256::from_slice(&dek_bytes)?;
    dek.open(&sealed.ciphertext, &value_aad(secret_arn, version_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:a-AbCdEf";

    #[test]
    fn the_aads_are_their_fields_joined_by_nul() {
        // Stored values were sealed under these exact bytes.
        assert_eq!(
            value_aad(ARN, "v1"),
            format!("strongroom:value:v1\0{ARN}\0v1").into_bytes()
        );
        assert_eq!(
            dek_aad("k1", -3, ARN, "v1"),
            format!("strongroom:dek:v1\0k1\0-3\0{ARN}\0v1").into_bytes()
        );
    }

    #[test]
    fn round_trip() {
        let kek = Key256::random();
        let s = seal_value(&kek, "k1", 1, ARN, "v1", b"value").unwrap();
        assert_eq!(
            open_value(&kek, "k1", 1, ARN, "v1", &s).unwrap().as_slice(),
            b"value"
        );
        assert!(!s.ciphertext.windows(5).any(|w| w == b"value"));
    }

    #[test]
    fn moved_ciphertext_does_not_decrypt() {
        let kek = Key256::random();
        let s = seal_value(&kek, "k1", 1, ARN, "v1", b"value").unwrap();
        // another version of the same secret
        assert!(matches!(
            open_value(&kek, "k1", 1, ARN, "v2", &s),
            Err(CryptoError::Decrypt)
        ));
        // another secret
        let other = "arn:aws:secretsmanager:us-east-1:000000000000:secret:b-AbCdEf";
        assert!(matches!(
            open_value(&kek, "k1", 1, other, "v1", &s),
            Err(CryptoError::Decrypt)
        ));
        // another key term
        assert!(matches!(
            open_value(&kek, "k1", 2, ARN, "v1", &s),
            Err(CryptoError::Decrypt)
        ));
        // data key of one version with the value of another
        let s2 = seal_value(&kek, "k1", 1, ARN, "v2", b"other").unwrap();
        let mixed = SealedValue {
            ciphertext: s2.ciphertext,
            wrapped_dek: s.wrapped_dek,
        };
        assert!(matches!(
            open_value(&kek, "k1", 1, ARN, "v1", &mixed),
            Err(CryptoError::Decrypt)
        ));
    }
}
