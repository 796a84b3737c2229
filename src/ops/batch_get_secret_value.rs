//! BatchGetSecretValue.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::get_secret_value::{self, Output as SecretValueEntry};
use super::list_secrets::{cursor, list_page, list_pos, validate_paging, ListQuery, ReadLimits};
use super::values;
use super::{Authorized, Ctx, Operation, SecretFacts, Target, Targeted};
use crate::error::ApiError;
use crate::kms::Keyring;
use crate::secrets::{self, filters};
use crate::store::rows::SecretRow;
use crate::store::{ListOrder, Tx};

/// Most secrets in one call (SecretIdList length and MaxResults).
pub const MAX_RESULTS: i64 = 20;

const ONE_OF: &str = "Either 'SecretIdList' or 'Filters' must be provided, but not both.";
const MAX_NEEDS_FILTERS: &str =
    "'Filters' not specified. 'Filters' must also be specified when 'MaxResults' is provided.";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id_list: Option<Vec<String>>,
    pub filters: Option<Vec<filters::Filter>>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

impl Targeted for Input {
    fn target(&self) -> Target {
        Target::Any
    }
}

/// One secret that could not be read.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApiErrorEntry {
    pub secret_id: String,
    pub error_code: String,
    pub message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub secret_values: Vec<SecretValueEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub errors: Vec<ApiErrorEntry>,
}

#[derive(Debug)]
pub struct BatchGetSecretValue;

fn has_filters(input: &Input) -> bool {
    input.filters.as_ref().is_some_and(|f| !f.is_empty())
}

impl Operation for BatchGetSecretValue {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "BatchGetSecretValue";
    const ACTION: &'static str = "secretsmanager:BatchGetSecretValue";
    const READ_ONLY: bool = true;

    fn validate(input: &Input) -> Result<(), ApiError> {
        if let Some(ids) = &input.secret_id_list {
            secrets::check_len("secretIdList", ids.len(), 1, 20)?;
            for id in ids {
                secrets::validate_secret_id(id)?;
            }
        }
        validate_paging(input.max_results, input.next_token.as_deref(), MAX_RESULTS)?;
        if let Some(f) = &input.filters {
            filters::compile(f)?;
        }
        let filtered = has_filters(input);
        if input.secret_id_list.is_some() == filtered {
            return Err(ApiError::InvalidParameter(ONE_OF.into()));
        }
        if input.max_results.is_some() && !filtered {
            return Err(ApiError::InvalidParameter(MAX_NEEDS_FILTERS.into()));
        }
        Ok(())
    }

    /// With filters the request lists the account's secrets: `secretsmanager:ListSecrets` is
    /// needed too, as on AWS.
    fn extra_actions(input: &Input) -> Vec<&'static str> {
        if has_filters(input) {
            vec!["secretsmanager:ListSecrets"]
        } else {
            Vec::new()
        }
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let listed = input.secret_id_list.is_none();
        let scope = auth.scope.clone();
        let keyring = ctx.keyring.clone();
        // Every secret found with its AWSCURRENT value, still sealed: (the id to report
        // errors under, the secret and its fetched value). Named secrets come from the read
        // cache where it holds them (under the caller's account and region and the id, as
        // found here; GetSecretValue's entries also follow ARNs across accounts, so they are
        // kept apart), the rest from one short read.
        let (wanted, next_token): (Vec<Wanted>, Option<String>) = match input.secret_id_list {
            Some(ids) => {
                let keys = ids
                    .iter()
                    .map(|id| {
                        crate::store::cache::key(
                            "batch",
                            &[Some(&scope.account), Some(&scope.region), Some(id)],
                        )
                    })
                    .collect();
                let named = ids.clone();
                let found = ctx
                    .store
                    .read_points_cached(keys, move |tx, missing| {
                        missing
                            .iter()
                            .map(|&i| {
                                let id = named.get(i).map(String::as_str).unwrap_or_default();
                                let s = tx.find_secret(&scope.account, &scope.region, id)?;
                                s.map(|s| fetch(tx, &keyring, s)).transpose()
                            })
                            .collect()
                    })
                    .await?;
                (ids.into_iter().zip(found).collect(), None)
            }
            None => {
                let compiled = filters::compile(input.filters.as_deref().unwrap_or_default())?;
                let mode = "BatchGetSecretValue";
                let after = input
                    .next_token
                    .as_deref()
                    .map(|t| values::decode_next_token(mode, t))
                    .transpose()?;
                let max = usize::try_from(input.max_results.unwrap_or(MAX_RESULTS))
                    .map_err(ApiError::internal)?;
                let query = ListQuery {
                    order: ListOrder::Created,
                    descending: false,
                    after: after.map(|c| list_pos(ListOrder::Created, c)).transpose()?,
                    include_deleted: false,
                    max,
                    limits: ReadLimits::DEFAULT,
                };
                let (page, next) = ctx
                    .store
                    .read(move |tx| {
                        let (page, next) =
                            list_page(tx, &scope.account, &scope.region, &compiled, &query)?;
                        let page = page
                            .into_iter()
                            .map(|v| {
                                let arn = v.secret.arn.clone();
                                Ok((arn, Some(Arc::new(fetch(tx, &keyring, v.secret)?))))
                            })
                            .collect::<Result<Vec<_>, ApiError>>()?;
                        Ok((page, next))
                    })
                    .await?;
                (
                    page,
                    next.map(|p| values::encode_next_token(mode, &cursor(p))),
                )
            }
        };

