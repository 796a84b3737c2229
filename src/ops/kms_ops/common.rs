//! What the KMS operations share: reading a `KeyId`, finding the key it names, key-state
//! checks with KMS's error wording, and the `KeyMetadata` wire shape.

use serde::Serialize;

use crate::error::ApiError;
use crate::kms::{Keyring, DEFAULT_ALIAS, DISABLED, ENABLED, PENDING_DELETION};
use crate::ops::{epoch_seconds, Authorized, Ctx, IdMember, NamesTarget, Scope, Target};
use crate::secrets::check_len;
use crate::store::rows::KmsKeyRow;
use crate::store::Tx;

/// The longest `KeyId` the KMS model accepts.
pub const MAX_KEY_ID_LEN: usize = 2048;

/// `key_manager` of the keys AWS services create on first use.
pub const AWS_MANAGED: &str = "AWS";
/// `key_manager` of the keys created with CreateKey.
pub const CUSTOMER_MANAGED: &str = "CUSTOMER";

/// What a `KeyId` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A key id (bare or from a key ARN of this account and region).
    Key(String),
    /// An alias name `alias/...` (bare or from an alias ARN of this account and region).
    Alias(String),
    /// A well-formed ARN of another account, region or partition: never found here.
    Foreign { alias: bool, arn: String },
}

/// Check a required `KeyId` member: present and 1–2048 characters.
pub fn check_key_id(field: &str, id: Option<&String>) -> Result<(), ApiError> {
    let id = crate::ops::require_ref(field, &id)?;
    check_len(field, id.chars().count(), 1, MAX_KEY_ID_LEN)
}

/// Read a `KeyId`: key id, key ARN, alias name or alias ARN.
pub fn parse_key_ref(scope: &Scope, id: &str) -> Result<KeyRef, ApiError> {
    let Some(rest) = id.strip_prefix("arn:") else {
        if id.starts_with("alias/") {
            return Ok(KeyRef::Alias(id.to_owned()));
        }
        return Ok(KeyRef::Key(id.to_owned()));
    };
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    let [partition, service, region, account, resource] = parts.as_slice() else {
        return Err(invalid_arn(id));
    };
    if *service != "kms" {
        return Err(invalid_arn(id));
    }
    let (alias, name) = if let Some(k) = resource.strip_prefix("key/") {
        (false, k.to_owned())
    } else if resource
        .strip_prefix("alias/")
        .is_some_and(|a| !a.is_empty())
    {
        (true, (*resource).to_owned())
    } else {
        return Err(invalid_arn(id));
    };
    if name.is_empty() {
        return Err(invalid_arn(id));
    }
    if *partition != "aws" || *region != scope.region || *account != scope.account {
        return Ok(KeyRef::Foreign {
            alias,
            arn: id.to_owned(),
        });
    }
    Ok(if alias {
        KeyRef::Alias(name)
    } else {
        KeyRef::Key(name)
    })
}

