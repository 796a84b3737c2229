//! RotateKeyOnDemand: fresh key material becomes the key's current term at once. New secret
//! versions are sealed under it; older versions keep the term they were sealed under (their
//! rows record it), so they stay readable.

use serde::Serialize;

use super::common::{self, KeyIdInput};
use crate::error::ApiError;
use crate::ops::{Authorized, Ctx, NamesTarget, Operation};

/// How many on-demand rotations one key may have (KMS's quota).
pub const MAX_ON_DEMAND_ROTATIONS: i32 = 25;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub key_id: String,
}

#[derive(Debug)]
pub struct RotateKeyOnDemand;

impl Operation for RotateKeyOnDemand {
    type Input = KeyIdInput;
    type Output = Output;
    const NAME: &'static str = "RotateKeyOnDemand";
    const ACTION: &'static str = "kms:RotateKeyOnDemand";
    const READ_ONLY: bool = false;

    fn validate(input: &KeyIdInput) -> Result<(), ApiError> {
        input.checked_target_id()?;
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: KeyIdInput) -> Result<Output, ApiError> {
        let id = crate::ops::required("keyId", input.key_id)?;
        let keyring = ctx.keyring.clone();
        let now = ctx.now_ms();
        common::update_key(ctx, auth, id, move |tx, key| {
            common::ensure_customer_managed(key, Self::NAME)?;
            common::ensure_enabled(key)?;
            // Every term after the first comes from an on-demand rotation.
            if key.current_term.saturating_sub(1) >= MAX_ON_DEMAND_ROTATIONS {
                return Err(ApiError::KmsLimitExceeded(format!(
                    "{} has reached the limit of {MAX_ON_DEMAND_ROTATIONS} on-demand rotations.",
                    key.arn
                )));
            }
            let term = key.current_term.checked_add(1).ok_or_else(|| {
                ApiError::internal(format!("term overflow on key {}", key.key_id))
            })?;
            keyring.add_term(tx, &key.key_id, term, now)?;
            key.current_term = term;
            Ok(Output {
                key_id: key.key_id.clone(),
            })
        })
        .await
    }
}
