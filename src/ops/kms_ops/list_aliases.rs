//! ListAliases: the aliases of the account and region (or of one key), by name.

use serde::{Deserialize, Serialize};

use super::{common, paging};
use crate::error::ApiError;
use crate::ops::{epoch_seconds, Authorized, Ctx, Operation, Target, Targeted};
use crate::store::rows::KmsAliasRow;

/// Page size when `Limit` is absent, and the most one page holds (KMS's documented values).
const DEFAULT_LIMIT: usize = 50;
const MAX_PAGE: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub key_id: Option<String>,
    pub limit: Option<i64>,
    pub marker: Option<String>,
}

impl Targeted for Input {
    fn target(&self) -> Target {
        Target::Any
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    pub alias_name: String,
    pub alias_arn: String,
    pub target_key_id: String,
    pub creation_date: f64,
    pub last_updated_date: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub aliases: Vec<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    pub truncated: bool,
}

#[derive(Debug)]
pub struct ListAliases;

fn sort_key(a: &KmsAliasRow) -> String {
    a.alias_name.clone()
}

impl Operation for ListAliases {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "ListAliases";
    const ACTION: &'static str = "kms:ListAliases";
    const READ_ONLY: bool = true;

    fn validate(input: &Input) -> Result<(), ApiError> {
        if input.key_id.is_some() {
            common::check_key_id("keyId", input.key_id.as_ref())?;
        }
        paging::check_limit(input.limit)?;
        paging::check_marker(input.marker.as_deref())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let after = input
            .marker
            .as_deref()
            .map(|m| paging::decode_marker("ListAliases", m))
            .transpose()?;
        let limit = paging::page_size(input.limit, DEFAULT_LIMIT, MAX_PAGE);
        let scope = auth.scope.clone();
        let key_id = input.key_id;
        let s = scope.clone();
        let mut aliases = ctx
            .store
            .read(move |tx| {
                let only = match &key_id {
                    Some(id) => Some(common::find_by_key_id(tx, &s, id)?.key_id),
                    None => None,
                };
                let mut all = tx.kms_aliases(&s.account, &s.region)?;
                if let Some(k) = only {
                    all.retain(|a| a.target_key_id == k);
                }
                Ok(all)
            })
            .await?;
        aliases.sort_by_key(sort_key);
        let (aliases, truncated) = paging::page(aliases, sort_key, after.as_ref(), limit);
        let next_marker = if truncated {
            aliases
                .last()
                .map(|a| paging::encode_marker("ListAliases", &a.alias_name))
        } else {
            None
        };
        Ok(Output {
            aliases: aliases
                .into_iter()
                .map(|a| Entry {
                    alias_arn: common::alias_arn(&scope, &a.alias_name),
                    alias_name: a.alias_name,
                    target_key_id: a.target_key_id,
                    creation_date: epoch_seconds(a.created_at),
                    last_updated_date: epoch_seconds(a.last_updated_at),
                })
                .collect(),
            next_marker,
            truncated,
        })
    }
}
