//! ListAccounts: the organization's accounts.

use serde::{Deserialize, Serialize};

use super::organization;
use crate::audit::Draft;
use crate::error::ApiError;
use crate::ops::directory::{max_results, page, DirectoryCall, DirectoryOperation};

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
