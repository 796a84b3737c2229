//! The CloudTrail subset (`com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.*`).

use crate::error::ApiError;
use crate::pipeline::ServiceCall;

/// Pick the CloudTrail operation by name and run it.
pub async fn dispatch(name: &str, _call: ServiceCall<'_, '_>) -> Result<Vec<u8>, ApiError> {
    match name {
        "LookupEvents" => Err(crate::pipeline::not_built(name)),
        other => Err(ApiError::UnknownOperation(format!(
            "The operation `{}` is not known to CloudTrail.",
            other.chars().take(64).collect::<String>()
        ))),
    }
}
