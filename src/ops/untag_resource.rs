//! UntagResource.

use serde::{Deserialize, Serialize};

use super::{Authorized, Ctx, NamesTarget, Operation, SecretId};
use crate::error::ApiError;
use crate::secrets;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub tag_keys: Option<Vec<String>>,
}

impl NamesTarget for Input {
    type By = SecretId;
    fn target_id(&self) -> Option<&str> {
        self.secret_id.as_deref()
    }
}

/// UntagResource answers an empty object.
#[derive(Debug, Serialize)]
pub struct Output {}

#[derive(Debug)]
pub struct UntagResource;

impl Operation for UntagResource {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "UntagResource";
    const ACTION: &'static str = "secretsmanager:UntagResource";
    const READ_ONLY: bool = false;

    /// `aws:TagKeys`: a policy may protect tags from removal.
    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        input
            .tag_keys
            .as_ref()
            .map(|k| vec![("aws:TagKeys".to_owned(), k.clone())])
            .unwrap_or_default()
    }

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        let keys = super::require_ref("tagKeys", &input.tag_keys)?;
        for (i, k) in keys.iter().enumerate() {
            secrets::check_len(
                &format!("tagKeys.{}.member", i.saturating_add(1)),
                k.chars().count(),
                1,
                secrets::MAX_TAG_KEY_LEN,
            )?;
        }
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let secret_id = auth.secret()?.secret_id.clone();
        let keys = super::required("tagKeys", input.tag_keys)?;
        let now = ctx.now_ms();
        let replicas_keyring = ctx.keyring.clone();
        ctx.store
            .write(move |tx| {
                let mut secret = tx
                    .secret_by_id(&secret_id)?
                    .ok_or_else(ApiError::secret_not_found)?;
                super::ensure_not_deleted(&secret)?;
                let existing = tx.tags(&secret.secret_id)?;
                let kept: Vec<(String, String)> = existing
                    .iter()
                    .filter(|(k, _)| !keys.contains(k))
                    .cloned()
                    .collect();
                // Removing a key that is not attached is not an error (AWS: idempotent).
                if kept.len() != existing.len() {
                    tx.replace_tags(&secret.secret_id, &kept)?;
                    secret.last_changed_at = now;
                    tx.update_secret(&secret)?;
                }
                super::replicas::sync(tx, &replicas_keyring, &secret, now)?;
                Ok(Output {})
            })
            .await
    }
}
