//! TagResource.

use serde::{Deserialize, Serialize};

use super::{tag_pairs, Authorized, Ctx, NamesTarget, Operation, SecretId, Tag};
use crate::error::ApiError;
use crate::secrets;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub tags: Option<Vec<Tag>>,
}

impl NamesTarget for Input {
    type By = SecretId;
    fn target_id(&self) -> Option<&str> {
        self.secret_id.as_deref()
    }
}

/// TagResource answers an empty object.
#[derive(Debug, Serialize)]
pub struct Output {}

#[derive(Debug)]
pub struct TagResource;

impl Operation for TagResource {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "TagResource";
    const ACTION: &'static str = "secretsmanager:TagResource";
    const READ_ONLY: bool = false;

    /// `aws:RequestTag/k` and `aws:TagKeys`: a policy may restrict which tags are set.
    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        input
            .tags
            .as_deref()
            .map(super::request_tag_keys)
            .unwrap_or_default()
    }

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        secrets::validate_tags(&tag_pairs(super::require_ref("tags", &input.tags)?)?)
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let secret_id = auth.secret()?.secret_id.clone();
        let new = tag_pairs(&super::required("tags", input.tags)?)?;
        let now = ctx.now_ms();
        let replicas_keyring = ctx.keyring.clone();
        ctx.store
            .write(move |tx| {
                let mut secret = tx
                    .secret_by_id(&secret_id)?
                    .ok_or_else(ApiError::secret_not_found)?;
                super::ensure_not_deleted(&secret)?;
                let existing = tx.tags(&secret.secret_id)?;
                secrets::check_tag_key_case(&existing, &new)?;
                let merged = secrets::merge_tags(&existing, &new);
                if merged.len() > secrets::MAX_TAGS {
                    return Err(ApiError::InvalidParameter(format!(
                        "You can't attach more than {} tags to a secret.",
                        secrets::MAX_TAGS
                    )));
                }
                if merged != existing || !secret.tag_list {
                    tx.replace_tags(&secret.secret_id, &merged)?;
                    secret.last_changed_at = now;
                    secret.tag_list = true;
                    tx.update_secret(&secret)?;
                }
                super::replicas::sync(tx, &replicas_keyring, &secret, now)?;
                Ok(Output {})
            })
            .await
    }
}
