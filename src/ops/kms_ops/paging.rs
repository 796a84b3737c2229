//! `Limit`/`Marker` paging for the KMS list operations.
//!
//! A marker is an opaque cursor: the operation that issued it and the sort key of the last
//! item returned, base64url-encoded. The next page holds the items that sort after it, so
//! deleting items between calls never skips or repeats the others; a marker of another list
//! operation is refused as one this server did not issue.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::ApiError;
use crate::secrets::check_len;

/// The largest `Limit` the KMS model accepts.
pub const MAX_LIMIT: i64 = 1000;
/// The longest marker the KMS model accepts.
const MAX_MARKER_LEN: usize = 1024;

/// Check `Limit` is within 1–1000, in AWS's ValidationException wording.
pub fn check_limit(limit: Option<i64>) -> Result<(), ApiError> {
    match limit {
        Some(v) if v < 1 => Err(validation_value(
            &v.to_string(),
            "limit",
            "Member must have value greater than or equal to 1",
        )),
        Some(v) if v > MAX_LIMIT => Err(validation_value(
            &v.to_string(),
            "limit",
            "Member must have value less than or equal to 1000",
        )),
        _ => Ok(()),
    }
}

/// Check a marker's length (1–1024) before authorization.
pub fn check_marker(marker: Option<&str>) -> Result<(), ApiError> {
    match marker {
        Some(m) => check_len("marker", m.chars().count(), 1, MAX_MARKER_LEN),
        None => Ok(()),
    }
}

/// `limit` (already checked) as a page size, `default` when absent, at most `cap`.
pub fn page_size(limit: Option<i64>, default: usize, cap: usize) -> usize {
    limit
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(default)
        .clamp(1, cap)
}

/// A cursor as the opaque marker sent to the client.
pub fn encode_marker(op: &str, cursor: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{op}\n{cursor}").as_bytes())
}

/// The cursor inside a marker this server issued for `op`.
pub fn decode_marker(op: &str, marker: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(marker.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|text| {
            text.strip_prefix(op)
                .and_then(|rest| rest.strip_prefix('\n'))
                .map(str::to_owned)
        })
        .ok_or_else(invalid_marker)
}

/// The error for a marker this server did not issue (KMS's `InvalidMarkerException`).
pub fn invalid_marker() -> ApiError {
    ApiError::KmsInvalidMarker(
        "Invalid marker: pass the NextMarker value of a previous response unchanged.".into(),
    )
}

/// One page of `items` (sorted by `key`): the items after `after`, at most `limit` of them,
/// and whether more follow.
pub fn page<T, K: Ord>(
    items: Vec<T>,
    key: impl Fn(&T) -> K,
    after: Option<&K>,
    limit: usize,
) -> (Vec<T>, bool) {
    let mut rest = items.into_iter().filter(|item| match after {
        None => true,
        Some(a) => key(item) > *a,
    });
    let taken: Vec<T> = rest.by_ref().take(limit).collect();
    let truncated = rest.next().is_some();
    (taken, truncated)
}

/// AWS's "Value 'v' at 'field' failed to satisfy constraint" message.
pub fn validation_value(value: &str, field: &str, constraint: &str) -> ApiError {
    let shown: String = value.chars().take(128).collect();
    ApiError::Validation(format!(
        "1 validation error detected: Value '{shown}' at '{field}' failed to satisfy constraint: {constraint}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(check_limit(None).is_ok());
        assert!(check_limit(Some(1)).is_ok());
        assert!(check_limit(Some(1000)).is_ok());
        assert_eq!(
            check_limit(Some(0)).unwrap_err().code(),
            "ValidationException"
        );
        assert_eq!(
            check_limit(Some(1001)).unwrap_err().code(),
            "ValidationException"
        );
        assert_eq!(page_size(None, 50, 100), 50);
        assert_eq!(page_size(Some(1000), 50, 100), 100);
        assert_eq!(page_size(Some(3), 50, 100), 3);
    }

    #[test]
    fn markers_round_trip_and_reject_garbage() {
        let m = encode_marker("ListKeys", "1700000000000:abc-def");
        assert_eq!(
            decode_marker("ListKeys", &m).unwrap(),
            "1700000000000:abc-def"
        );
        // Another operation's marker is not this one's.
        assert_eq!(
            decode_marker("ListAliases", &m).unwrap_err().code(),
            "InvalidMarkerException"
        );
        assert_eq!(
            decode_marker("ListKey", &m).unwrap_err().code(),
            "InvalidMarkerException"
        );
        assert!(m
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(
            decode_marker("ListKeys", "***").unwrap_err().code(),
            "InvalidMarkerException"
        );
        let e = check_marker(Some("")).unwrap_err();
        assert_eq!(e.code(), "ValidationException");
        assert!(
            e.message()
                .contains("'marker' failed to satisfy constraint: Member must have length greater than or equal to 1"),
            "{e:?}"
        );
        let e = check_marker(Some(&"a".repeat(1025))).unwrap_err();
        assert_eq!(e.code(), "ValidationException");
        assert!(
            e.message()
                .contains("Member must have length less than or equal to 1024"),
            "{e:?}"
        );
    }

    #[test]
    fn pages_follow_the_cursor() {
        let items: Vec<i32> = (1..=5).collect();
        let (p1, more) = page(items.clone(), |i| *i, None, 2);
        assert_eq!((p1.clone(), more), (vec![1, 2], true));
        let (p2, more) = page(items.clone(), |i| *i, p1.last(), 2);
        assert_eq!((p2.clone(), more), (vec![3, 4], true));
        let (p3, more) = page(items.clone(), |i| *i, p2.last(), 2);
        assert_eq!((p3, more), (vec![5], false));
        // An item deleted between calls does not shift the next page.
        let fewer = vec![1, 2, 4, 5];
        let (p, more) = page(fewer, |i| *i, Some(&3), 2);
        assert_eq!((p, more), (vec![4, 5], false));
        let (empty, more) = page(items, |i| *i, Some(&9), 2);
        assert!(empty.is_empty() && !more);
    }
}
