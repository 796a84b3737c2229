//! CreateAlias: a friendly name for a customer managed key.

use serde::Deserialize;

use super::common::{self, Empty};
use crate::error::ApiError;
use crate::ops::{Authorized, Ctx, Operation, Scope, Target, Targeted};
use crate::store::rows::KmsAliasRow;

/// How many aliases one key may have (KMS's quota).
const MAX_ALIASES_PER_KEY: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub alias_name: Option<String>,
    pub target_key_id: Option<String>,
}

impl Targeted for Input {
    fn target(&self) -> Target {
        Target::KmsKey(self.target_key_id.clone().unwrap_or_default())
    }
}

#[derive(Debug)]
pub struct CreateAlias;

fn already_exists(arn: &str) -> ApiError {
    ApiError::KmsAlreadyExists(format!("An alias with the name {arn} already exists"))
}

impl Operation for CreateAlias {
    type Input = Input;
    type Output = Empty;
    const NAME: &'static str = "CreateAlias";
    const ACTION: &'static str = "kms:CreateAlias";
    const READ_ONLY: bool = false;

    fn validate(input: &Input) -> Result<(), ApiError> {
        let name = crate::ops::require_ref("aliasName", &input.alias_name)?;
        common::check_key_id("targetKeyId", input.target_key_id.as_ref())?;
        common::check_alias_name(name, "created")
    }

    /// The alias is authorized besides the key (AWS: `kms:CreateAlias` on both).
    fn also_on(input: &Input, scope: &Scope) -> Vec<String> {
        input
            .alias_name
            .iter()
            .map(|name| common::alias_arn(scope, name))
            .collect()
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Empty, ApiError> {
        let name = crate::ops::required("aliasName", input.alias_name)?;
        let target = crate::ops::required("targetKeyId", input.target_key_id)?;
        let scope = auth.scope.clone();
        let now = ctx.now_ms();
        ctx.store
            .write(move |tx| {
                let arn = common::alias_arn(&scope, &name);
                if tx.kms_alias(&scope.account, &scope.region, &name)?.is_some() {
                    return Err(already_exists(&arn));
                }
                let key = common::find_by_key_id(tx, &scope, &target)?;
                common::ensure_customer_managed(&key, "CreateAlias")?;
                common::ensure_not_pending_deletion(&key)?;
                let count = tx
                    .kms_aliases(&scope.account, &scope.region)?
                    .iter()
                    .filter(|a| a.target_key_id == key.key_id)
                    .count();
                if count >= MAX_ALIASES_PER_KEY {
                    return Err(ApiError::KmsLimitExceeded(format!(
                        "{} already has {MAX_ALIASES_PER_KEY} aliases, the most a KMS key can have.",
                        key.arn
                    )));
                }
                tx.insert_kms_alias(&KmsAliasRow {
                    account_id: scope.account.clone(),
                    region: scope.region.clone(),
                    alias_name: name.clone(),
                    target_key_id: key.key_id.clone(),
                    created_at: now,
                    last_updated_at: now,
                })
                .map_err(|e| {
                    if e.is_unique_violation() {
                        already_exists(&arn)
                    } else {
                        e.into()
                    }
                })?;
                Ok(Empty {})
            })
            .await
    }
}
