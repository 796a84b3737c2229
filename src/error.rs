//! The one table of client-visible errors.
//!
//! Every AWS error code Strongroom can answer is a variant of [`ApiError`]; `code()` and
//! `status()` are exhaustive matches with no catch-all arm, so a new variant cannot be
//! forgotten. Client-visible messages copy AWS's wording; internal causes are logged, never
//! sent (the `Internal` variant carries a log-only message).

use std::fmt;

/// A client-visible error: an AWS error code plus its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    // --- Secrets Manager ---
    ResourceNotFound(String),
    InvalidParameter(String),
    InvalidRequest(String),
    ResourceExists(String),
    LimitExceeded(String),
    DecryptionFailure(String),
    EncryptionFailure(String),
    InvalidNextToken(String),
    PreconditionNotMet(String),
    MalformedPolicyDocument(String),
    PublicPolicy(String),
    /// botocore's `InvalidParameterValue` (GetRandomPassword length above 4096).
    InvalidParameterValue(String),
    // --- common AWS JSON protocol errors ---
    Validation(String),
    Serialization(String),
    UnknownOperation(String),
    AccessDenied(String),
    NotImplemented(String),
    RequestEntityTooLarge(String),
    /// The request body did not arrive in time (`server::BODY_TIMEOUT`): HTTP 408, the code
    /// the AWS SDKs retry as a transient error.
    RequestTimeout(String),
    /// Over the account's request-rate quota (`quota`): AWS's `ThrottlingException`.
    Throttling(String),
    // --- authentication ---
    MissingAuthenticationToken(String),
    IncompleteSignature(String),
    InvalidSignature(String),
    UnrecognizedClient(String),
    ExpiredToken(String),
    // --- STS ---
    InvalidIdentityToken(String),
    /// AssumeRoleWithWebIdentity's token past its `exp` (STS: `ExpiredTokenException`).
    IdentityTokenExpired(String),
    IdpRejectedClaim(String),
    PackedPolicyTooLarge(String),
    // --- IAM ---
    NoSuchEntity(String),
    // --- Organizations ---
    /// `AWSOrganizationsNotInUseException`: the caller's account is in no organization.
    OrganizationsNotInUse(String),
    PolicyNotFound(String),
    /// Organizations' `InvalidInputException`.
    InvalidInput(String),
    // --- CloudTrail ---
    InvalidLookupAttributes(String),
    InvalidTimeRange(String),
    TrailNotFound(String),
    InvalidMaxResults(String),
    // --- KMS ---
    KmsNotFound(String),
    KmsAlreadyExists(String),
    KmsDisabled(String),
    KmsInvalidState(String),
    KmsInvalidArn(String),
    KmsInvalidAliasName(String),
    KmsUnsupportedOperation(String),
    KmsLimitExceeded(String),
    KmsInvalidMarker(String),
    // --- server side (log-only detail; client sees a generic message) ---
    Internal(String),
}

