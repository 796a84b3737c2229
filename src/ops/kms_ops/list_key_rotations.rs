//! ListKeyRotations: the completed rotations of a key's material, oldest first.

use serde::{Deserialize, Serialize};

use super::common::{self, KeyId};
use super::paging;
use crate::error::ApiError;
use crate::ops::{epoch_seconds, Authorized, Ctx, NamesTarget, Operation};

/// Page size when `Limit` is absent.
const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub key_id: Option<String>,
    pub include_key_material: Option<String>,
    pub limit: Option<i64>,
    pub marker: Option<String>,
}

impl NamesTarget for Input {
    type By = KeyId;
    fn target_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    pub key_id: String,
    pub rotation_date: f64,
    pub rotation_type: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub rotations: Vec<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    pub truncated: bool,
}

#[derive(Debug)]
pub struct ListKeyRotations;

impl Operation for ListKeyRotations {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "ListKeyRotations";
    const ACTION: &'static str = "kms:ListKeyRotations";
    const READ_ONLY: bool = true;

    fn validate(input: &Input) -> Result<(), ApiError> {
        input.checked_target_id()?;
        match input.include_key_material.as_deref() {
            None | Some("ROTATIONS_ONLY") => {}
            Some("ALL_KEY_MATERIAL") => {
                return Err(ApiError::KmsUnsupportedOperation(
                    "IncludeKeyMaterial ALL_KEY_MATERIAL is not supported by this server: only ROTATIONS_ONLY is.".into(),
                ))
            }
            Some(v) => {
                return Err(paging::validation_value(
                    v,
                    "includeKeyMaterial",
                    "Member must satisfy enum value set: [ALL_KEY_MATERIAL, ROTATIONS_ONLY]",
                ))
            }
        }
        paging::check_limit(input.limit)?;
        paging::check_marker(input.marker.as_deref())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let id = crate::ops::required("keyId", input.key_id)?;
        let after = match input.marker.as_deref() {
            Some(m) => Some(
                paging::decode_marker("ListKeyRotations", m)?
                    .parse::<i32>()
                    .map_err(|_| paging::invalid_marker())?,
            ),
            None => None,
        };
        let limit = paging::page_size(input.limit, DEFAULT_LIMIT, 1000);
        let scope = auth.scope.clone();
        let (key_id, rotations) = ctx
            .store
            .read(move |tx| {
                let key = common::find_by_key_id(tx, &scope, &id)?;
                let mut rotations = Vec::new();
                // Term 1 is the key's first material; every later term is a rotation.
                for term in 2..=key.current_term {
                    if let Some(m) = tx.kms_material(&key.key_id, term)? {
                        rotations.push((term, m.created_at));
                    }
                }
                Ok((key.key_id, rotations))
            })
            .await?;
        let (rotations, truncated) = paging::page(rotations, |r| r.0, after.as_ref(), limit);
        let next_marker = if truncated {
            rotations
                .last()
                .map(|r| paging::encode_marker("ListKeyRotations", &r.0.to_string()))
        } else {
            None
        };
        Ok(Output {
            rotations: rotations
                .into_iter()
                .map(|(_, at)| Entry {
                    key_id: key_id.clone(),
                    rotation_date: epoch_seconds(at),
                    rotation_type: "ON_DEMAND",
                })
                .collect(),
            next_marker,
            truncated,
        })
    }
}
