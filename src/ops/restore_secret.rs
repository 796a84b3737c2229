//! RestoreSecret: only inside the recovery window. Once the secret's deletion date has
//! passed it is deleted, whether or not the purge job has removed its row yet (AWS: "at any
//! time before the recovery window ends, you can use RestoreSecret").

use serde::{Deserialize, Serialize};

use super::{Authorized, Ctx, NamesTarget, Operation, SecretId};
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
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
pub struct RestoreSecret;

impl Operation for RestoreSecret {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "RestoreSecret";
    const ACTION: &'static str = "secretsmanager:RestoreSecret";
    const READ_ONLY: bool = false;

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, _input: Input) -> Result<Output, ApiError> {
        let secret_id = auth.secret()?.secret_id.clone();
        let now = ctx.now_ms();
        let replicas_keyring = ctx.keyring.clone();
        ctx.store
            .write(move |tx| {
                let mut secret = tx
                    .secret_by_id(&secret_id)?
                    .ok_or_else(ApiError::secret_not_found)?;
                if secret.purge_at.is_some_and(|p| p <= now) {
                    return Err(ApiError::secret_not_found());
                }
                // Restoring a secret that is not scheduled for deletion succeeds (AWS does).
                if secret.deleted_at.is_some() || secret.purge_at.is_some() {
                    secret.deleted_at = None;
                    secret.purge_at = None;
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