/// Whether `id` has the shape of a KMS key id (a UUID, or `mrk-` and 32 hex digits).
pub fn looks_like_key_id(id: &str) -> bool {
    if let Some(hex) = id.strip_prefix("mrk-") {
        return hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8usize, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The ARN of key `key_id` in `scope`.
pub fn key_arn(scope: &Scope, key_id: &str) -> String {
    format!(
        "arn:aws:kms:{}:{}:key/{key_id}",
        scope.region, scope.account
    )
}

/// The ARN of alias `alias_name` (`alias/...`) in `scope`.
pub fn alias_arn(scope: &Scope, alias_name: &str) -> String {
    format!(
        "arn:aws:kms:{}:{}:{alias_name}",
        scope.region, scope.account
    )
}

/// `NotFoundException` for a key, in KMS's wording.
pub fn key_not_found(arn: &str) -> ApiError {
    ApiError::KmsNotFound(format!("Key '{arn}' does not exist"))
}

/// `NotFoundException` for an alias, in KMS's wording.
pub fn alias_not_found(arn: &str) -> ApiError {
    ApiError::KmsNotFound(format!("Alias {arn} is not found."))
}

/// `NotFoundException` for an identifier that is not a key id where one is required.
pub fn invalid_key_id(id: &str) -> ApiError {
    ApiError::KmsNotFound(format!("Invalid keyId {id}"))
}

fn invalid_arn(id: &str) -> ApiError {
    ApiError::KmsInvalidArn(format!(
        "Invalid arn {id}: expected arn:aws:kms:REGION:ACCOUNT:key/KEY_ID or arn:aws:kms:REGION:ACCOUNT:alias/NAME."
    ))
}

/// Find the key a `KeyId` names (key id, key ARN, alias name or alias ARN). With `default`,
/// `alias/aws/secretsmanager` creates the account's managed key on first use, as AWS does.
pub fn find_any(
    tx: &mut Tx<'_>,
    scope: &Scope,
    id: &str,
    default: Option<(&Keyring, i64)>,
) -> Result<KmsKeyRow, ApiError> {
    match parse_key_ref(scope, id)? {
        KeyRef::Key(key_id) => find_key_id(tx, scope, id, &key_id),
        KeyRef::Alias(alias) => {
            if alias == DEFAULT_ALIAS {
                if let Some((keyring, now)) = default {
                    return keyring.default_key(tx, &scope.account, &scope.region, now);
                }
            }
            let not_found = || alias_not_found(&alias_arn(scope, &alias));
            let a = tx
                .kms_alias(&scope.account, &scope.region, &alias)?
                .ok_or_else(not_found)?;
            tx.kms_key(&a.target_key_id)?.ok_or_else(not_found)
        }
        KeyRef::Foreign { alias: true, arn } => Err(alias_not_found(&arn)),
        KeyRef::Foreign { alias: false, arn } => Err(key_not_found(&arn)),
    }
}

/// Find the key a `KeyId` names where KMS takes only a key id or key ARN (no alias).
pub fn find_by_key_id(tx: &mut Tx<'_>, scope: &Scope, id: &str) -> Result<KmsKeyRow, ApiError> {
    match parse_key_ref(scope, id)? {
        KeyRef::Key(key_id) => find_key_id(tx, scope, id, &key_id),
        KeyRef::Alias(_) | KeyRef::Foreign { alias: true, .. } => Err(invalid_key_id(id)),
        KeyRef::Foreign { alias: false, arn } => Err(key_not_found(&arn)),
    }
}

fn find_key_id(
    tx: &mut Tx<'_>,
    scope: &Scope,
    given: &str,
    key_id: &str,
) -> Result<KmsKeyRow, ApiError> {
    if !looks_like_key_id(key_id) {
        return Err(invalid_key_id(given));
    }
    match tx.kms_key(key_id)? {
        Some(k) if k.account_id == scope.account && k.region == scope.region => Ok(k),
        _ => Err(key_not_found(&key_arn(scope, key_id))),
    }
}

/// Refuse an AWS managed key for an operation only customer managed keys allow.
pub fn ensure_customer_managed(key: &KmsKeyRow, op: &str) -> Result<(), ApiError> {
    if key.key_manager == AWS_MANAGED {
        return Err(ApiError::KmsUnsupportedOperation(format!(
            "{} is an AWS managed key: {op} is only supported on customer managed keys.",
            key.arn
        )));
    }
    Ok(())
}

/// `KMSInvalidStateException` for a key pending deletion.
pub fn ensure_not_pending_deletion(key: &KmsKeyRow) -> Result<(), ApiError> {
    if key.key_state == PENDING_DELETION {
        return Err(ApiError::KmsInvalidState(format!(
            "{} is pending deletion.",
            key.arn
        )));
    }
    Ok(())
}

/// The key must be enabled: `KMSInvalidStateException` when pending deletion,
/// `DisabledException` when disabled.
pub fn ensure_enabled(key: &KmsKeyRow) -> Result<(), ApiError> {
    ensure_not_pending_deletion(key)?;
    if key.key_state == DISABLED {
        return Err(ApiError::KmsDisabled(format!("{} is disabled.", key.arn)));
    }
    Ok(())
}

/// An output with no members (`{}`).
#[derive(Debug, Serialize)]
pub struct Empty {}

/// KMS's `KeyMetadata` for the symmetric encryption keys this server has.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadata {
    #[serde(rename = "AWSAccountId")]
    pub aws_account_id: String,
    pub key_id: String,
    pub arn: String,
    pub creation_date: f64,
    pub enabled: bool,
    pub description: String,
    pub key_usage: &'static str,
    pub key_state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<f64>,
    pub origin: &'static str,
    pub key_manager: String,
    pub customer_master_key_spec: &'static str,
    pub key_spec: &'static str,
    pub encryption_algorithms: Vec<&'static str>,
    pub multi_region: bool,
}

impl KeyMetadata {
    pub fn from_row(key: &KmsKeyRow) -> Self {
        Self {
            aws_account_id: key.account_id.clone(),
            key_id: key.key_id.clone(),
            arn: key.arn.clone(),
            creation_date: epoch_seconds(key.created_at),
            enabled: key.key_state == ENABLED,
            description: key.description.clone(),
            key_usage: "ENCRYPT_DECRYPT",
            key_state: key.key_state.clone(),
            deletion_date: match key.key_state.as_str() {
                PENDING_DELETION => key.deletion_date.map(epoch_seconds),
                _ => None,
            },
            origin: "AWS_KMS",
            key_manager: key.key_manager.clone(),
            customer_master_key_spec: "SYMMETRIC_DEFAULT",
            key_spec: "SYMMETRIC_DEFAULT",
            encryption_algorithms: vec!["SYMMETRIC_DEFAULT"],
            multi_region: false,
        }
    }
}

/// The longest alias name KMS accepts.
pub const MAX_ALIAS_NAME_LEN: usize = 256;
/// The prefix of alias names reserved for AWS managed keys.
pub const RESERVED_ALIAS_PREFIX: &str = "alias/aws/";

/// Check an `AliasName` for CreateAlias and DeleteAlias: 1–256 of `[a-zA-Z0-9/_-]`, starting
/// with `alias/` and something after it, and not in the reserved `alias/aws/` space
/// (`action` is what is refused there: "created", "deleted").
pub fn check_alias_name(name: &str, action: &str) -> Result<(), ApiError> {
    check_len("aliasName", name.chars().count(), 1, MAX_ALIAS_NAME_LEN)?;
    let pattern_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '_' | '-');
    if !name.chars().all(pattern_char) {
        return Err(super::paging::validation_value(
            name,
            "aliasName",
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
        ));
    }
    let Some(rest) = name.strip_prefix("alias/") else {
        return Err(ApiError::KmsInvalidAliasName(
            "Alias must start with the prefix \"alias/\".".into(),
        ));
    };
    if name.contains(':') {
        return Err(ApiError::KmsInvalidAliasName(format!(
            "{name} contains invalid characters for an alias"
        )));
    }
    if rest.is_empty() {
        return Err(ApiError::KmsInvalidAliasName(
            "An alias name needs a name after the prefix \"alias/\".".into(),
        ));
    }
    if name.starts_with(RESERVED_ALIAS_PREFIX) {
        return Err(ApiError::KmsInvalidAliasName(format!(
            "Alias names that begin with {RESERVED_ALIAS_PREFIX} are reserved for AWS managed keys: {name} cannot be {action}."
        )));
    }
    Ok(())
}

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// `KeyId`: a KMS key, by key id, key ARN, alias name or alias ARN.
#[derive(Debug)]
pub enum KeyId {}

