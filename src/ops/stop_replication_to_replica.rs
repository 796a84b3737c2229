//! StopReplicationToReplica: called in a replica's region (or, for a cross-account replica,
//! by the replica's account), promotes the replica to a standalone secret that no longer
//! follows its primary (see `replicas`).

use serde::{Deserialize, Serialize};

use super::replicas;
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
    /// The promoted secret's ARN (the primary's, with the region swapped).
    #[serde(rename = "ARN")]
    pub arn: String,
}

/// The refusal of StopReplicationToReplica on a secret that is not a replica.
pub const NOT_A_REPLICA: &str =
    "The secret isn't a replica secret. Call StopReplicationToReplica in the region of a replica secret.";

#[derive(Debug)]
pub struct StopReplicationToReplica;

impl Operation for StopReplicationToReplica {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "StopReplicationToReplica";
    const ACTION: &'static str = "secretsmanager:StopReplicationToReplica";
    const READ_ONLY: bool = false;
    const ON_REPLICA: bool = true;

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        Ok(())
    }

    /// A cross-account replica loses its managed resource policy: AWS asks for
    /// `secretsmanager:DeleteResourcePolicy` on it too.
    fn other_actions(
        _input: &Input,
        secret: Option<&crate::store::rows::SecretRow>,
    ) -> Vec<(&'static str, String)> {
        match secret {
            Some(s) if s.cross_account_primary_arn.is_some() => {
                vec![("secretsmanager:DeleteResourcePolicy", s.arn.clone())]
            }
            _ => Vec::new(),
        }
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, _input: Input) -> Result<Output, ApiError> {
        let secret_id = auth.secret()?.secret_id.clone();
        ctx.store
            .write(move |tx| {
                let mut replica = tx
                    .secret_by_id(&secret_id)?
                    .ok_or_else(ApiError::secret_not_found)?;
                if !replicas::is_replica(&replica) {
                    return Err(ApiError::InvalidRequest(NOT_A_REPLICA.into()));
                }
                if replica.cross_account_primary_arn.is_some() {
                    replicas::promote_cross_account(tx, &mut replica)?;
                    return Ok(Output { arn: replica.arn });
                }
                if let Some(entry) = tx.replica_entry(&replica.secret_id)? {
                    tx.delete_replica(&entry.primary_secret_id, &entry.region)?;
                    if let Some(mut primary) = tx.secret_by_id(&entry.primary_secret_id)? {
                        replicas::settle_primary(tx, &mut primary)?;
                    }
                }
                replica.primary_region = None;
                tx.update_secret(&replica)?;
                Ok(Output { arn: replica.arn })
            })
            .await
    }
}
