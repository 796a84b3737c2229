//! CancelKeyDeletion: the key comes back Disabled, as on AWS (EnableKey turns it on).

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
        common::update_key(ctx, auth, id, |_, key| {
            common::ensure_customer_managed(key, Self::NAME)?;
            if key.key_state != PENDING_DELETION {
                return Err(ApiError::KmsInvalidState(format!(
                    "{} is not pending deletion.",
                    key.arn
                )));
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
