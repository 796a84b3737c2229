//! IAM's policy simulator on the same endpoint (Query protocol): SimulatePrincipalPolicy and
//! SimulateCustomPolicy, answered by the same evaluator that decides real requests.

use std::sync::Arc;

use crate::audit::Draft;
use crate::auth::Principal;
use crate::authz::{request_context, Facts, Resolved};
use crate::error::ApiError;
use crate::ops::sts::QueryCall;
use crate::ops::Scope;
use crate::policy::{self, Decision, Effect, Policy, PolicyGroup, PolicySet, PolicyType};
use crate::protocol::query::{xml_escape, Form};
use crate::protocol::Service;

/// Pick the IAM action and run it.
pub fn dispatch(
    action: &str,
    call: &QueryCall<'_>,
    draft: &mut Draft,
) -> Result<Vec<u8>, ApiError> {
    draft.read_only = Some(true);
    match action {
        "SimulatePrincipalPolicy" => simulate(call, draft, true),
        "SimulateCustomPolicy" => simulate(call, draft, false),
        other => Err(crate::pipeline::not_built(other)),
    }
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
    draft: &mut Draft,
    principal_mode: bool,
) -> Result<Vec<u8>, ApiError> {
    let form = call.form;
    let pipeline = call.pipeline;
    let dir = pipeline.identities.get();
    let actions = list_of(form, "ActionNames");
    if actions.is_empty() {
        return Err(ApiError::Validation(
            "1 validation error detected: Value null at 'actionNames' failed to satisfy constraint: Member must not be null".into(),
        ));
    }
    let resources: Vec<&str> = {
        let r = list_of(form, "ResourceArns");
        if r.is_empty() {
            vec!["*"]
        } else {
            r
        }
    };
    let scope = Scope {
        account: call.principal.account_id.clone(),
        region: call.region.clone(),
    };

    // The caller needs permission to simulate, decided before anything is looked up (an
    // unknown user or role answers NoSuchEntity only to a caller allowed to ask), on the
    // simulated principal's ARN in its own account: another account's principals are not
    // the caller's to simulate.
    let (action_name, resource_arn, resource_account) = if principal_mode {
        let source = form.get("PolicySourceArn").ok_or_else(|| {
            ApiError::Validation("1 validation error detected: Value null at 'policySourceArn' failed to satisfy constraint: Member must not be null".into())
        })?;
        let account = source.split(':').nth(4).unwrap_or_default().to_owned();
        ("iam:SimulatePrincipalPolicy", source.to_owned(), account)
    } else {
        (
            "iam:SimulateCustomPolicy",
            "*".to_owned(),
            scope.account.clone(),
        )
    };
    let resolved = Resolved {
        arn: resource_arn.clone(),
        account: resource_account,
        secret: None,
        keys: Vec::new(),
        resource_policy: None,
        compiled_policy: None,
        resource_required: false,
        shown: None,
    };
    draft.resource_arn = Some(resource_arn);
    pipeline
        .authz
        .authorize(&call.principal, &scope, action_name, &resolved, &[], draft)?;

    // Who is simulated, with which policies.
    let mut set = PolicySet::default();
    let extra = input_policies(form, "PolicyInputList", PolicyType::Identity)?;
    let boundaries = input_policies(
        form,
        "PermissionsBoundaryPolicyInputList",
        PolicyType::PermissionsBoundary,
    )?;
    let subject: Principal = if principal_mode {
        let source = form.get("PolicySourceArn").ok_or_else(|| {
            ApiError::Validation("1 validation error detected: Value null at 'policySourceArn' failed to satisfy constraint: Member must not be null".into())
        })?;
        let account = source.split(':').nth(4).unwrap_or_default().to_owned();
        let name = source.rsplit('/').next().unwrap_or_default();
        let (subject, mut policies, boundary) = if source.contains(":user/") {
            let u = dir.user(&account, name).ok_or_else(|| {
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
        let caller = form.get("CallerArn");
        let subject = match caller.and_then(|c| {
            let account = c.split(':').nth(4)?;
            dir.user(account, c.rsplit('/').next()?)
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
                if let Some(c) = caller {
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
    if let Some(text) = form.get("ResourcePolicy") {
        set.resource = Some(Arc::new(
            Policy::parse(text, PolicyType::Resource)
                .map_err(|e| ApiError::MalformedPolicyDocument(e.aws_message()))?
                .with_label("ResourcePolicy"),
        ));
    }

    let entries = context_entries(form);
    let mut members = String::new();
    for action in &actions {
        for resource in &resources {
            let owner = form
                .get("ResourceOwner")
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
            for (k, v) in &entries {
                ctx = ctx.with(k, v.iter().map(String::as_str));
            }
            let d = policy::authorize(&ctx, &set);
            let org = if set.scp.is_some() {
                let by_scp = d.decided_by() == Some(PolicyType::Scp) && !d.is_allowed();
                format!(
                    "        <OrganizationsDecisionDetail>\n          <AllowedByOrganizations>{}</AllowedByOrganizations>\n        </OrganizationsDecisionDetail>\n",
                    !by_scp
                )
            } else {
                String::new()
            };
            let mut matched = String::new();
            for m in &d.deciding {
                matched.push_str(&format!(
                    "          <member>\n            <SourcePolicyId>{}</SourcePolicyId>\n            <SourcePolicyType>{}</SourcePolicyType>\n          </member>\n",
                    xml_escape(&m.policy_id),
                    source_type(m.policy_type)
                ));
            }
            members.push_str(&format!(
                "      <member>\n        <EvalActionName>{}</EvalActionName>\n        <EvalResourceName>{}</EvalResourceName>\n        <EvalDecision>{}</EvalDecision>\n        <MatchedStatements>\n{matched}        </MatchedStatements>\n        <MissingContextValues/>\n{org}      </member>\n",
                xml_escape(action),
                xml_escape(resource),
                decision_word(&d),
            ));
        }
    }
    let op = if principal_mode {
        "SimulatePrincipalPolicy"
    } else {
        "SimulateCustomPolicy"
    };
    let result = format!(
        "    <IsTruncated>false</IsTruncated>\n    <EvaluationResults>\n{members}    </EvaluationResults>\n"
    );
    Ok(crate::protocol::query::response(
        Service::Iam.xml_namespace(),
        op,
        &result,
        call.request_id,
    ))
}
