//! RotateSecret: store the rotation configuration, and start a rotation (the empty
//! AWSPENDING version and its job, committed together) that the engine runs
//! (`rotation::engine`). With `RotateImmediately=false` only testSecret runs, on a copy of
//! the current value, and the schedule decides when the next rotation happens.

use serde::{Deserialize, Serialize};

use super::{Authorized, Ctx, NamesTarget, Operation, SecretId};
use crate::error::ApiError;
use crate::rotation::schedule::{RotationRules, Schedule};
use crate::secrets;
use crate::store::rows::SecretRow;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub client_request_token: Option<String>,
    #[serde(rename = "RotationLambdaARN")]
    pub rotation_lambda_arn: Option<String>,
    pub rotation_rules: Option<RotationRules>,
    pub rotate_immediately: Option<bool>,
    pub external_secret_rotation_metadata: Option<serde_json::Value>,
    pub external_secret_rotation_role_arn: Option<String>,
}

impl NamesTarget for Input {
    type By = SecretId;
    fn target_id(&self) -> Option<&str> {
        self.secret_id.as_deref()
    }
}

impl Input {
    /// The function ARN the request names (an empty one names none).
    fn requested_arn(&self) -> Option<&str> {
        self.rotation_lambda_arn
            .as_deref()
            .filter(|a| !a.is_empty())
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    pub version_id: String,
}

#[derive(Debug)]
pub struct RotateSecret;

impl Operation for RotateSecret {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "RotateSecret";
    const ACTION: &'static str = "secretsmanager:RotateSecret";
    const READ_ONLY: bool = false;

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        if let Some(t) = &input.client_request_token {
            secrets::validate_token(t)?;
        }
        if let Some(a) = &input.rotation_lambda_arn {
            secrets::check_len("rotationLambdaARN", a.chars().count(), 0, 2048)?;
        }
        if let Some(r) = &input.rotation_rules {
            Schedule::parse(r)?;
        }
        if input.external_secret_rotation_metadata.is_some()
            || input.external_secret_rotation_role_arn.is_some()
        {
            return Err(ApiError::InvalidRequest(
                "Rotation of managed external secrets (ExternalSecretRotationMetadata, ExternalSecretRotationRoleArn) is not supported by this server.".into(),
            ));
        }
        secrets::require_token(input.client_request_token.as_deref())?;
        Ok(())
    }

    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        let mut keys = vec![
            (
                "secretsmanager:RotateImmediately".to_owned(),
                vec![input.rotate_immediately.unwrap_or(true).to_string()],
            ),
            (
                "secretsmanager:ModifyRotationRules".to_owned(),
                vec![input.rotation_rules.is_some().to_string()],
            ),
        ];
        if let Some(a) = input.requested_arn() {
            keys.push((
                "secretsmanager:RotationLambdaARN".to_owned(),
                vec![a.to_owned()],
            ));
        }
        keys
    }

    fn other_actions(input: &Input, secret: Option<&SecretRow>) -> Vec<(&'static str, String)> {
        let arn = input
            .requested_arn()
            .map(str::to_owned)
            .or_else(|| secret.and_then(|s| s.rotation_lambda_arn.clone()));
        arn.map(|a| ("lambda:InvokeFunction", a))
            .into_iter()
            .collect()
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let secret_id = auth.secret()?.secret_id.clone();
        let token = secrets::require_token(input.client_request_token.as_deref())?.to_owned();
        let requested = input.requested_arn().map(str::to_owned);
        let rules = input.rotation_rules.clone();
        let immediately = input.rotate_immediately.unwrap_or(true);
        let caller_account = auth.principal.account_id.clone();
        let keyring = ctx.keyring.clone();
        let wiring = ctx.rotation.clone();
        let now = ctx.now_ms();
        let out = ctx
            .store
            .write(move |tx| {
                let mut secret = tx
                    .secret_by_id(&secret_id)?
                    .ok_or_else(ApiError::secret_not_found)?;
                super::ensure_not_deleted(&secret)?;
                super::ensure_key_shareable_with(&caller_account, &secret)?;
                let output = Output {
                    arn: secret.arn.clone(),
                    name: secret.name.clone(),
                    version_id: token.clone(),
                };
                // The same request again (an SDK retry): its rotation is already under way.
                if tx
                    .rotation_job(&secret.secret_id)?
                    .is_some_and(|j| j.token == token)
                {
                    return Ok(output);
                }
                let stages = tx.stages(&secret.secret_id)?;
                if crate::rotation::stuck(&stages) {
                    return Err(crate::rotation::previous_rotation_incomplete());
                }
                let arn = requested
                    .clone()
                    .or_else(|| secret.rotation_lambda_arn.clone())
                    .ok_or_else(|| {
                        ApiError::InvalidRequest(
                            "No Lambda rotation function ARN is associated with this secret."
                                .into(),
                        )
                    })?;
                wiring.function(&arn, &secret.region, &secret.account_id)?;
                if let Some(r) = &rules {
                    secret.rotation_rules =
                        Some(serde_json::to_string(r).map_err(ApiError::internal)?);
                }
                secret.rotation_enabled = Some(true);
                secret.rotation_lambda_arn = Some(arn.clone());
                let after = if immediately {
                    now
                } else {
                    secret.last_rotated_at.unwrap_or(now)
                };
                secret.next_rotation_at =
                    crate::rotation::stored_schedule(&secret).map(|s| s.next_start(after));
                tx.update_secret(&secret)?;
                crate::rotation::start(tx, &keyring, &secret, &token, &arn, !immediately, now)?;
                super::replicas::sync(tx, &keyring, &secret, now)?;
                Ok(output)
            })
            .await?;
        ctx.rotation.wake();
        Ok(out)
    }
}
