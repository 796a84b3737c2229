//! AWS Organizations' reads (`AWSOrganizationsV20161128.*`) of the organization the principals
//! directory declares (`organization/organization.json` and `organization/scps/`):
//! ListAccounts, ListPolicies and DescribePolicy for service control policies.
//!
//! As on AWS, the caller's IAM policies decide first (`organizations:<Operation>`); then an
//! account in no organization gets `AWSOrganizationsNotInUseException`, and a member account
//! other than the management account `AccessDeniedException` (these reads are the management
//! account's; this server has no delegated administrators). An SCP's id is its file name, the
//! last element of its ARN, as the policy evaluator and the simulator name it.

use serde::{Deserialize, Serialize};

use super::directory::{max_results, page, DirectoryCall, DirectoryOperation};
use crate::audit::Draft;
use crate::error::ApiError;
use crate::identity::Directory;

const SCP: &str = "SERVICE_CONTROL_POLICY";

/// The policy types of Organizations' model (`PolicyType`).
const POLICY_TYPES: &[&str] = &[
    "SERVICE_CONTROL_POLICY",
    "RESOURCE_CONTROL_POLICY",
    "TAG_POLICY",
    "BACKUP_POLICY",
    "AISERVICES_OPT_OUT_POLICY",
    "CHATBOT_POLICY",
    "DECLARATIVE_POLICY_EC2",
    "SECURITYHUB_POLICY",
];

/// The organization in force and its management account, for a caller of `account`: the
/// checks AWS makes after the IAM decision.
fn organization<'d>(dir: &'d Directory, account: &str) -> Result<(&'d str, &'d str), ApiError> {
    let (Some(org), Some(management)) = (&dir.org_id, &dir.management_account) else {
        return Err(not_in_use());
    };
    if !dir.scps.contains_key(account) {
        return Err(not_in_use());
    }
    if account != management {
        return Err(ApiError::AccessDenied(
            "You don't have permissions to access this resource.".into(),
        ));
    }
    Ok((org, management))
}

