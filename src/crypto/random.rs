//! Random identifiers and credentials, from the operating system's CSPRNG: THE generator for
//! access key ids, secret access keys and session keys.

use rand::Rng;
use zeroize::Zeroizing;

/// The characters of an access key id after its prefix (AWS's base32 alphabet).
const KEY_ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// The characters of a secret access key.
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `n` characters drawn uniformly from `alphabet` (which must not be empty).
pub fn string(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| {
            alphabet
                .get(rng.gen_range(0..alphabet.len()))
                .map_or('A', |b| char::from(*b))
        })
        .collect()
}

/// An access key id: `prefix` (`AKIA` long-term, `ASIA` temporary) and 16 characters.
pub fn access_key_id(prefix: &str) -> String {
    format!("{prefix}{}", string(KEY_ID_ALPHABET, 16))
}

/// An AWS-style unique id: `prefix` (`AROA` for a role) and 17 base32 characters.
pub fn unique_id(prefix: &str) -> String {
    format!("{prefix}{}", string(KEY_ID_ALPHABET, 17))
}

/// A 40-character secret access key.
pub fn secret_access_key() -> Zeroizing<String> {
    Zeroizing::new(string(SECRET_ALPHABET, 40))
}

#[cfg(test)]
mod tests {
    #[test]
    fn shapes() {
        let id = super::access_key_id("ASIA");
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("ASIA"));
        assert!(id[4..].bytes().all(|b| super::KEY_ID_ALPHABET.contains(&b)));
        let s = super::secret_access_key();
        assert_eq!(s.len(), 40);
        assert_ne!(*s, *super::secret_access_key());
    }
}
