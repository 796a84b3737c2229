//! Writing and reading secret values: shared by Create/Put/Update/Get/BatchGet.
//! Runs inside a store transaction.

use base64::Engine;

use crate::crypto::envelope::SealedValue;
use crate::crypto::SecretBytes;
use crate::error::ApiError;
use crate::kms::{Keyring, ValueKey};
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
    let existing = tx.version(&secret.secret_id, version_id)?;
    let wrote = write_version_known(
        tx, keyring, secret, version_id, existing, value, stages, now_ms,
    )?;
    Ok(wrote.written)
}

/// What [`write_version_known`] did, with what it read and wrote on the way.
#[derive(Debug)]
pub struct Wrote {
    pub written: Written,
    /// The secret's stage map after the write (`None` for an idempotent retry, which reads
    /// none).
    pub stages: Option<labels::StageMap>,
    /// The version row it inserted (`None` when it filled a placeholder or changed nothing).
    pub inserted: Option<VersionRow>,
    /// The ids of the deprecated versions it dropped beyond the limit.
    pub pruned: Vec<String>,
}

/// [`write_version`] for a caller that has read version `version_id` in this transaction
/// already (`existing`, `None` if there is none).
#[allow(
    clippy::too_many_arguments,
    reason = "write_version's arguments and the version the caller read"
)]
pub fn write_version_known(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    secret: &SecretRow,
    version_id: &str,
    existing: Option<VersionRow>,
    value: Option<&NewValue>,
    stages: &[String],
    now_ms: i64,
) -> Result<Wrote, ApiError> {
    if let Some(existing) = existing {
        // A rotation's AWSPENDING placeholder (created without a value before the function's
        // first step) is filled by the function's PutSecretValue with its token, as on AWS.
        if let (Some(v), None) = (value, existing.value_kind.as_deref()) {
            let current = tx.stages(&secret.secret_id)?;
            if current.get(secrets::AWSPENDING).map(String::as_str) == Some(version_id) {
                let key = secret_key(tx, keyring, secret, now_ms)?;
                let sealed =
                    keyring.seal_value(tx, &key, &secret.arn, version_id, v.bytes.expose())?;
                tx.fill_version(
                    &secret.secret_id,
                    version_id,
                    v.kind.code(),
                    &sealed.ciphertext,
                    &sealed.wrapped_dek,
                    &key.key_id,
                    key.current_term,
                )?;
                let next = labels::after_new_version(&current, version_id, stages)?;
                tx.update_stages(&secret.secret_id, &current, &next)?;
                return Ok(Wrote {
                    written: Written::Created,
                    stages: Some(next),
                    inserted: None,
                    pruned: Vec::new(),
                });
            }
        }
        let same = match (value, existing.value_kind.as_deref()) {
            (None, None) => true,
            (Some(v), Some(kind)) if ValueKind::from_code(kind) == Some(v.kind) => {
                let plain = open_version(tx, keyring, secret, &existing)?;
                v.bytes.ct_eq(plain.expose())
            }
            _ => false,
        };
        if same {
            return Ok(Wrote {
                written: Written::Idempotent,
                stages: None,
                inserted: None,
                pruned: Vec::new(),
            });
        }
        // AWS's wording; the token is not repeated (it is the caller's idempotency secret).
        return Err(ApiError::ResourceExists(
            "You can't modify an existing version, you can only create a new version.".into(),
        ));
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
    let row = VersionRow {
        secret_id: secret.secret_id.clone(),
        version_id: version_id.to_owned(),
        created_at: now_ms,
        last_accessed_at: None,
        value_kind: kind,
        ciphertext,
        wrapped_dek,
        kms_key_id: key_id,
        kms_term: term,
    };
    tx.insert_version(&row)?;
    let current = tx.stages(&secret.secret_id)?;
    let next = labels::after_new_version(&current, version_id, stages)?;
    tx.update_stages(&secret.secret_id, &current, &next)?;
    let pruned = prune(tx, &secret.secret_id, &next, now_ms)?;
    Ok(Wrote {
        written: Written::Created,
        stages: Some(next),
        inserted: Some(row),
        pruned,
    })
}

/// Drop deprecated versions beyond the limit (never labelled, never younger than 24 h);
/// the ids dropped.
fn prune(
    tx: &mut Tx<'_>,
    secret_id: &str,
    map: &labels::StageMap,
    now_ms: i64,
) -> Result<Vec<String>, ApiError> {
    // Most writes stop here: counting reads only the primary key index.
    let total = tx.count_versions(secret_id)?;
    if total <= secrets::MAX_VERSIONS {
        return Ok(Vec::new());
    }
    let cutoff = now_ms.saturating_sub(secrets::DEPRECATED_MIN_AGE_MS);
    let old_enough = tx.version_ids_created_by(secret_id, cutoff)?;
    let ids = labels::versions_to_prune(
        total,
        &old_enough,
        map,
        now_ms,
        secrets::MAX_VERSIONS,
        secrets::DEPRECATED_MIN_AGE_MS,
    );
    for id in &ids {
        tx.delete_version(secret_id, id)?;
    }
    Ok(ids)
}

/// Decrypt a version's value.
pub fn open_version(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    secret: &SecretRow,
    v: &VersionRow,
) -> Result<SecretBytes, ApiError> {
    let (sealed, key_id, term) = sealed_parts(v)?;
    let plain = keyring.open_value(tx, key_id, term, &secret.arn, &v.version_id, &sealed)?;
    Ok(SecretBytes::new(plain.to_vec()))
}

/// A version's sealed value and the KMS key (and term) that protects it.
fn sealed_parts(v: &VersionRow) -> Result<(SealedValue, &str, i32), ApiError> {
    let (Some(ct), Some(dek), Some(key_id), Some(term)) =
        (&v.ciphertext, &v.wrapped_dek, &v.kms_key_id, v.kms_term)
    else {
        return Err(ApiError::internal("version has no value"));
    };
    let sealed = SealedValue {
        ciphertext: ct.clone(),
        wrapped_dek: dek.clone(),
    };
    Ok((sealed, key_id, term))
}

/// A value read for GetSecretValue.
#[derive(Debug)]
pub struct ReadValue {
    pub version: VersionRow,
    pub stages: Vec<String>,
    pub string: Option<OutValue>,
    pub binary: Option<OutValue>,
}

/// Which version a read wants: GetSecretValue's `VersionId` and `VersionStage` (neither:
/// AWSCURRENT).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionSelector {
    pub version_id: Option<String>,
    pub stage: Option<String>,
}