impl IdMember for KeyId {
    const FIELD: &'static str = "keyId";
    fn check(id: &str) -> Result<(), ApiError> {
        check_len(Self::FIELD, id.chars().count(), 1, MAX_KEY_ID_LEN)
    }
    fn target(id: String) -> Target {
        Target::KmsKey(id)
    }
}

/// The input of the operations that name one key by `KeyId` only.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyIdInput {
    pub key_id: Option<String>,
}

impl NamesTarget for KeyIdInput {
    type By = KeyId;
    fn target_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }
}

/// In one write transaction: find the key `id` names (key id or key ARN), let `f` check and
/// change it, and store it.
pub async fn update_key<T, F>(
    ctx: &Ctx,
    auth: &Authorized,
    id: String,
    mut f: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnMut(&mut Tx<'_>, &mut KmsKeyRow) -> Result<T, ApiError> + Send + 'static,
{
    let scope = auth.scope.clone();
    ctx.store
        .write(move |tx| {
            let mut key = find_by_key_id(tx, &scope, &id)?;
            let out = f(tx, &mut key)?;
            tx.update_kms_key(&key)?;
            Ok(out)
        })
        .await
}

/// In one read transaction: the key `id` names (key id or key ARN).
pub async fn read_key(ctx: &Ctx, auth: &Authorized, id: String) -> Result<KmsKeyRow, ApiError> {
    let scope = auth.scope.clone();
    ctx.store
        .read(move |tx| find_by_key_id(tx, &scope, &id))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            account: "000000000000".into(),
            region: "us-east-1".into(),
        }
    }

    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn key_refs() {
        let s = scope();
        assert_eq!(parse_key_ref(&s, ID).unwrap(), KeyRef::Key(ID.into()));
        assert_eq!(
            parse_key_ref(&s, &format!("arn:aws:kms:us-east-1:000000000000:key/{ID}")).unwrap(),
            KeyRef::Key(ID.into())
        );
        assert_eq!(
            parse_key_ref(&s, "alias/app").unwrap(),
            KeyRef::Alias("alias/app".into())
        );
        assert_eq!(
            parse_key_ref(&s, "arn:aws:kms:us-east-1:000000000000:alias/app/x").unwrap(),
            KeyRef::Alias("alias/app/x".into())
        );
        assert!(matches!(
            parse_key_ref(&s, &format!("arn:aws:kms:eu-west-1:000000000000:key/{ID}")).unwrap(),
            KeyRef::Foreign { alias: false, .. }
        ));
        assert!(matches!(
            parse_key_ref(&s, "arn:aws:kms:us-east-1:111111111111:alias/a").unwrap(),
            KeyRef::Foreign { alias: true, .. }
        ));
        for bad in [
            "arn:aws:kms:us-east-1:000000000000:secret/x",
            "arn:aws:secretsmanager:us-east-1:000000000000:key/x",
            "arn:aws:kms:us-east-1",
            "arn:aws:kms:us-east-1:000000000000:key/",
            "arn:aws:kms:us-east-1:000000000000:alias/",
        ] {
            assert_eq!(
                parse_key_ref(&s, bad).unwrap_err().code(),
                "InvalidArnException",
                "{bad}"
            );
        }
    }

    #[test]
    fn alias_names() {
        for ok in ["alias/app", "alias/App_1/x-y", "alias/awsome"] {
            assert!(check_alias_name(ok, "created").is_ok(), "{ok}");
        }
        for (bad, code) in [
            ("", "ValidationException"),
            ("alias/with space", "ValidationException"),
            ("alias/é", "ValidationException"),
            ("app", "InvalidAliasNameException"),
            ("Alias/app", "InvalidAliasNameException"),
            ("alias/", "InvalidAliasNameException"),
            ("alias/a:b", "InvalidAliasNameException"),
            ("alias/aws/secretsmanager", "InvalidAliasNameException"),
            ("alias/aws/mine", "InvalidAliasNameException"),
        ] {
            assert_eq!(
                check_alias_name(bad, "created").unwrap_err().code(),
                code,
                "{bad}"
            );
        }
        let long = format!("alias/{}", "a".repeat(251));
        assert_eq!(
            check_alias_name(&long, "created").unwrap_err().code(),
            "ValidationException"
        );
        assert!(check_alias_name(&format!("alias/{}", "a".repeat(250)), "created").is_ok());
    }

    #[test]
    fn key_id_shapes() {
        assert!(looks_like_key_id(ID));
        assert!(looks_like_key_id("mrk-1234abcd12ab34cd56ef1234567890ab"));
        assert!(!looks_like_key_id("testkmskey"));
        assert!(!looks_like_key_id("1234abcd-12ab-34cd-56ef-1234567890a"));
        assert!(!looks_like_key_id(
            "1234abcd-12ab-34cd-56ef-1234567890ab-00"
        ));
        assert!(!looks_like_key_id("zzzzzzzz-12ab-34cd-56ef-1234567890ab"));
    }
}
