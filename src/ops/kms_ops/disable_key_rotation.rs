//! DisableKeyRotation.

use super::common::{self, Empty, KeyIdInput};
use crate::error::ApiError;
use crate::ops::{Authorized, Ctx, NamesTarget, Operation};

#[derive(Debug)]
pub struct DisableKeyRotation;

impl Operation for DisableKeyRotation {
    type Input = KeyIdInput;
    type Output = Empty;
    const NAME: &'static str = "DisableKeyRotation";
    const ACTION: &'static str = "kms:DisableKeyRotation";
    const READ_ONLY: bool = false;

    fn validate(input: &KeyIdInput) -> Result<(), ApiError> {
        input.checked_target_id()?;
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: KeyIdInput) -> Result<Empty, ApiError> {
        let id = crate::ops::required("keyId", input.key_id)?;
        common::update_key(ctx, auth, id, |_, key| {
            common::ensure_customer_managed(key, Self::NAME)?;
            common::ensure_enabled(key)?;
            key.rotation_enabled = false;
            key.next_rotation_at = None;
            Ok(Empty {})
        })
        .await
    }
}