/// Everything a read needs from the store, still sealed: the selected version, its stages
/// and the key that opens it. Fetched in the same read transaction as the secret itself
/// (before authorization), opened with [`open_fetched`] only after the request is allowed.
#[derive(Debug, Clone)]
pub struct FetchedValue {
    version: VersionRow,
    kind: ValueKind,
    stages: Vec<String>,
    key: ValueKey,
}

impl FetchedValue {
    /// The KMS key (key id) that sealed this version: the key a read of it is decided on.
    pub fn sealing_key_id(&self) -> Option<&str> {
        self.version.kms_key_id.as_deref()
    }

    /// That key's row (state, key policy), read in the same transaction as the version.
    pub fn sealing_key(&self) -> &crate::store::rows::KmsKeyRow {
        self.key.key_row()
    }
}

/// Read the version that `version_id` and/or `stage` select (default AWSCURRENT).
pub fn read_value(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    secret: &SecretRow,
    version_id: Option<&str>,
    stage: Option<&str>,
) -> Result<ReadValue, ApiError> {
    let fetched = fetch_value(tx, keyring, secret, version_id, stage)?;
    open_fetched(secret, &fetched)
}

/// The store half of [`read_value`]: find the version, check it has a value and that its
/// key is usable; decrypt nothing.
pub fn fetch_value(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    secret: &SecretRow,
    version_id: Option<&str>,
    stage: Option<&str>,
) -> Result<FetchedValue, ApiError> {
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
    let (_, key_id, term) = sealed_parts(&version)?;
    let key = keyring.value_key(tx, key_id, term)?;
    let stages = stage_map
        .into_iter()
        .filter(|(_, v)| *v == vid)
        .map(|(s, _)| s)
        .collect();
    Ok(FetchedValue {
        version,
        kind,
        stages,
        key,
    })
}

