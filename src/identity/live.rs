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

/// What the last reload did, for `strongroom:GetPrincipalsReloadStatus`: when the files
/// were last read (at startup, on a change, on SIGHUP), whether that set was accepted, and the
/// errors of a refused one; and when the set in force was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadStatus {
    /// When the set in force was loaded (epoch milliseconds).
    pub in_force_since_ms: i64,
    /// When the files were last read, accepted or refused.
    pub attempted_ms: i64,
    /// Whether that read was accepted (and is the set in force).
    pub accepted: bool,
    /// The errors of a refused read (empty when accepted).
    pub errors: Vec<LoadError>,
    /// When the files were last looked at for changes (a poll finding none included).
    pub checked_ms: i64,
}

/// The live directory.
#[derive(Debug)]
pub struct Live {
    root: Option<PathBuf>,
    current: RwLock<Arc<Directory>>,
    status: RwLock<ReloadStatus>,
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
        let loaded_at = crate::ops::system_now_ms();
        let (dir, seen) = match &root {
            Some(r) => (load_dir(r)?, fingerprint(r)),
            None => (Directory::default(), String::new()),
        };
        let dir = match &role_ids {
            Some(ids) => dir
                .with_role_ids(ids.as_ref(), root.is_some().then_some(loaded_at))
                .map_err(|e| vec![role_id_error(root.as_deref().unwrap_or(Path::new(".")), e)])?,
            None => dir,
        };
        Ok(Self {
            root,
            current: RwLock::new(Arc::new(dir)),
            status: RwLock::new(ReloadStatus::accepted_at(loaded_at)),
            seen: RwLock::new(seen),
            role_ids,
        })
    }

    /// A set of principals fixed in code (tests, simulation).
    pub fn fixed(dir: Directory) -> Self {
        Self {
            root: None,
            current: RwLock::new(Arc::new(dir)),
            status: RwLock::new(ReloadStatus::accepted_at(crate::ops::system_now_ms())),
            seen: RwLock::new(String::new()),
            role_ids: None,
        }
    }

    /// Whether role ids are kept in the database (a server's set), not derived from the
    /// account and name.
    pub fn keeps_role_ids(&self) -> bool {
        self.role_ids.is_some()
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

    /// What the last reload did.
    pub fn status(&self) -> ReloadStatus {
        self.status
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-read the files if they changed (or always, with `force`).
    pub fn reload(&self, force: bool) -> Reload {
        let Some(root) = &self.root else {
            return Reload::Unchanged;
        };
        let outcome = self.reload_from(root, force);
        let now = crate::ops::system_now_ms();
        let mut status = self
            .status
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        status.checked_ms = now;
        match &outcome {
            Reload::Unchanged => {}
            Reload::Accepted { .. } => *status = ReloadStatus::accepted_at(now),
            Reload::Refused { errors } => {
                status.attempted_ms = now;
                status.accepted = false;
                status.errors.clone_from(errors);
            }
        }
        outcome
    }

    fn reload_from(&self, root: &Path, force: bool) -> Reload {
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
        let loaded_at = crate::ops::system_now_ms();
        let loaded = load_dir(root).and_then(|dir| match &self.role_ids {
            Some(ids) => dir
                .with_role_ids(ids.as_ref(), Some(loaded_at))
                .map_err(|e| {
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

impl ReloadStatus {
    /// A set accepted at `ms` (and in force since).
    fn accepted_at(ms: i64) -> Self {
        Self {
            in_force_since_ms: ms,
            attempted_ms: ms,
            accepted: true,
            errors: Vec::new(),
            checked_ms: ms,
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

/// A copy of the tree `from` (a principals directory) under `to`, for tests that change files.
#[cfg(test)]
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;

    /// Role ids in memory, as the database keeps them; `fail` makes the store unavailable.
    #[derive(Debug, Default)]
    struct Ids {
        known: Mutex<BTreeMap<(String, String), String>>,
        next: AtomicUsize,
        fail: AtomicBool,
    }

    impl RoleIds for Ids {
        fn sync(
            &self,
            roles: &[(String, String)],
        ) -> Result<BTreeMap<(String, String), String>, String> {
            if self.fail.load(Ordering::SeqCst) {
                return Err("database unavailable".into());
            }
            let mut known = self.known.lock().unwrap();
            known.retain(|k, _| roles.contains(k));
            for r in roles {
                known.entry(r.clone()).or_insert_with(|| {
                    format!("AROATEST{}", self.next.fetch_add(1, Ordering::SeqCst))
                });
            }
            Ok(known.clone())
        }
    }

    #[test]
    fn the_status_tells_the_last_reload_and_a_refused_ones_errors() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("policies");
        super::copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
            &root,
        );
        let live = Live::open(Some(&root)).unwrap();
        let start = live.status();
        assert!(start.accepted && start.errors.is_empty());
        assert_eq!(start.in_force_since_ms, start.attempted_ms);
        let bad = root.join("accounts/111122223333/users/bad.json");
        std::fs::write(&bad, r#"{"UserName":"bad","Unknown":1}"#).unwrap();
        assert!(matches!(live.reload(false), Reload::Refused { .. }));
        let refused = live.status();
        assert!(!refused.accepted);
        assert_eq!(refused.errors.len(), 1, "{refused:?}");
        assert_eq!(refused.errors[0].file, bad);
        assert_eq!(refused.in_force_since_ms, start.in_force_since_ms);
        // Unchanged files: looked at, not read again.
        assert_eq!(live.reload(false), Reload::Unchanged);
        let again = live.status();
        assert_eq!(again.attempted_ms, refused.attempted_ms);
        assert!(again.checked_ms >= refused.checked_ms && !again.accepted);
        std::fs::remove_file(&bad).unwrap();
        assert!(matches!(live.reload(false), Reload::Accepted { .. }));
        let fixed = live.status();
        assert!(fixed.accepted && fixed.errors.is_empty());
        assert!(fixed.in_force_since_ms >= refused.attempted_ms);
    }

    #[test]
    fn role_ids_follow_the_files_and_a_store_error_keeps_the_set_in_force() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("policies");
        super::copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
            &root,
        );
        let ids = Arc::new(Ids::default());
        let live = Live::open_with(Some(&root), Some(ids.clone() as Arc<dyn RoleIds>)).unwrap();
        let arn = "arn:aws:iam::111122223333:role/service/payments-app";
        let first = live.get().role_by_arn(arn).unwrap().role_id.clone();
        assert!(first.starts_with("AROATEST"), "{first}");
        assert!(live.get().role_for_session(arn, &first).is_some());
        assert!(live.get().role_for_session(arn, "AROAOTHER").is_none());
        assert_eq!(
            live.reload(true),
            Reload::Accepted {
                fingerprint: live.get().fingerprint.clone()
            }
        );
        assert_eq!(live.get().role_by_arn(arn).unwrap().role_id, first);

        // removed while the store is down: refused, the set in force stays
        let file = root.join("accounts/111122223333/roles/payments-app.json");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        ids.fail.store(true, Ordering::SeqCst);
        assert!(matches!(live.reload(false), Reload::Refused { .. }));
        assert!(live.get().role_for_session(arn, &first).is_some());
        // the next look (the files unchanged) tries again
        ids.fail.store(false, Ordering::SeqCst);
        assert!(matches!(live.reload(false), Reload::Accepted { .. }));
        assert!(live.get().role_by_arn(arn).is_none());

        // declared again: a new role
        std::fs::write(&file, text).unwrap();
        assert!(matches!(live.reload(false), Reload::Accepted { .. }));
        let second = live.get().role_by_arn(arn).unwrap().role_id.clone();
        assert_ne!(second, first);
        assert!(live.get().role_for_session(arn, &first).is_none());
        assert!(live.get().role_for_session(arn, &second).is_some());
    }
}
