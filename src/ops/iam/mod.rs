//! IAM's policy simulator on the same endpoint (Query protocol): SimulatePrincipalPolicy and
//! SimulateCustomPolicy, answered by the same evaluator that decides real requests; and the
//! principals directory read back (`account_details`: GetAccountAuthorizationDetails; `oidc`:
//! its identity providers, ListOpenIDConnectProviders and GetOpenIDConnectProvider).

use std::sync::Arc;

pub mod account_details;
pub mod oidc;

use crate::audit::Draft;
use crate::auth::Principal;
use crate::authz::{request_context, Facts, Resolved};
use crate::error::ApiError;
use crate::ops::query::{QueryCall, QueryOperation};
use crate::ops::Scope;
use crate::policy::{self, Decision, Effect, Policy, PolicyGroup, PolicySet, PolicyType};
use crate::protocol::query::Form;
use crate::protocol::Service;

/// A simulation's input, validated: the policies compiled, the lists read.
#[derive(Debug)]
pub struct Input {
    /// SimulatePrincipalPolicy's user or role.
    policy_source_arn: Option<String>,
    /// SimulateCustomPolicy's simulated caller.
    caller_arn: Option<String>,
    action_names: Vec<String>,
    resource_arns: Vec<String>,
    policy_input: Vec<Arc<Policy>>,
    boundaries: Vec<Arc<Policy>>,
    resource_policy: Option<Arc<Policy>>,
    resource_owner: Option<String>,
    context_entries: Vec<(String, Vec<String>)>,
}

/// A simulation's answer.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    evaluation_results: Vec<EvaluationResult>,
    is_truncated: bool,
}

/// One (action, resource) pair's decision.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EvaluationResult {
    eval_action_name: String,
    eval_resource_name: String,
    eval_decision: &'static str,
    matched_statements: Vec<Statement>,
    missing_context_values: Vec<String>,
    organizations_decision_detail: Option<OrganizationsDecisionDetail>,
}

/// A statement that decided.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    source_policy_id: String,
    source_policy_type: &'static str,
}

/// Whether the organization's SCPs allowed.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrganizationsDecisionDetail {
    allowed_by_organizations: bool,
}

/// SimulatePrincipalPolicy: a user's or role's own policies (and its organization's SCPs).
#[derive(Debug)]
pub struct SimulatePrincipalPolicy;

/// SimulateCustomPolicy: the policies given.
#[derive(Debug)]
pub struct SimulateCustomPolicy;

impl QueryOperation for SimulatePrincipalPolicy {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "SimulatePrincipalPolicy";
    const SERVICE: Service = Service::Iam;
    const READ_ONLY: bool = true;

    fn parse(form: &Form) -> Result<Input, ApiError> {
        let input = parse(form)?;
        if input.policy_source_arn.is_none() {
            return Err(ApiError::Validation("1 validation error detected: Value null at 'policySourceArn' failed to satisfy constraint: Member must not be null".into()));
        }
        Ok(input)
    }

    async fn handle(
        call: &QueryCall<'_>,
        input: Input,
        draft: &mut Draft,
    ) -> Result<Output, ApiError> {
        simulate(call, input, draft, true)
    }
}

impl QueryOperation for SimulateCustomPolicy {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "SimulateCustomPolicy";
    const SERVICE: Service = Service::Iam;
    const READ_ONLY: bool = true;

    fn parse(form: &Form) -> Result<Input, ApiError> {
        parse(form)
    }

    async fn handle(
        call: &QueryCall<'_>,
        input: Input,
        draft: &mut Draft,
    ) -> Result<Output, ApiError> {
        simulate(call, input, draft, false)
    }
}

fn parse(form: &Form) -> Result<Input, ApiError> {
    let action_names: Vec<String> = list_of(form, "ActionNames")
        .into_iter()
        .map(str::to_owned)
        .collect();
    if action_names.is_empty() {
        return Err(ApiError::Validation(
            "1 validation error detected: Value null at 'actionNames' failed to satisfy constraint: Member must not be null".into(),
        ));
    }
    let resource_arns = match list_of(form, "ResourceArns") {
        r if r.is_empty() => vec!["*".to_owned()],
        r => r.into_iter().map(str::to_owned).collect(),
    };
    let resource_policy = match form.get("ResourcePolicy") {
        Some(text) => Some(Arc::new(
            Policy::parse(text, PolicyType::Resource)
                .map_err(|e| ApiError::MalformedPolicyDocument(e.aws_message()))?
                .with_label("ResourcePolicy"),
        )),
        None => None,
    };
    Ok(Input {
        policy_source_arn: form.get("PolicySourceArn").map(str::to_owned),
        caller_arn: form.get("CallerArn").map(str::to_owned),
        action_names,
        resource_arns,
        policy_input: input_policies(form, "PolicyInputList", PolicyType::Identity)?,
        boundaries: input_policies(
            form,
            "PermissionsBoundaryPolicyInputList",
            PolicyType::PermissionsBoundary,
        )?,
        resource_policy,
        resource_owner: form.get("ResourceOwner").map(str::to_owned),
        context_entries: context_entries(form),
    })
}

