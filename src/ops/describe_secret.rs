//! DescribeSecret.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{epoch_seconds, wire_tags, Authorized, Ctx, NamesTarget, Operation, SecretId, Tag};
use crate::error::ApiError;
use crate::store::rows::SecretView;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
}

impl NamesTarget for Input {
    type By = SecretId;
    fn target_id(&self) -> Option<&str> {
        self.secret_id.as_deref()
    }
}

/// The secret metadata shape shared by DescribeSecret and ListSecrets entries.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Absent until rotation is first configured; `false` after CancelRotateSecret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_enabled: Option<bool>,
    #[serde(rename = "RotationLambdaARN", skip_serializing_if = "Option::is_none")]
    pub rotation_lambda_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_rules: Option<crate::rotation::schedule::RotationRules>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rotated_date: Option<f64>,
    /// The end of the next rotation window ("on or before").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_changed_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_date: Option<f64>,
    /// Present once the secret has a tag list, even empty (as AWS shows it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_ids_to_stages: Option<BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_versions_to_stages: Option<BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owning_service: Option<String>,
    pub created_date: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_region: Option<String>,
    /// Not an AWS member (AWS shows a failed rotation only in CloudTrail): the rotation in
    /// progress or failed, in DescribeSecret only. SDKs ignore members they do not know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strongroom_rotation: Option<RotationStatus>,
}

/// A rotation in progress or failed, as DescribeSecret shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationStatus {
    /// `InProgress` or `Failed`.
    pub status: &'static str,
    pub version_id: String,
    pub step: String,
    pub attempts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl RotationStatus {
    pub fn of(job: crate::store::RotationJobRow) -> Self {
        Self {
            status: if job.state == "failed" {
                "Failed"
            } else {
                "InProgress"
            },
            version_id: job.token,
            step: job.step,
            attempts: job.attempt,
            last_error: job.last_error,
        }
    }
}

impl Output {
    /// Build from a view; `kms_arn` is the customer key's ARN (None for the default key).
    /// `list` selects ListSecrets' member name for the stage map.
    pub fn from_view(view: SecretView, kms_arn: Option<String>, list: bool) -> Self {
        let s = view.secret;
        let stages: BTreeMap<String, Vec<String>> = view
            .stages
            .into_iter()
            .map(|(v, st)| (v, super::values::ordered_stages(st)))
            .collect();
        // A secret with no versions has no stage map at all (AWS omits the member).
        let stages = Some(stages).filter(|m| !m.is_empty());
        let (version_ids_to_stages, secret_versions_to_stages) =
            if list { (None, stages) } else { (stages, None) };
        let schedule = crate::rotation::stored_schedule(&s);
        let next_rotation_date = match (&schedule, s.next_rotation_at, s.rotation_enabled) {
            (Some(sch), Some(at), Some(true)) => Some(epoch_seconds(sch.window_end(at))),
            _ => None,
        };
        let rotation_rules = s
            .rotation_rules
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok());
        Self {
            rotation_enabled: s.rotation_enabled,
            rotation_lambda_arn: s.rotation_lambda_arn,
            rotation_rules,
            last_rotated_date: s.last_rotated_at.map(epoch_seconds),
            next_rotation_date,
            strongroom_rotation: None,
            arn: s.arn,
            name: s.name,
            // An empty description is shown as none, as AWS does.
            description: s.description.filter(|d| !d.is_empty()),
            kms_key_id: kms_arn,
            last_changed_date: Some(epoch_seconds(s.last_changed_at)),
            last_accessed_date: s.last_accessed_at.map(epoch_seconds),
            deleted_date: s.deleted_at.map(epoch_seconds),
            tags: (s.tag_list || !view.tags.is_empty()).then(|| wire_tags(&view.tags)),
            version_ids_to_stages,
            secret_versions_to_stages,
            owning_service: s.owning_service,
            created_date: epoch_seconds(s.created_at),
            primary_region: s.primary_region,
        }
    }
}

#[derive(Debug)]
pub struct DescribeSecret;

impl Operation for DescribeSecret {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "DescribeSecret";
    const ACTION: &'static str = "secretsmanager:DescribeSecret";
    const READ_ONLY: bool = true;

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, _input: Input) -> Result<Output, ApiError> {
        let secret = auth.secret()?.clone();
        ctx.store
            .read(move |tx| {
                let kms_arn = match &secret.kms_key_id {
                    Some(id) => tx.kms_key(id)?.map(|k| k.arn),
                    None => None,
                };
                let job = tx.rotation_job(&secret.secret_id)?;
                let view = tx.secret_view(secret)?;
                let mut out = Output::from_view(view, kms_arn, false);
                out.strongroom_rotation = job.map(RotationStatus::of);
                Ok(out)
            })
            .await
    }
}
