//! GetTrailStatus: whether the trail is logging. The trail is the server's audit chain,
//! which always logs (a request whose record cannot be written fails). There is one trail,
//! named [`TRAIL_NAME`](super::TRAIL_NAME) in every account and region: the request is
//! authorized on the ARN its `Name` names (a name, or an ARN; without one, the one trail's),
//! so that a policy's Resource and its Deny on a trail ARN apply, and a name or ARN of any
//! other trail is then answered `TrailNotFoundException`, as CloudTrail does.
//!
//! The console's audit explorer asks for it before showing the chain's verification status
//! and latest signed digest: the action (`cloudtrail:GetTrailStatus`) is CloudTrail's
//! read of a trail's delivery state, which includes its latest digest delivery.

use serde::{Deserialize, Serialize};

use super::super::{Authorized, Ctx, Operation, Target, Targeted};
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    #[serde(default)]
    pub name: Option<String>,
}

impl Targeted for Input {
    fn target(&self) -> Target {
        Target::Trail(self.name.clone())
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub is_logging: bool,
}

#[derive(Debug)]
pub struct GetTrailStatus;

impl Operation for GetTrailStatus {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "GetTrailStatus";
    const ACTION: &'static str = "cloudtrail:GetTrailStatus";
    const READ_ONLY: bool = true;

    fn validate(input: &Input) -> Result<(), ApiError> {
        let n = input.name.as_deref().map_or(1, |n| n.chars().count());
        if !(1..=2048).contains(&n) {
            return Err(ApiError::Validation(
                "1 validation error detected: Value at 'name' failed to satisfy constraint: \
                 Member must have length between 1 and 2048"
                    .into(),
            ));
        }
        Ok(())
    }

    async fn handle(_ctx: &Ctx, auth: &Authorized, _input: Input) -> Result<Output, ApiError> {
        if auth.resource_arn != super::trail_arn(&auth.scope, None) {
            return Err(ApiError::TrailNotFound(format!(
                "Unknown trail: {} for the user: {}",
                auth.resource_arn, auth.scope.account
            )));
        }
        Ok(Output { is_logging: true })
    }
}
