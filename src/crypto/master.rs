//! The master key file: a small keyring of 256-bit keys by id, one of them active.
//!
//! Format (JSON, mode 0600): `{"active": 2, "keys": {"1": "<base64>", "2": "<base64>"},
//! "retired": {"1": {"key": "<base64>", "until_ms": 1700000000000}}}`.
//! Rotation adds a key, re-wraps every row under it, then retires the old key; each step is
//! crash-safe because a file always holds every key that some row still needs.
//!
//! A retired key is no longer needed by any row; it is kept for [`RETIRED_KEY_LIFETIME_MS`]
//! only so that STS session tokens it sealed (which live in clients, not in the database)
//! keep working until they expire. Past that time it opens nothing and is dropped from the
//! file at the next load or rotation.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use zeroize::Zeroizing;

use super::{CryptoError, Key256};

/// How long a retired master key still opens what it sealed: the longest STS session
/// (a role's `MaxSessionDuration` is at most 12 hours).
pub const RETIRED_KEY_LIFETIME_MS: i64 = 12 * 3600 * 1000;

/// The master keys, by id.
#[derive(Debug, Clone)]
pub struct MasterKeyring {
    active: u32,
    keys: BTreeMap<u32, Key256>,
    /// Keys replaced by a rotation, with the epoch millisecond until which they still open.
    retired: BTreeMap<u32, (Key256, i64)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FileFormat {
    active: u32,
    keys: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    retired: BTreeMap<String, RetiredFormat>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RetiredFormat {
    key: String,
    until_ms: i64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// serde_json's message without the value it quotes (a key where another member was
/// expected), cut at its first quote, with the position.
fn without_values(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.find(['"', '`']) {
        None => msg,
        Some(i) => format!(
            "{}(value hidden) at line {} column {}",
            &msg[..i],
            e.line(),
            e.column()
        ),
    }
}

fn parse_key(id: &str, b64: &str) -> Result<(u32, Key256), CryptoError> {
    // The id is not shown: a file whose ids and keys were swapped would print a key.
    let id: u32 = id
        .parse()
        .map_err(|_| CryptoError::MasterKey("a key id is not a number".into()))?;
    let raw = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| CryptoError::MasterKey(format!("key {id} is not base64")))?,
    );
    let key = Key256::from_slice(&raw)
        .map_err(|_| CryptoError::MasterKey(format!("key {id} is not 32 bytes")))?;
    Ok((id, key))
}

impl MasterKeyring {
    /// A keyring with one fresh key (id 1).
    pub fn generate() -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(1, Key256::random());
        Self {
            active: 1,
            keys,
            retired: BTreeMap::new(),
        }
    }

    pub fn active_id(&self) -> u32 {
        self.active
    }

    pub fn active(&self) -> Result<&Key256, CryptoError> {
        self.get(self.active)
    }

    /// A current key, or a retired one before the end of its lifetime.
    pub fn get(&self, id: u32) -> Result<&Key256, CryptoError> {
        self.keys
            .get(&id)
            .or_else(|| {
                self.retired
                    .get(&id)
                    .filter(|(_, until)| now_ms() < *until)
                    .map(|(k, _)| k)
            })
            .ok_or(CryptoError::UnknownMasterKey(id))
    }

