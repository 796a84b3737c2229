//! The CloudTrail subset (`com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.*`):
//! LookupEvents over the audit trail, GetTrailStatus.
//!
//! May depend on: what `ops` may, plus the audit row types in `store::rows`.

pub mod get_trail_status;
pub mod lookup_events;

use crate::error::ApiError;
use crate::pipeline::ServiceCall;

/// Pick the CloudTrail operation by name and run it.
pub async fn dispatch(name: &str, call: ServiceCall<'_, '_>) -> Result<Vec<u8>, ApiError> {
    match name {
        "GetTrailStatus" => call.run::<get_trail_status::GetTrailStatus>().await,
        "LookupEvents" => call.run::<lookup_events::LookupEvents>().await,
        other => Err(ApiError::UnknownOperation(format!(
            "The operation `{}` is not known to CloudTrail.",
            other.chars().take(64).collect::<String>()
        ))),
    }
}
