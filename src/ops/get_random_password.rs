//! GetRandomPassword (placeholder: answers NotImplemented until written).

use super::{Authorized, Ctx, Operation, Target};
use crate::error::ApiError;

#[derive(Debug)]
pub struct GetRandomPassword;

impl Operation for GetRandomPassword {
    type Input = serde_json::Value;
    type Output = serde_json::Value;
    const NAME: &'static str = "GetRandomPassword";
    const ACTION: &'static str = "secretsmanager:GetRandomPassword";
    const READ_ONLY: bool = false;

    fn validate(_input: &Self::Input) -> Result<(), ApiError> {
        Ok(())
    }

    fn target(_input: &Self::Input) -> Target {
        Target::Any
    }

    async fn handle(
        _ctx: &Ctx,
        _auth: &Authorized,
        _input: Self::Input,
    ) -> Result<Self::Output, ApiError> {
        Err(crate::pipeline::not_built(Self::NAME))
    }
}
