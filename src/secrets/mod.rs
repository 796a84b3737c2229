//! Pure domain rules of Secrets Manager: names, ARNs, tokens, tags, values, labels.
//!
//! May depend on: `error`, `crypto::SecretBytes`. No I/O, no clock (times are passed in).

pub mod filters;
pub mod labels;
pub mod password;

use crate::error::ApiError;

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
pub const AWSPENDING: &str = "AWSPENDING";

pub const MAX_NAME_LEN: usize = 512;
pub const MAX_SECRET_ID_LEN: usize = 2048;
pub const MAX_DESCRIPTION_LEN: usize = 2048;
pub const MAX_VALUE_BYTES: usize = 65_536;
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_KEY_LEN: usize = 128;
pub const MAX_TAG_VALUE_LEN: usize = 256;
pub const MAX_VERSIONS: usize = 100;
pub const DEPRECATED_MIN_AGE_MS: i64 = 24 * 3600 * 1000;

/// AWS's "1 validation error detected" message for one field.
pub fn validation(field: &str, constraint: &str) -> ApiError {
    ApiError::Validation(format!(
        "1 validation error detected: Value at '{field}' failed to satisfy constraint: {constraint}"
    ))
}

/// Check a length range, answering AWS's ValidationException wording.
pub fn check_len(field: &str, len: usize, min: usize, max: usize) -> Result<(), ApiError> {
    if len < min {
        return Err(validation(
            field,
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if len > max {
        return Err(validation(
            field,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// AWS's answer to a name or SecretId with a character outside its set.
pub const INVALID_NAME: &str = "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!";

/// The characters of a secret name, as AWS documents them for CreateSecret.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)
}

/// The characters AWS's SecretId check accepts: a name's, plus `!` (its message lists it).
fn is_secret_id_char(c: char) -> bool {
    is_name_char(c) || c == '!'
}

/// Validate a secret name (1–512 of `[A-Za-z0-9/_+=.@-]`).
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    check_len("name", name.chars().count(), 1, MAX_NAME_LEN)?;
    if !name.chars().all(is_name_char) {
        return Err(ApiError::Validation(INVALID_NAME.into()));
    }
    Ok(())
}

/// The name part of a SecretId: what follows `:secret:` in a Secrets Manager ARN (full or
/// partial, whose other fields may hold `:`-free text of any kind), else the id itself.
pub fn secret_id_name(id: &str) -> &str {
    if let Some(rest) = id.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(6, ':').collect();
        if let [_partition, "secretsmanager", _region, _account, "secret", name] = parts.as_slice()
        {
            return name;
        }
    }
    id
}

/// Validate a SecretId (name or ARN, 1–2048 chars; the name it carries of
/// `[A-Za-z0-9/_+=.@!-]`), before any lookup, as AWS does.
pub fn validate_secret_id(id: &str) -> Result<(), ApiError> {
    check_len("secretId", id.chars().count(), 1, MAX_SECRET_ID_LEN)?;
    let name = secret_id_name(id);
    if name.is_empty() || !name.chars().all(is_secret_id_char) {
        return Err(ApiError::Validation(INVALID_NAME.into()));
    }
    Ok(())
}

/// A fresh 6-character ARN suffix.
pub fn arn_suffix() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    crate::crypto::random::string(ALPHABET, 6)
}

/// `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX`.
pub fn secret_arn(region: &str, account: &str, name: &str, suffix: &str) -> String {
    format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-{suffix}")
}

/// The ARN a request names, for authorization when the secret does not exist: a full or
/// partial ARN as given, else the partial ARN built from the name.
pub fn would_be_arn(region: &str, account: &str, id: &str) -> String {
    if id.starts_with("arn:") {
        return id.to_owned();
    }
    // On every request's resolution: appended, without `format!`.
    let mut arn = String::with_capacity(40 + region.len() + account.len() + id.len());
    for part in [
        "arn:aws:secretsmanager:",
        region,
        ":",
        account,
        ":secret:",
        id,
    ] {
        arn.push_str(part);
    }
    arn
}

/// Validate a ClientRequestToken / VersionId (32–64 chars).
pub fn validate_token(token: &str) -> Result<(), ApiError> {
    let n = token.chars().count();
    if !(32..=64).contains(&n) {
        return Err(ApiError::InvalidParameter(
            "ClientRequestToken must be 32-64 characters long.".into(),
        ));
    }
    Ok(())
}

/// The token of a write that creates a version. The SDKs and the CLI generate one; a raw
/// request without one is refused (before any lookup), as AWS does.
pub fn require_token(token: Option<&str>) -> Result<&str, ApiError> {
    token.ok_or_else(|| {
        ApiError::InvalidRequest(
            "You must provide a ClientRequestToken value. We recommend a UUID-type value.".into(),
        )
    })
}

/// Validate a VersionId given to a read (same 32–64 rule, AWS's validation wording).
pub fn validate_version_id(field: &str, id: &str) -> Result<(), ApiError> {
    check_len(field, id.chars().count(), 32, 64)
}

/// Validate a staging label (1–256 chars).
pub fn validate_stage(field: &str, stage: &str) -> Result<(), ApiError> {
    check_len(field, stage.chars().count(), 1, 256)
}

pub fn validate_description(d: &str) -> Result<(), ApiError> {
    check_len("description", d.chars().count(), 0, MAX_DESCRIPTION_LEN)
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

/// Validate tags as given to CreateSecret/TagResource.
pub fn validate_tags(tags: &[(String, String)]) -> Result<(), ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(validation(
            "tags",
            &format!("Member must have length less than or equal to {MAX_TAGS}"),
        ));
    }
    for (k, v) in tags {
        check_len("tags.member.key", k.chars().count(), 1, MAX_TAG_KEY_LEN)?;
        check_len("tags.member.value", v.chars().count(), 0, MAX_TAG_VALUE_LEN)?;
        if !k.chars().all(is_tag_char) || !v.chars().all(is_tag_char) {
            return Err(ApiError::InvalidParameter(
                "You can't use tag keys or values that contain characters other than letters, numbers, spaces, and the following symbols: _ . : / = + - @".into(),
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(ApiError::InvalidParameter(
                "Invalid tag key. The aws: prefix is reserved for AWS use.".into(),
            ));
        }
    }
    check_tag_key_case(&[], tags)
}

/// Refuse a tag key that differs only in case from another one of `existing` or `new`.
/// Condition keys are case-insensitive (`aws:ResourceTag/Team` is `aws:ResourceTag/team`): two
/// such tags on one secret would leave a policy's tag condition deciding on either value, and
/// adding `team` next to `Team` would change what `Team`'s conditions see. (IAM refuses such
/// tags for the same reason.)
pub fn check_tag_key_case(
    existing: &[(String, String)],
    new: &[(String, String)],
) -> Result<(), ApiError> {
    for (i, (k, _)) in new.iter().enumerate() {
        let clash = existing
            .iter()
            .chain(&new[..i])
            .find(|(other, _)| other != k && other.to_lowercase() == k.to_lowercase());
        if let Some((other, _)) = clash {
            return Err(ApiError::InvalidParameter(format!(
                "You can't use the tag key {k}: it differs only in case from the tag key {other}, and tag keys in policy conditions are case-insensitive."
            )));
        }
    }
    Ok(())
}

/// Merge `new` tags into `existing` (later keys replace earlier values, order kept).
pub fn merge_tags(
    existing: &[(String, String)],
    new: &[(String, String)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = existing.to_vec();
    for (k, v) in new {
        match out.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1.clone_from(v),
            None => out.push((k.clone(), v.clone())),
        }
    }
    out
}

/// Which kind of value a version holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    String,
    Binary,
}

impl ValueKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::String => "S",
            Self::Binary => "B",
        }
    }
    pub fn from_code(c: &str) -> Option<Self> {
        match c {
            "S" => Some(Self::String),
            "B" => Some(Self::Binary),
            _ => None,
        }
    }
}

