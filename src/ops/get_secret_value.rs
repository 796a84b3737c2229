//! GetSecretValue.

use serde::{Deserialize, Serialize};

use super::values::{self, OutValue};
use super::{epoch_seconds, Authorized, Ctx, NamesTarget, Operation, SecretId};
use crate::error::ApiError;
use crate::secrets;
use crate::store::rows::SecretRow;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub version_id: Option<String>,
    pub version_stage: Option<String>,
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
    pub version_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_string: Option<OutValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_binary: Option<OutValue>,
    pub version_stages: Vec<String>,
    pub created_date: f64,
}

#[derive(Debug)]
pub struct GetSecretValue;

/// Check the optional VersionId and VersionStage that pick a version.
pub fn validate_version_selector(
    version_id: &Option<String>,
    stage: &Option<String>,
) -> Result<(), ApiError> {
    if let Some(v) = version_id {
        secrets::validate_version_id("versionId", v)?;
    }
    if let Some(s) = stage {
        secrets::validate_stage("versionStage", s)?;
    }
    Ok(())
}

impl Operation for GetSecretValue {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "GetSecretValue";
    const ACTION: &'static str = "secretsmanager:GetSecretValue";
    const READ_ONLY: bool = true;

    /// `secretsmanager:VersionId` when sent, and `secretsmanager:VersionStage`: the stage
    /// sent, or `AWSCURRENT` when neither a version id nor a stage is (what is read then).
    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        let stage = match (&input.version_id, &input.version_stage) {
            (_, Some(s)) => Some(s.clone()),
            (None, None) => Some(crate::secrets::AWSCURRENT.to_owned()),
            (Some(_), None) => None,
        };
        [
            super::key_if("secretsmanager:VersionId", input.version_id.as_ref()),
            super::key_if("secretsmanager:VersionStage", stage),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        validate_version_selector(&input.version_id, &input.version_stage)
    }

    fn key_uses(_input: &Input) -> Vec<super::KeyUse> {
        vec![super::KeyUse::SecretKey("kms:Decrypt")]
    }

    fn fetch_value(input: &Input) -> Option<values::VersionSelector> {
        Some(values::VersionSelector {
            version_id: input.version_id.clone(),
            stage: input.version_stage.clone(),
        })
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let secret = auth.secret()?;
        super::ensure_not_deleted(secret)?;
        super::ensure_key_shareable(auth, secret)?;
        match auth.fetched_value() {
            // Fetched with the secret in the resolver's transaction: decrypt (now that the
            // request is allowed) without another read.
            Some(fetched) => finish(ctx, secret, fetched?).await,
            None => get_value(ctx, secret.clone(), input.version_id, input.version_stage).await,
        }
    }
}

/// Read a value in its own transaction (shared with BatchGetSecretValue); records the
/// access day.
pub async fn get_value(
    ctx: &Ctx,
    secret: SecretRow,
    version_id: Option<String>,
    stage: Option<String>,
) -> Result<Output, ApiError> {
    let keyring = ctx.keyring.clone();
    let (secret, fetched) = ctx
        .store
        .read_point(move |tx| {
            let r = values::fetch_value(
                tx,
                &keyring,
                &secret,
                version_id.as_deref(),
                stage.as_deref(),
            )?;
            Ok((secret, r))
        })
        .await?;
    finish(ctx, &secret, &fetched).await
}

/// Decrypt a fetched value into the response (the caller is authorized); records the
/// access day.
pub async fn finish(
    ctx: &Ctx,
    secret: &SecretRow,
    fetched: &values::FetchedValue,
) -> Result<Output, ApiError> {
    let read = values::open_fetched(secret, fetched)?;
    // LastAccessedDate is kept to the day, as AWS does: write at most once a day per version.
    const DAY_MS: i64 = 86_400_000;
    let day = ctx.now_ms().div_euclid(DAY_MS) * DAY_MS;
    if read.version.last_accessed_at.is_none_or(|t| t < day) {
        let sid = secret.secret_id.clone();
        let vid = read.version.version_id.clone();
        ctx.store
            .write(move |tx| Ok(tx.touch_version(&sid, &vid, day)?))
            .await?;
    }
    Ok(Output {
        arn: secret.arn.clone(),
        name: secret.name.clone(),
        version_id: read.version.version_id,
        secret_string: read.string,
        secret_binary: read.binary,
        version_stages: values::ordered_stages(read.stages),
        created_date: epoch_seconds(read.version.created_at),
    })
}
