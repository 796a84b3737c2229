//! PutKeyPolicy: replace the key policy of a customer managed KMS key.

use serde::Deserialize;

use super::common::{self, Empty, KeyId};
use super::create_key::{bypass_key, check_lockout, check_policy};
use super::get_key_policy::check_policy_name;
use crate::error::ApiError;
use crate::ops::{Authorized, Ctx, NamesTarget, Operation};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub key_id: Option<String>,
    pub policy_name: Option<String>,
    pub policy: Option<String>,
    pub bypass_policy_lockout_safety_check: Option<bool>,
}

impl NamesTarget for Input {
    type By = KeyId;
    fn target_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }
}

#[derive(Debug)]
pub struct PutKeyPolicy;

impl Operation for PutKeyPolicy {
    type Input = Input;
    type Output = Empty;
    const NAME: &'static str = "PutKeyPolicy";
    const ACTION: &'static str = "kms:PutKeyPolicy";
    const READ_ONLY: bool = false;

    /// `kms:BypassPolicyLockoutSafetyCheck` (false when omitted).
    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        vec![bypass_key(input.bypass_policy_lockout_safety_check)]
    }

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        check_policy(crate::ops::require_ref("policy", &input.policy)?)?;
        check_policy_name(input.policy_name.as_ref())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Empty, ApiError> {
        let id = crate::ops::required("keyId", input.key_id)?;
        let policy = crate::ops::required("policy", input.policy)?;
        let bypass = input.bypass_policy_lockout_safety_check;
        let checker = auth.clone();
        common::update_key(ctx, auth, id, move |_, key| {
            common::ensure_customer_managed(key, Self::NAME)?;
            check_lockout(&checker, key, &policy, bypass)?;
            key.policy = Some(policy.clone());
            Ok(Empty {})
        })
        .await
    }
}
