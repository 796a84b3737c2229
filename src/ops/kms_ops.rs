//! The KMS subset (`TrentService.*`) (placeholder: answers NotImplemented until written).

use crate::error::ApiError;
use crate::pipeline::KmsCall;

/// Pick the KMS operation by name and run it.
pub async fn dispatch(name: &str, _call: KmsCall<'_, '_>) -> Result<Vec<u8>, ApiError> {
    Err(crate::pipeline::not_built(name))
}
