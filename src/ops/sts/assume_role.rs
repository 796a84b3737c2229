//! AssumeRole: the role's trust policy (a resource-side policy that must allow) and the
//! caller's own policies decide; the answer is temporary credentials whose session token the server sealed.

use std::collections::BTreeMap;

use crate::audit::Draft;
use crate::authz::Resolved;
use crate::error::ApiError;
use crate::ops::query::{QueryCall, QueryOperation};
use crate::ops::Scope;
use crate::protocol::query::Form;
use crate::protocol::Service;

fn validation(msg: impl Into<String>) -> ApiError {
    ApiError::Validation(msg.into())
}

fn session_name_ok(s: &str) -> bool {
    (2..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

/// Session tags from `Tags.member.N.Key/Value`.
fn session_tags(form: &Form) -> Result<BTreeMap<String, String>, ApiError> {
    let mut tags = BTreeMap::new();
    for i in 1..=51 {
        let Some(k) = form.get(&format!("Tags.member.{i}.Key")) else {
            break;
        };
        if i > 50 {
            return Err(validation("1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50"));
        }
        let v = form.get(&format!("Tags.member.{i}.Value")).unwrap_or("");
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(validation(
                "Session tag keys are 1-128 characters and values at most 256.",
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(validation("Session tag keys can't start with aws:."));
        }
        // Tag keys are case-insensitive in IAM: `Team` and `team` would both feed
        // `aws:PrincipalTag/team`, one shadowing the other. Folded as the policy context
        // folds condition keys (Unicode lowercase: KELVIN SIGN is `k`).
        let folded = k.to_lowercase();
        if tags.keys().any(|t: &String| t.to_lowercase() == folded) {
            return Err(validation(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
            ));
        }
        tags.insert(k.to_owned(), v.to_owned());
    }
    Ok(tags)
}

/// AssumeRole's input, validated.
#[derive(Debug)]
pub struct Input {
    role_arn: String,
    session_name: String,
    duration: i64,
    external_id: Option<String>,
    tags: BTreeMap<String, String>,
    session_policy: Option<String>,
}

/// AssumeRole's answer.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    credentials: super::Credentials,
    assumed_role_user: super::AssumedRoleUser,
    packed_policy_size: u32,
}

/// AssumeRole.
#[derive(Debug)]
pub struct AssumeRole;

impl QueryOperation for AssumeRole {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "AssumeRole";
    const SERVICE: Service = Service::Sts;
    const READ_ONLY: bool = false;

    fn parse(form: &Form) -> Result<Input, ApiError> {
        parse(form)
    }

    async fn handle(
        call: &QueryCall<'_>,
        input: Input,
        draft: &mut Draft,
    ) -> Result<Output, ApiError> {
        assume_role(call, input, draft)
    }
}

fn parse(form: &Form) -> Result<Input, ApiError> {
    let role_arn = form
        .get("RoleArn")
        .ok_or_else(|| validation("1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null"))?;
    let session_name = form
        .get("RoleSessionName")
        .ok_or_else(|| validation("1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null"))?;
    if !(20..=2048).contains(&role_arn.len()) {
        return Err(validation("1 validation error detected: Value at 'roleArn' failed to satisfy constraint: Member must have length between 20 and 2048"));
    }
    if !session_name_ok(session_name) {
        return Err(validation(format!(
            "1 validation error detected: Value '{}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*",
            session_name.chars().take(64).collect::<String>()
        )));
    }
    let duration: i64 = match form.get("DurationSeconds") {
        Some(d) => d
            .parse()
            .map_err(|_| validation("DurationSeconds must be a number."))?,
        None => 3600,
    };
    if duration < 900 {
        return Err(validation("1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"));
    }
    if let Some(e) = form.get("ExternalId") {
        if !(2..=1224).contains(&e.len()) {
            return Err(validation("1 validation error detected: Value at 'externalId' failed to satisfy constraint: Member must have length between 2 and 1224"));
        }
    }
    let session_policy = super::session_policy(form)?;
    let tags = session_tags(form)?;
    Ok(Input {
        role_arn: role_arn.to_owned(),
        session_name: session_name.to_owned(),
        duration,
        external_id: form.get("ExternalId").map(str::to_owned),
        tags,
        session_policy,
    })
}

/// Decide and mint.
fn assume_role(call: &QueryCall<'_>, input: Input, draft: &mut Draft) -> Result<Output, ApiError> {
    let caller = call.caller()?;
    let Input {
        role_arn,
        session_name,
        duration,
        external_id,
        tags,
        session_policy,
    } = input;
    let (role_arn, session_name) = (role_arn.as_str(), session_name.as_str());
    if caller.kind == crate::auth::PrincipalKind::Root {
        draft.decision = Some("ImplicitDeny".into());
        draft.decision_reason = Some("the root user cannot assume roles".into());
        return Err(ApiError::AccessDenied(
            "Roles may not be assumed by root accounts.".into(),
        ));
    }
    let pipeline = call.pipeline;
    let dir = pipeline.identities.get();
    let role = dir.role_by_arn(role_arn).cloned();
    let resolved = Resolved {
        arn: role_arn.to_owned(),
        account: role.as_ref().map_or_else(
            || role_arn.split(':').nth(4).unwrap_or_default().to_owned(),
            |r| r.account.clone(),
        ),
        secret: None,
        keys: Vec::new(),
        shared_keys: None,
        policy_cell: None,
        resource_policy: None,
        compiled_policy: role.as_ref().and_then(|r| r.trust_policy.compiled.clone()),
        // A role's trust policy must always allow the caller, in its own account too: naming
        // the caller (or `*`) suffices there; naming the account only delegates to the
        // caller's identity policy; across accounts both must allow (IAM.md; the KMS key
        // policy rule). A missing role has no trust policy, so nothing allows.
        resource_required: true,
        shown: None,
    };
    draft.resource_arn = Some(role_arn.to_owned());
    let mut keys: Vec<(String, Vec<String>)> =
        vec![("sts:RoleSessionName".into(), vec![session_name.to_owned()])];
    if let Some(e) = external_id {
        keys.push(("sts:ExternalId".into(), vec![e]));
    }
    // The role's tags (`iam:ResourceTag/k`, `aws:ResourceTag/k`): policies may allow or deny
    // assuming a role by its tags, as AWS's ABAC tutorial does.
    if let Some(r) = &role {
        keys.extend(crate::identity::resource_tag_keys(&r.tags));
    }
    for (k, v) in &tags {
        keys.push((format!("aws:RequestTag/{k}"), vec![v.clone()]));
    }
    if !tags.is_empty() {
        keys.push(("aws:TagKeys".into(), tags.keys().cloned().collect()));
    }
    let scope = Scope {
        account: caller.account_id.clone(),
        region: call.region.clone(),
    };
    pipeline
        .authz
        .authorize(caller, &scope, "sts:AssumeRole", &resolved, &keys, draft)?;
    if !tags.is_empty() {
        pipeline
            .authz
            .authorize(caller, &scope, "sts:TagSession", &resolved, &keys, draft)?;
    }
    // Authorized: the role must exist (a missing role never has a trust policy that allows).
    let role = role.ok_or_else(|| {
        ApiError::AccessDenied(format!(
            "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
            caller.arn
        ))
    })?;
    // Role chaining (a role session assuming a role): AWS caps the new session at an hour,
    // whatever the role allows, so that a short session cannot make itself a long one.
    if caller.kind == crate::auth::PrincipalKind::AssumedRole && duration > 3600 {
        return Err(validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.".to_owned(),
        ));
    }
    if duration > role.max_session_duration {
        return Err(validation(format!(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role ({}).",
            role.max_session_duration
        )));
    }
    let now = pipeline.ctx.now_ms();
    let claims = super::new_session(super::NewSession {
        role: &role,
        session_name,
        issued_ms: now,
        expires_ms: now + duration * 1000,
        issuer: "sts.amazonaws.com".into(),
        tags,
        session_policy,
        source: caller.arn.clone(),
    });
    let (credentials, assumed_role_user) = super::answer(&pipeline.ctx.keyring, &claims, &role)?;
    Ok(Output {
        credentials,
        assumed_role_user,
        packed_policy_size: 0,
    })
}