/// The decrypting half of [`read_value`]; needs no transaction. Call only once the request
/// is authorized.
pub fn open_fetched(secret: &SecretRow, f: &FetchedValue) -> Result<ReadValue, ApiError> {
    let (sealed, _, _) = sealed_parts(&f.version)?;
    let plain = SecretBytes::new(
        f.key
            .open(&secret.arn, &f.version.version_id, &sealed)?
            .to_vec(),
    );
    let (string, binary) = match f.kind {
        ValueKind::String => (
            // Valid UTF-8 (what CreateSecret and PutSecretValue store) is checked by the
            // fast path; anything else is shown with replacement characters.
            Some(OutValue(match std::str::from_utf8(plain.expose()) {
                Ok(s) => s.to_owned(),
                Err(_) => String::from_utf8_lossy(plain.expose()).into_owned(),
            })),
            None,
        ),
        ValueKind::Binary => (
            None,
            Some(OutValue(
                base64::engine::general_purpose::STANDARD.encode(plain.expose()),
            )),
        ),
    };
    Ok(ReadValue {
        version: f.version.clone(),
        stages: f.stages.clone(),
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

/// Check an integer member's range, answering AWS's ValidationException wording
/// (`Value '0' at 'maxResults' failed to satisfy constraint: ...`).
pub fn check_range(field: &str, value: i64, min: i64, max: i64) -> Result<(), ApiError> {
    let constraint = if value < min {
        format!("Member must have value greater than or equal to {min}")
    } else if value > max {
        format!("Member must have value less than or equal to {max}")
    } else {
        return Ok(());
    };
    Err(ApiError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    )))
}

/// A sort key for keyset pagination.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortValue {
    Num(i64),
    Text(String),
}

/// Where a page ended: the sort key and the unique id of the last item returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub value: SortValue,
    pub id: String,
}

const INVALID_NEXT_TOKEN: &str = "The NextToken value is invalid.";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// An opaque `NextToken` for `cursor`, bound to `mode` (the listing and its ordering), so a
/// token is only accepted back by the same kind of listing.
pub fn encode_next_token(mode: &str, cursor: &Cursor) -> String {
    let (tag, value) = match &cursor.value {
        SortValue::Num(n) => ("n", n.to_string()),
        SortValue::Text(t) => ("t", b64().encode(t.as_bytes())),
    };
    let inner = format!(
        "1.{}.{tag}.{value}.{}",
        b64().encode(mode.as_bytes()),
        b64().encode(cursor.id.as_bytes())
    );
    b64().encode(inner.as_bytes())
}

/// Read back a token made by [`encode_next_token`] for the same `mode`;
/// anything else is `InvalidNextTokenException`.
pub fn decode_next_token(mode: &str, token: &str) -> Result<Cursor, ApiError> {
    let bad = || ApiError::InvalidNextToken(INVALID_NEXT_TOKEN.into());
    let raw = b64().decode(token.as_bytes()).map_err(|_| bad())?;
    let inner = String::from_utf8(raw).map_err(|_| bad())?;
    let text = |s: &str| -> Result<String, ApiError> {
        let bytes = b64().decode(s.as_bytes()).map_err(|_| bad())?;
        String::from_utf8(bytes).map_err(|_| bad())
    };
    let parts: Vec<&str> = inner.split('.').collect();
    let [version, m, tag, value, id] = parts.as_slice() else {
        return Err(bad());
    };
    if *version != "1" || text(m)? != mode {
        return Err(bad());
    }
    let value = match *tag {
        "n" => SortValue::Num(value.parse().map_err(|_| bad())?),
        "t" => SortValue::Text(text(value)?),
        _ => return Err(bad()),
    };
    Ok(Cursor {
        value,
        id: text(id)?,
    })
}

/// One page of `items` ordered by `key` (then id), ascending or descending, starting after
/// `after`; answers the page and, when more items follow, the cursor of its last item.
pub fn keyset_page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> Cursor,
    descending: bool,
    after: Option<&Cursor>,
    max: usize,
) -> (Vec<T>, Option<Cursor>) {
    let order = |c: &Cursor| (c.value.clone(), c.id.clone());
    items.sort_by_cached_key(|t| order(&key(t)));
    if descending {
        items.reverse();
    }
    let mut rest: Vec<T> = match after {
        None => items,
        Some(a) => {
            let a = order(a);
            items
                .into_iter()
                .filter(|t| {
                    let k = order(&key(t));
                    if descending {
                        k < a
                    } else {
                        k > a
                    }
                })
                .collect()
        }
    };
    let more = rest.len() > max;
    rest.truncate(max);
    let next = if more { rest.last().map(&key) } else { None };
    (rest, next)
}

