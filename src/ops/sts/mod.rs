//! STS on the same endpoint (AWS Query protocol, XML answers).

pub mod assume_role;
pub mod web_identity;

use crate::audit::Draft;
use crate::auth::{Principal, PrincipalKind};
use crate::error::ApiError;
use crate::pipeline::Pipeline;
use crate::protocol::query::{self, Form};
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

/// An authenticated Query-protocol call.
#[derive(Debug)]
pub struct QueryCall<'a> {
    pub pipeline: &'a Pipeline,
    pub principal: Principal,
    pub region: String,
    pub form: &'a Form,
    pub request_id: &'a str,
}

/// Pick the STS action and run it.
pub async fn dispatch(
    action: &str,
    call: QueryCall<'_>,
    draft: &mut Draft,
) -> Result<Vec<u8>, ApiError> {
    match action {
        "GetCallerIdentity" => {
            draft.read_only = Some(true);
            draft.decision = Some("Allow".into());
            draft.decision_reason = Some("GetCallerIdentity needs no permission".into());
            Ok(get_caller_identity(&call))
        }
        "AssumeRole" => {
            draft.read_only = Some(false);
            assume_role::assume_role(&call, draft)
        }
        "GetSessionToken"
        | "AssumeRoleWithSAML"
        | "GetFederationToken"
        | "DecodeAuthorizationMessage"
        | "GetAccessKeyInfo" => Err(crate::pipeline::not_built(action)),
        other => Err(ApiError::UnknownOperation(format!(
            "Could not find operation {} for version 2011-06-15",
            other.chars().take(64).collect::<String>()
        ))),
    }
}

/// GetCallerIdentity: who the credentials belong to (no permission needed, as on AWS).
fn get_caller_identity(call: &QueryCall<'_>) -> Vec<u8> {
    let p = &call.principal;
    let user_id = match p.kind {
        PrincipalKind::Root => p.account_id.clone(),
        _ => p.user_id.clone(),
    };
    let result = format!(
        "    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n",
        query::xml_escape(&p.arn),
        query::xml_escape(&user_id),
        query::xml_escape(&p.account_id)
    );
    query::response(
        Service::Sts.xml_namespace(),
        "GetCallerIdentity",
        &result,
        call.request_id,
    )
}
