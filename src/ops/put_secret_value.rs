//! PutSecretValue.

use serde::{Deserialize, Serialize};

use super::values::{self, SecretString};
use super::{Authorized, Ctx, NamesTarget, Operation, SecretId};
use crate::error::ApiError;
use crate::secrets::{self, AWSCURRENT};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub client_request_token: Option<String>,
    pub secret_binary: Option<SecretString>,
    pub secret_string: Option<SecretString>,
    pub version_stages: Option<Vec<String>>,
    pub rotation_token: Option<SecretString>,
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
    pub version_id: String,
    pub version_stages: Vec<String>,
}

#[derive(Debug)]
pub struct PutSecretValue;

pub fn validate_stages(field: &str, stages: &[String]) -> Result<(), ApiError> {
    secrets::check_len(field, stages.len(), 1, 20)?;
    for s in stages {
        secrets::validate_stage(&format!("{field}.member"), s)?;
    }
    Ok(())
}

impl Operation for PutSecretValue {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "PutSecretValue";
    const ACTION: &'static str = "secretsmanager:PutSecretValue";
    const READ_ONLY: bool = false;

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        if let Some(t) = &input.client_request_token {
            secrets::validate_token(t)?;
        }
        if let Some(s) = &input.version_stages {
            validate_stages("versionStages", s)?;
        }
        if let Some(t) = &input.rotation_token {
            secrets::check_len("rotationToken", t.expose().chars().count(), 36, 256)?;
            if !t
                .expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(secrets::validation(
                    "rotationToken",
                    "Member must satisfy regular expression pattern: ^[a-zA-Z0-9\\-]+$",
                ));
            }
        }
        if input.secret_string.is_none() && input.secret_binary.is_none() {
            return Err(ApiError::InvalidRequest(
                "You must provide either SecretString or SecretBinary.".into(),
            ));
        }
        secrets::require_token(input.client_request_token.as_deref())?;
        Ok(())
    }

    fn key_uses(_input: &Input) -> Vec<super::KeyUse> {
        vec![super::KeyUse::SecretKey("kms:GenerateDataKey")]
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let secret_id = auth.secret()?.secret_id.clone();
        let decided_key = auth.secret()?.kms_key_id.clone();
        let value =
            values::take_value(input.secret_string, input.secret_binary)?.ok_or_else(|| {
                ApiError::InvalidRequest(
                    "You must provide either SecretString or SecretBinary.".into(),
                )
            })?;
        let stages = input
            .version_stages
            .unwrap_or_else(|| vec![AWSCURRENT.to_owned()]);
        let vid = secrets::require_token(input.client_request_token.as_deref())?.to_owned();
        let rotation_token = input.rotation_token;
        let caller_account = auth.principal.account_id.clone();
        let decider = auth.clone();
        let keyring = ctx.keyring.clone();
        let now = ctx.now_ms();
        ctx.store
            .write(move |tx| {
                let mut secret = tx
                    .secret_by_id(&secret_id)?
                    .ok_or_else(ApiError::secret_not_found)?;
                super::ensure_not_deleted(&secret)?;
                super::ensure_key_unchanged(&secret, decided_key.as_deref())?;
                // The new version would be sealed under the secret's account's default key.
                super::ensure_key_shareable_with(&caller_account, &secret)?;
                let existing =
                    super::authorize_value_comparison(tx, &decider, Self::ACTION, &secret, &vid)?;
                if let Some(t) = &rotation_token {
                    crate::rotation::check_rotation_token(tx, &secret.secret_id, &vid, t.expose())?;
                }
                let wrote = values::write_version_known(
                    tx,
                    &keyring,
                    &secret,
                    &vid,
                    existing,
                    Some(&value),
                    &stages,
                    now,
                )?;
                let mut map = wrote.stages;
                if wrote.written == values::Written::Created {
                    secret.last_changed_at = now;
                    tx.set_secret_changed(&secret.secret_id, now)?;
                    if stages.iter().any(|s| s == AWSCURRENT)
                        && crate::rotation::abandon_for_new_current(tx, &mut secret, &vid, now)?
                    {
                        // The abandoned rotation's AWSPENDING left its own version; this
                        // version's labels are as written, the map is not.
                        map = None;
                    }
                }
                // What the replicas served here copy from this write: the map and the new
                // version with its value, so that they are neither read nor decrypted again.
                let known = match (&map, &wrote.inserted) {
                    (Some(stages), Some(version)) => Some(super::replicas::Known {
                        stages,
                        version,
                        value: &value.bytes,
                        pruned: &wrote.pruned,
                    }),
                    _ => None,
                };
                // A retry of a write that was made changes nothing: the replicas (and the
                // peers' outbox) took that write already.
                if wrote.written == values::Written::Created {
                    super::replicas::sync_known(tx, &keyring, &secret, now, known)?;
                }
                let map = match map {
                    Some(m) => m,
                    None => tx.stages(&secret.secret_id)?,
                };
                let own = map
                    .iter()
                    .filter(|(_, v)| **v == vid)
                    .map(|(s, _)| s.clone())
                    .collect();
                Ok(Output {
                    arn: secret.arn,
                    name: secret.name,
                    version_id: vid.clone(),
                    version_stages: values::ordered_stages(own),
                })
            })
            .await
    }
}
