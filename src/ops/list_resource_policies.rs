//! ListResourcePolicies: the names of the resource-based policies attached to a secret.
//!
//! A secret here has at most one resource policy, the one PutResourcePolicy writes: AWS calls
//! it `default` ("Secrets Manager lists `default` first, followed by any other policies in
//! alphabetical order ... You can modify only the `default` policy"). AWS's other policies
//! are system-managed ones such as `cross-account-replication`, which AWS attaches to a
//! cross-account replica; CreateSecret refuses `CrossAccountPrimaryARN` here, so no secret has
//! one. The policy's text is GetResourcePolicy's to give; this answers names only.

use serde::{Deserialize, Serialize};

use super::list_secrets::validate_paging;
use super::values::{self, Cursor, SortValue};
use super::{Authorized, Ctx, NamesTarget, Operation, SecretId};
use crate::error::ApiError;

/// Default and largest page (`MaxResultsType`).
pub const MAX_RESULTS: i64 = 100;

/// The name of the policy PutResourcePolicy writes.
pub const DEFAULT_POLICY: &str = "default";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

impl NamesTarget for Input {
    type By = SecretId;
    fn target_id(&self) -> Option<&str> {
        self.secret_id.as_deref()
    }
}

/// One policy's entry (`ResourcePolicySummary`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Summary {
    pub policy_name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub resource_policies: Vec<Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug)]
pub struct ListResourcePolicies;

/// `default` first, then the others by name.
fn cursor(name: &str) -> Cursor {
    Cursor {
        value: SortValue::Num(i64::from(name != DEFAULT_POLICY)),
        id: name.to_owned(),
    }
}

impl Operation for ListResourcePolicies {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "ListResourcePolicies";
    const ACTION: &'static str = "secretsmanager:ListResourcePolicies";
    const READ_ONLY: bool = true;

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        validate_paging(input.max_results, input.next_token.as_deref(), MAX_RESULTS)
    }

    async fn handle(_ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let secret = auth.secret()?;
        let mode = "ListResourcePolicies";
        let after = input
            .next_token
            .as_deref()
            .map(|t| values::decode_next_token(mode, t))
            .transpose()?;
        let max = usize::try_from(input.max_results.unwrap_or(MAX_RESULTS))
            .map_err(ApiError::internal)?;
        let names: Vec<String> = secret
            .resource_policy
            .as_ref()
            .map(|_| DEFAULT_POLICY.to_owned())
            .into_iter()
            .collect();
        let (page, next) =
            values::keyset_page(names, |n: &String| cursor(n), false, after.as_ref(), max);
        Ok(Output {
            resource_policies: page
                .into_iter()
                .map(|policy_name| Summary { policy_name })
                .collect(),
            next_token: next.map(|c| values::encode_next_token(mode, &c)),
        })
    }
}
