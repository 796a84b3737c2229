//! EnableKeyRotation: records the rotation period and the next rotation date. (Automatic
//! rotation on that date is a background job's work; RotateKeyOnDemand rotates now.)

use serde::Deserialize;

use super::common::{self, Empty, KeyId, DAY_MS};
use super::paging::validation_value;
use crate::error::ApiError;
use crate::ops::{Authorized, Ctx, NamesTarget, Operation};

/// The rotation periods KMS allows, in days, and its default.
const MIN_PERIOD: i64 = 90;
const MAX_PERIOD: i64 = 2560;
const DEFAULT_PERIOD: i32 = 365;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub key_id: Option<String>,
    pub rotation_period_in_days: Option<i64>,
}

impl NamesTarget for Input {
    type By = KeyId;
    fn target_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }
}

#[derive(Debug)]
pub struct EnableKeyRotation;

impl Operation for EnableKeyRotation {
    type Input = Input;
    type Output = Empty;
    const NAME: &'static str = "EnableKeyRotation";
    const ACTION: &'static str = "kms:EnableKeyRotation";
    const READ_ONLY: bool = false;

    /// `kms:RotationPeriodInDays`: the rotation period, its default (365) when omitted.
    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        vec![(
            "kms:RotationPeriodInDays".to_owned(),
            vec![input
                .rotation_period_in_days
                .unwrap_or(i64::from(DEFAULT_PERIOD))
                .to_string()],
        )]
    }

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        match input.rotation_period_in_days {
            Some(d) if d < MIN_PERIOD => Err(validation_value(
                &d.to_string(),
                "rotationPeriodInDays",
                "Member must have value greater than or equal to 90",
            )),
            Some(d) if d > MAX_PERIOD => Err(validation_value(
                &d.to_string(),
                "rotationPeriodInDays",
                "Member must have value less than or equal to 2560",
            )),
            _ => Ok(()),
        }
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Empty, ApiError> {
        let id = crate::ops::required("keyId", input.key_id)?;
        let period = match input.rotation_period_in_days {
            Some(d) => i32::try_from(d).map_err(ApiError::internal)?,
            None => DEFAULT_PERIOD,
        };
        let now = ctx.now_ms();
        common::update_key(ctx, auth, id, move |_, key| {
            common::ensure_customer_managed(key, Self::NAME)?;
            common::ensure_enabled(key)?;
            key.rotation_enabled = true;
            key.rotation_period_days = period;
            key.next_rotation_at = Some(now.saturating_add(i64::from(period) * DAY_MS));
            Ok(Empty {})
        })
        .await
    }
}