fn list_of<'f>(form: &'f Form, name: &str) -> Vec<&'f str> {
    form.members(name)
}

/// Policies passed inline (`PolicyInputList.member.N`), compiled as `kind`.
fn input_policies(form: &Form, name: &str, kind: PolicyType) -> Result<Vec<Arc<Policy>>, ApiError> {
    list_of(form, name)
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            Policy::parse(text, kind)
                .map(|p| Arc::new(p.with_label(&format!("{name}.{}", i + 1))))
                .map_err(|e| ApiError::MalformedPolicyDocument(e.aws_message()))
        })
        .collect()
}

/// `ContextEntries.member.N.{ContextKeyName, ContextKeyValues.member.M}`.
fn context_entries(form: &Form) -> Vec<(String, Vec<String>)> {
    let mut out = vec![];
    for i in 1..=100 {
        let Some(name) = form.get(&format!("ContextEntries.member.{i}.ContextKeyName")) else {
            break;
        };
        let values = form
            .members(&format!("ContextEntries.member.{i}.ContextKeyValues"))
            .into_iter()
            .map(str::to_owned)
            .collect();
        out.push((name.to_owned(), values));
    }
    out
}

fn decision_word(d: &Decision) -> &'static str {
    match d.effect {
        Effect::Allow => "allowed",
        Effect::ExplicitDeny => "explicitDeny",
        Effect::ImplicitDeny => "implicitDeny",
    }
}

fn source_type(t: PolicyType) -> &'static str {
    match t {
        PolicyType::Identity | PolicyType::Session => "IAM Policy",
        PolicyType::Resource => "Resource Policy",
        PolicyType::PermissionsBoundary => "IAM Policy",
        PolicyType::Scp => "Service Control Policy",
        PolicyType::Rcp => "Resource Control Policy",
    }
}

