//! EnableKey.

use super::common::{self, Empty, KeyIdInput};
use crate::error::ApiError;
use crate::kms::ENABLED;
use crate::ops::{Authorized, Ctx, NamesTarget, Operation};

#[derive(Debug)]
pub struct EnableKey;

impl Operation for EnableKey {
    type Input = KeyIdInput;
    type Output = Empty;
    const NAME: &'static str = "EnableKey";
    const ACTION: &'static str = "kms:EnableKey";
    const READ_ONLY: bool = false;

    fn validate(input: &KeyIdInput) -> Result<(), ApiError> {
        input.checked_target_id()?;
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: KeyIdInput) -> Result<Empty, ApiError> {
        let id = crate::ops::required("keyId", input.key_id)?;
        common::update_key(ctx, auth, id, |_, key| {
            common::ensure_customer_managed(key, Self::NAME)?;
            common::ensure_not_pending_deletion(key)?;
            ENABLED.clone_into(&mut key.key_state);
            Ok(Empty {})
        })
        .await
    }
}
