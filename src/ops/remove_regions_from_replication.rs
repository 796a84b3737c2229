//! RemoveRegionsFromReplication: delete a primary's replicas in the regions named, at once
//! (see `replicas`). A region that is not replicated is ignored.

use serde::{Deserialize, Serialize};

use super::replicas::{self, ReplicationStatus};
use super::{Authorized, Ctx, NamesTarget, Operation, SecretId};
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub remove_replica_regions: Option<Vec<String>>,
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
    /// The replicas left.
    pub replication_status: Vec<ReplicationStatus>,
}

#[derive(Debug)]
pub struct RemoveRegionsFromReplication;

impl Operation for RemoveRegionsFromReplication {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "RemoveRegionsFromReplication";
    const ACTION: &'static str = "secretsmanager:RemoveRegionsFromReplication";
    const READ_ONLY: bool = false;

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        let regions = super::require_ref("removeReplicaRegions", &input.remove_replica_regions)?;
        crate::secrets::check_len("removeReplicaRegions", regions.len(), 1, usize::MAX)?;
        for (i, r) in regions.iter().enumerate() {
            replicas::validate_region(
                &format!("removeReplicaRegions.{}.member", i.saturating_add(1)),
                r,
            )?;
        }
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let secret_id = auth.secret()?.secret_id.clone();
        let regions = super::required("removeReplicaRegions", input.remove_replica_regions)?;
        let now = ctx.now_ms();
        ctx.store
            .write(move |tx| {
                let mut secret = tx
                    .secret_by_id(&secret_id)?
                    .ok_or_else(ApiError::secret_not_found)?;
                replicas::ensure_not_replica(&secret)?;
                for r in &regions {
                    replicas::remove(tx, &secret, r, now)?;
                }
                replicas::settle_primary(tx, &mut secret)?;
                Ok(Output {
                    replication_status: replicas::statuses(tx, &secret)?,
                    arn: secret.arn,
                })
            })
            .await
    }
}