fn simulate(
    call: &QueryCall<'_>,
    input: Input,
    draft: &mut Draft,
    principal_mode: bool,
) -> Result<Output, ApiError> {
    let caller = call.caller()?;
    let pipeline = call.pipeline;
    let dir = pipeline.identities.get();
    let scope = Scope {
        account: caller.account_id.clone(),
        region: call.region.clone(),
    };

    // The caller needs permission to simulate, decided before anything is looked up (an
    // unknown user or role answers NoSuchEntity only to a caller allowed to ask), on the
    // simulated principal's ARN in its own account: another account's principals are not
    // the caller's to simulate.
    let source = input.policy_source_arn.as_deref().unwrap_or_default();
    let (action_name, resource_arn, resource_account) = if principal_mode {
        let account = source.split(':').nth(4).unwrap_or_default().to_owned();
        ("iam:SimulatePrincipalPolicy", source.to_owned(), account)
    } else {
        (
            "iam:SimulateCustomPolicy",
            "*".to_owned(),
            scope.account.clone(),
        )
    };
    let resolved = Resolved::on(resource_arn.clone(), resource_account);
    draft.resource_arn = Some(resource_arn);
    // The simulated user's or role's tags (`iam:ResourceTag/k`, `aws:ResourceTag/k`).
    let tags = if principal_mode {
        let account = source.split(':').nth(4).unwrap_or_default();
        let name = source.rsplit('/').next().unwrap_or_default();
        match dir.user(account, name).filter(|u| u.arn == source) {
            Some(u) => crate::identity::resource_tag_keys(&u.tags),
            None => dir
                .role_by_arn(source)
                .map(|r| crate::identity::resource_tag_keys(&r.tags))
                .unwrap_or_default(),
        }
    } else {
        Vec::new()
    };
    pipeline
        .authz
        .authorize(caller, &scope, action_name, &resolved, &tags, draft)?;

    // Who is simulated, with which policies.
    let mut set = PolicySet::default();
    let extra = input.policy_input;
    let boundaries = input.boundaries;
    let subject: Principal = if principal_mode {
        let account = source.split(':').nth(4).unwrap_or_default().to_owned();
        let name = source.rsplit('/').next().unwrap_or_default();
        let (subject, mut policies, boundary) = if source.contains(":user/") {
            // The whole ARN must be the user's (a path is part of what was authorized).
            let u = dir
                .user(&account, name)
                .filter(|u| u.arn == source)
                .ok_or_else(|| {
                    ApiError::NoSuchEntity(format!("The user with name {name} cannot be found."))
                })?;
            (
                Principal::user(
                    &u.account,
                    &u.arn,
                    &u.user_id,
                    &u.name,
                    u.tags.clone(),
                    "simulation",
                ),
                u.identity_group.policies().to_vec(),
                u.boundary.as_ref().and_then(|b| b.compiled.clone()),
            )
        } else if source.contains(":role/") {
            let r = dir.role_by_arn(source).ok_or_else(|| {
                ApiError::NoSuchEntity(format!("The role with name {name} cannot be found."))
            })?;
            let mut p = Principal::root(&r.account, "simulation");
            p.kind = crate::auth::PrincipalKind::AssumedRole;
            p.arn = format!(
                "arn:aws:sts::{}:assumed-role/{}/simulation",
                r.account, r.name
            );
            p.user_id = format!("{}:simulation", r.role_id);
            p.role_arn = Some(r.arn.clone());
            p.tags = r.tags.clone();
            // A role acts only through a session of it, as STS issues them here: without
            // MFA (`aws:MultiFactorAuthPresent` false), issued now (`aws:TokenIssueTime`; a
            // caller simulating an older session gives its time in `ContextEntries`).
            let now = pipeline.ctx.now_ms();
            p.session = Some(crate::auth::SessionContext {
                issuer: "sts.amazonaws.com".to_owned(),
                created_ms: now,
                expires_ms: now.saturating_add(3_600_000),
                policy: None,
            });
            (
                p,
                r.identity_group.policies().to_vec(),
                r.boundary.as_ref().and_then(|b| b.compiled.clone()),
            )
        } else {
            return Err(ApiError::InvalidParameter(
                "PolicySourceArn must be the ARN of a user or a role.".into(),
            ));
        };
        policies.extend(extra);
        set.identity = Arc::new(PolicyGroup::new(policies));
        set.boundary = boundaries.into_iter().next().or(boundary);
        subject
    } else {
        let simulated = input.caller_arn.as_deref();
        // The simulated caller's own facts (tags) come from the directory only for a user of
        // the caller's account whom the caller may simulate as a principal
        // (`iam:SimulatePrincipalPolicy`), which would show the same; otherwise the caller
        // is simulated by its ARN alone, in the caller's account, without tags.
        let may_read = |c: &str| {
            let on_user = Resolved::on(c.to_owned(), scope.account.clone());
            let mut scratch = draft.clone();
            pipeline
                .authz
                .authorize(
                    caller,
                    &scope,
                    "iam:SimulatePrincipalPolicy",
                    &on_user,
                    &[],
                    &mut scratch,
                )
                .is_ok()
        };
        let subject = match simulated.and_then(|c| {
            let account = c.split(':').nth(4)?;
            if account != scope.account {
                return None;
            }
            dir.user(account, c.rsplit('/').next()?)
                .filter(|u| u.arn == c && may_read(c))
        }) {
            Some(u) => Principal::user(
                &u.account,
                &u.arn,
                &u.user_id,
                &u.name,
                u.tags.clone(),
                "simulation",
            ),
            None => {
                let mut p = Principal::user(
                    &scope.account,
                    &format!("arn:aws:iam::{}:user/simulated", scope.account),
                    "AIDASIMULATED",
                    "simulated",
                    Default::default(),
                    "simulation",
                );
                if let Some(c) = simulated {
                    p.arn = c.to_owned();
                }
                p
            }
        };
        set.identity = Arc::new(PolicyGroup::new(extra));
        set.boundary = boundaries.into_iter().next();
        subject
    };
    // The principal's organization SCPs take part, as on AWS (OrganizationsDecisionDetail).
    if principal_mode && dir.management_account.as_deref() != Some(subject.account_id.as_str()) {
        set.scp = dir.scp_groups.get(&subject.account_id).cloned();
    }
    set.resource = input.resource_policy;

    let entries = &input.context_entries;
    let mut results = Vec::new();
    for action in &input.action_names {
        for resource in &input.resource_arns {
            let owner = input
                .resource_owner
                .as_deref()
                .and_then(|o| o.split(':').nth(4))
                .map(str::to_owned)
                .or_else(|| {
                    resource
                        .split(':')
                        .nth(4)
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| subject.account_id.clone());
            // The context a real request of the subject would have (region, time,
            // organization, session keys), then the keys the simulation gives; what a
            // simulation cannot know (source address, transport) only from those.
            let facts = Facts {
                region: scope.region.clone(),
                now_ms: pipeline.ctx.now_ms(),
                source_ip: None,
                secure_transport: None,
            };
            let mut ctx = request_context(&dir, &subject, &facts, action, resource, &owner);
            for (k, v) in entries {
                ctx = ctx.with(k, v.iter().map(String::as_str));
            }
            let d = policy::authorize(&ctx, &set);
            let missing_context_values = policy::missing_context_keys(&ctx, &set);
            let organizations_decision_detail = set.scp.is_some().then(|| {
                let by_scp = d.decided_by() == Some(PolicyType::Scp) && !d.is_allowed();
                OrganizationsDecisionDetail {
                    allowed_by_organizations: !by_scp,
                }
            });
            results.push(EvaluationResult {
                eval_action_name: action.clone(),
                eval_resource_name: resource.clone(),
                eval_decision: decision_word(&d),
                matched_statements: d
                    .deciding
                    .iter()
                    .map(|m| Statement {
                        source_policy_id: m.policy_id.to_string(),
                        source_policy_type: source_type(m.policy_type),
                    })
                    .collect(),
                missing_context_values,
                organizations_decision_detail,
            });
        }
    }
    Ok(Output {
        evaluation_results: results,
        is_truncated: false,
    })
}
