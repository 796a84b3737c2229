//! GetKeyPolicy: the key policy of a KMS key.

use serde::{Deserialize, Serialize};

use super::common::{self, KeyId};
use crate::error::ApiError;
use crate::kms::key_policy::{self, POLICY_NAME};
use crate::ops::{Authorized, Ctx, NamesTarget, Operation};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub key_id: Option<String>,
    pub policy_name: Option<String>,
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
    pub policy: String,
    pub policy_name: String,
}

#[derive(Debug)]
pub struct GetKeyPolicy;

/// `PolicyName`: 1–128 word characters, and the only policy a key has is `default`.
pub fn check_policy_name(name: Option<&String>) -> Result<(), ApiError> {
    let Some(name) = name else {
        return Ok(());
    };
    crate::secrets::check_len("policyName", name.chars().count(), 1, 128)?;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(crate::secrets::validation(
            "policyName",
            "Member must satisfy regular expression pattern: [\\w]+",
        ));
    }
    if name != POLICY_NAME {
        return Err(ApiError::KmsNotFound(format!(
            "No such policy exists: {name}. A KMS key has one key policy, named `{POLICY_NAME}`."
        )));
    }
    Ok(())
}

impl Operation for GetKeyPolicy {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "GetKeyPolicy";
    const ACTION: &'static str = "kms:GetKeyPolicy";
    const READ_ONLY: bool = true;

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        check_policy_name(input.policy_name.as_ref())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let id = crate::ops::required("keyId", input.key_id)?;
        let key = common::read_key(ctx, auth, id).await?;
        Ok(Output {
            policy: key_policy::effective(&key),
            policy_name: POLICY_NAME.to_owned(),
        })
    }
}
