//! Strongroom's own operations (`X-Amz-Target: Strongroom.<Operation>`, SigV4 service
//! `strongroom`, actions `strongroom:<Operation>`; not granted by `iam:*`).
//!
//! GetPrincipalsReloadStatus: the principals directory's last reload (the server reloads it
//! when its files change and on SIGHUP, and keeps the set in force when a reload is refused):
//! when the set in force was loaded, when the files were last read and whether that read was
//! accepted, and a refused read's errors, each with its file (relative to the directory), JSON
//! path and message. An error in another account's files (`accounts/<ID>/`), or in the
//! organization's (`organization/`) for a caller outside the management account, is counted,
//! not shown: its message names that account's principals.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::directory::{DirectoryCall, DirectoryOperation};
use crate::audit::Draft;
use crate::error::ApiError;
use crate::identity::LoadError;

/// No members.
#[derive(Debug, Deserialize)]
pub struct Input {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReloadError {
    pub file: String,
    pub path: String,
    pub message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    /// Whether the server reads its principals from a directory (and watches it).
    directory_watched: bool,
    /// A fingerprint of the files of the set in force.
    fingerprint: String,
    /// When the set in force was loaded (epoch seconds).
    in_force_since: f64,
    /// When the files were last read (epoch seconds).
    last_attempt: f64,
    /// `Accepted` or `Refused`.
    last_attempt_result: &'static str,
    /// A refused read's errors that the caller may see.
    errors: Vec<ReloadError>,
    /// A refused read's errors in files the caller may not see.
    errors_not_shown: usize,
    /// When the files were last looked at for changes (epoch seconds).
    last_checked: f64,
}

/// GetPrincipalsReloadStatus.
#[derive(Debug)]
pub struct GetPrincipalsReloadStatus;

impl DirectoryOperation for GetPrincipalsReloadStatus {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "GetPrincipalsReloadStatus";
    const READ_ONLY: bool = true;

    fn validate(_input: &Input) -> Result<(), ApiError> {
        Ok(())
    }

    async fn handle(
        call: &DirectoryCall<'_>,
        _input: Input,
        draft: &mut Draft,
    ) -> Result<Output, ApiError> {
        call.authorize("strongroom:GetPrincipalsReloadStatus", "*", draft)?;
        let live = &call.pipeline.identities;
        let status = live.status();
        let dir = live.get();
        let management = dir.management_account.as_deref() == Some(call.scope.account.as_str());
        let root = live.root();
        let mut errors = Vec::new();
        let mut errors_not_shown = 0;
        for e in &status.errors {
            let (file, visible) = shown(e, root, &call.scope.account, management);
            if visible {
                errors.push(ReloadError {
                    file,
                    path: e.path.clone(),
                    message: e.message.clone(),
                });
            } else {
                errors_not_shown += 1;
            }
        }
        Ok(Output {
            directory_watched: root.is_some(),
            fingerprint: dir.fingerprint.clone(),
            in_force_since: super::epoch_seconds(status.in_force_since_ms),
            last_attempt: super::epoch_seconds(status.attempted_ms),
            last_attempt_result: if status.accepted {
                "Accepted"
            } else {
                "Refused"
            },
            errors,
            errors_not_shown,
            last_checked: super::epoch_seconds(status.checked_ms),
        })
    }
}

/// An error's file relative to the directory, and whether a caller of `account` sees it.
fn shown(e: &LoadError, root: Option<&Path>, account: &str, management: bool) -> (String, bool) {
    let rel = root
        .and_then(|r| e.file.strip_prefix(r).ok())
        .unwrap_or(Path::new(""));
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let visible = match parts.first().map(String::as_str) {
        Some("accounts") => parts.get(1).is_some_and(|a| a == account),
        Some("organization") => management,
        _ => true,
    };
    let file = if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    };
    (file, visible)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn err(file: &str) -> LoadError {
        LoadError {
            file: PathBuf::from(file),
            path: "$".into(),
            message: "m".into(),
        }
    }

    #[test]
    fn another_accounts_and_the_organizations_errors_are_not_shown() {
        let root = Some(Path::new("/srv/policies"));
        let a = "111122223333";
        let see = |f: &str, m: bool| shown(&err(f), root, a, m);
        assert_eq!(
            see("/srv/policies/accounts/111122223333/users/x.json", false),
            ("accounts/111122223333/users/x.json".into(), true)
        );
        assert!(!see("/srv/policies/accounts/444455556666/users/x.json", true).1);
        assert!(!see("/srv/policies/organization/organization.json", false).1);
        assert!(see("/srv/policies/organization/organization.json", true).1);
        assert!(see("/srv/policies/managed/P.json", false).1);
        assert_eq!(see("/srv/policies", false), (".".into(), true));
    }
}
