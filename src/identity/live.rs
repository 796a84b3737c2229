//! The set of principals in force, swapped whole on a successful reload.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use super::{load_dir, Directory, LoadError, RoleIds};

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
    /// Where role ids are kept (`None`: derived from account and name).
    role_ids: Option<Arc<dyn RoleIds>>,
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
        Self::open_with(root, None)
    }

    /// Load `root`, with role ids kept in `role_ids` (see [`RoleIds`]).
    pub fn open_with(
        root: Option<&Path>,
        role_ids: Option<Arc<dyn RoleIds>>,
    ) -> Result<Self, Vec<LoadError>> {
        let root = root.filter(|r| r.exists()).map(Path::to_path_buf);
        let (dir, seen) = match &root {
            Some(r) => (load_dir(r)?, fingerprint(r)),
            None => (Directory::default(), String::new()),
        };
        let dir = match &role_ids {
            Some(ids) => dir
                .with_role_ids(ids.as_ref())
                .map_err(|e| vec![role_id_error(root.as_deref().unwrap_or(Path::new(".")), e)])?,
            None => dir,
        };
        Ok(Self {
            root,
            current: RwLock::new(Arc::new(dir)),
            seen: RwLock::new(seen),
            role_ids,
        })
    }

    /// A set of principals fixed in code (tests, simulation).
    pub fn fixed(dir: Directory) -> Self {
        Self {
            root: None,
            current: RwLock::new(Arc::new(dir)),
            seen: RwLock::new(String::new()),
            role_ids: None,
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
        let previous = std::mem::replace(
            &mut *self
                .seen
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            fp,
        );
        let loaded = load_dir(root).and_then(|dir| match &self.role_ids {
            Some(ids) => dir.with_role_ids(ids.as_ref()).map_err(|e| {
                // Not the files' fault: look again at the next poll.
                *self
                    .seen
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = previous;
                vec![role_id_error(root, e)]
            }),
            None => Ok(dir),
        });
        match loaded {
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

/// A set whose role ids could not be kept (a store error), as a load error.
fn role_id_error(root: &Path, e: String) -> LoadError {
    LoadError {
        file: root.to_path_buf(),
        path: "$".into(),
        message: format!("cannot keep the roles' ids in the database: {e}"),
    }
}
