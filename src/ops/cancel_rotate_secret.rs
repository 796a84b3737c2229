//! CancelRotateSecret: turns rotation off and stops a rotation in progress. As on AWS, the
//! AWSPENDING version stays (move it away with UpdateSecretVersionStage, or later rotations
//! are refused), and the function and rules stay visible in DescribeSecret.

use serde::{Deserialize, Serialize};

use super::{Authorized, Ctx, NamesTarget, Operation, SecretId};
use crate::error::ApiError;
use crate::secrets::AWSPENDING;

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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

#[derive(Debug)]
pub struct CancelRotateSecret;

impl Operation for CancelRotateSecret {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "CancelRotateSecret";
    const ACTION: &'static str = "secretsmanager:CancelRotateSecret";
    const READ_ONLY: bool = false;

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, _input: Input) -> Result<Output, ApiError> {
        let secret_id = auth.secret()?.secret_id.clone();
        let keyring = ctx.keyring.clone();
        let now = ctx.now_ms();
        ctx.store
            .write(move |tx| {
                let mut secret = tx
                    .secret_by_id(&secret_id)?
                    .ok_or_else(ApiError::secret_not_found)?;
                super::ensure_not_deleted(&secret)?;
                if secret.rotation_enabled.is_some() {
                    secret.rotation_enabled = Some(false);
                }
                secret.next_rotation_at = None;
                tx.update_secret(&secret)?;
                super::replicas::sync(tx, &keyring, &secret, now)?;
                tx.delete_rotation_job(&secret.secret_id)?;
                let pending = tx.stage_version(&secret.secret_id, AWSPENDING)?;
                Ok(Output {
                    arn: secret.arn,
                    name: secret.name,
                    version_id: pending,
                })
            })
            .await
    }
}
