//! CancelKeyDeletion: the key comes back Disabled, as on AWS (EnableKey turns it on). Only
//! inside its waiting period: once its deletion date has passed the key is deleted (whether
//! or not its row is still stored), so it is not found.

use serde::Serialize;

use super::common::{self, KeyIdInput};
use crate::error::ApiError;
use crate::kms::{DISABLED, PENDING_DELETION};
use crate::ops::{Authorized, Ctx, NamesTarget, Operation};

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub key_id: String,
}

#[derive(Debug)]
pub struct CancelKeyDeletion;

impl Operation for CancelKeyDeletion {
    type Input = KeyIdInput;
    type Output = Output;
    const NAME: &'static str = "CancelKeyDeletion";
    const ACTION: &'static str = "kms:CancelKeyDeletion";
    const READ_ONLY: bool = false;

    fn validate(input: &KeyIdInput) -> Result<(), ApiError> {
        input.checked_target_id()?;
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: KeyIdInput) -> Result<Output, ApiError> {
        let id = crate::ops::required("keyId", input.key_id)?;
        let now = ctx.now_ms();
        common::update_key(ctx, auth, id, move |_, key| {
            common::ensure_customer_managed(key, Self::NAME)?;
            if key.key_state != PENDING_DELETION {
                return Err(ApiError::KmsInvalidState(format!(
                    "{} is not pending deletion.",
                    key.arn
                )));
            }
            // A key pending deletion without a date (never written so) counts as past it.
            if key.deletion_date.is_none_or(|d| d <= now) {
                return Err(common::key_not_found(&key.arn));
            }
            DISABLED.clone_into(&mut key.key_state);
            key.deletion_date = None;
            Ok(Output {
                key_id: key.arn.clone(),
            })
        })
        .await
    }
}
