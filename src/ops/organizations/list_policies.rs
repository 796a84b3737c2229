//! ListPolicies: the organization's policies of one type.

use serde::{Deserialize, Serialize};

use super::{organization, summary, PolicySummary, POLICY_TYPES, SCP};
use crate::audit::Draft;
use crate::error::ApiError;
use crate::ops::directory::{max_results, page, DirectoryCall, DirectoryOperation};

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

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPoliciesOutput {
    policies: Vec<PolicySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
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
        let filter = crate::ops::require_ref("filter", &input.filter)?;
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
        // `organizations:PolicyType`: the type listed (`Filter`).
        let keys = [(
            "organizations:PolicyType".to_owned(),
            input.filter.iter().cloned().collect(),
        )];
        call.authorize_with("organizations:ListPolicies", "*", &keys, draft)?;
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
