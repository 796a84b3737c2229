//! GetResourcePolicy.

use serde::{Deserialize, Serialize};

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
        input.checked_target_id()?;
        Ok(())
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
