//! ValidateResourcePolicy: grammar, broad access and lint findings, without storing anything.

use serde::{Deserialize, Serialize};

use super::{Authorized, Ctx, Operation, Target, Targeted};
use crate::error::ApiError;
use crate::policy::{broad_access, lint, Policy, PolicyType, PublicPolicyOptions};
use crate::secrets;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub resource_policy: Option<String>,
}

impl Targeted for Input {
    fn target(&self) -> Target {
        match &self.secret_id {
            Some(id) => Target::Secret(id.clone()),
            None => Target::Any,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidationError {
    pub check_name: String,
    pub error_message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub policy_validation_passed: bool,
    pub validation_errors: Vec<ValidationError>,
}

#[derive(Debug)]
pub struct ValidateResourcePolicy;

impl Operation for ValidateResourcePolicy {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "ValidateResourcePolicy";
    const ACTION: &'static str = "secretsmanager:ValidateResourcePolicy";
    const READ_ONLY: bool = true;

    fn validate(input: &Input) -> Result<(), ApiError> {
        if let Some(id) = &input.secret_id {
            secrets::validate_secret_id(id)?;
        }
        let text = super::require_ref("resourcePolicy", &input.resource_policy)?;
        secrets::check_len("resourcePolicy", text.chars().count(), 1, 20_480)
    }

    fn extra_actions(_input: &Input) -> Vec<&'static str> {
        vec!["secretsmanager:PutResourcePolicy"]
    }

    async fn handle(_ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        if input.secret_id.is_some() {
            auth.secret()?;
        }
        let text = super::required("resourcePolicy", input.resource_policy)?;
        let policy = match Policy::parse(&text, PolicyType::Resource) {
            Ok(p) => p,
            Err(e) => {
                return Err(ApiError::MalformedPolicyDocument(e.aws_message()));
            }
        };
        let mut errors: Vec<ValidationError> =
            broad_access(&policy, &PublicPolicyOptions::default())
                .into_iter()
                .map(|b| ValidationError {
                    check_name: "BROAD_ACCESS_CHECK".into(),
                    error_message: format!(
                "Statement {} grants broad access ({}): the policy would allow access to anyone.",
                b.sid.unwrap_or_else(|| b.statement_index.to_string()),
                b.reason
            ),
                })
                .collect();
        for w in lint(&policy) {
            errors.push(ValidationError {
                check_name: "SECURITY_WARNING".into(),
                error_message: w.to_string(),
            });
        }
        Ok(Output {
            policy_validation_passed: errors.is_empty(),
            validation_errors: errors,
        })
    }
}
