//! The CloudTrail subset (`com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.*`):
//! LookupEvents over the audit trail, GetTrailStatus.
//!
//! May depend on: what `ops` may, plus the audit row types in `store::rows`.

pub mod get_trail_status;
pub mod lookup_events;

use crate::error::ApiError;
use crate::ops::Scope;
use crate::pipeline::ServiceCall;

/// The name of the one trail: the server's audit chain, seen from each account and region
/// as `arn:aws:cloudtrail:REGION:ACCOUNT:trail/strongroom`.
pub const TRAIL_NAME: &str = "strongroom";

/// The ARN a trail name or ARN given in `scope` names (`None`: the one trail's).
pub fn trail_arn(scope: &Scope, name: Option<&str>) -> String {
    match name {
        Some(arn) if arn.starts_with("arn:") => arn.to_owned(),
        name => format!(
            "arn:aws:cloudtrail:{}:{}:trail/{}",
            scope.region,
            scope.account,
            name.unwrap_or(TRAIL_NAME)
        ),
    }
}

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
