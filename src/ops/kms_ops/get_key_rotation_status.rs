//! GetKeyRotationStatus. A key pending deletion reports rotation disabled, as on AWS.

use serde::Serialize;

use super::common::{self, KeyIdInput};
use crate::error::ApiError;
use crate::kms::PENDING_DELETION;
use crate::ops::{epoch_seconds, Authorized, Ctx, NamesTarget, Operation};

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub key_rotation_enabled: bool,
    pub key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_period_in_days: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation_date: Option<f64>,
}

#[derive(Debug)]
pub struct GetKeyRotationStatus;

impl Operation for GetKeyRotationStatus {
    type Input = KeyIdInput;
    type Output = Output;
    const NAME: &'static str = "GetKeyRotationStatus";
    const ACTION: &'static str = "kms:GetKeyRotationStatus";
    const READ_ONLY: bool = true;

    fn validate(input: &KeyIdInput) -> Result<(), ApiError> {
        input.checked_target_id()?;
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: KeyIdInput) -> Result<Output, ApiError> {
        let id = crate::ops::required("keyId", input.key_id)?;
        let key = common::read_key(ctx, auth, id).await?;
        let enabled = key.rotation_enabled && key.key_state != PENDING_DELETION;
        Ok(Output {
            key_rotation_enabled: enabled,
            key_id: key.arn,
            rotation_period_in_days: enabled.then_some(key.rotation_period_days),
            next_rotation_date: if enabled {
                key.next_rotation_at.map(epoch_seconds)
            } else {
                None
            },
        })
    }
}
