//! AssociateCrossAccountReplica: link a primary secret to a replica secret another account
//! created for it (CreateSecret with `CrossAccountPrimaryARN`) in the same region, and copy
//! its versions into it (see `replicas`).

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
    pub replica_restriction: Option<String>,
    #[serde(rename = "ReplicationRoleARN")]
    pub replication_role_arn: Option<String>,
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
    pub replication_status: String,
}

/// `ReplicaRestrictionType`.
const RESTRICTIONS: [&str; 2] = ["SameOrg", "NoRestriction"];

#[derive(Debug)]
pub struct AssociateCrossAccountReplica;

impl Operation for AssociateCrossAccountReplica {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "AssociateCrossAccountReplica";
    const ACTION: &'static str = "secretsmanager:AssociateCrossAccountReplica";
    const READ_ONLY: bool = false;

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        let arn = super::require_ref("crossAccountReplicaARN", &input.cross_account_replica_arn)?;
        crate::secrets::check_len("crossAccountReplicaARN", arn.chars().count(), 20, 2048)?;
        if let Some(r) = &input.replica_restriction {
            if !RESTRICTIONS.contains(&r.as_str()) {
                return Err(ApiError::Validation(format!(
                    "1 validation error detected: Value '{r}' at 'replicaRestriction' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                    RESTRICTIONS.join(", ")
                )));
            }
        }
        if let Some(role) = &input.replication_role_arn {
            crate::secrets::check_len("replicationRoleARN", role.chars().count(), 20, 2048)?;
        }
        Ok(())
    }

    /// The primary's values are read to be copied.
    fn extra_actions(_input: &Input) -> Vec<&'static str> {
        vec!["secretsmanager:GetSecretValue"]
    }

    /// The primary's versions are decrypted to be sealed again under the replica's key
    /// (whose `kms:Encrypt` is decided with the replica, in `replicas::associate`).
    fn key_uses(_input: &Input) -> Vec<super::KeyUse> {
        vec![super::KeyUse::SecretKey("kms:Decrypt")]
    }

    /// Naming a replication role passes it to the service.
    fn other_actions(
        input: &Input,
        _secret: Option<&crate::store::rows::SecretRow>,
    ) -> Vec<(&'static str, String)> {
        input
            .replication_role_arn
            .iter()
            .map(|r| ("iam:PassRole", r.clone()))
            .collect()
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let secret_id = auth.secret()?.secret_id.clone();
        let replica_arn =
            super::required("crossAccountReplicaARN", input.cross_account_replica_arn)?;
        let same_org = input.replica_restriction.as_deref() != Some("NoRestriction");
        let role_arn = input.replication_role_arn;
        let keyring = ctx.keyring.clone();
        let auth = auth.clone();
        let now = ctx.now_ms();
        ctx.store
            .write(move |tx| {
                let mut primary = tx
                    .secret_by_id(&secret_id)?
                    .ok_or_else(ApiError::secret_not_found)?;
                let req = replicas::Association {
                    keyring: &keyring,
                    auth: &auth,
                    replica_arn: &replica_arn,
                    role_arn: role_arn.clone(),
                    same_org,
                    now_ms: now,
                };
                let entry = replicas::associate(tx, &req, &mut primary)?;
                Ok(Output {
                    arn: primary.arn,
                    cross_account_replica_arn: entry.replica_arn.unwrap_or_default(),
                    replication_status: entry.status,
                })
            })
            .await
    }
}
