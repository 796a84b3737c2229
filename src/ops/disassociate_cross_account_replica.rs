//! DisassociateCrossAccountReplica: unlink a primary secret from its cross-account replica.
//! The replica stays (a replica, `Detached`) until its account calls
//! StopReplicationToReplica on it (see `replicas`).

use serde::{Deserialize, Serialize};

use super::replicas;
use super::{Authorized, Ctx, NamesTarget, Operation, SecretId};
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    #[serde(rename = "CrossAccountReplicaARN")]
    pub cross_account_replica_arn: Option<String>,
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
    /// The primary's ARN.
    #[serde(rename = "ARN")]
    pub arn: String,
    #[serde(rename = "CrossAccountReplicaARN")]
    pub cross_account_replica_arn: String,
}

#[derive(Debug)]
pub struct DisassociateCrossAccountReplica;

impl Operation for DisassociateCrossAccountReplica {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "DisassociateCrossAccountReplica";
    const ACTION: &'static str = "secretsmanager:DisassociateCrossAccountReplica";
    const READ_ONLY: bool = false;

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        let arn = super::require_ref("crossAccountReplicaARN", &input.cross_account_replica_arn)?;
        crate::secrets::check_len("crossAccountReplicaARN", arn.chars().count(), 20, 2048)?;
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let secret_id = auth.secret()?.secret_id.clone();
        let replica_arn =
            super::required("crossAccountReplicaARN", input.cross_account_replica_arn)?;
        let auth = auth.clone();
        ctx.store
            .write(move |tx| {
                let mut primary = tx
                    .secret_by_id(&secret_id)?
                    .ok_or_else(ApiError::secret_not_found)?;
                replicas::disassociate(tx, &auth, &mut primary, &replica_arn)?;
                Ok(Output {
                    arn: primary.arn,
                    cross_account_replica_arn: replica_arn.clone(),
                })
            })
            .await
    }
}
