//! Who is calling. Turns a request head and body into a [`Principal`], or an [`AuthError`].
//!
//! May depend on: `crypto::SecretBytes` types, `error`. Never on `policy`, `store` or actix:
//! the pipeline looks the access key up and hands the credential in.

pub mod session;
pub mod sigv4;

use std::fmt;

use crate::error::ApiError;

/// The parts of an HTTP request that authentication reads. Header names are lowercase.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    /// The path exactly as sent (still percent-encoded).
    pub path: String,
    /// The raw query string, without `?` (may be empty).
    pub query: String,
    /// `(lowercase name, value)` in the order received; repeated names appear repeatedly.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first value of a header (name in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a list header (name in lowercase), its lines joined in the order
    /// received with `, `: HTTP makes several lines of a list header one list (RFC 9110
    /// 5.3), so a proxy that adds a line of its own instead of extending the client's still
    /// has the rightmost entry.
    pub fn header_list(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        let first = values.next()?;
        match values.next() {
            None => Some(std::borrow::Cow::Borrowed(first)),
            Some(second) => {
                let mut joined = format!("{first}, {second}");
                for v in values {
                    joined.push_str(", ");
                    joined.push_str(v);
                }
                Some(std::borrow::Cow::Owned(joined))
            }
        }
    }
}

/// What kind of identity is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The account's root user.
    Root,
    /// An IAM user.
    User,
    /// A session of an assumed role.
    AssumedRole,
}

/// An authenticated caller, as the policy evaluator and the audit log see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account_id: String,
    pub arn: String,
    pub kind: PrincipalKind,
    /// `aws:userid`: the account id for root, the unique id for users, `ROLEID:session` for
    /// role sessions.
    pub user_id: String,
    pub access_key_id: String,
    /// `aws:username` for users; the session name for role sessions.
    pub name: Option<String>,
    /// The role's ARN (with its path) for role sessions.
    pub role_arn: Option<String>,
    /// Principal tags (session tags over entity tags).
    pub tags: std::collections::BTreeMap<String, String>,
    /// For sessions: who issued them and when (epoch milliseconds).
    pub session: Option<SessionContext>,
}

/// Where a temporary session came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionContext {
    /// `sts.amazonaws.com` for AssumeRole, the JWT issuer for web identity.
    pub issuer: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// The inline session policy passed when the session was created.
    pub policy: Option<String>,
}

impl Principal {
    /// The root principal of an account.
    pub fn root(account_id: &str, access_key_id: &str) -> Self {
        Self {
            account_id: account_id.to_owned(),
            arn: format!("arn:aws:iam::{account_id}:root"),
            kind: PrincipalKind::Root,
            user_id: account_id.to_owned(),
            access_key_id: access_key_id.to_owned(),
            name: None,
            role_arn: None,
            tags: std::collections::BTreeMap::new(),
            session: None,
        }
    }

    /// An IAM user.
    pub fn user(
        account_id: &str,
        arn: &str,
        user_id: &str,
        name: &str,
        tags: std::collections::BTreeMap<String, String>,
        access_key_id: &str,
    ) -> Self {
        Self {
            account_id: account_id.to_owned(),
            arn: arn.to_owned(),
            kind: PrincipalKind::User,
            user_id: user_id.to_owned(),
            access_key_id: access_key_id.to_owned(),
            name: Some(name.to_owned()),
            role_arn: None,
            tags,
            session: None,
        }
    }
}

/// A secret access key. Zeroized on drop, redacted in `Debug`.
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct SecretAccessKey {
    secret: String,
    /// A domain-separated SHA-256 of the secret, made once with the key (a key is cloned on
    /// every request that uses it): the signing-key cache tells secrets apart by it.
    fingerprint: [u8; 32],
}

impl SecretAccessKey {
    pub fn new(secret: String) -> Self {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(b"strongroom sigv4 signing key cache\0");
        hasher.update(secret.as_bytes());
        Self {
            secret,
            fingerprint: hasher.finalize().into(),
        }
    }
    pub fn expose(&self) -> &str {
        &self.secret
    }
    /// What tells this secret from another without revealing it (see the field).
    pub(crate) fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }
}

impl fmt::Debug for SecretAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretAccessKey(<redacted>)")
    }
}

/// A credential the pipeline found for an access key id.
#[derive(Debug, Clone)]
pub struct Credential {
    pub secret: std::sync::Arc<SecretAccessKey>,
    pub principal: std::sync::Arc<Principal>,
    pub active: bool,
}

/// Why authentication failed. Converted to AWS's error codes and messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header (or no recognised auth scheme).
    #[error("missing authentication token")]
    Missing,
    /// A malformed `Authorization` header or missing signed parts; carries AWS's message.
    #[error("incomplete signature: {0}")]
    Incomplete(String),
    /// The signature does not match, or the request's time is outside the allowed skew;
    /// carries AWS's message.
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    /// The access key id is unknown or not active.
    #[error("unrecognized client")]
    UnknownKey,
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => ApiError::MissingAuthenticationToken(
                "Request is missing Authentication Token".into(),
            ),
            AuthError::Incomplete(m) => ApiError::IncompleteSignature(m),
            AuthError::InvalidSignature(m) => ApiError::InvalidSignature(m),
            AuthError::UnknownKey => ApiError::UnrecognizedClient(
                "The security token included in the request is invalid.".into(),
            ),
        }
    }
}
