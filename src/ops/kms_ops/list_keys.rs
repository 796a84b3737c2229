//! ListKeys: every key of the account and region, oldest first.

use serde::{Deserialize, Serialize};

use super::paging;
use crate::error::ApiError;
use crate::ops::{Authorized, Ctx, Operation, Target, Targeted};
use crate::store::rows::KmsKeyRow;

/// Page size when `Limit` is absent.
const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
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
    pub key_id: String,
    pub key_arn: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub keys: Vec<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    pub truncated: bool,
}

#[derive(Debug)]
pub struct ListKeys;

/// A key's place in the listing: creation time, then key id.
fn sort_key(k: &KmsKeyRow) -> (i64, String) {
    (k.created_at, k.key_id.clone())
}

fn encode_cursor((at, id): &(i64, String)) -> String {
    paging::encode_marker("ListKeys", &format!("{at}:{id}"))
}

fn decode_cursor(marker: &str) -> Result<(i64, String), ApiError> {
    let cursor = paging::decode_marker("ListKeys", marker)?;
    let (at, id) = cursor.split_once(':').ok_or_else(paging::invalid_marker)?;
    let at = at.parse::<i64>().map_err(|_| paging::invalid_marker())?;
    Ok((at, id.to_owned()))
}

impl Operation for ListKeys {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "ListKeys";
    const ACTION: &'static str = "kms:ListKeys";
    const READ_ONLY: bool = true;

    fn validate(input: &Input) -> Result<(), ApiError> {
        paging::check_limit(input.limit)?;
        paging::check_marker(input.marker.as_deref())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let after = input.marker.as_deref().map(decode_cursor).transpose()?;
        let limit = paging::page_size(input.limit, DEFAULT_LIMIT, 1000);
        let scope = auth.scope.clone();
        let mut keys = ctx
            .store
            .read(move |tx| Ok(tx.kms_keys(&scope.account, &scope.region)?))
            .await?;
        keys.sort_by_key(sort_key);
        let (keys, truncated) = paging::page(keys, sort_key, after.as_ref(), limit);
        let next_marker = if truncated {
            keys.last().map(|k| encode_cursor(&sort_key(k)))
        } else {
            None
        };
        Ok(Output {
            keys: keys
                .into_iter()
                .map(|k| Entry {
                    key_id: k.key_id,
                    key_arn: k.arn,
                })
                .collect(),
            next_marker,
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = (
            1_700_000_000_123,
            "1234abcd-12ab-34cd-56ef-1234567890ab".to_owned(),
        );
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        for garbage in ["nocolon", "x:y"] {
            assert_eq!(
                decode_cursor(&paging::encode_marker("ListKeys", garbage))
                    .unwrap_err()
                    .code(),
                "InvalidMarkerException",
                "{garbage}"
            );
        }
    }
}
