//! STS on the same endpoint (AWS Query protocol, XML answers).

pub mod assume_role;
pub mod web_identity;

use crate::audit::Draft;
use crate::auth::PrincipalKind;
use crate::error::ApiError;
use crate::ops::query::{QueryCall, QueryOperation};
use crate::protocol::query::Form;
use crate::protocol::Service;

/// How a new session of a role is made: everything but its keys.
#[derive(Debug)]
pub struct NewSession<'a> {
    pub role: &'a crate::identity::Role,
    pub session_name: &'a str,
    pub issued_ms: i64,
    pub expires_ms: i64,
    /// `sts.amazonaws.com`, or the web identity token's issuer.
    pub issuer: String,
    pub tags: std::collections::BTreeMap<String, String>,
    pub session_policy: Option<String>,
    /// Who assumed the role (for audit).
    pub source: String,
}

/// An inline session policy (`Policy`), checked as AWS checks it (its packed size, its
/// grammar); managed session policies (`PolicyArns.member.N.arn`, any N) are refused rather
/// than ignored, so that a session is never broader than what was asked for.
pub fn session_policy(form: &crate::protocol::query::Form) -> Result<Option<String>, ApiError> {
    if form
        .params
        .iter()
        .any(|(k, _)| k.starts_with("PolicyArns."))
    {
        return Err(ApiError::NotImplemented(
            "Managed session policies (PolicyArns) are not supported by this Strongroom server yet; pass an inline Policy.".into(),
        ));
    }
    let Some(text) = form.get("Policy") else {
        return Ok(None);
    };
    if text.chars().filter(|c| !c.is_whitespace()).count() > 2048 {
        return Err(ApiError::PackedPolicyTooLarge(
            "Packed size of the policy exceeds the limit.".into(),
        ));
    }
    crate::policy::Policy::parse(text, crate::policy::PolicyType::Session)
        .map_err(|e| ApiError::MalformedPolicyDocument(e.aws_message()))?;
    Ok(Some(text.to_owned()))
}

/// THE credential-minting path of AssumeRole, AssumeRoleWithWebIdentity and `Bearer`
/// callers: fresh temporary keys and the claims their session token carries.
pub fn new_session(s: NewSession<'_>) -> crate::auth::session::SessionClaims {
    crate::auth::session::SessionClaims {
        akid: crate::crypto::random::access_key_id("ASIA"),
        secret: crate::crypto::random::secret_access_key().to_string(),
        account: s.role.account.clone(),
        role_arn: s.role.arn.clone(),
        role_name: s.role.name.clone(),
        role_id: s.role.role_id.clone(),
        session_name: s.session_name.to_owned(),
        issued_ms: s.issued_ms,
        expires_ms: s.expires_ms,
        issuer: s.issuer,
        tags: s.tags,
        session_policy: s.session_policy,
        source: s.source,
    }
}

/// The session token of `claims`, sealed under the master key, and the session's expiration
/// as the XML answers write it.
pub fn seal_session(
    keyring: &crate::kms::Keyring,
    claims: &crate::auth::session::SessionClaims,
) -> Result<(String, String), ApiError> {
    let token = crate::auth::session::encode_token(claims, |b| {
        keyring.seal_with_master(b, crate::auth::session::TOKEN_AAD)
    })?;
    let expiration = time::OffsetDateTime::from_unix_timestamp(claims.expires_ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    Ok((token, expiration))
}

/// Temporary credentials as STS answers them.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: String,
}

/// The session's identity as STS answers it.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssumedRoleUser {
    pub assumed_role_id: String,
    pub arn: String,
}

/// A minted session's answer parts: its credentials (token sealed) and its identity.
pub fn answer(
    keyring: &crate::kms::Keyring,
    claims: &crate::auth::session::SessionClaims,
    role: &crate::identity::Role,
) -> Result<(Credentials, AssumedRoleUser), ApiError> {
    let (session_token, expiration) = seal_session(keyring, claims)?;
    let principal = claims.principal(&role.tags);
    Ok((
        Credentials {
            access_key_id: claims.akid.clone(),
            secret_access_key: claims.secret.clone(),
            session_token,
            expiration,
        },
        AssumedRoleUser {
            assumed_role_id: principal.user_id,
            arn: principal.arn,
        },
    ))
}

/// GetCallerIdentity: who the credentials belong to (no permission needed, as on AWS).
#[derive(Debug)]
pub struct GetCallerIdentity;

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallerIdentity {
    pub arn: String,
    pub user_id: String,
    pub account: String,
}

impl QueryOperation for GetCallerIdentity {
    type Input = ();
    type Output = CallerIdentity;
    const NAME: &'static str = "GetCallerIdentity";
    const SERVICE: Service = Service::Sts;
    const READ_ONLY: bool = true;

    fn parse(_form: &Form) -> Result<(), ApiError> {
        Ok(())
    }

    async fn handle(
        call: &QueryCall<'_>,
        _input: (),
        draft: &mut Draft,
    ) -> Result<CallerIdentity, ApiError> {
        let p = call.caller()?;
        draft.decision = Some("Allow".into());
        draft.decision_reason = Some("GetCallerIdentity needs no permission".into());
        Ok(CallerIdentity {
            arn: p.arn.clone(),
            user_id: match p.kind {
                PrincipalKind::Root => p.account_id.clone(),
                _ => p.user_id.clone(),
            },
            account: p.account_id.clone(),
        })
    }
}
