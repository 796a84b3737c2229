//! Offline commands: access keys, policy directory validation.

use std::path::Path;

use crate::config::StoreConfig;
use crate::crypto::envelope;
use crate::identity::load_dir;
use crate::store::rows::AccessKeyRow;

/// A fresh AKIA-style access key id and a 40-character secret.
pub fn new_key_pair() -> (String, zeroize::Zeroizing<String>) {
    (
        crate::crypto::random::access_key_id("AKIA"),
        crate::crypto::random::secret_access_key(),
    )
}

/// `strongroom policies validate DIR`: every problem, one per line; Err when any.
pub fn validate_policies(dir: &Path) -> Result<String, String> {
    match load_dir(dir) {
        Ok(d) => {
            let users: usize = d.accounts.values().map(|a| a.users.len()).sum();
            let roles: usize = d.accounts.values().map(|a| a.roles.len()).sum();
            Ok(format!(
                "{}: OK ({} accounts, {users} users, {roles} roles, {} AWS-managed policies)",
                dir.display(),
                d.accounts.len(),
                d.managed.len()
            ))
        }
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            Err(format!("{} problem(s):\n{}", lines.len(), lines.join("\n")))
        }
    }
}

fn load_for_keys(policies: &Path) -> Result<crate::identity::Directory, String> {
    load_dir(policies).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!("the policies directory has errors:\n{}", lines.join("\n"))
    })
}

/// `strongroom access-key create --user`: mint a key for a declared user; prints the pair as
/// JSON.
pub fn create_access_key(
    store_cfg: &StoreConfig,
    policies: &Path,
    account: &str,
    user: &str,
) -> Result<String, String> {
    let dir = load_for_keys(policies)?;
    if dir.user(account, user).is_none() {
        return Err(format!(
            "no user `{user}` is declared in account {account} under {}",
            policies.display()
        ));
    }
    let (store, keyring) = crate::server::open(store_cfg)?;
    insert_key(&store, &keyring, account, Some(user))
}

/// `strongroom access-key create --root`: mint a root key of `account`, which is declared in
/// the policies directory (a member account) or already has a root key in the store (the
/// default account, whose first root key the server installs). Prints the pair as JSON.
pub fn create_root_access_key(
    store_cfg: &StoreConfig,
    policies: &Path,
    account: &str,
) -> Result<String, String> {
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("account id `{account}` must be 12 digits"));
    }
    let dir = load_for_keys(policies)?;
    let (store, keyring) = crate::server::open(store_cfg)?;
    if !dir.accounts.contains_key(account) {
        let acct = account.to_owned();
        let has_root = store
            .read_blocking(move |tx| {
                Ok(tx
                    .access_keys()?
                    .iter()
                    .any(|k| k.account_id == acct && k.user_name.is_none()))
            })
            .map_err(|e| format!("{e:?}"))?;
        if !has_root {
            return Err(format!(
                "account {account} is not declared under {} (accounts/{account}/account.json) \
                 and is not the server's default account",
                policies.display()
            ));
        }
    }
    insert_key(&store, &keyring, account, None)
}

/// Store a new active key of `account` (`user`, or its root user) and answer it as JSON.
fn insert_key(
    store: &crate::store::Store,
    keyring: &crate::kms::Keyring,
    account: &str,
    user: Option<&str>,
) -> Result<String, String> {
    let (akid, secret) = new_key_pair();
    let (sealed, mid) = keyring
        .seal_with_master(secret.as_bytes(), &envelope::access_key_aad(&akid))
        .map_err(|e| format!("{e:?}"))?;
    let row = AccessKeyRow {
        access_key_id: akid.clone(),
        account_id: account.to_owned(),
        user_name: user.map(str::to_owned),
        secret_sealed: sealed,
        master_key_id: mid,
        status: "Active".into(),
        created_at: crate::ops::system_now_ms(),
    };
    store
        .write_blocking(|tx| Ok(tx.insert_access_key(&row)?))
        .map_err(|e| format!("{e:?}"))?;
    let mut out = serde_json::json!({
        "AccessKeyId": akid,
        "SecretAccessKey": secret.as_str(),
        "AccountId": account,
        "Status": "Active",
    });
    if let Some(u) = user {
        out["UserName"] = serde_json::Value::String(u.to_owned());
    }
    Ok(out.to_string())
}

/// `strongroom access-key list`: one JSON object per line (never the secret).
pub fn list_access_keys(
    store_cfg: &StoreConfig,
    account: Option<&str>,
    user: Option<&str>,
) -> Result<String, String> {
    let (store, _) = crate::server::open(store_cfg)?;
    let rows = store
        .read_blocking(|tx| Ok(tx.access_keys()?))
        .map_err(|e| format!("{e:?}"))?;
    let mut out = vec![];
    for r in rows {
        if account.is_some_and(|a| a != r.account_id) {
            continue;
        }
        if user.is_some_and(|u| Some(u) != r.user_name.as_deref()) {
            continue;
        }
        out.push(
            serde_json::json!({
                "AccessKeyId": r.access_key_id,
                "AccountId": r.account_id,
                "UserName": r.user_name.unwrap_or_else(|| "(root)".into()),
                "Status": r.status,
                "CreateDate": r.created_at / 1000,
            })
            .to_string(),
        );
    }
    Ok(out.join("\n"))
}

/// `strongroom access-key deactivate|activate|delete`.
pub fn change_access_key(
    store_cfg: &StoreConfig,
    access_key_id: &str,
    change: KeyChange,
) -> Result<String, String> {
    let (store, _) = crate::server::open(store_cfg)?;
    let id = access_key_id.to_owned();
    let done = store
        .write_blocking(|tx| {
            if tx.access_key(&id)?.is_none() {
                return Ok(false);
            }
            match change {
                KeyChange::Activate => tx.set_access_key_status(&id, "Active")?,
                KeyChange::Deactivate => tx.set_access_key_status(&id, "Inactive")?,
                KeyChange::Delete => tx.delete_access_key(&id)?,
            }
            Ok(true)
        })
        .map_err(|e| format!("{e:?}"))?;
    if done {
        Ok(format!("{access_key_id}: {change:?} done"))
    } else {
        Err(format!("no access key `{access_key_id}`"))
    }
}

/// A change to an access key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    Activate,
    Deactivate,
    Delete,
}
