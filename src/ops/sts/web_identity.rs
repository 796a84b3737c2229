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
use crate::ops::query::{QueryCall, QueryOperation};
use crate::policy::{self, PolicySet, PrincipalInfo, PrincipalType};
use crate::protocol::query::Form;
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
    let verified = jwt::verify(token, &provider.spec, &provider.keys).map_err(|e| {
        if e.0 != jwt::TOKEN_EXPIRED {
            return ApiError::InvalidIdentityToken(e.0);
        }
        // STS's own answer to an expired token (its signature was verified: only a token
        // whose signature holds is reported expired).
        let exp = jwt::unverified_claims(token)
            .ok()
            .and_then(|c| c.get("exp").and_then(serde_json::Value::as_f64))
            .unwrap_or_default();
        ApiError::IdentityTokenExpired(format!(
            "Token expired: current date/time {} must be before the expiration date/time {}",
            authz.now_ms().div_euclid(1000),
            exp.trunc()
        ))
    })?;
    let host = jwt::issuer_key_prefix(&verified.issuer);
    let info = PrincipalInfo {
        kind: PrincipalType::Service,
        arn: format!("federated:{host}"),
        issuer_arn: None,
        // A token holder belongs to no account: AWS puts `aws:PrincipalAccount` only in
        // signed requests, so a trust statement pinned to the account's principals with it
        // does not admit a web identity.
        account: String::new(),
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
    let mut ctx =
        context::with_request_keys(ctx, &dir, None, &facts, action, &role.arn, &role.account)
            .with("aws:FederatedProvider", [verified.issuer.as_str()])
            .with("sts:RoleSessionName", [session_name]);
    // The role's tags, as for AssumeRole.
    for (k, v) in crate::identity::resource_tag_keys(&role.tags) {
        ctx = ctx.with(&k, v);
    }
    let ctx = jwt::with_condition_keys(ctx, &verified, &provider.spec);
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

/// AssumeRoleWithWebIdentity's input, validated.
#[derive(Debug)]
pub struct Input {
    role_arn: String,
    session_name: String,
    token: String,
    duration: i64,
    policy: Option<String>,
}

/// AssumeRoleWithWebIdentity's answer.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    subject_from_web_identity_token: String,
    audience: String,
    assumed_role_user: super::AssumedRoleUser,
    credentials: super::Credentials,
    provider: String,
}

/// AssumeRoleWithWebIdentity (an unsigned request: the token is the credential).
#[derive(Debug)]
pub struct AssumeRoleWithWebIdentity;

impl QueryOperation for AssumeRoleWithWebIdentity {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "AssumeRoleWithWebIdentity";
    const SERVICE: Service = Service::Sts;
    const READ_ONLY: bool = false;

    fn parse(form: &Form) -> Result<Input, ApiError> {
        let need = |k: &str, field: &str| {
            form.get(k).map(str::to_owned).ok_or_else(|| {
                ApiError::Validation(format!("1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"))
            })
        };
        let role_arn = need("RoleArn", "roleArn")?;
        let session_name = need("RoleSessionName", "roleSessionName")?;
        let token = need("WebIdentityToken", "webIdentityToken")?;
        if session_name_from(&session_name) != session_name {
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
        let policy = super::session_policy(form)?;
        Ok(Input {
            role_arn,
            session_name,
            token,
            duration,
            policy,
        })
    }

    async fn handle(
        call: &QueryCall<'_>,
        input: Input,
        draft: &mut Draft,
    ) -> Result<Output, ApiError> {
        let pipeline = call.pipeline;
        let (claims, verified, role) = session_for_token(
            &pipeline.authz,
            &input.token,
            &input.role_arn,
            &input.session_name,
            input.duration,
            input.policy,
            draft,
        )?;
        draft.principal = Some(std::sync::Arc::new(claims.principal(&role.tags)));
        let (credentials, assumed_role_user) =
            super::answer(&pipeline.ctx.keyring, &claims, &role)?;
        Ok(Output {
            subject_from_web_identity_token: verified.subject,
            audience: verified.audience,
            assumed_role_user,
            credentials,
            provider: verified.issuer,
        })
    }
}