/// Check a secret value's size (SecretString counted in bytes, as AWS documents).
pub fn validate_value(kind: ValueKind, bytes: &[u8]) -> Result<(), ApiError> {
    let field = match kind {
        ValueKind::String => "secretString",
        ValueKind::Binary => "secretBinary",
    };
    if bytes.len() > MAX_VALUE_BYTES {
        return Err(validation(
            field,
            &format!("Member must have length less than or equal to {MAX_VALUE_BYTES}"),
        ));
    }
    if kind == ValueKind::Binary && bytes.is_empty() {
        return Err(validation(
            field,
            "Member must have length greater than or equal to 1",
        ));
    }
    Ok(())
}

/// `Type` (`MedeaTypeType`: at most 256 characters).
pub fn validate_secret_type(t: &str) -> Result<(), ApiError> {
    check_len("type", t.chars().count(), 0, 256)
}

/// A recovery window: `None` means the default of 30 days. Its range is checked before its
/// conflict with `ForceDeleteWithoutRecovery`, as AWS does.
pub fn validate_recovery_window(days: Option<i64>, force: Option<bool>) -> Result<i64, ApiError> {
    let d = days.unwrap_or(30);
    if !(7..=30).contains(&d) {
        return Err(ApiError::InvalidParameter(
            "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).".into(),
        ));
    }
    if force == Some(true) && days.is_some() {
        return Err(ApiError::InvalidParameter(
            "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays."
                .into(),
        ));
    }
    Ok(d)
}

