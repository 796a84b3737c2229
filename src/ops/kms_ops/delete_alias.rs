//! DeleteAlias: the key it named is left alone.

use serde::Deserialize;

use super::common::{self, Empty};
use crate::error::ApiError;
use crate::ops::{Authorized, Ctx, Operation, Scope, Target, Targeted};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub alias_name: Option<String>,
}

impl Targeted for Input {
    fn target(&self) -> Target {
        Target::KmsKey(self.alias_name.clone().unwrap_or_default())
    }
}

#[derive(Debug)]
pub struct DeleteAlias;

impl Operation for DeleteAlias {
    type Input = Input;
    type Output = Empty;
    const NAME: &'static str = "DeleteAlias";
    const ACTION: &'static str = "kms:DeleteAlias";
    const READ_ONLY: bool = false;

    fn validate(input: &Input) -> Result<(), ApiError> {
        let name = crate::ops::require_ref("aliasName", &input.alias_name)?;
        common::check_alias_name(name, "deleted")
    }

    /// The alias is authorized besides the key (AWS: `kms:DeleteAlias` on both).
    fn also_on(input: &Input, scope: &Scope) -> Vec<String> {
        input
            .alias_name
            .iter()
            .map(|name| common::alias_arn(scope, name))
            .collect()
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Empty, ApiError> {
        let name = crate::ops::required("aliasName", input.alias_name)?;
        let scope = auth.scope.clone();
        ctx.store
            .write(move |tx| {
                if tx.delete_kms_alias(&scope.account, &scope.region, &name)? {
                    Ok(Empty {})
                } else {
                    Err(common::alias_not_found(&common::alias_arn(&scope, &name)))
                }
            })
            .await
    }
}
