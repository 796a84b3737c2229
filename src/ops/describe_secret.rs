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
    /// A managed external secret's partner type.
    #[serde(rename = "Type", skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
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
    pub external_secret_rotation_metadata: Option<Vec<ExternalRotationItem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_secret_rotation_role_arn: Option<String>,
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
    /// A primary's replicas (DescribeSecret only; ListSecrets entries have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_status: Option<Vec<super::replicas::ReplicationStatus>>,
    /// A cross-account replica's primary and status (DescribeSecret only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross_account_primary: Option<super::replicas::CrossAccountPrimary>,
    /// A primary's cross-account replica and its status (DescribeSecret only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross_account_replicas: Option<Vec<super::replicas::CrossAccountReplicaEntry>>,
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

/// One item of a managed external secret's rotation metadata
/// (`ExternalSecretRotationMetadataItem`), as RotateSecret takes it and DescribeSecret and
/// ListSecrets return it; stored as the JSON list in `external_rotation_metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExternalRotationItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl ExternalRotationItem {
    /// Check RotateSecret's `ExternalSecretRotationMetadata` against the model (Key 1–256,
    /// Value 1–2048 characters) and `ExternalSecretRotationRoleArn` (`RoleARNType`, 20–2048).
    pub fn validate(items: &[Self], role_arn: Option<&str>) -> Result<(), ApiError> {
        for (i, item) in items.iter().enumerate() {
            let n = i.saturating_add(1);
            if let Some(k) = &item.key {
                crate::secrets::check_len(
                    &format!("externalSecretRotationMetadata.{n}.member.key"),
                    k.chars().count(),
                    1,
                    256,
                )?;
            }
            if let Some(v) = &item.value {
                crate::secrets::check_len(
                    &format!("externalSecretRotationMetadata.{n}.member.value"),
                    v.chars().count(),
                    1,
                    2048,
                )?;
            }
        }
        if let Some(r) = role_arn {
            crate::secrets::check_len(
                "externalSecretRotationRoleArn",
                r.chars().count(),
                20,
                2048,
            )?;
        }
        Ok(())
    }

    /// The column text for `items`.
    pub fn to_column(items: &[Self]) -> Result<String, ApiError> {
        serde_json::to_string(items).map_err(ApiError::internal)
    }

    /// The items a column holds (none when it holds something else).
    pub fn from_column(text: Option<&str>) -> Option<Vec<Self>> {
        serde_json::from_str(text?).ok()
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
        let external_secret_rotation_metadata =
            ExternalRotationItem::from_column(s.external_rotation_metadata.as_deref());
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
            secret_type: s.secret_type,
            external_secret_rotation_metadata,
            external_secret_rotation_role_arn: s.external_rotation_role_arn,
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
            replication_status: None,
            cross_account_primary: None,
            cross_account_replicas: None,
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
                let replication = if super::replicas::is_replicated_primary(&secret) {
                    Some(super::replicas::statuses(tx, &secret)?)
                } else {
                    None
                };
                let (xa_primary, xa_replicas) = super::replicas::cross_account_view(tx, &secret)?;
                let view = tx.secret_view(secret)?;
                let mut out = Output::from_view(view, kms_arn, false);
                out.strongroom_rotation = job.map(RotationStatus::of);
                out.replication_status = replication;
                out.cross_account_primary = xa_primary;
                out.cross_account_replicas = xa_replicas;
                Ok(out)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rows::SecretRow;

    fn row() -> SecretRow {
        SecretRow {
            secret_id: "id".into(),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            name: "partner/app".into(),
            arn: "arn:aws:secretsmanager:us-east-1:111122223333:secret:partner/app-AbCdEf".into(),
            description: None,
            kms_key_id: None,
            created_at: 1_000,
            last_changed_at: 2_000,
            last_accessed_at: None,
            deleted_at: None,
            purge_at: None,
            owning_service: None,
            primary_region: None,
            resource_policy: None,
            tag_list: false,
            secret_type: None,
            external_rotation_metadata: None,
            external_rotation_role_arn: None,
            rotation_enabled: None,
            rotation_lambda_arn: None,
            rotation_rules: None,
            last_rotated_at: None,
            next_rotation_at: None,
            cross_account_primary_arn: None,
            cross_account_status: None,
            cross_account_replica: false,
        }
    }

    fn view(secret: SecretRow) -> SecretView {
        SecretView {
            secret,
            stages: Vec::new(),
            tags: Vec::new(),
        }
    }

    #[test]
    fn managed_external_fields_appear_only_when_set() {
        let plain = serde_json::to_value(Output::from_view(view(row()), None, false)).unwrap();
        for member in [
            "Type",
            "ExternalSecretRotationMetadata",
            "ExternalSecretRotationRoleArn",
        ] {
            assert!(plain.get(member).is_none(), "{plain}");
        }
        let items = vec![ExternalRotationItem {
            key: Some("TenantId".into()),
            value: Some("t-1".into()),
        }];
        let mut r = row();
        r.secret_type = Some("SalesforceClientCredentials".into());
        r.external_rotation_metadata = Some(ExternalRotationItem::to_column(&items).unwrap());
        r.external_rotation_role_arn = Some("arn:aws:iam::111122223333:role/rotator".into());
        for list in [false, true] {
            let out = serde_json::to_value(Output::from_view(view(r.clone()), None, list)).unwrap();
            assert_eq!(out["Type"], "SalesforceClientCredentials", "{out}");
            assert_eq!(
                out["ExternalSecretRotationMetadata"],
                serde_json::json!([{"Key": "TenantId", "Value": "t-1"}])
            );
            assert_eq!(
                out["ExternalSecretRotationRoleArn"],
                "arn:aws:iam::111122223333:role/rotator"
            );
        }
    }

    #[test]
    fn external_rotation_items_are_checked_against_the_model() {
        let item = |k: &str, v: &str| ExternalRotationItem {
            key: Some(k.into()),
            value: Some(v.into()),
        };
        assert!(ExternalRotationItem::validate(&[item("k", "v")], None).is_ok());
        let e = ExternalRotationItem::validate(&[item("", "v")], None).unwrap_err();
        assert_eq!(e.code(), "ValidationException");
        assert!(
            e.message()
                .contains("'externalSecretRotationMetadata.1.member.key'"),
            "{e:?}"
        );
        let long = "v".repeat(2049);
        let e = ExternalRotationItem::validate(&[item("k", &long)], None).unwrap_err();
        assert!(e.message().contains("member.value"), "{e:?}");
        let e = ExternalRotationItem::validate(&[], Some("arn:short")).unwrap_err();
        assert!(
            e.message().contains("'externalSecretRotationRoleArn'"),
            "{e:?}"
        );
    }
}