/// The error for an operation on a secret scheduled for deletion, in AWS's wording (which
/// names no operation).
pub fn marked_for_deletion() -> ApiError {
    ApiError::InvalidRequest(
        "You can't perform this operation on the secret because it was marked for deletion.".into(),
    )
}

/// The other wording AWS uses for a secret scheduled for deletion: DeleteSecret (without
/// force) and BatchGetSecretValue's `Errors` entries.
pub fn currently_marked_deleted() -> ApiError {
    ApiError::InvalidRequest(
        "You tried to perform the operation on a secret that's currently marked deleted.".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `r` is refused with `code`, in a message containing `part`.
    #[track_caller]
    fn refused<T: std::fmt::Debug>(r: Result<T, ApiError>, code: &str, part: &str) {
        let e = r.unwrap_err();
        assert_eq!(e.code(), code, "{e:?}");
        assert!(e.message().contains(part), "{e:?} lacks {part:?}");
    }

    #[test]
    fn names() {
        assert!(validate_name("prod/db/password").is_ok());
        assert!(validate_name("a.b@c+d=e_f-g").is_ok());
        refused(
            validate_name(""),
            "ValidationException",
            "Value at 'name' failed to satisfy constraint: Member must have length greater than or equal to 1",
        );
        assert!(validate_name(&"a".repeat(512)).is_ok());
        refused(
            validate_name(&"a".repeat(513)),
            "ValidationException",
            "Member must have length less than or equal to 512",
        );
        assert_eq!(
            validate_name("bad name"),
            Err(ApiError::Validation(INVALID_NAME.into()))
        );
        for bad in ["ünïcode", "a:b"] {
            assert_eq!(
                validate_name(bad),
                Err(ApiError::Validation(INVALID_NAME.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn secret_ids() {
        let invalid = Err(ApiError::Validation(INVALID_NAME.into()));
        for ok in [
            "prod/db",
            "a!b",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db",
            "arn:aws-cn:secretsmanager:cn-north-1:111122223333:secret:x",
        ] {
            assert_eq!(validate_secret_id(ok), Ok(()), "{ok}");
        }
        for bad in [
            "bad name",
            "tab\there",
            "ünïcode",
            "a:b",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:bad name-AbCdEf",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:a:b",
            "arn:aws:kms:us-east-1:111122223333:key/abc",
        ] {
            assert_eq!(validate_secret_id(bad), invalid, "{bad}");
        }
        assert_eq!(
            validate_secret_id("").unwrap_err().code(),
            "ValidationException"
        );
        assert!(validate_secret_id(&"a".repeat(2049))
            .unwrap_err()
            .message()
            .contains("less than or equal to 2048"));
    }

    #[test]
    fn arns() {
        let s = arn_suffix();
        assert_eq!(s.len(), 6);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(arn_suffix(), arn_suffix());
        assert_eq!(
            secret_arn("us-east-1", "000000000000", "a/b", "AbCdEf"),
            "arn:aws:secretsmanager:us-east-1:000000000000:secret:a/b-AbCdEf"
        );
    }

    #[test]
    fn tokens_and_windows() {
        let token_length = "ClientRequestToken must be 32-64 characters long.";
        refused(
            validate_token(&"x".repeat(31)),
            "InvalidParameterException",
            token_length,
        );
        assert!(validate_token(&"x".repeat(32)).is_ok());
        assert!(validate_token(&"x".repeat(64)).is_ok());
        refused(
            validate_token(&"x".repeat(65)),
            "InvalidParameterException",
            token_length,
        );
        assert_eq!(validate_recovery_window(None, None).unwrap(), 30);
        let window = "RecoveryWindowInDays value must be between 7 and 30 days (inclusive)";
        for days in [6, 31] {
            refused(
                validate_recovery_window(Some(days), None),
                "InvalidParameterException",
                window,
            );
        }
        refused(
            validate_recovery_window(Some(7), Some(true)),
            "InvalidParameterException",
            "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
        );
        assert_eq!(validate_recovery_window(None, Some(true)).unwrap(), 30);
        // The range is checked first, as AWS does.
        refused(
            validate_recovery_window(Some(3), Some(true)),
            "InvalidParameterException",
            window,
        );
    }

    #[test]
    fn tags() {
        let t = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert!(validate_tags(&[t("team", "payments")]).is_ok());
        refused(
            validate_tags(&[t("aws:x", "y")]),
            "InvalidParameterException",
            "The aws: prefix is reserved",
        );
        refused(
            validate_tags(&[t("", "y")]),
            "ValidationException",
            "'tags.member.key' failed to satisfy constraint: Member must have length greater than or equal to 1",
        );
        refused(
            validate_tags(&[t(&"k".repeat(129), "y")]),
            "ValidationException",
            "'tags.member.key' failed to satisfy constraint: Member must have length less than or equal to 128",
        );
        refused(
            validate_tags(&[t("k", &"v".repeat(257))]),
            "ValidationException",
            "'tags.member.value' failed to satisfy constraint: Member must have length less than or equal to 256",
        );
        let many: Vec<_> = (0..51).map(|i| t(&format!("k{i}"), "v")).collect();
        refused(
            validate_tags(&many),
            "ValidationException",
            "'tags' failed to satisfy constraint: Member must have length less than or equal to 50",
        );
        assert!(validate_tags(&[t("Team", "red"), t("team", "blue")]).is_err());
        assert!(validate_tags(&[t("Team", "red"), t("Team", "blue")]).is_ok());
        assert!(check_tag_key_case(&[t("Team", "red")], &[t("TEAM", "blue")]).is_err());
        assert!(check_tag_key_case(&[t("Team", "red")], &[t("Team", "blue")]).is_ok());
        let merged = merge_tags(&[t("a", "1"), t("b", "2")], &[t("b", "3"), t("c", "4")]);
        assert_eq!(merged, vec![t("a", "1"), t("b", "3"), t("c", "4")]);
    }

    #[test]
    fn values() {
        assert!(validate_value(ValueKind::String, &vec![b'a'; 65_536]).is_ok());
        refused(
            validate_value(ValueKind::String, &vec![b'a'; 65_537]),
            "ValidationException",
            "'secretString' failed to satisfy constraint: Member must have length less than or equal to 65536",
        );
        refused(
            validate_value(ValueKind::Binary, &[]),
            "ValidationException",
            "'secretBinary' failed to satisfy constraint: Member must have length greater than or equal to 1",
        );
    }
}
