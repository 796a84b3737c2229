//! ListSecretVersionIds.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::list_secrets::validate_paging;
use super::values::{self, Cursor, SortValue};
use super::{epoch_seconds, Authorized, Ctx, NamesTarget, Operation, SecretId};
use crate::error::ApiError;

/// Default and largest page.
pub const MAX_RESULTS: i64 = 100;

/// What AWS lists in `KmsKeyIds` for a version under the AWS managed key.
const DEFAULT_KEY_LABEL: &str = "DefaultEncryptionKey";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub include_deprecated: Option<bool>,
}

impl NamesTarget for Input {
    type By = SecretId;
    fn target_id(&self) -> Option<&str> {
        self.secret_id.as_deref()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionEntry {
    pub version_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub version_stages: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<f64>,
    pub created_date: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kms_key_ids: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub versions: Vec<VersionEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
}

#[derive(Debug)]
pub struct ListSecretVersionIds;

impl Operation for ListSecretVersionIds {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "ListSecretVersionIds";
    const ACTION: &'static str = "secretsmanager:ListSecretVersionIds";
    const READ_ONLY: bool = true;

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        validate_paging(input.max_results, input.next_token.as_deref(), MAX_RESULTS)
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        // Allowed on a secret scheduled for deletion, like DescribeSecret.
        let secret = auth.secret()?.clone();
        // Newest first; the token is bound to the secret so it can't page another one.
        let mode = format!("ListSecretVersionIds/{}", secret.secret_id);
        let after = input
            .next_token
            .as_deref()
            .map(|t| values::decode_next_token(&mode, t))
            .transpose()?;
        let max = usize::try_from(input.max_results.unwrap_or(MAX_RESULTS))
            .map_err(ApiError::internal)?;
        let include_deprecated = input.include_deprecated.unwrap_or(false);
        ctx.store
            .read(move |tx| {
                let mut by_version: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for (stage, version) in tx.stages(&secret.secret_id)? {
                    by_version.entry(version).or_default().push(stage);
                }
                let versions: Vec<_> = tx
                    .versions(&secret.secret_id)?
                    .into_iter()
                    .filter(|v| include_deprecated || by_version.contains_key(&v.version_id))
                    .collect();
                let (page, next) = values::keyset_page(
                    versions,
                    |v| Cursor {
                        value: SortValue::Num(v.created_at),
                        id: v.version_id.clone(),
                    },
                    true,
                    after.as_ref(),
                    max,
                );
                let mut key_names: HashMap<String, String> = HashMap::new();
                let mut entries = Vec::with_capacity(page.len());
                for v in page {
                    let kms_key_ids = match &v.kms_key_id {
                        None => Vec::new(),
                        Some(id) => {
                            let name = match key_names.get(id) {
                                Some(n) => n.clone(),
                                None => {
                                    let n = match tx.kms_key(id)? {
                                        Some(k) if k.key_manager == "AWS" => {
                                            DEFAULT_KEY_LABEL.to_owned()
                                        }
                                        Some(k) => k.arn,
                                        None => id.clone(),
                                    };
                                    key_names.insert(id.clone(), n.clone());
                                    n
                                }
                            };
                            vec![name]
                        }
                    };
                    entries.push(VersionEntry {
                        version_stages: values::ordered_stages(
                            by_version.get(&v.version_id).cloned().unwrap_or_default(),
                        ),
                        last_accessed_date: v.last_accessed_at.map(epoch_seconds),
                        created_date: epoch_seconds(v.created_at),
                        kms_key_ids,
                        version_id: v.version_id,
                    });
                }
                Ok(Output {
                    versions: entries,
                    next_token: next.map(|c| values::encode_next_token(&mode, &c)),
                    arn: secret.arn,
                    name: secret.name,
                })
            })
            .await
    }
}
