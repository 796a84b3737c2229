//! PutResourcePolicy.

use serde::{Deserialize, Serialize};

use super::{Authorized, Ctx, NamesTarget, Operation, SecretId};
use crate::error::ApiError;
use crate::policy::{broad_access, Policy, PolicyType, PublicPolicyOptions};
use crate::secrets;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub resource_policy: Option<String>,
    pub block_public_policy: Option<bool>,
}

impl NamesTarget for Input {
    type By = SecretId;
    fn target_id(&self) -> Option<&str> {
        self.secret_id.as_deref()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
}

/// Parse a resource policy as Secrets Manager accepts it (≤ 20,480 characters).
pub fn parse_resource_policy(text: &str) -> Result<Policy, ApiError> {
    secrets::check_len("resourcePolicy", text.chars().count(), 1, 20_480)?;
    Policy::parse(text, PolicyType::Resource)
        .map_err(|e| ApiError::MalformedPolicyDocument(e.aws_message()))
}

#[derive(Debug)]
pub struct PutResourcePolicy;

impl Operation for PutResourcePolicy {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "PutResourcePolicy";
    const ACTION: &'static str = "secretsmanager:PutResourcePolicy";
    const READ_ONLY: bool = false;

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        let text = super::require_ref("resourcePolicy", &input.resource_policy)?;
        secrets::check_len("resourcePolicy", text.chars().count(), 1, 20_480)
    }

    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        super::key_if(
            "secretsmanager:BlockPublicPolicy",
            input.block_public_policy,
        )
        .into_iter()
        .collect()
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let secret_id = auth.secret()?.secret_id.clone();
        let text = super::required("resourcePolicy", input.resource_policy)?;
        let policy = parse_resource_policy(&text)?;
        if input.block_public_policy == Some(true)
            && !broad_access(&policy, &PublicPolicyOptions::default()).is_empty()
        {
            return Err(ApiError::PublicPolicy(
                "This resource policy contains a statement that grants broad access to the secret. The BlockPublicPolicy parameter is set to true, and the resource policy did not prevent broad access to the secret.".into(),
            ));
        }
        let now = ctx.now_ms();
        let replicas_keyring = ctx.keyring.clone();
        ctx.store
            .write(move |tx| {
                let mut s = tx
                    .secret_by_id(&secret_id)?
                    .ok_or_else(ApiError::secret_not_found)?;
                super::ensure_not_deleted(&s)?;
                s.resource_policy = Some(text.clone());
                s.last_changed_at = now;
                tx.update_secret(&s)?;
                super::replicas::sync(tx, &replicas_keyring, &s, now)?;
                Ok(Output {
                    arn: s.arn,
                    name: s.name,
                })
            })
            .await
    }
}