        let mut out = Output {
            secret_values: Vec::with_capacity(wanted.len()),
            next_token,
            errors: Vec::new(),
        };
        for (id, found) in wanted {
            // Per-secret authorization: GetSecretValue on each secret's own ARN (a missing
            // one's would-be ARN, so that a caller who may not read it cannot tell whether it
            // exists); a denial is an `Errors` entry, and each secret gets its own audit
            // event. Values are decrypted only for the secrets allowed. A secret a filter
            // found and the caller may not read is left out: `Errors` naming it would list
            // what the caller may not see.
            let action = "secretsmanager:GetSecretValue";
            let result = match found {
                None => match auth.authorize_secret(action, &id, None) {
                    Ok(()) => Err(ApiError::secret_not_found()),
                    Err(r) => Err(r.error),
                },
                Some(found) => {
                    let (s, facts, fetched) = &*found;
                    match auth.authorize_secret(action, &id, Some((s, facts))) {
                        Err(r) if listed && !r.may_see => continue,
                        Err(r) => Err(r.error),
                        // AWS words a deleted secret's entry as DeleteSecret does, not
                        // as GetSecretValue does.
                        Ok(()) => match not_deleted(s)
                            .and_then(|()| super::ensure_key_shareable(auth, s))
                            .and(fetched.as_ref().map_err(Clone::clone))
                        {
                            Err(e) => Err(e),
                            Ok(f) => get_secret_value::finish(ctx, s, f).await,
                        },
                    }
                }
            };
            match result {
                Ok(v) => out.secret_values.push(v),
                Err(
                    e @ (ApiError::ResourceNotFound(_)
                    | ApiError::InvalidRequest(_)
                    | ApiError::DecryptionFailure(_)
                    | ApiError::AccessDenied(_)),
                ) => out.errors.push(ApiErrorEntry {
                    secret_id: id,
                    error_code: e.code().to_owned(),
                    message: e.message().to_owned(),
                }),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// A secret scheduled for deletion is an `Errors` entry in AWS's BatchGetSecretValue wording.
fn not_deleted(secret: &SecretRow) -> Result<(), ApiError> {
    if secret.deleted_at.is_some() {
        return Err(secrets::currently_marked_deleted());
    }
    Ok(())
}

/// A secret's AWSCURRENT value, fetched sealed (decrypted only once authorized), or why not.
type Fetched = Result<values::FetchedValue, ApiError>;

/// One requested secret: the id to report errors under, the secret (when it exists), what
/// its authorization needs (tags, customer managed key) and its fetched value.
type Wanted = (String, Option<Arc<(SecretRow, SecretFacts, Fetched)>>);

fn fetch(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    secret: SecretRow,
) -> Result<(SecretRow, SecretFacts, Fetched), ApiError> {
    let fetched = values::fetch_value(tx, keyring, &secret, None, None);
    // kms:Decrypt is decided on the key that sealed the version read (its row read with the
    // version), else on the secret's key.
    let key = match fetched
        .as_ref()
        .ok()
        .filter(|f| f.sealing_key_id().is_some())
    {
        Some(f) => Some(f.sealing_key().clone()),
        None => match &secret.kms_key_id {
            Some(id) => tx.kms_key(id)?,
            None => None,
        },
    };
    let facts = SecretFacts {
        tags: tx.tags(&secret.secret_id)?,
        key_aliases: super::key_aliases(tx, key.as_ref())?,
        key,
        key_actions: &["kms:Decrypt"],
        key_for: None,
        request_keys: vec![(
            "secretsmanager:VersionStage".to_owned(),
            vec![crate::secrets::AWSCURRENT.to_owned()],
        )],
        secret_keys: None,
        policy_cell: None,
    }
    .with_secret_keys(&secret);
    Ok((secret, facts, fetched))
}
