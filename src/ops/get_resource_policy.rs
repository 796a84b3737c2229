//! GetResourcePolicy.

use serde::{Deserialize, Serialize};

use super::{Authorized, Ctx, Operation, Target};
use crate::error::ApiError;
use crate::secrets;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<String>,
}

#[derive(Debug)]
pub struct GetResourcePolicy;

impl Operation for GetResourcePolicy {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "GetResourcePolicy";
    const ACTION: &'static str = "secretsmanager:GetResourcePolicy";
    const READ_ONLY: bool = true;

    fn validate(input: &Input) -> Result<(), ApiError> {
        secrets::validate_secret_id(super::require_ref("secretId", &input.secret_id)?)
    }

    fn target(input: &Input) -> Target {
        Target::Secret(input.secret_id.clone().unwrap_or_default())
    }

    async fn handle(_ctx: &Ctx, auth: &Authorized, _input: Input) -> Result<Output, ApiError> {
        let s = auth.secret()?;
        Ok(Output {
            arn: s.arn.clone(),
            name: s.name.clone(),
            resource_policy: s.resource_policy.clone(),
        })
    }
}
