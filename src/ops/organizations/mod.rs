//! AWS Organizations' reads (`AWSOrganizationsV20161128.*`) of the organization the principals
//! directory declares (`organization/organization.json` and `organization/scps/`):
//! ListAccounts, ListPolicies and DescribePolicy for service control policies.
//!
//! As on AWS, the caller's IAM policies decide first (`organizations:<Operation>`); then an
//! account in no organization gets `AWSOrganizationsNotInUseException`, and a member account
//! other than the management account `AccessDeniedException` (these reads are the management
//! account's; this server has no delegated administrators). An SCP's id is its file name, the
//! last element of its ARN, as the policy evaluator and the simulator name it.

pub mod describe_policy;
pub mod list_accounts;
pub mod list_policies;

use serde::Serialize;

use crate::error::ApiError;
use crate::identity::Directory;

pub(crate) const SCP: &str = "SERVICE_CONTROL_POLICY";

/// The policy types of Organizations' model (`PolicyType`, botocore's 2016-11-28 model).
pub(crate) const POLICY_TYPES: &[&str] = &[
    "SERVICE_CONTROL_POLICY",
    "RESOURCE_CONTROL_POLICY",
    "TAG_POLICY",
    "BACKUP_POLICY",
    "AISERVICES_OPT_OUT_POLICY",
    "CHATBOT_POLICY",
    "DECLARATIVE_POLICY_EC2",
    "SECURITYHUB_POLICY",
    "SECURITYHUB_CSPM_POLICY",
    "INSPECTOR_POLICY",
    "UPGRADE_ROLLOUT_POLICY",
    "BEDROCK_POLICY",
    "S3_POLICY",
    "NETWORK_SECURITY_DIRECTOR_POLICY",
    "GUARDDUTY_POLICY",
];

/// The organization in force and its management account, for a caller of `account`: the
/// checks AWS makes after the IAM decision.
pub(crate) fn organization<'d>(
    dir: &'d Directory,
    account: &str,
) -> Result<(&'d str, &'d str), ApiError> {
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

/// The summary of the SCP `name` (its id), whose ARN is `arn`.
pub(crate) fn summary(name: &str, arn: &str) -> PolicySummary {
    PolicySummary {
        id: name.to_owned(),
        arn: arn.to_owned(),
        name: name.to_owned(),
        kind: SCP,
        aws_managed: false,
    }
}
