//! Writing and reading secret values: shared by Create/Put/Update/Get/BatchGet.
//! Runs inside a store transaction.

use base64::Engine;

use crate::crypto::envelope::SealedValue;
use crate::crypto::SecretBytes;
use crate::error::ApiError;
use crate::kms::Keyring;
use crate::secrets::{self, labels, ValueKind};
use crate::store::rows::{KmsKeyRow, SecretRow, VersionRow};
use crate::store::Tx;

/// A secret value taken from a request: its kind and plaintext bytes.
#[derive(Debug, Clone)]
pub struct NewValue {
    pub kind: ValueKind,
    pub bytes: SecretBytes,
}

/// Read `SecretString` / `SecretBinary` (base64 on the wire) from an input.
/// Neither given → `None`; both → `InvalidParameterException`.
pub fn take_value(
    string: Option<SecretString>,
    binary: Option<SecretString>,
) -> Result<Option<NewValue>, ApiError> {
    match (string, binary) {
        (Some(_), Some(_)) => Err(ApiError::InvalidParameter(
            "You can't specify both a binary secret value and a string secret value in the same secret.".into(),
        )),
        (Some(s), None) => {
            let bytes = SecretBytes::new(s.into_bytes());
            secrets::validate_value(ValueKind::String, bytes.expose())?;
            Ok(Some(NewValue {
                kind: ValueKind::String,
                bytes,
            }))
        }
        (None, Some(b64)) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.expose().as_bytes())
                .map_err(|_| {
                    ApiError::Serialization("Base64 encoded binary value is invalid.".into())
                })?;
            let bytes = SecretBytes::new(raw);
            secrets::validate_value(ValueKind::Binary, bytes.expose())?;
            Ok(Some(NewValue {
                kind: ValueKind::Binary,
                bytes,
            }))
        }
        (None, None) => Ok(None),
    }
}

