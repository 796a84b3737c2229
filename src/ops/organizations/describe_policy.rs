//! DescribePolicy: an SCP and its document.

use serde::{Deserialize, Serialize};

use super::{organization, summary, PolicySummary, SCP};
use crate::audit::Draft;
use crate::error::ApiError;
use crate::ops::directory::{DirectoryCall, DirectoryOperation};

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
        let id = crate::ops::require_ref("policyId", &input.policy_id)?;
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
        // `organizations:PolicyType`: the policies served are SCPs.
        let keys = [("organizations:PolicyType".to_owned(), vec![SCP.to_owned()])];
        call.authorize_with("organizations:DescribePolicy", &arn, &keys, draft)?;
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