fn not_in_use() -> ApiError {
    ApiError::OrganizationsNotInUse("Your account is not a member of an organization.".into())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListInput {
    #[serde(default)]
    pub next_token: Option<String>,
    #[serde(default)]
    pub max_results: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    id: String,
    arn: String,
    name: String,
    status: &'static str,
    state: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    paths: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAccountsOutput {
    accounts: Vec<Account>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

/// ListAccounts: the organization's accounts (the management account and every account the
/// tree places), named by their alias when the directory declares one.
#[derive(Debug)]
pub struct ListAccounts;

impl DirectoryOperation for ListAccounts {
    type Input = ListInput;
    type Output = ListAccountsOutput;
    const NAME: &'static str = "ListAccounts";
    const READ_ONLY: bool = true;

    fn validate(input: &ListInput) -> Result<(), ApiError> {
        max_results(input.max_results).map(|_| ())
    }

    async fn handle(
        call: &DirectoryCall<'_>,
        input: ListInput,
        draft: &mut Draft,
    ) -> Result<ListAccountsOutput, ApiError> {
        call.authorize("organizations:ListAccounts", "*", draft)?;
        let dir = call.pipeline.identities.get();
        let (org, management) = organization(&dir, &call.scope.account)?;
        let all: Vec<Account> = dir
            .scps
            .keys()
            .map(|id| Account {
                id: id.clone(),
                arn: format!("arn:aws:organizations::{management}:account/{org}/{id}"),
                name: dir
                    .accounts
                    .get(id)
                    .and_then(|a| a.alias.clone())
                    .unwrap_or_else(|| id.clone()),
                status: "ACTIVE",
                state: "ACTIVE",
                paths: dir
                    .org_paths
                    .get(id)
                    .map(|p| vec![format!("{p}{id}/")])
                    .unwrap_or_default(),
            })
            .collect();
        let (accounts, next_token) = page(
            &all,
            input.next_token.as_deref(),
            max_results(input.max_results)?,
        )?;
        Ok(ListAccountsOutput {
            accounts,
            next_token,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPoliciesInput {
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub next_token: Option<String>,
    #[serde(default)]
    pub max_results: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicySummary {
    id: String,
    arn: String,
    name: String,
    #[serde(rename = "Type")]
    kind: &'static str,
    aws_managed: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPoliciesOutput {
    policies: Vec<PolicySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

fn summary(name: &str, arn: &str) -> PolicySummary {
    PolicySummary {
        id: name.to_owned(),
        arn: arn.to_owned(),
        name: name.to_owned(),
        kind: SCP,
        aws_managed: false,
    }
}

/// ListPolicies: the organization's policies of one type; every declared SCP (attached or
/// not) for `SERVICE_CONTROL_POLICY`, none for the other types.
#[derive(Debug)]
pub struct ListPolicies;

impl DirectoryOperation for ListPolicies {
    type Input = ListPoliciesInput;
    type Output = ListPoliciesOutput;
    const NAME: &'static str = "ListPolicies";
    const READ_ONLY: bool = true;

    fn validate(input: &ListPoliciesInput) -> Result<(), ApiError> {
        let filter = super::require_ref("filter", &input.filter)?;
        if !POLICY_TYPES.contains(&filter.as_str()) {
            return Err(ApiError::Validation(format!(
                "1 validation error detected: Value '{}' at 'filter' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                filter.chars().take(64).collect::<String>(),
                POLICY_TYPES.join(", ")
            )));
        }
        max_results(input.max_results).map(|_| ())
    }

    async fn handle(
        call: &DirectoryCall<'_>,
        input: ListPoliciesInput,
        draft: &mut Draft,
    ) -> Result<ListPoliciesOutput, ApiError> {
        call.authorize("organizations:ListPolicies", "*", draft)?;
        let dir = call.pipeline.identities.get();
        organization(&dir, &call.scope.account)?;
        let all: Vec<PolicySummary> = if input.filter.as_deref() == Some(SCP) {
            dir.scp_policies
                .iter()
                .map(|(name, p)| summary(name, &p.id))
                .collect()
        } else {
            Vec::new()
        };
        let (policies, next_token) = page(
            &all,
            input.next_token.as_deref(),
            max_results(input.max_results)?,
        )?;
        Ok(ListPoliciesOutput {
            policies,
            next_token,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribePolicyInput {
    #[serde(default)]
    pub policy_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Policy {
    policy_summary: PolicySummary,
    /// The policy document, as JSON text.
    content: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribePolicyOutput {
    policy: Policy,
}

/// DescribePolicy: an SCP and its document.
#[derive(Debug)]
pub struct DescribePolicy;

impl DirectoryOperation for DescribePolicy {
    type Input = DescribePolicyInput;
    type Output = DescribePolicyOutput;
    const NAME: &'static str = "DescribePolicy";
    const READ_ONLY: bool = true;

    fn validate(input: &DescribePolicyInput) -> Result<(), ApiError> {
        let id = super::require_ref("policyId", &input.policy_id)?;
        crate::secrets::check_len("policyId", id.chars().count(), 1, 130)
    }

    async fn handle(
        call: &DirectoryCall<'_>,
        input: DescribePolicyInput,
        draft: &mut Draft,
    ) -> Result<DescribePolicyOutput, ApiError> {
        let id = input.policy_id.unwrap_or_default();
        let dir = call.pipeline.identities.get();
        // Decided on the policy's ARN (the one it would have, when it does not exist).
        let arn = match (&dir.org_id, &dir.management_account) {
            (Some(org), Some(m)) => {
                format!("arn:aws:organizations::{m}:policy/{org}/service_control_policy/{id}")
            }
            _ => "*".to_owned(),
        };
        call.authorize("organizations:DescribePolicy", &arn, draft)?;
        organization(&dir, &call.scope.account)?;
        let p = dir.scp_policies.get(&id).ok_or_else(|| {
            ApiError::PolicyNotFound(
                "We can't find a policy with the PolicyId that you specified.".into(),
            )
        })?;
        Ok(DescribePolicyOutput {
            policy: Policy {
                policy_summary: summary(&id, &p.id),
                content: p.document.to_string(),
            },
        })
    }
}
