//! Web identity: a verified JWT, a role whose trust policy names its issuer as `Federated`,
//! and the issuer's condition keys (`ISSUER:sub`, `ISSUER:aud`). Used by
//! AssumeRoleWithWebIdentity and by `Authorization: Bearer` callers.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::audit::Draft;
use crate::auth::session::SessionClaims;
use crate::authz::{context, Authz, Facts};
use crate::error::ApiError;
use crate::identity::jwt::{self, Verified};
use crate::identity::Role;
use crate::policy::{self, PolicySet, PrincipalInfo, PrincipalType};
use crate::protocol::query::{self, Form};
use crate::protocol::Service;

/// A session name from a token subject: allowed characters kept, others replaced, 2–64 long.
pub fn session_name_from(sub: &str) -> String {
    let mut s: String = sub
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    while s.len() < 2 {
        s.push('-');
    }
    s
}

/// Verify `token`, evaluate `role`'s trust policy for it, and mint a session.
pub fn session_for_token(
    authz: &Authz,
    token: &str,
    role_arn: &str,
    session_name: &str,
    duration_s: i64,
    session_policy: Option<String>,
    draft: &mut Draft,
) -> Result<(SessionClaims, Verified, Arc<Role>), ApiError> {
    let dir = authz.identities().get();
    let issuer = jwt::unverified_issuer(token).map_err(|e| ApiError::InvalidIdentityToken(e.0))?;
    let denied =
        || ApiError::AccessDenied("Not authorized to perform sts:AssumeRoleWithWebIdentity".into());
    let role = Arc::clone(dir.role_by_arn(role_arn).ok_or_else(denied)?);
    let provider = dir
        .accounts
        .get(&role.account)
        .and_then(|a| {
            a.identity_providers
                .iter()
                .find(|p| p.spec.issuer == issuer)
        })
        .ok_or_else(|| {
            ApiError::InvalidIdentityToken(format!(
                "No OpenIDConnect provider found in your account for {}",
                issuer.chars().take(256).collect::<String>()
            ))
        })?;
    let verified = jwt::verify(token, &provider.spec, &provider.keys)
        .map_err(|e| ApiError::InvalidIdentityToken(e.0))?;
    let host = jwt::issuer_key_prefix(&verified.issuer);
    let info = PrincipalInfo {
        kind: PrincipalType::Service,
        arn: format!("federated:{host}"),
        issuer_arn: None,
        account: role.account.clone(),
        user_name: None,
        user_id: None,
        tags: BTreeMap::new(),
    };
    let action = "sts:AssumeRoleWithWebIdentity";
    let facts = Facts {
        region: draft.region.clone(),
        now_ms: authz.now_ms(),
        source_ip: draft.source_ip.as_deref().and_then(|i| i.parse().ok()),
        secure_transport: Some(draft.secure_transport),
    };
    let ctx = policy::RequestContext::new(info, action, &role.arn, Some(&role.account));
    // The request's own keys as for any request (the caller has no account: no org keys),
    // then the token's.
    let ctx = jwt::with_condition_keys(
        context::with_request_keys(ctx, &dir, None, &facts, action, &role.arn, &role.account)
            .with("aws:FederatedProvider", [verified.issuer.as_str()]),
        &verified,
        &provider.spec,
    );
    let set = PolicySet {
        resource: role.trust_policy.compiled.clone(),
        ..PolicySet::default()
    };
    let decision = policy::authorize(&ctx, &set);
    draft.resource_arn = Some(role.arn.clone());
    draft.decision = Some(decision.effect.as_str().to_owned());
    draft.decision_reason = Some(format!(
        "web identity {host} sub {}: {:?}",
        verified.subject, decision.reason
    ));
    if !decision.is_allowed() {
        return Err(denied());
    }
    if duration_s > role.max_session_duration || duration_s < 900 {
        return Err(ApiError::Validation(format!(
            "DurationSeconds must be between 900 and the role's MaxSessionDuration ({}).",
            role.max_session_duration
        )));
    }
    let mut tags = BTreeMap::new();
    for (claim, tag) in &provider.spec.session_tag_claims {
        if let Some(v) = verified.claims.get(claim).and_then(|v| v.as_str()) {
            tags.insert(tag.clone(), v.chars().take(256).collect());
        }
    }
    let now = authz.now_ms();
    // A session never outlives the token that created it... unless asked for less.
    let expires =
        (now + duration_s * 1000).min(verified.expires.saturating_mul(1000).max(now + 900_000));
    let claims = super::new_session(super::NewSession {
        role: &role,
        session_name,
        issued_ms: now,
        expires_ms: expires,
        issuer: verified.issuer.clone(),
        tags,
        session_policy,
        source: format!("{}:{}", verified.issuer, verified.subject),
    });
    Ok((claims, verified, role))
}

/// AssumeRoleWithWebIdentity (an unsigned request: the token is the credential).
pub fn assume_role_with_web_identity(
    pipeline: &crate::pipeline::Pipeline,
    form: &Form,
    request_id: &str,
    draft: &mut Draft,
) -> Result<Vec<u8>, ApiError> {
    let need = |k: &str, field: &str| {
        form.get(k).ok_or_else(|| {
            ApiError::Validation(format!("1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"))
        })
    };
    let role_arn = need("RoleArn", "roleArn")?;
    let session_name = need("RoleSessionName", "roleSessionName")?;
    let token = need("WebIdentityToken", "webIdentityToken")?;
    if session_name_from(session_name) != session_name {
        return Err(ApiError::Validation(
            "1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*".into(),
        ));
    }
    let duration: i64 = match form.get("DurationSeconds") {
        Some(d) => d
            .parse()
            .map_err(|_| ApiError::Validation("DurationSeconds must be a number.".into()))?,
        None => 3600,
    };
    let policy = match form.get("Policy") {
        Some(text) => {
            policy::Policy::parse(text, policy::PolicyType::Session)
                .map_err(|e| ApiError::MalformedPolicyDocument(e.aws_message()))?;
            Some(text.to_owned())
        }
        None => None,
    };
    let (claims, verified, role) = session_for_token(
        &pipeline.authz,
        token,
        role_arn,
        session_name,
        duration,
        policy,
        draft,
    )?;
    let (sealed, expiration) = super::seal_session(&pipeline.ctx.keyring, &claims)?;
    let principal = claims.principal(&role.tags);
    draft.principal = Some(principal.clone());
    let result = format!(
        "    <SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken>\n    <Audience>{}</Audience>\n    <AssumedRoleUser>\n      <Arn>{}</Arn>\n      <AssumedRoleId>{}</AssumedRoleId>\n    </AssumedRoleUser>\n    <Credentials>\n      <SessionToken>{}</SessionToken>\n      <SecretAccessKey>{}</SecretAccessKey>\n      <Expiration>{}</Expiration>\n      <AccessKeyId>{}</AccessKeyId>\n    </Credentials>\n    <Provider>{}</Provider>\n",
        query::xml_escape(&verified.subject),
        query::xml_escape(&verified.audience),
        query::xml_escape(&principal.arn),
        query::xml_escape(&principal.user_id),
        query::xml_escape(&sealed),
        query::xml_escape(&claims.secret),
        query::xml_escape(&expiration),
        query::xml_escape(&claims.akid),
        query::xml_escape(&verified.issuer),
    );
    Ok(query::response(
        Service::Sts.xml_namespace(),
        "AssumeRoleWithWebIdentity",
        &result,
        request_id,
    ))
}
