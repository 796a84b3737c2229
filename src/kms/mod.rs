//! KMS keys as Secrets Manager uses them: resolve a `KmsKeyId`, create the account's
//! managed key `alias/aws/secretsmanager` on first use, and seal/open secret values.
//!
//! Functions here run inside a store transaction (`&mut Tx`), so a version and the key
//! state it was checked against are one atomic step. Unwrapped key material is cached in
//! memory (zeroized on drop); the database only holds it sealed under the master key.
//!
//! May depend on: `store`, `crypto`, `error`.

pub mod key_policy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use zeroize::Zeroizing;

use crate::crypto::envelope::{self, SealedValue};
use crate::crypto::master::MasterKeyring;
use crate::crypto::Key256;
use crate::error::ApiError;
use crate::store::rows::{KmsAliasRow, KmsKeyRow, KmsMaterialRow};
use crate::store::Tx;

pub const DEFAULT_ALIAS: &str = "alias/aws/secretsmanager";

/// Key states, as KMS names them.
pub const ENABLED: &str = "Enabled";
pub const DISABLED: &str = "Disabled";
pub const PENDING_DELETION: &str = "PendingDeletion";

/// The master keyring plus a cache of unwrapped KMS key material.
#[derive(Debug, Clone)]
pub struct Keyring {
    master: Arc<RwLock<MasterKeyring>>,
    cache: Arc<Mutex<HashMap<(String, i32), Key256>>>,
}

