//! DeleteSecret.

use serde::{Deserialize, Serialize};

use super::{epoch_seconds, Authorized, Ctx, NamesTarget, Operation, SecretId};
use crate::error::ApiError;
use crate::secrets;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub recovery_window_in_days: Option<i64>,
    pub force_delete_without_recovery: Option<bool>,
}

impl NamesTarget for Input {
    type By = SecretId;
    fn target_id(&self) -> Option<&str> {
        self.secret_id.as_deref()
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    pub deletion_date: f64,
}

#[derive(Debug)]
pub struct DeleteSecret;

impl Operation for DeleteSecret {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "DeleteSecret";
    const ACTION: &'static str = "secretsmanager:DeleteSecret";
    const READ_ONLY: bool = false;

    /// `secretsmanager:RecoveryWindowInDays` and `secretsmanager:ForceDeleteWithoutRecovery`,
    /// when sent.
    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        [
            super::key_if(
                "secretsmanager:RecoveryWindowInDays",
                input.recovery_window_in_days,
            ),
            super::key_if(
                "secretsmanager:ForceDeleteWithoutRecovery",
                input.force_delete_without_recovery,
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        secrets::validate_recovery_window(
            input.recovery_window_in_days,
            input.force_delete_without_recovery,
        )?;
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let force = input.force_delete_without_recovery == Some(true);
        let days = secrets::validate_recovery_window(
            input.recovery_window_in_days,
            input.force_delete_without_recovery,
        )?;
        let now = ctx.now_ms();
        // Force-deleting a secret that does not exist succeeds, as AWS does.
        let gone = Output {
            arn: auth.resource_arn.clone(),
            name: input.secret_id.clone().unwrap_or_default(),
            deletion_date: epoch_seconds(now),
        };
        let Some(found) = &auth.secret else {
            return if force {
                Ok(gone)
            } else {
                Err(ApiError::secret_not_found())
            };
        };
        let secret_id = found.secret_id.clone();
        // The transaction returns the output itself (so its record, committed with the
        // change, carries the response elements).
        ctx.store
            .write(move |tx| {
                let Some(mut secret) = tx.secret_by_id(&secret_id)? else {
                    // Removed between resolution and this transaction.
                    return if force {
                        Ok(gone.clone())
                    } else {
                        Err(ApiError::secret_not_found())
                    };
                };
                super::replicas::ensure_no_replicas(tx, &secret)?;
                if force {
                    tx.delete_secret(&secret.secret_id)?;
                    return Ok(Output {
                        arn: secret.arn,
                        name: secret.name,
                        deletion_date: epoch_seconds(now),
                    });
                }
                if secret.deleted_at.is_some() {
                    return Err(secrets::currently_marked_deleted());
                }
                let purge_at = now.saturating_add(days.saturating_mul(DAY_MS));
                secret.deleted_at = Some(now);
                secret.purge_at = Some(purge_at);
                secret.last_changed_at = now;
                tx.update_secret(&secret)?;
                Ok(Output {
                    arn: secret.arn,
                    name: secret.name,
                    deletion_date: epoch_seconds(purge_at),
                })
            })
            .await
    }
}
