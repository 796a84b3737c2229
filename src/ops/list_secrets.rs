//! ListSecrets.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::describe_secret::Output as SecretListEntry;
use super::values::{self, Cursor, SortValue};
use super::{Authorized, Ctx, Operation, Target, Targeted};
use crate::error::ApiError;
use crate::secrets::{self, filters};
use crate::store::rows::SecretView;

/// Default and largest page.
pub const MAX_RESULTS: i64 = 100;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub include_planned_deletion: Option<bool>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub filters: Option<Vec<filters::Filter>>,
    pub sort_order: Option<String>,
    pub sort_by: Option<String>,
}

impl Targeted for Input {
    fn target(&self) -> Target {
        Target::Any
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub secret_list: Vec<SecretListEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// What ListSecrets orders by (`SortBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    CreatedDate,
    LastAccessedDate,
    LastChangedDate,
    Name,
}

impl SortBy {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "created-date" => Some(Self::CreatedDate),
            "last-accessed-date" => Some(Self::LastAccessedDate),
            "last-changed-date" => Some(Self::LastChangedDate),
            "name" => Some(Self::Name),
            _ => None,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::CreatedDate => "created-date",
            Self::LastAccessedDate => "last-accessed-date",
            Self::LastChangedDate => "last-changed-date",
            Self::Name => "name",
        }
    }

    /// The keyset position of a secret under this ordering.
    fn cursor(self, view: &SecretView) -> Cursor {
        let s = &view.secret;
        let value = match self {
            Self::CreatedDate => SortValue::Num(s.created_at),
            Self::LastAccessedDate => SortValue::Num(s.last_accessed_at.unwrap_or(i64::MIN)),
            Self::LastChangedDate => SortValue::Num(s.last_changed_at),
            Self::Name => SortValue::Text(s.name.clone()),
        };
        Cursor {
            value,
            id: s.secret_id.clone(),
        }
    }
}

fn enum_error(field: &str, value: &str, set: &str) -> ApiError {
    ApiError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must satisfy enum value set: {set}"
    ))
}

/// `SortOrder`: `asc` (the default) or `desc`; answers whether to sort descending.
pub fn parse_sort_order(order: Option<&str>) -> Result<bool, ApiError> {
    match order {
        None | Some("asc") => Ok(false),
        Some("desc") => Ok(true),
        Some(other) => Err(enum_error("sortOrder", other, "[asc, desc]")),
    }
}

fn parse_sort_by(by: Option<&str>) -> Result<SortBy, ApiError> {
    match by {
        None => Ok(SortBy::CreatedDate),
        Some(s) => SortBy::parse(s).ok_or_else(|| {
            enum_error(
                "sortBy",
                s,
                "[created-date, last-accessed-date, last-changed-date, name]",
            )
        }),
    }
}

/// Validate `MaxResults` (1..=`max`) and `NextToken` (1..=4096 characters).
pub fn validate_paging(
    max_results: Option<i64>,
    next_token: Option<&str>,
    max: i64,
) -> Result<(), ApiError> {
    if let Some(m) = max_results {
        values::check_range("maxResults", m, 1, max)?;
    }
    if let Some(t) = next_token {
        secrets::check_len("nextToken", t.chars().count(), 1, 4096)?;
    }
    Ok(())
}

/// What filters see of a secret.
pub fn subject(view: &SecretView) -> filters::FilterSubject<'_> {
    filters::FilterSubject {
        name: &view.secret.name,
        description: view.secret.description.as_deref(),
        tags: &view.tags,
        primary_region: view.secret.primary_region.as_deref(),
        owning_service: view.secret.owning_service.as_deref(),
    }
}

#[derive(Debug)]
pub struct ListSecrets;

impl Operation for ListSecrets {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "ListSecrets";
    const ACTION: &'static str = "secretsmanager:ListSecrets";
    const READ_ONLY: bool = true;

    fn validate(input: &Input) -> Result<(), ApiError> {
        validate_paging(input.max_results, input.next_token.as_deref(), MAX_RESULTS)?;
        filters::compile(input.filters.as_deref().unwrap_or_default())?;
        parse_sort_order(input.sort_order.as_deref())?;
        parse_sort_by(input.sort_by.as_deref())?;
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let compiled = filters::compile(input.filters.as_deref().unwrap_or_default())?;
        let descending = parse_sort_order(input.sort_order.as_deref())?;
        let sort_by = parse_sort_by(input.sort_by.as_deref())?;
        let mode = format!(
            "ListSecrets/{}/{}",
            sort_by.code(),
            if descending { "desc" } else { "asc" }
        );
        let after = input
            .next_token
            .as_deref()
            .map(|t| values::decode_next_token(&mode, t))
            .transpose()?;
        let max = usize::try_from(input.max_results.unwrap_or(MAX_RESULTS))
            .map_err(ApiError::internal)?;
        let include_deleted = input.include_planned_deletion.unwrap_or(false);
        let scope = auth.scope.clone();
        ctx.store
            .read(move |tx| {
                let views: Vec<SecretView> = tx
                    .list_secret_views(&scope.account, &scope.region)?
                    .into_iter()
                    .filter(|v| include_deleted || v.secret.deleted_at.is_none())
                    .filter(|v| compiled.matches(&subject(v)))
                    .collect();
                let (page, next) = values::keyset_page(
                    views,
                    |v| sort_by.cursor(v),
                    descending,
                    after.as_ref(),
                    max,
                );
                let mut arns: HashMap<String, Option<String>> = HashMap::new();
                let mut secret_list = Vec::with_capacity(page.len());
                for view in page {
                    let kms_arn = match &view.secret.kms_key_id {
                        None => None,
                        Some(id) => match arns.get(id) {
                            Some(a) => a.clone(),
                            None => {
                                let a = tx.kms_key(id)?.map(|k| k.arn);
                                arns.insert(id.clone(), a.clone());
                                a
                            }
                        },
                    };
                    secret_list.push(SecretListEntry::from_view(view, kms_arn, true));
                }
                Ok(Output {
                    secret_list,
                    next_token: next.map(|c| values::encode_next_token(&mode, &c)),
                })
            })
            .await
    }
}