impl Keyring {
    pub fn new(master: MasterKeyring) -> Self {
        Self {
            master: Arc::new(RwLock::new(master)),
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Seal fresh material for `key_id`/`term` under the active master key.
    fn seal_material(
        &self,
        key_id: &str,
        term: i32,
        material: &Key256,
    ) -> Result<(Vec<u8>, i32), ApiError> {
        let master = self
            .master
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = master.active_id();
        let sealed = master
            .active()?
            .seal(material.as_bytes(), &envelope::material_aad(key_id, term))?;
        Ok((sealed, i32::try_from(id).map_err(ApiError::internal)?))
    }

    /// Seal bytes (an access key's secret) under the active master key.
    pub fn seal_with_master(
        &self,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<(Vec<u8>, i32), ApiError> {
        let master = self
            .master
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = master.active_id();
        let sealed = master.active()?.seal(plaintext, aad)?;
        Ok((sealed, i32::try_from(id).map_err(ApiError::internal)?))
    }

    /// Open bytes sealed under master key `master_id`.
    pub fn open_with_master(
        &self,
        master_id: i32,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ApiError> {
        let master = self
            .master
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = u32::try_from(master_id).map_err(ApiError::internal)?;
        Ok(master.get(id)?.open(sealed, aad)?)
    }

    /// The unwrapped material of `key_id` at `term`.
    fn material(&self, tx: &mut Tx<'_>, key_id: &str, term: i32) -> Result<Key256, ApiError> {
        let cache_key = (key_id.to_owned(), term);
        {
            let cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(k) = cache.get(&cache_key) {
                return Ok(k.clone());
            }
        }
        let row = tx.kms_material(key_id, term)?.ok_or_else(|| {
            ApiError::internal(format!("missing material for key `{key_id}` term {term}"))
        })?;
        let raw = self.open_with_master(
            row.master_key_id,
            &row.sealed,
            &envelope::material_aad(key_id, term),
        )?;
        let key = Key256::from_slice(&raw)?;
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(cache_key, key.clone());
        Ok(key)
    }

    /// Create a KMS key (with its first material term) in the transaction.
    pub fn create_key(
        &self,
        tx: &mut Tx<'_>,
        account: &str,
        region: &str,
        description: &str,
        key_manager: &str,
        now_ms: i64,
    ) -> Result<KmsKeyRow, ApiError> {
        let key_id = uuid::Uuid::new_v4().to_string();
        let row = KmsKeyRow {
            arn: format!("arn:aws:kms:{region}:{account}:key/{key_id}"),
            key_id: key_id.clone(),
            account_id: account.to_owned(),
            region: region.to_owned(),
            description: description.to_owned(),
            key_manager: key_manager.to_owned(),
            key_state: ENABLED.to_owned(),
            created_at: now_ms,
            deletion_date: None,
            rotation_enabled: key_manager == "AWS",
            rotation_period_days: 365,
            next_rotation_at: None,
            current_term: 1,
            policy: Some(if key_manager == "AWS" {
                key_policy::managed_policy(account, region)
            } else {
                key_policy::default_policy(account)
            }),
        };
        tx.insert_kms_key(&row)?;
        self.add_term(tx, &key_id, 1, now_ms)?;
        Ok(row)
    }

    /// Add fresh material as `term` of `key_id`.
    pub fn add_term(
        &self,
        tx: &mut Tx<'_>,
        key_id: &str,
        term: i32,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        let material = Key256::random();
        let (sealed, master_key_id) = self.seal_material(key_id, term, &material)?;
        tx.insert_kms_material(&KmsMaterialRow {
            key_id: key_id.to_owned(),
            term,
            sealed,
            master_key_id,
            created_at: now_ms,
        })?;
        Ok(())
    }

    /// The account's managed key for Secrets Manager, created on first use.
    pub fn default_key(
        &self,
        tx: &mut Tx<'_>,
        account: &str,
        region: &str,
        now_ms: i64,
    ) -> Result<KmsKeyRow, ApiError> {
        if let Some(key) = tx.kms_key_by_alias(account, region, DEFAULT_ALIAS)? {
            return Ok(key);
        }
        let key = self.create_key(
            tx,
            account,
            region,
            "Default key that protects my Secrets Manager data when no other key is defined",
            "AWS",
            now_ms,
        )?;
        tx.insert_kms_alias(&KmsAliasRow {
            account_id: account.to_owned(),
            region: region.to_owned(),
            alias_name: DEFAULT_ALIAS.to_owned(),
            target_key_id: key.key_id.clone(),
            created_at: now_ms,
            last_updated_at: now_ms,
        })?;
        Ok(key)
    }

    /// Re-seal every material row under the active master key (master key rotation).
    pub fn reseal_all(&self, tx: &mut Tx<'_>) -> Result<usize, ApiError> {
        let rows = tx.all_kms_material()?;
        let mut n = 0;
        for row in rows {
            let aad = envelope::material_aad(&row.key_id, row.term);
            let raw = self.open_with_master(row.master_key_id, &row.sealed, &aad)?;
            let (sealed, mid) = self.seal_with_master(&raw, &aad)?;
            tx.reseal_kms_material(&row.key_id, row.term, &sealed, mid)?;
            n += 1;
        }
        for key in tx.access_keys()? {
            let aad = envelope::access_key_aad(&key.access_key_id);
            let raw = self.open_with_master(key.master_key_id, &key.secret_sealed, &aad)?;
            let (sealed, mid) = self.seal_with_master(&raw, &aad)?;
            tx.reseal_access_key(&key.access_key_id, &sealed, mid)?;
            n += 1;
        }
        Ok(n)
    }

    /// Seal one version's value under `key` (its current term).
    pub fn seal_value(
        &self,
        tx: &mut Tx<'_>,
        key: &KmsKeyRow,
        secret_arn: &str,
        version_id: &str,
        plaintext: &[u8],
    ) -> Result<SealedValue, ApiError> {
        if key.key_state != ENABLED {
            return Err(encryption_failure(key));
        }
        let kek = self.material(tx, &key.key_id, key.current_term)?;
        Ok(envelope::seal_value(
            &kek,
            &key.key_id,
            key.current_term,
            secret_arn,
            version_id,
            plaintext,
        )?)
    }

    /// Open one version's value sealed under `key_id`/`term`.
    pub fn open_value(
        &self,
        tx: &mut Tx<'_>,
        key_id: &str,
        term: i32,
        secret_arn: &str,
        version_id: &str,
        sealed: &SealedValue,
    ) -> Result<Zeroizing<Vec<u8>>, ApiError> {
        self.value_key(tx, key_id, term)?
            .open(secret_arn, version_id, sealed)
    }

    /// The key that opens values sealed under `key_id`/`term`, checked usable (the KMS key
    /// exists and is enabled) inside the transaction. Opening with it needs no transaction,
    /// so a read can fetch everything in one transaction before its authorization and
    /// decrypt only once the request is allowed.
    pub fn value_key(
        &self,
        tx: &mut Tx<'_>,
        key_id: &str,
        term: i32,
    ) -> Result<ValueKey, ApiError> {
        let key = tx
            .kms_key(key_id)?
            .ok_or_else(|| ApiError::DecryptionFailure(DECRYPT_MSG.into()))?;
        if key.key_state != ENABLED {
            return Err(ApiError::DecryptionFailure(format!(
                "{DECRYPT_MSG} {} is {}.",
                key.arn,
                state_word(&key.key_state)
            )));
        }
        let kek = self.material(tx, key_id, term)?;
        Ok(ValueKey {
            key_id: key_id.to_owned(),
            term,
            kek,
            row: key,
        })
    }

    /// Resolve a `KmsKeyId` (key id, key ARN, alias name or alias ARN) in `account`/`region`.
    pub fn resolve(
        &self,
        tx: &mut Tx<'_>,
        account: &str,
        region: &str,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<KmsKeyRow>, ApiError> {
        resolve_key(tx, account, region, id, |tx| {
            self.default_key(tx, account, region, now_ms)
        })
    }
}

/// Unwrapped key material able to open values sealed under one KMS key term (see
/// [`Keyring::value_key`]). Zeroized on drop, redacted in `Debug`.
#[derive(Clone)]
pub struct ValueKey {
    key_id: String,
    term: i32,
    kek: Key256,
    /// The KMS key's row as read with the material (its state and key policy): what a read
    /// of the value is authorized on, from the same read.
    row: KmsKeyRow,
}

impl std::fmt::Debug for ValueKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueKey")
            .field("key_id", &self.key_id)
            .field("term", &self.term)
            .finish_non_exhaustive()
    }
}

impl ValueKey {
    /// The KMS key's row, read with the material (see the field).
    pub fn key_row(&self) -> &KmsKeyRow {
        &self.row
    }

    /// Decrypt one version's value.
    pub fn open(
        &self,
        secret_arn: &str,
        version_id: &str,
        sealed: &SealedValue,
    ) -> Result<Zeroizing<Vec<u8>>, ApiError> {
        envelope::open_value(
            &self.kek,
            &self.key_id,
            self.term,
            secret_arn,
            version_id,
            sealed,
        )
        .map_err(|_| ApiError::DecryptionFailure(DECRYPT_MSG.into()))
    }
}

const DECRYPT_MSG: &str =
    "Secrets Manager can't decrypt the protected secret text using the provided KMS key.";

fn state_word(state: &str) -> &'static str {
    match state {
        DISABLED => "disabled",
        PENDING_DELETION => "pending deletion",
        _ => "not enabled",
    }
}

fn encryption_failure(key: &KmsKeyRow) -> ApiError {
    ApiError::EncryptionFailure(format!(
        "Secrets Manager can't encrypt the protected secret text using the provided KMS key. Check that the KMS key is available, enabled, and not in an invalid state. {} is {}.",
        key.arn,
        state_word(&key.key_state)
    ))
}

/// Whether `id` names the AWS managed key `alias/aws/secretsmanager` of `account`/`region`
/// (by alias name or alias ARN), the key [`resolve_key`] hands to its `default`.
pub fn names_default_alias(account: &str, region: &str, id: &str) -> bool {
    let alias_arn_prefix = format!("arn:aws:kms:{region}:{account}:");
    id.strip_prefix(&alias_arn_prefix).unwrap_or(id) == DEFAULT_ALIAS
}

/// The AWS managed key of `account`/`region` if it was created (on a first use).
pub fn default_key_if_created(
    tx: &mut Tx<'_>,
    account: &str,
    region: &str,
) -> Result<Option<KmsKeyRow>, ApiError> {
    match tx.kms_alias(account, region, DEFAULT_ALIAS)? {
        Some(alias) => Ok(tx.kms_key(&alias.target_key_id)?),
        None => Ok(None),
    }
}

/// Resolve a key identifier. `default` creates the managed key when the identifier is the
/// managed alias and it does not exist yet.
pub fn resolve_key(
    tx: &mut Tx<'_>,
    account: &str,
    region: &str,
    id: &str,
    default: impl FnOnce(&mut Tx<'_>) -> Result<KmsKeyRow, ApiError>,
) -> Result<Option<KmsKeyRow>, ApiError> {
    let alias_arn_prefix = format!("arn:aws:kms:{region}:{account}:");
    let local = id.strip_prefix(&alias_arn_prefix).unwrap_or(id);
    if let Some(alias) = local.strip_prefix("alias/").map(|a| format!("alias/{a}")) {
        if alias == DEFAULT_ALIAS {
            return default(tx).map(Some);
        }
        return match tx.kms_alias(account, region, &alias)? {
            Some(a) => Ok(tx.kms_key(&a.target_key_id)?),
            None => Ok(None),
        };
    }
    let key_id = local.strip_prefix("key/").unwrap_or(local);
    if id.starts_with("arn:") && !id.starts_with(&alias_arn_prefix) {
        return Ok(None);
    }
    match tx.kms_key(key_id)? {
        Some(k) if k.account_id == account && k.region == region => Ok(Some(k)),
        _ => Ok(None),
    }
}
