//! ScheduleKeyDeletion: the key stops working at once and is deleted after the waiting
//! period. (Nothing here purges keys whose deletion date has passed: they stay
//! PendingDeletion until a purge job removes them.)

use serde::{Deserialize, Serialize};

use super::common::{self, KeyId, DAY_MS};
use super::paging::validation_value;
use crate::error::ApiError;
use crate::kms::PENDING_DELETION;
use crate::ops::{epoch_seconds, Authorized, Ctx, NamesTarget, Operation};

/// The waiting period KMS allows, in days, and its default.
const MIN_WINDOW: i64 = 7;
const MAX_WINDOW: i64 = 30;
const DEFAULT_WINDOW: i64 = 30;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub key_id: Option<String>,
    pub pending_window_in_days: Option<i64>,
}

impl NamesTarget for Input {
    type By = KeyId;
    fn target_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub key_id: String,
    pub deletion_date: f64,
    pub key_state: &'static str,
    pub pending_window_in_days: i64,
}

#[derive(Debug)]
pub struct ScheduleKeyDeletion;

impl Operation for ScheduleKeyDeletion {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "ScheduleKeyDeletion";
    const ACTION: &'static str = "kms:ScheduleKeyDeletion";
    const READ_ONLY: bool = false;

    /// `kms:ScheduleKeyDeletionPendingWindowInDays`: the waiting period, its default (30)
    /// when omitted.
    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        vec![(
            "kms:ScheduleKeyDeletionPendingWindowInDays".to_owned(),
            vec![input
                .pending_window_in_days
                .unwrap_or(DEFAULT_WINDOW)
                .to_string()],
        )]
    }

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        match input.pending_window_in_days {
            Some(d) if d < MIN_WINDOW => Err(validation_value(
                &d.to_string(),
                "pendingWindowInDays",
                "Member must have value greater than or equal to 7",
            )),
            Some(d) if d > MAX_WINDOW => Err(validation_value(
                &d.to_string(),
                "pendingWindowInDays",
                "Member must have value less than or equal to 30",
            )),
            _ => Ok(()),
        }
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let id = crate::ops::required("keyId", input.key_id)?;
        let days = input.pending_window_in_days.unwrap_or(DEFAULT_WINDOW);
        let now = ctx.now_ms();
        common::update_key(ctx, auth, id, move |_, key| {
            common::ensure_customer_managed(key, Self::NAME)?;
            common::ensure_not_pending_deletion(key)?;
            let deletion_date = now.saturating_add(days.saturating_mul(DAY_MS));
            PENDING_DELETION.clone_into(&mut key.key_state);
            key.deletion_date = Some(deletion_date);
            Ok(Output {
                key_id: key.arn.clone(),
                deletion_date: epoch_seconds(deletion_date),
                key_state: PENDING_DELETION,
                pending_window_in_days: days,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(days: Option<i64>) -> Input {
        Input {
            key_id: Some("1234abcd-12ab-34cd-56ef-1234567890ab".into()),
            pending_window_in_days: days,
        }
    }

    #[test]
    fn waiting_period_is_7_to_30_days() {
        for ok in [None, Some(7), Some(30)] {
            assert!(ScheduleKeyDeletion::validate(&input(ok)).is_ok());
        }
        for bad in [Some(6), Some(31), Some(0), Some(-1)] {
            assert_eq!(
                ScheduleKeyDeletion::validate(&input(bad))
                    .unwrap_err()
                    .code(),
                "ValidationException"
            );
        }
    }
}
