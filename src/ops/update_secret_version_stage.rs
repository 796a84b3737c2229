//! UpdateSecretVersionStage.

use serde::{Deserialize, Serialize};

use super::{Authorized, Ctx, NamesTarget, Operation, SecretId};
use crate::error::ApiError;
use crate::secrets::{self, labels};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub version_stage: Option<String>,
    pub remove_from_version_id: Option<String>,
    pub move_to_version_id: Option<String>,
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
}

#[derive(Debug)]
pub struct UpdateSecretVersionStage;

impl Operation for UpdateSecretVersionStage {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "UpdateSecretVersionStage";
    const ACTION: &'static str = "secretsmanager:UpdateSecretVersionStage";
    const READ_ONLY: bool = false;

    /// `secretsmanager:VersionStage`: the label moved.
    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        super::key_if("secretsmanager:VersionStage", input.version_stage.as_ref())
            .into_iter()
            .collect()
    }

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        secrets::validate_stage(
            "versionStage",
            super::require_ref("versionStage", &input.version_stage)?,
        )?;
        if let Some(v) = &input.remove_from_version_id {
            secrets::validate_version_id("removeFromVersionId", v)?;
        }
        if let Some(v) = &input.move_to_version_id {
            secrets::validate_version_id("moveToVersionId", v)?;
        }
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let secret_id = auth.secret()?.secret_id.clone();
        let stage = super::required("versionStage", input.version_stage)?;
        let remove_from = input.remove_from_version_id;
        let move_to = input.move_to_version_id;
        let now = ctx.now_ms();
        let replicas_keyring = ctx.keyring.clone();
        ctx.store
            .write(move |tx| {
                let mut secret = tx
                    .secret_by_id(&secret_id)?
                    .ok_or_else(ApiError::secret_not_found)?;
                super::ensure_not_deleted(&secret)?;
                for id in [&remove_from, &move_to].into_iter().flatten() {
                    if tx.version(&secret.secret_id, id)?.is_none() {
                        return Err(ApiError::InvalidParameter(format!(
                            "Not a valid version: {id}"
                        )));
                    }
                }
                let current = tx.stages(&secret.secret_id)?;
                let next = labels::update_stage(
                    &current,
                    &stage,
                    remove_from.as_deref(),
                    move_to.as_deref(),
                )?;
                if next != current {
                    tx.replace_stages(&secret.secret_id, &next)?;
                    secret.last_changed_at = now;
                    tx.update_secret(&secret)?;
                }
                super::replicas::sync(tx, &replicas_keyring, &secret, now)?;
                Ok(Output {
                    arn: secret.arn,
                    name: secret.name,
                })
            })
            .await
    }
}
