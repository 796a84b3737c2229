//! The master key file: a small keyring of 256-bit keys by id, one of them active.
//!
//! Format (JSON, mode 0600): `{"active": 2, "keys": {"1": "<base64>", "2": "<base64>"}}`.
//! Rotation adds a key, re-wraps every row under it, then drops the old key; each step is
//! crash-safe because a file always holds every key that some row still needs.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use zeroize::Zeroizing;

use super::{CryptoError, Key256};

/// The master keys, by id.
#[derive(Debug, Clone)]
pub struct MasterKeyring {
    active: u32,
    keys: BTreeMap<u32, Key256>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FileFormat {
    active: u32,
    keys: BTreeMap<String, String>,
}

impl MasterKeyring {
    /// A keyring with one fresh key (id 1).
    pub fn generate() -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(1, Key256::random());
        Self { active: 1, keys }
    }

    pub fn active_id(&self) -> u32 {
        self.active
    }

    pub fn active(&self) -> Result<&Key256, CryptoError> {
        self.get(self.active)
    }

    pub fn get(&self, id: u32) -> Result<&Key256, CryptoError> {
        self.keys.get(&id).ok_or(CryptoError::UnknownMasterKey(id))
    }

    pub fn ids(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
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

    /// Keep only the active key.
    pub fn retain_active_only(&mut self) {
        let active = self.active;
        self.keys.retain(|k, _| *k == active);
    }

    /// Load the keyring from `path`, or create it (mode 0600) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        match fs::read(path) {
            Ok(bytes) => Self::parse(&Zeroizing::new(bytes)),
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
        let f: FileFormat = serde_json::from_slice(bytes)
            .map_err(|e| CryptoError::MasterKey(format!("not a master key file: {e}")))?;
        let mut keys = BTreeMap::new();
        for (id, b64) in &f.keys {
            let id: u32 = id
                .parse()
                .map_err(|_| CryptoError::MasterKey(format!("bad key id `{id}`")))?;
            let raw = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| CryptoError::MasterKey(format!("key {id} is not base64")))?,
            );
            let key = Key256::from_slice(&raw)
                .map_err(|_| CryptoError::MasterKey(format!("key {id} is not 32 bytes")))?;
            keys.insert(id, key);
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
        assert!(e.get(1).is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(MasterKeyring::parse(b"nope").is_err());
        assert!(MasterKeyring::parse(br#"{"active":3,"keys":{}}"#).is_err());
        assert!(MasterKeyring::parse(br#"{"active":1,"keys":{"1":"AAAA"}}"#).is_err());
    }
}