impl ApiError {
    /// The `__type` code on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ResourceNotFound(_) => "ResourceNotFoundException",
            Self::InvalidParameter(_) => "InvalidParameterException",
            Self::InvalidRequest(_) => "InvalidRequestException",
            Self::ResourceExists(_) => "ResourceExistsException",
            Self::LimitExceeded(_) => "LimitExceededException",
            Self::DecryptionFailure(_) => "DecryptionFailure",
            Self::EncryptionFailure(_) => "EncryptionFailure",
            Self::InvalidNextToken(_) => "InvalidNextTokenException",
            Self::PreconditionNotMet(_) => "PreconditionNotMetException",
            Self::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            Self::PublicPolicy(_) => "PublicPolicyException",
            Self::InvalidParameterValue(_) => "InvalidParameterValue",
            Self::Validation(_) => "ValidationException",
            Self::Serialization(_) => "SerializationException",
            Self::UnknownOperation(_) => "UnknownOperationException",
            Self::AccessDenied(_) => "AccessDeniedException",
            Self::NotImplemented(_) => "NotImplementedException",
            Self::RequestEntityTooLarge(_) => "RequestEntityTooLargeException",
            Self::RequestTimeout(_) => "RequestTimeoutException",
            Self::Throttling(_) => "ThrottlingException",
            Self::MissingAuthenticationToken(_) => "MissingAuthenticationTokenException",
            Self::IncompleteSignature(_) => "IncompleteSignatureException",
            Self::InvalidSignature(_) => "InvalidSignatureException",
            Self::UnrecognizedClient(_) => "UnrecognizedClientException",
            Self::ExpiredToken(_) => "ExpiredTokenException",
            Self::InvalidIdentityToken(_) => "InvalidIdentityTokenException",
            Self::IdentityTokenExpired(_) => "ExpiredTokenException",
            Self::IdpRejectedClaim(_) => "IDPRejectedClaimException",
            Self::PackedPolicyTooLarge(_) => "PackedPolicyTooLargeException",
            Self::NoSuchEntity(_) => "NoSuchEntityException",
            Self::OrganizationsNotInUse(_) => "AWSOrganizationsNotInUseException",
            Self::PolicyNotFound(_) => "PolicyNotFoundException",
            Self::InvalidInput(_) => "InvalidInputException",
            Self::InvalidLookupAttributes(_) => "InvalidLookupAttributesException",
            Self::InvalidTimeRange(_) => "InvalidTimeRangeException",
            Self::TrailNotFound(_) => "TrailNotFoundException",
            Self::InvalidMaxResults(_) => "InvalidMaxResultsException",
            Self::KmsNotFound(_) => "NotFoundException",
            Self::KmsAlreadyExists(_) => "AlreadyExistsException",
            Self::KmsDisabled(_) => "DisabledException",
            Self::KmsInvalidState(_) => "KMSInvalidStateException",
            Self::KmsInvalidArn(_) => "InvalidArnException",
            Self::KmsInvalidAliasName(_) => "InvalidAliasNameException",
            Self::KmsUnsupportedOperation(_) => "UnsupportedOperationException",
            Self::KmsLimitExceeded(_) => "LimitExceededException",
            Self::KmsInvalidMarker(_) => "InvalidMarkerException",
            Self::Internal(_) => "InternalServiceError",
        }
    }

    /// The HTTP status AWS answers with. The JSON protocol answers client errors with 400.
    pub fn status(&self) -> u16 {
        match self {
            Self::ResourceNotFound(_)
            | Self::InvalidParameter(_)
            | Self::InvalidRequest(_)
            | Self::ResourceExists(_)
            | Self::LimitExceeded(_)
            | Self::DecryptionFailure(_)
            | Self::EncryptionFailure(_)
            | Self::InvalidNextToken(_)
            | Self::PreconditionNotMet(_)
            | Self::MalformedPolicyDocument(_)
            | Self::PublicPolicy(_)
            | Self::InvalidParameterValue(_)
            | Self::Validation(_)
            | Self::Serialization(_)
            | Self::UnknownOperation(_)
            | Self::AccessDenied(_)
            | Self::Throttling(_)
            | Self::MissingAuthenticationToken(_)
            | Self::IncompleteSignature(_)
            | Self::InvalidSignature(_)
            | Self::UnrecognizedClient(_)
            | Self::ExpiredToken(_)
            | Self::InvalidIdentityToken(_)
            | Self::IdentityTokenExpired(_)
            | Self::IdpRejectedClaim(_)
            | Self::PackedPolicyTooLarge(_)
            | Self::NoSuchEntity(_)
            | Self::OrganizationsNotInUse(_)
            | Self::PolicyNotFound(_)
            | Self::InvalidInput(_)
            | Self::InvalidLookupAttributes(_)
            | Self::InvalidTimeRange(_)
            | Self::TrailNotFound(_)
            | Self::InvalidMaxResults(_)
            | Self::KmsNotFound(_)
            | Self::KmsAlreadyExists(_)
            | Self::KmsDisabled(_)
            | Self::KmsInvalidState(_)
            | Self::KmsInvalidArn(_)
            | Self::KmsInvalidAliasName(_)
            | Self::KmsUnsupportedOperation(_)
            | Self::KmsLimitExceeded(_)
            | Self::KmsInvalidMarker(_) => 400,
            Self::NotImplemented(_) => 501,
            Self::RequestEntityTooLarge(_) => 413,
            Self::RequestTimeout(_) => 408,
            Self::Internal(_) => 500,
        }
    }

    /// The error for an operator at the command line (`strongroom audit ...`): as
    /// [`fmt::Display`], but an `Internal` error shows its detail, which is written for the
    /// server's log and so carries nothing that may not be logged.
    pub fn operator_text(&self) -> String {
        match self {
            Self::Internal(detail) => format!("{}: {detail}", self.code()),
            _ => self.to_string(),
        }
    }

    /// The message sent to the client. `Internal` hides its detail.
    pub fn message(&self) -> &str {
        match self {
            Self::Internal(_) => "An error occurred on the server side.",
            Self::ResourceNotFound(m)
            | Self::InvalidParameter(m)
            | Self::InvalidRequest(m)
            | Self::ResourceExists(m)
            | Self::LimitExceeded(m)
            | Self::DecryptionFailure(m)
            | Self::EncryptionFailure(m)
            | Self::InvalidNextToken(m)
            | Self::PreconditionNotMet(m)
            | Self::MalformedPolicyDocument(m)
            | Self::PublicPolicy(m)
            | Self::InvalidParameterValue(m)
            | Self::Validation(m)
            | Self::Serialization(m)
            | Self::UnknownOperation(m)
            | Self::AccessDenied(m)
            | Self::NotImplemented(m)
            | Self::RequestEntityTooLarge(m)
            | Self::RequestTimeout(m)
            | Self::Throttling(m)
            | Self::MissingAuthenticationToken(m)
            | Self::IncompleteSignature(m)
            | Self::InvalidSignature(m)
            | Self::UnrecognizedClient(m)
            | Self::ExpiredToken(m)
            | Self::InvalidIdentityToken(m)
            | Self::IdentityTokenExpired(m)
            | Self::IdpRejectedClaim(m)
            | Self::PackedPolicyTooLarge(m)
            | Self::NoSuchEntity(m)
            | Self::OrganizationsNotInUse(m)
            | Self::PolicyNotFound(m)
            | Self::InvalidInput(m)
            | Self::InvalidLookupAttributes(m)
            | Self::InvalidTimeRange(m)
            | Self::TrailNotFound(m)
            | Self::InvalidMaxResults(m)
            | Self::KmsNotFound(m)
            | Self::KmsAlreadyExists(m)
            | Self::KmsDisabled(m)
            | Self::KmsInvalidState(m)
            | Self::KmsInvalidArn(m)
            | Self::KmsInvalidAliasName(m)
            | Self::KmsUnsupportedOperation(m)
            | Self::KmsLimitExceeded(m)
            | Self::KmsInvalidMarker(m) => m,
        }
    }

    /// An internal error, with a detail that goes to the log only.
    pub fn internal(detail: impl fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }

    /// `ResourceNotFoundException` for a secret, in AWS's wording.
    pub fn secret_not_found() -> Self {
        Self::ResourceNotFound("Secrets Manager can't find the specified secret.".into())
    }

    /// The JSON 1.1 body `{"__type": ..., "Message": ...}`: the member is `Message`, as in
    /// every error shape of AWS's service models (the SDKs read `Message` or `message`).
    pub fn body(&self) -> String {
        serde_json::json!({ "__type": self.code(), "Message": self.message() }).to_string()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for ApiError {}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<crate::crypto::CryptoError> for ApiError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Self::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_aws_json_error_shape() {
        let e = ApiError::secret_not_found();
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["__type"], "ResourceNotFoundException");
        assert_eq!(
            v["Message"],
            "Secrets Manager can't find the specified secret."
        );
        assert!(v.get("message").is_none());
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn internal_detail_never_reaches_the_client() {
        let e = ApiError::internal("database path /secret/x broke");
        assert!(!e.body().contains("/secret/x"));
        assert_eq!(e.status(), 500);
    }

    #[test]
    fn an_operator_sees_an_internal_error_s_detail_and_a_client_never_does() {
        let e = ApiError::internal("database is locked");
        assert_eq!(
            e.operator_text(),
            "InternalServiceError: database is locked"
        );
        assert!(!e.body().contains("locked"));
        let e = ApiError::secret_not_found();
        assert_eq!(e.operator_text(), e.to_string());
    }
}