/// Re-encrypt the versions labelled AWSCURRENT, AWSPENDING or AWSPREVIOUS under the key
/// that now protects `secret` (UpdateSecret with a new `KmsKeyId`). Versions already under
/// that key, and versions without a value, are left alone.
pub fn reencrypt_labelled(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    secret: &SecretRow,
    now_ms: i64,
) -> Result<(), ApiError> {
    let stages = tx.stages(&secret.secret_id)?;
    let mut ids: Vec<String> = [
        secrets::AWSCURRENT,
        secrets::AWSPENDING,
        secrets::AWSPREVIOUS,
    ]
    .iter()
    .filter_map(|s| stages.get(*s).cloned())
    .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let key = secret_key(tx, keyring, secret, now_ms)?;
    for id in ids {
        let Some(version) = tx.version(&secret.secret_id, &id)? else {
            continue;
        };
        if version.value_kind.is_none()
            || (version.kms_key_id.as_deref() == Some(key.key_id.as_str())
                && version.kms_term == Some(key.current_term))
        {
            continue;
        }
        let plain = open_version(tx, keyring, secret, &version)?;
        let sealed = keyring.seal_value(tx, &key, &secret.arn, &id, plain.expose())?;
        tx.reseal_version(
            &secret.secret_id,
            &id,
            &sealed.ciphertext,
            &sealed.wrapped_dek,
            &key.key_id,
            key.current_term,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod paging_tests {
    use super::*;

    fn c(v: SortValue, id: &str) -> Cursor {
        Cursor {
            value: v,
            id: id.to_owned(),
        }
    }

    #[test]
    fn next_token_round_trips_and_is_bound_to_its_mode() {
        for cursor in [
            c(SortValue::Num(-5), "a.b|c"),
            c(SortValue::Num(i64::MIN), "x"),
            c(SortValue::Text("prod/db.pass@x".into()), "id-1"),
            c(SortValue::Text(String::new()), ""),
        ] {
            let t = encode_next_token("ListSecrets/name/asc", &cursor);
            assert!(!t.is_empty() && t.len() <= 4096);
            assert_eq!(
                decode_next_token("ListSecrets/name/asc", &t).unwrap(),
                cursor
            );
            assert!(matches!(
                decode_next_token("ListSecrets/name/desc", &t),
                Err(ApiError::InvalidNextToken(_))
            ));
        }
        for garbage in ["", "!!!", "bm90IGEgdG9rZW4", "MS5hLm4uMS5i", "MS4uLi4"] {
            assert_eq!(
                decode_next_token("m", garbage),
                Err(ApiError::InvalidNextToken(
                    "The NextToken value is invalid.".into()
                ))
            );
        }
    }

    #[test]
    fn keyset_pages_cover_everything_once_in_order() {
        // (sort value, id); ties on the value are broken by id.
        let items: Vec<(i64, String)> = [(3, "c"), (1, "a"), (2, "b2"), (2, "b1"), (5, "e")]
            .iter()
            .map(|(n, s)| (*n, (*s).to_owned()))
            .collect();
        let key = |t: &(i64, String)| c(SortValue::Num(t.0), &t.1);
        for descending in [false, true] {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let (page, next) = keyset_page(items.clone(), key, descending, after.as_ref(), 2);
                assert!(page.len() <= 2);
                seen.extend(page.into_iter().map(|t| t.1));
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            let mut want = vec!["a", "b1", "b2", "c", "e"];
            if descending {
                want.reverse();
            }
            assert_eq!(seen, want);
        }
        // An exact fit answers no cursor; an empty list answers an empty page.
        let (page, next) = keyset_page(items.clone(), key, false, None, 5);
        assert_eq!(page.len(), 5);
        assert!(next.is_none());
        let (page, next) = keyset_page(Vec::<(i64, String)>::new(), key, false, None, 5);
        assert!(page.is_empty() && next.is_none());
    }

    #[test]
    fn range_messages_follow_aws() {
        assert!(check_range("maxResults", 1, 1, 100).is_ok());
        assert_eq!(
            check_range("maxResults", 101, 1, 100).unwrap_err().message(),
            "1 validation error detected: Value '101' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 100"
        );
        assert!(check_range("maxResults", 0, 1, 100)
            .unwrap_err()
            .message()
            .ends_with("greater than or equal to 1"));
    }
}
