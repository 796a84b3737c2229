//! ReplicateSecretToRegions: replicate a primary secret to other regions served by this
//! server (see `replicas`).

use serde::{Deserialize, Serialize};

use super::replicas::{self, ReplicaRegion, ReplicationStatus};
use super::{Authorized, Ctx, NamesTarget, Operation, SecretId};
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub add_replica_regions: Option<Vec<ReplicaRegion>>,
    pub force_overwrite_replica_secret: Option<bool>,
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
    pub replication_status: Vec<ReplicationStatus>,
}

#[derive(Debug)]
pub struct ReplicateSecretToRegions;

impl Operation for ReplicateSecretToRegions {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "ReplicateSecretToRegions";
    const ACTION: &'static str = "secretsmanager:ReplicateSecretToRegions";
    const READ_ONLY: bool = false;

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        let regions = super::require_ref("addReplicaRegions", &input.add_replica_regions)?;
        replicas::validate_add_regions(regions)
    }

    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        let mut keys: Vec<(String, Vec<String>)> = super::key_if(
            "secretsmanager:ForceOverwriteReplicaSecret",
            input.force_overwrite_replica_secret,
        )
        .into_iter()
        .collect();
        if let Some(r) = &input.add_replica_regions {
            keys.push(replicas::add_regions_key(r));
        }
        keys
    }

    /// The primary's versions are decrypted to be sealed again under each replica's key.
    fn key_uses(_input: &Input) -> Vec<super::KeyUse> {
        vec![super::KeyUse::SecretKey("kms:Decrypt")]
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let found = auth.secret()?;
        let secret_id = found.secret_id.clone();
        let regions = super::required("addReplicaRegions", input.add_replica_regions)?;
        let names: Vec<&str> = regions.iter().filter_map(|r| r.region.as_deref()).collect();
        replicas::check_served(ctx, &found.region, &names)?;
        let force = input.force_overwrite_replica_secret == Some(true);
        let keyring = ctx.keyring.clone();
        let auth = auth.clone();
        let now = ctx.now_ms();
        let peers = std::sync::Arc::clone(&ctx.peers);
        ctx.store
            .write(move |tx| {
                let mut secret = tx
                    .secret_by_id(&secret_id)?
                    .ok_or_else(ApiError::secret_not_found)?;
                super::ensure_not_deleted(&secret)?;
                replicas::ensure_not_replica(&secret)?;
                let req = replicas::AddRequest {
                    keyring: &keyring,
                    auth: &auth,
                    action: Self::ACTION,
                    regions: &regions,
                    peers: &peers,
                    force,
                    now_ms: now,
                };
                replicas::add_replicas(tx, &req, &mut secret)?;
                Ok(Output {
                    replication_status: replicas::statuses(tx, &secret)?,
                    arn: secret.arn,
                })
            })
            .await
    }
}
