//! The set of principals in force, swapped whole on a successful reload.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use super::{load_dir, Directory, LoadError};

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The files did not change.
    Unchanged,
    /// A new set is in force.
    Accepted { fingerprint: String },
    /// The new files have errors; the previous set stays in force.
    Refused { errors: Vec<LoadError> },
}

/// The live directory.
#[derive(Debug)]
pub struct Live {
    root: Option<PathBuf>,
    current: RwLock<Arc<Directory>>,
    /// Fingerprint of the files last looked at (accepted or refused).
    seen: RwLock<String>,
}

/// A cheap fingerprint of every file under `root` (paths and contents).
pub fn fingerprint(root: &Path) -> String {
    fn walk(dir: &Path, h: &mut Sha256) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, h);
            } else if let Ok(bytes) = std::fs::read(&p) {
                h.update(p.to_string_lossy().as_bytes());
                h.update(&bytes);
            }
        }
    }
    let mut h = Sha256::new();
    walk(root, &mut h);
    hex::encode(h.finalize())
}

impl Live {
    /// Load `root` (None or a missing directory: an empty set, root credentials only).
    pub fn open(root: Option<&Path>) -> Result<Self, Vec<LoadError>> {
        let root = root.filter(|r| r.exists()).map(Path::to_path_buf);
        let (dir, seen) = match &root {
            Some(r) => (load_dir(r)?, fingerprint(r)),
            None => (Directory::default(), String::new()),
        };
        Ok(Self {
            root,
            current: RwLock::new(Arc::new(dir)),
            seen: RwLock::new(seen),
        })
    }

    /// A set of principals fixed in code (tests, simulation).
    pub fn fixed(dir: Directory) -> Self {
        Self {
            root: None,
            current: RwLock::new(Arc::new(dir)),
            seen: RwLock::new(String::new()),
        }
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// The set in force.
    pub fn get(&self) -> Arc<Directory> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Re-read the files if they changed (or always, with `force`).
    pub fn reload(&self, force: bool) -> Reload {
        let Some(root) = &self.root else {
            return Reload::Unchanged;
        };
        let fp = fingerprint(root);
        {
            let seen = self
                .seen
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !force && *seen == fp {
                return Reload::Unchanged;
            }
        }
        *self
            .seen
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fp;
        match load_dir(root) {
            Ok(dir) => {
                let fingerprint = dir.fingerprint.clone();
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(dir);
                Reload::Accepted { fingerprint }
            }
            Err(errors) => Reload::Refused { errors },
        }
    }
}
