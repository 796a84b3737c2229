//! UpdateSecret.

use serde::{Deserialize, Serialize};

use super::values::{self, SecretString};
use super::{Authorized, Ctx, NamesTarget, Operation, SecretId};
use crate::error::ApiError;
use crate::secrets::{self, AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use crate::store::rows::SecretRow;
use crate::store::Tx;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub secret_binary: Option<SecretString>,
    pub secret_string: Option<SecretString>,
    /// A managed external secret's partner type.
    #[serde(rename = "Type")]
    pub secret_type: Option<String>,
}

impl NamesTarget for Input {
    type By = SecretId;
    fn target_id(&self) -> Option<&str> {
        self.secret_id.as_deref()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

#[derive(Debug)]
pub struct UpdateSecret;

impl Operation for UpdateSecret {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "UpdateSecret";
    const ACTION: &'static str = "secretsmanager:UpdateSecret";
    const READ_ONLY: bool = false;

    /// `secretsmanager:Description`, `secretsmanager:KmsKeyId` (as sent) and
    /// `secretsmanager:Type`, when sent.
    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        [
            super::key_if("secretsmanager:Description", input.description.as_ref()),
            super::key_if("secretsmanager:KmsKeyId", input.kms_key_id.as_ref()),
            super::key_if("secretsmanager:Type", input.secret_type.as_ref()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        if let Some(t) = &input.client_request_token {
            secrets::validate_token(t)?;
        }
        if let Some(d) = &input.description {
            secrets::validate_description(d)?;
        }
        if let Some(k) = &input.kms_key_id {
            secrets::check_len("kmsKeyId", k.chars().count(), 0, 2048)?;
        }
        if let Some(t) = &input.secret_type {
            secrets::validate_secret_type(t)?;
        }
        if input.secret_string.is_some() && input.secret_binary.is_some() {
            return Err(ApiError::InvalidParameter(
                "You can't specify both a binary secret value and a string secret value in the same secret.".into(),
            ));
        }
        // A new value makes a version, which needs the token.
        if input.secret_string.is_some() || input.secret_binary.is_some() {
            secrets::require_token(input.client_request_token.as_deref())?;
        }
        Ok(())
    }

    /// A replica's own encryption key is the one thing that may change on a replica (AWS:
    /// "can't be updated independently from its primary secret, except for its encryption
    /// key").
    fn on_replica(input: &Input) -> bool {
        input.kms_key_id.is_some()
            && input.description.is_none()
            && input.secret_string.is_none()
            && input.secret_binary.is_none()
            && input.secret_type.is_none()
    }

    /// A new value is encrypted under the new key (or the secret's); changing the key
    /// re-encrypts the labelled versions, which decrypts them with the old one.
    fn named_key(input: &Input) -> Option<&str> {
        input.kms_key_id.as_deref().filter(|id| !id.is_empty())
    }

    fn key_uses(input: &Input) -> Vec<super::KeyUse> {
        let has_value = input.secret_string.is_some() || input.secret_binary.is_some();
        match input.kms_key_id.as_deref() {
            Some(id) if !id.is_empty() => vec![
                super::KeyUse::SecretKey("kms:Decrypt"),
                super::KeyUse::Named("kms:GenerateDataKey", id.to_owned()),
            ],
            Some(_) => vec![super::KeyUse::SecretKey("kms:Decrypt")],
            None if has_value => vec![super::KeyUse::SecretKey("kms:GenerateDataKey")],
            None => Vec::new(),
        }
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let secret_id = auth.secret()?.secret_id.clone();
        let value = values::take_value(input.secret_string, input.secret_binary)?;
        let token = input.client_request_token;
        let description = input.description;
        let kms_key_id = input.kms_key_id;
        let secret_type = input.secret_type;
        let cross_account = auth.principal.account_id != auth.secret()?.account_id;
        let decided_key = auth.secret()?.kms_key_id.clone();
        let decider = auth.clone();
        let keyring = ctx.keyring.clone();
        let now = ctx.now_ms();
        ctx.store
            .write(move |tx| {
                let mut secret = tx
                    .secret_by_id(&secret_id)?
                    .ok_or_else(ApiError::secret_not_found)?;
                super::ensure_not_deleted(&secret)?;
                // What is sealed here (a new value, or labelled versions moved to a new key)
                // was authorized against the key the resolution read.
                super::ensure_key_unchanged(&secret, decided_key.as_deref())?;
                let was_default = secret.kms_key_id.is_none();
                let mut changed = false;
                if let Some(d) = &description {
                    secret.description = Some(d.clone());
                    changed = true;
                }
                if let Some(t) = &secret_type {
                    secret.secret_type = Some(t.clone());
                    changed = true;
                }
                let key_changed = match &kms_key_id {
                    None => false,
                    Some(id) => {
                        let new_key = if id.is_empty() {
                            None
                        } else {
                            let key = keyring
                                .resolve(tx, &secret.account_id, &secret.region, id, now)?
                                .ok_or_else(|| {
                                    ApiError::InvalidParameter(format!(
                                        "Secrets Manager can't find the specified KMS key: {id}"
                                    ))
                                })?;
                            decider.ensure_named_key(id, &key)?;
                            if key.key_manager == "AWS" {
                                None
                            } else {
                                Some(key.key_id)
                            }
                        };
                        if new_key.is_none() && secret.cross_account_primary_arn.is_some() {
                            return Err(ApiError::InvalidParameter(
                                super::replicas::XACCT_NEEDS_CMK.into(),
                            ));
                        }
                        changed = true;
                        let differs = new_key != secret.kms_key_id;
                        secret.kms_key_id = new_key;
                        differs
                    }
                };
                // Another account can use neither the default key that seals the new value
                // nor the one that opens the versions re-encrypted under a new key.
                let is_default = secret.kms_key_id.is_none();
                if cross_account
                    && ((value.is_some() && is_default)
                        || (key_changed && (was_default || is_default)))
                {
                    return Err(super::default_key_not_shareable());
                }
                if key_changed {
                    authorize_labelled_keys(tx, &decider, &secret, decided_key.as_deref())?;
                }
                if changed {
                    secret.last_changed_at = now;
                    tx.update_secret(&secret)?;
                }
                let version_id = match &value {
                    Some(v) => {
                        let vid = secrets::require_token(token.as_deref())?.to_owned();
                        let existing = super::authorize_value_comparison(
                            tx,
                            &decider,
                            UpdateSecret::ACTION,
                            &secret,
                            &vid,
                        )?;
                        let written = values::write_version_known(
                            tx,
                            &keyring,
                            &secret,
                            &vid,
                            existing,
                            Some(v),
                            &[AWSCURRENT.to_owned()],
                            now,
                        )?
                        .written;
                        if written == values::Written::Created && !changed {
                            secret.last_changed_at = now;
                            tx.update_secret(&secret)?;
                        }
                        if written == values::Written::Created {
                            crate::rotation::abandon_for_new_current(tx, &mut secret, &vid, now)?;
                        }
                        Some(vid.clone())
                    }
                    None => None,
                };
                if key_changed {
                    values::reencrypt_labelled(tx, &keyring, &secret, now)?;
                    super::replicas::replica_key_changed(tx, &secret)?;
                }
                super::replicas::sync(tx, &keyring, &secret, now)?;
                Ok(Output {
                    arn: secret.arn,
                    name: secret.name,
                    version_id,
                })
            })
            .await
    }
}

/// A key change re-encrypts the labelled versions ([`values::reencrypt_labelled`]), which
/// decrypts each with the key that sealed it: `kms:Decrypt` is decided on every such key, not
/// only on the secret's key (`decided_key`, decided before the operation ran). A version
/// sealed under an older key and labelled again would otherwise be re-encrypted under a key
/// the caller may use, and read with it.
fn authorize_labelled_keys(
    tx: &mut Tx<'_>,
    auth: &Authorized,
    secret: &SecretRow,
    decided_key: Option<&str>,
) -> Result<(), ApiError> {
    let stages = tx.stages(&secret.secret_id)?;
    let mut keys: Vec<String> = Vec::new();
    for stage in [AWSCURRENT, AWSPENDING, AWSPREVIOUS] {
        let Some(id) = stages.get(stage) else {
            continue;
        };
        let Some(version) = tx.version(&secret.secret_id, id)? else {
            continue;
        };
        if version.value_kind.is_none() {
            continue;
        }
        if let Some(k) = version.kms_key_id {
            if Some(k.as_str()) != decided_key && !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    let tags = tx.tags(&secret.secret_id)?;
    for id in keys {
        let Some(key) = tx.kms_key(&id)? else {
            return Err(ApiError::AccessDenied(format!(
                "User: {} is not authorized to perform: kms:Decrypt on the KMS key of resource: {}. Access to KMS is not allowed",
                auth.principal.arn, secret.arn
            )));
        };
        // The secret's account's managed key (a secret that was under the default key) was
        // decided with the request: usable by its own account's principals.
        if decided_key.is_none() && key.key_manager == "AWS" {
            continue;
        }
        let facts = super::SecretFacts {
            tags: tags.clone(),
            key_aliases: super::key_aliases(tx, Some(&key))?,
            key: Some(key),
            key_actions: &["kms:Decrypt"],
            key_for: None,
            request_keys: Vec::new(),
            secret_keys: None,
            policy_cell: None,
        };
        auth.authorize_secret(UpdateSecret::ACTION, &secret.arn, Some((secret, &facts)))
            .map_err(|r| r.error)?;
    }
    Ok(())
}
