//! JSON-protocol operations that read the principals directory in force rather than the
//! store: AWS Organizations' reads (`organizations`) and Strongroom's reload status
//! (`strongroom`). Like the Query operations, each decides its action through `authz` on the
//! resource it reads, and the pipeline authenticates and records it.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::audit::Draft;
use crate::auth::Principal;
use crate::authz::Resolved;
use crate::error::ApiError;
use crate::ops::Scope;
use crate::pipeline::Pipeline;

/// An authenticated call on its way to a directory operation.
#[derive(Debug)]
pub struct DirectoryCall<'a> {
    pub pipeline: &'a Pipeline,
    pub caller: &'a Principal,
    pub scope: &'a Scope,
}

impl DirectoryCall<'_> {
    /// Decide `action` on `arn` (a resource without a policy of its own, so the caller's
    /// identity policies and its organization's SCPs decide), recording the decision.
    pub fn authorize(&self, action: &str, arn: &str, draft: &mut Draft) -> Result<(), ApiError> {
        self.authorize_with(action, arn, &[], draft)
    }

    /// [`Self::authorize`] with the request's own condition keys (`organizations:PolicyType`).
    pub fn authorize_with(
        &self,
        action: &str,
        arn: &str,
        keys: &[(String, Vec<String>)],
        draft: &mut Draft,
    ) -> Result<(), ApiError> {
        let resolved = Resolved::on(arn.to_owned(), self.scope.account.clone());
        draft.resource_arn = Some(arn.to_owned());
        self.pipeline
            .authz
            .authorize(self.caller, self.scope, action, &resolved, keys, draft)
    }
}

/// One directory operation.
pub trait DirectoryOperation {
    type Input: DeserializeOwned;
    type Output: Serialize;
    /// The operation's name (`ListAccounts`).
    const NAME: &'static str;
    /// Whether it only reads (CloudTrail's `readOnly`).
    const READ_ONLY: bool;
    /// Check the input's shape and limits (before authorization, as AWS does).
    fn validate(input: &Self::Input) -> Result<(), ApiError>;
    /// Decide (through [`DirectoryCall::authorize`]) and answer.
    fn handle(
        call: &DirectoryCall<'_>,
        input: Self::Input,
        draft: &mut Draft,
    ) -> impl Future<Output = Result<Self::Output, ApiError>>;
}

/// A page of `items` from the opaque token `next` (an offset this server issued), at most
/// `max` items, and the token of the next page.
pub fn page<T: Clone>(
    items: &[T],
    next: Option<&str>,
    max: usize,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let start = match next {
        None => 0,
        Some(t) => t
            .strip_prefix("o")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| {
                ApiError::InvalidInput(
                    "You provided an invalid value for the NextToken parameter.".into(),
                )
            })?,
    };
    let end = start.saturating_add(max).min(items.len());
    let shown = items.get(start..end).unwrap_or_default().to_vec();
    let next = (end < items.len()).then(|| format!("o{end}"));
    Ok((shown, next))
}

/// Organizations' `MaxResults`: 1–20 (the model's bounds); 20 when absent.
pub fn max_results(v: Option<i64>) -> Result<usize, ApiError> {
    match v {
        None => Ok(20),
        Some(n @ 1..=20) => usize::try_from(n).map_err(ApiError::internal),
        Some(_) => Err(ApiError::InvalidInput(
            "You provided a value for MaxResults that is outside the valid range (1-20).".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_their_tokens_and_a_forged_token_is_refused() {
        let items: Vec<u32> = (0..5).collect();
        let (a, next) = page(&items, None, 2).unwrap();
        assert_eq!(a, vec![0, 1]);
        let (b, next) = page(&items, next.as_deref(), 2).unwrap();
        assert_eq!(b, vec![2, 3]);
        let (c, next) = page(&items, next.as_deref(), 2).unwrap();
        assert_eq!((c, next), (vec![4], None));
        for bad in ["x", "o99", "o-1", ""] {
            assert_eq!(
                page(&items, Some(bad), 2).unwrap_err().code(),
                "InvalidInputException"
            );
        }
        assert!(max_results(Some(0)).is_err());
        assert!(max_results(Some(21)).is_err());
        assert_eq!(max_results(None).unwrap(), 20);
    }
}