    /// The current (not retired) key ids.
    pub fn ids(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// The retired key ids with the epoch millisecond their lifetime ends.
    pub fn retired(&self) -> Vec<(u32, i64)> {
        self.retired.iter().map(|(id, (_, u))| (*id, *u)).collect()
    }

    /// Add a fresh key and make it active; returns its id.
    pub fn add_new_active(&mut self) -> u32 {
        let id = self
            .keys
            .keys()
            .max()
            .copied()
            .unwrap_or(0)
            .saturating_add(1);
        self.keys.insert(id, Key256::random());
        self.active = id;
        id
    }

    /// Keep only the active key (and no retired key): whatever an old key sealed, session
    /// tokens included, stops opening.
    pub fn retain_active_only(&mut self) {
        let active = self.active;
        self.keys.retain(|k, _| *k == active);
        self.retired.clear();
    }

    /// Retire every key but the active one until `until_ms` (no row needs them any more; the
    /// session tokens they sealed keep opening until then), and drop retired keys past their
    /// lifetime.
    pub fn retire_others(&mut self, until_ms: i64) {
        let active = self.active;
        let old: Vec<u32> = self.keys.keys().copied().filter(|k| *k != active).collect();
        for id in old {
            if let Some(k) = self.keys.remove(&id) {
                self.retired.insert(id, (k, until_ms));
            }
        }
        self.drop_expired(now_ms());
    }

    /// [`Self::retire_others`] for [`RETIRED_KEY_LIFETIME_MS`] from now (master key rotation).
    pub fn retire_others_for_sessions(&mut self) {
        self.retire_others(now_ms().saturating_add(RETIRED_KEY_LIFETIME_MS));
    }

    /// Drop retired keys whose lifetime ended before `now_ms`; true when one was dropped.
    fn drop_expired(&mut self, now_ms: i64) -> bool {
        let before = self.retired.len();
        self.retired.retain(|_, (_, until)| now_ms < *until);
        self.retired.len() != before
    }

    /// Load the keyring from `path`, or create it (mode 0600) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        match fs::read(path) {
            Ok(bytes) => {
                let mut ring = Self::parse(&Zeroizing::new(bytes))?;
                // a retired key past its lifetime leaves the file
                if ring.drop_expired(now_ms()) {
                    ring.save(path)?;
                }
                Ok(ring)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ring = Self::generate();
                ring.save(path)?;
                Ok(ring)
            }
            Err(e) => Err(CryptoError::MasterKey(format!(
                "cannot read `{}`: {e}",
                path.display()
            ))),
        }
    }

    /// Load an existing keyring.
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let bytes = fs::read(path).map_err(|e| {
            CryptoError::MasterKey(format!("cannot read `{}`: {e}", path.display()))
        })?;
        Self::parse(&Zeroizing::new(bytes))
    }

    fn parse(bytes: &[u8]) -> Result<Self, CryptoError> {
        let f: FileFormat = serde_json::from_slice(bytes).map_err(|e| {
            CryptoError::MasterKey(format!("not a master key file: {}", without_values(&e)))
        })?;
        let mut keys = BTreeMap::new();
        for (id, b64) in &f.keys {
            let (id, key) = parse_key(id, b64)?;
            keys.insert(id, key);
        }
        let mut retired = BTreeMap::new();
        for (id, r) in &f.retired {
            let (id, key) = parse_key(id, &r.key)?;
            if keys.contains_key(&id) {
                return Err(CryptoError::MasterKey(format!(
                    "key {id} is both current and retired"
                )));
            }
            retired.insert(id, (key, r.until_ms));
        }
        if !keys.contains_key(&f.active) {
            return Err(CryptoError::MasterKey(format!(
                "active key {} is not in the file",
                f.active
            )));
        }
        Ok(Self {
            active: f.active,
            keys,
            retired,
        })
    }

    /// Write the keyring atomically (temp file, fsync, rename, fsync dir), mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), CryptoError> {
        let err = |e: std::io::Error| {
            CryptoError::MasterKey(format!("cannot write `{}`: {e}", path.display()))
        };
        let f = FileFormat {
            active: self.active,
            keys: self
                .keys
                .iter()
                .map(|(id, k)| {
                    (
                        id.to_string(),
                        base64::engine::general_purpose::STANDARD.encode(k.as_bytes()),
                    )
                })
                .collect(),
            retired: self
                .retired
                .iter()
                .map(|(id, (k, until_ms))| {
                    (
                        id.to_string(),
                        RetiredFormat {
                            key: base64::engine::general_purpose::STANDARD.encode(k.as_bytes()),
                            until_ms: *until_ms,
                        },
                    )
                })
                .collect(),
        };
        let json = Zeroizing::new(
            serde_json::to_vec_pretty(&f).map_err(|e| CryptoError::MasterKey(e.to_string()))?,
        );
        let tmp = path.with_extension("tmp");
        {
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut file = opts.open(&tmp).map_err(err)?;
            file.write_all(&json).map_err(err)?;
            file.sync_all().map_err(err)?;
        }
        fs::rename(&tmp, path).map_err(err)?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_file_is_refused_without_showing_its_keys() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        for text in [
            format!(r#"{{"active":1,"keys":{{"1":"{key}"}},"retired":{{"2":"{key}"}}}}"#),
            format!(r#"{{"active":"{key}","keys":{{"1":"{key}"}}}}"#),
            format!(r#"{{"active":1,"keys":{{"{key}":"1"}}}}"#),
            format!(r#"{{"active":1,"keys":{{"1":{key}}}}}"#),
        ] {
            let e = MasterKeyring::parse(text.as_bytes())
                .err()
                .map(|e| e.to_string());
            let e = e.unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(e.contains("master key") || e.contains("key id"), "{e}");
            assert!(!e.contains(&key[..16]), "{e}");
        }
        // Positive control: the well-formed file loads.
        let ok = format!(r#"{{"active":1,"keys":{{"1":"{key}"}}}}"#);
        assert!(MasterKeyring::parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn create_load_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        let a = MasterKeyring::load_or_create(&p).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let b = MasterKeyring::load_or_create(&p).unwrap();
        assert_eq!(
            a.active().unwrap().as_bytes(),
            b.active().unwrap().as_bytes()
        );
        let mut c = b.clone();
        let id = c.add_new_active();
        assert_eq!(id, 2);
        c.save(&p).unwrap();
        let d = MasterKeyring::load(&p).unwrap();
        assert_eq!(d.ids(), vec![1, 2]);
        assert_eq!(d.active_id(), 2);
        let mut e = d.clone();
        e.retain_active_only();
        assert_eq!(e.ids(), vec![2]);
        assert!(matches!(e.get(1), Err(CryptoError::UnknownMasterKey(1))));
    }

    #[test]
    fn retired_keys_open_until_their_lifetime_ends_then_leave_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        let mut ring = MasterKeyring::load_or_create(&p).unwrap();
        let old = ring.active().unwrap().as_bytes().to_vec();
        ring.add_new_active();
        ring.retire_others(now_ms() + 60_000);
        assert_eq!(ring.ids(), vec![2]);
        assert_eq!(ring.get(1).unwrap().as_bytes(), old.as_slice());
        ring.save(&p).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.contains("retired"), "{text}");
        let back = MasterKeyring::load_or_create(&p).unwrap();
        assert_eq!(back.get(1).unwrap().as_bytes(), old.as_slice());
        assert_eq!(back.active_id(), 2);
        assert_eq!(back.retired().len(), 1);

        // past its lifetime it opens nothing, and the next load drops it from the file
        let mut expired = back.clone();
        expired
            .retired
            .insert(1, (Key256::from_slice(&old).unwrap(), now_ms() - 1));
        assert!(matches!(
            expired.get(1),
            Err(CryptoError::UnknownMasterKey(1))
        ));
        expired.save(&p).unwrap();
        let pruned = MasterKeyring::load_or_create(&p).unwrap();
        assert!(pruned.retired().is_empty());
        assert!(!fs::read_to_string(&p).unwrap().contains("retired"));

        // retain_active_only ends retired keys at once
        let mut now = back.clone();
        now.retain_active_only();
        assert!(matches!(now.get(1), Err(CryptoError::UnknownMasterKey(1))));
        assert!(now.retired().is_empty());
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            MasterKeyring::parse(b"nope"),
            Err(CryptoError::MasterKey(_))
        ));
        assert!(matches!(
            MasterKeyring::parse(br#"{"active":3,"keys":{}}"#),
            Err(CryptoError::MasterKey(_))
        ));
        assert!(matches!(
            MasterKeyring::parse(br#"{"active":1,"keys":{"1":"AAAA"}}"#),
            Err(CryptoError::MasterKey(_))
        ));
    }
}
