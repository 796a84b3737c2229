//! DisableKey.

use super::common::{self, Empty, KeyIdInput};
use crate::error::ApiError;
use crate::kms::DISABLED;
use crate::ops::{Authorized, Ctx, NamesTarget, Operation};

#[derive(Debug)]
pub struct DisableKey;

impl Operation for DisableKey {
    type Input = KeyIdInput;
    type Output = Empty;
    const NAME: &'static str = "DisableKey";
    const ACTION: &'static str = "kms:DisableKey";
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
            DISABLED.clone_into(&mut key.key_state);
            Ok(Empty {})
        })
        .await
    }
}