/// A string from the wire that holds secret material: zeroized, redacted in `Debug`.
#[derive(Clone, serde::Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: String) -> Self {
        Self(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    fn into_bytes(self) -> Vec<u8> {
        self.0.as_bytes().to_vec()
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// A value on its way out: serialises as `SecretString` or base64 `SecretBinary`.
/// Zeroized on drop.
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct OutValue(pub String);

impl serde::Serialize for OutValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl std::fmt::Debug for OutValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutValue(<redacted>)")
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// A new version was added.
    Created,
    /// The token named an existing version with the same value: nothing changed.
    Idempotent,
}

/// The KMS key that protects a secret's new versions.
pub fn secret_key(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    secret: &SecretRow,
    now_ms: i64,
) -> Result<KmsKeyRow, ApiError> {
    match &secret.kms_key_id {
        None => keyring.default_key(tx, &secret.account_id, &secret.region, now_ms),
        Some(id) => tx.kms_key(id)?.ok_or_else(|| {
            ApiError::EncryptionFailure(format!(
                "Secrets Manager can't find the KMS key {id} that protects this secret."
            ))
        }),
    }
}

/// Add version `version_id` holding `value` (or no value) with `stages`, or recognise an
/// idempotent retry of the same token.
pub fn write_version(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    secret: &SecretRow,
    version_id: &str,
    value: Option<&NewValue>,
    stages: &[String],
    now_ms: i64,
) -> Result<Written, ApiError> {
    if let Some(existing) = tx.version(&secret.secret_id, version_id)? {
        let same = match (value, existing.value_kind.as_deref()) {
            (None, None) => true,
            (Some(v), Some(kind)) if ValueKind::from_code(kind) == Some(v.kind) => {
                let plain = open_version(tx, keyring, secret, &existing)?;
                v.bytes.ct_eq(plain.expose())
            }
            _ => false,
        };
        if same {
            return Ok(Written::Idempotent);
        }
        return Err(ApiError::ResourceExists(format!(
            "You can't use ClientRequestToken {version_id} because that value is already in use for a version of secret {}.",
            secret.arn
        )));
    }
    let (kind, sealed, key_id, term) = match value {
        Some(v) => {
            let key = secret_key(tx, keyring, secret, now_ms)?;
            let sealed = keyring.seal_value(tx, &key, &secret.arn, version_id, v.bytes.expose())?;
            (
                Some(v.kind.code().to_owned()),
                Some(sealed),
                Some(key.key_id),
                Some(key.current_term),
            )
        }
        None => (None, None, None, None),
    };
    let (ciphertext, wrapped_dek) = match sealed {
        Some(s) => (Some(s.ciphertext), Some(s.wrapped_dek)),
        None => (None, None),
    };
    tx.insert_version(&VersionRow {
        secret_id: secret.secret_id.clone(),
        version_id: version_id.to_owned(),
        created_at: now_ms,
        last_accessed_at: None,
        value_kind: kind,
        ciphertext,
        wrapped_dek,
        kms_key_id: key_id,
        kms_term: term,
    })?;
    let current = tx.stages(&secret.secret_id)?;
    let next = labels::after_new_version(&current, version_id, stages)?;
    tx.replace_stages(&secret.secret_id, &next)?;
    prune(tx, &secret.secret_id, &next, now_ms)?;
    Ok(Written::Created)
}

/// Drop deprecated versions beyond the limit (never labelled, never younger than 24 h).
fn prune(
    tx: &mut Tx<'_>,
    secret_id: &str,
    map: &labels::StageMap,
    now_ms: i64,
) -> Result<(), ApiError> {
    let versions: Vec<(String, i64)> = tx
        .versions(secret_id)?
        .into_iter()
        .map(|v| (v.version_id, v.created_at))
        .collect();
    for id in labels::versions_to_prune(
        &versions,
        map,
        now_ms,
        secrets::MAX_VERSIONS,
        secrets::DEPRECATED_MIN_AGE_MS,
    ) {
        tx.delete_version(secret_id, &id)?;
    }
    Ok(())
}

/// Decrypt a version's value.
pub fn open_version(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    secret: &SecretRow,
    v: &VersionRow,
) -> Result<SecretBytes, ApiError> {
    let (Some(ct), Some(dek), Some(key_id), Some(term)) =
        (&v.ciphertext, &v.wrapped_dek, &v.kms_key_id, v.kms_term)
    else {
        return Err(ApiError::internal("version has no value"));
    };
    let sealed = SealedValue {
        ciphertext: ct.clone(),
        wrapped_dek: dek.clone(),
    };
    let plain = keyring.open_value(tx, key_id, term, &secret.arn, &v.version_id, &sealed)?;
    Ok(SecretBytes::new(plain.to_vec()))
}

/// A value read for GetSecretValue.
#[derive(Debug)]
pub struct ReadValue {
    pub version: VersionRow,
    pub stages: Vec<String>,
    pub string: Option<OutValue>,
    pub binary: Option<OutValue>,
}

/// Read the version that `version_id` and/or `stage` select (default AWSCURRENT).
pub fn read_value(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    secret: &SecretRow,
    version_id: Option<&str>,
    stage: Option<&str>,
) -> Result<ReadValue, ApiError> {
    let stage_map = tx.stages(&secret.secret_id)?;
    let vid = match (version_id, stage) {
        (Some(v), Some(s)) => {
            if stage_map.get(s).map(String::as_str) != Some(v) {
                if tx.version(&secret.secret_id, v)?.is_none() {
                    return Err(ApiError::ResourceNotFound(format!(
                        "Secrets Manager can't find the specified secret value for VersionId: {v}"
                    )));
                }
                return Err(ApiError::InvalidRequest(
                    "You provided a VersionStage that is not associated to the provided VersionId."
                        .into(),
                ));
            }
            v.to_owned()
        }
        (Some(v), None) => v.to_owned(),
        (None, s) => {
            let s = s.unwrap_or(secrets::AWSCURRENT);
            stage_map.get(s).cloned().ok_or_else(|| {
                ApiError::ResourceNotFound(format!(
                    "Secrets Manager can't find the specified secret value for staging label: {s}"
                ))
            })?
        }
    };
    let version = tx.version(&secret.secret_id, &vid)?.ok_or_else(|| {
        ApiError::ResourceNotFound(format!(
            "Secrets Manager can't find the specified secret value for VersionId: {vid}"
        ))
    })?;
    let Some(kind) = version.value_kind.as_deref().and_then(ValueKind::from_code) else {
        return Err(match (version_id, stage) {
            (Some(v), _) => ApiError::ResourceNotFound(format!(
                "Secrets Manager can't find the specified secret value for VersionId: {v}"
            )),
            (None, s) => ApiError::ResourceNotFound(format!(
                "Secrets Manager can't find the specified secret value for staging label: {}",
                s.unwrap_or(secrets::AWSCURRENT)
            )),
        });
    };
    let plain = open_version(tx, keyring, secret, &version)?;
    let (string, binary) = match kind {
        ValueKind::String => (
            Some(OutValue(
                String::from_utf8_lossy(plain.expose()).into_owned(),
            )),
            None,
        ),
        ValueKind::Binary => (
            None,
            Some(OutValue(
                base64::engine::general_purpose::STANDARD.encode(plain.expose()),
            )),
        ),
    };
    let stages = stage_map
        .iter()
        .filter(|(_, v)| **v == vid)
        .map(|(s, _)| s.clone())
        .collect();
    Ok(ReadValue {
        version,
        stages,
        string,
        binary,
    })
}

/// Order stages as AWS lists them: AWSCURRENT, AWSPENDING, AWSPREVIOUS, then custom ones.
pub fn ordered_stages(mut stages: Vec<String>) -> Vec<String> {
    stages.sort_by_key(|s| {
        (
            match s.as_str() {
                secrets::AWSCURRENT => 0,
                secrets::AWSPENDING => 1,
                secrets::AWSPREVIOUS => 2,
                _ => 3,
            },
            s.clone(),
        )
    });
    stages
}
