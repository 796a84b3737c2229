//! DescribeKey.

use serde::{Deserialize, Serialize};

use super::common::{self, KeyId, KeyMetadata, KeyRef};
use crate::error::ApiError;
use crate::kms::DEFAULT_ALIAS;
use crate::ops::{Authorized, Ctx, NamesTarget, Operation};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub key_id: Option<String>,
    pub grant_tokens: Option<Vec<String>>,
}

impl NamesTarget for Input {
    type By = KeyId;
    fn target_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub key_metadata: KeyMetadata,
}

#[derive(Debug)]
pub struct DescribeKey;

impl Operation for DescribeKey {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "DescribeKey";
    const ACTION: &'static str = "kms:DescribeKey";
    const READ_ONLY: bool = true;

    /// `kms:RequestAlias`: the alias name the request identifies the key by (an alias name or
    /// alias ARN), absent when it gives a key id or key ARN.
    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        let Some(id) = input.key_id.as_deref() else {
            return Vec::new();
        };
        let alias = if id.starts_with("arn:") {
            id.splitn(6, ':').nth(5).filter(|r| r.starts_with("alias/"))
        } else {
            Some(id).filter(|r| r.starts_with("alias/"))
        };
        alias
            .map(|a| ("kms:RequestAlias".to_owned(), vec![a.to_owned()]))
            .into_iter()
            .collect()
    }

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        if input.grant_tokens.as_ref().is_some_and(|g| g.len() > 10) {
            return Err(crate::secrets::validation(
                "grantTokens",
                "Member must have length less than or equal to 10",
            ));
        }
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let id = crate::ops::required("keyId", input.key_id)?;
        let scope = auth.scope.clone();
        let is_default = matches!(
            common::parse_key_ref(&scope, &id)?,
            KeyRef::Alias(a) if a == DEFAULT_ALIAS
        );
        let (s, i) = (scope.clone(), id.clone());
        let found = ctx
            .store
            .read(move |tx| common::find_any(tx, &s, &i, None))
            .await;
        let key = match found {
            Err(ApiError::KmsNotFound(_)) if is_default => {
                // The managed key is created on first use, as AWS does.
                let keyring = ctx.keyring.clone();
                let now = ctx.now_ms();
                ctx.store
                    .write(move |tx| common::find_any(tx, &scope, &id, Some((&keyring, now))))
                    .await?
            }
            other => other?,
        };
        Ok(Output {
            key_metadata: KeyMetadata::from_row(&key),
        })
    }
}
