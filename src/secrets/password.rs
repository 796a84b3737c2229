//! GetRandomPassword: AWS Secrets Manager's password generator.
//!
//! Semantics follow the AWS API reference:
//! - `PasswordLength` defaults to 32 and must lie in `1..=4096` (a model constraint, answered
//!   as `ValidationException` in AWS's wording);
//! - `ExcludeCharacters` is at most 4096 characters (also a model constraint);
//! - the character classes are lowercase `a-z`, uppercase `A-Z`, digits `0-9` and the 32
//!   printable ASCII punctuation characters ``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~``; the space
//!   is added only with `IncludeSpace`;
//! - `RequireEachIncludedType` (default true) puts at least one character of each included
//!   type (lowercase, uppercase, digits, punctuation, and the space with `IncludeSpace`) into
//!   the password: AWS's model documents it as "must include at least one of every allowed
//!   character type", and a client asking for spaces expects one. A type emptied by
//!   `ExcludeCharacters` is not required.
//!
//! Every draw uses the operating system's CSPRNG ([`OsRng`]) with uniform sampling, and the
//! required characters end up at uniformly random positions (fill, then shuffle). The
//! working buffers are zeroized on drop.

use std::collections::BTreeSet;

use rand::rngs::OsRng;
use rand::seq::SliceRandom;
use zeroize::Zeroizing;

use crate::error::ApiError;

/// The length AWS uses when `PasswordLength` is absent.
pub const DEFAULT_LENGTH: i64 = 32;
/// The largest `PasswordLength` the AWS model accepts.
pub const MAX_LENGTH: i64 = 4096;
/// The smallest `PasswordLength` the AWS model accepts.
pub const MIN_LENGTH: i64 = 1;
/// The longest `ExcludeCharacters` the AWS model accepts, in characters.
pub const MAX_EXCLUDE_CHARACTERS: usize = 4096;

const LOWERCASE: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPERCASE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
/// The 32 printable ASCII punctuation characters, as AWS lists them.
const PUNCTUATION: &[u8] = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const SPACE: u8 = b' ';

/// The GetRandomPassword request body.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PasswordSpec {
    pub password_length: Option<i64>,
    pub exclude_characters: Option<String>,
    pub exclude_numbers: Option<bool>,
    pub exclude_punctuation: Option<bool>,
    pub exclude_uppercase: Option<bool>,
    pub exclude_lowercase: Option<bool>,
    pub include_space: Option<bool>,
    pub require_each_included_type: Option<bool>,
}

/// Generates a password as GetRandomPassword does.
///
/// Errors:
/// - `ValidationException` when `PasswordLength` is outside `1..=4096` or `ExcludeCharacters`
///   is longer than 4096 characters (all violations reported in one message, as AWS does);
/// - `InvalidParameterException` when no character is left to draw from, or when the length
///   is smaller than the number of required character types.
pub fn generate(spec: &PasswordSpec) -> Result<Zeroizing<String>, ApiError> {
    let length = validate(spec)?;

    let excluded: BTreeSet<char> = spec
        .exclude_characters
        .as_deref()
        .unwrap_or_default()
        .chars()
        .collect();
    let keep = |class: &[u8]| -> Vec<u8> {
        class
            .iter()
            .copied()
            .filter(|b| !excluded.contains(&char::from(*b)))
            .collect()
    };

    // The included classes, after exclusions; empty classes are dropped.
    let mut classes: Vec<Vec<u8>> = Vec::with_capacity(4);
    if !spec.exclude_lowercase.unwrap_or(false) {
        classes.push(keep(LOWERCASE));
    }
    if !spec.exclude_uppercase.unwrap_or(false) {
        classes.push(keep(UPPERCASE));
    }
    if !spec.exclude_numbers.unwrap_or(false) {
        classes.push(keep(DIGITS));
    }
    if !spec.exclude_punctuation.unwrap_or(false) {
        classes.push(keep(PUNCTUATION));
    }
    classes.retain(|c| !c.is_empty());

    if spec.include_space.unwrap_or(false) && !excluded.contains(&char::from(SPACE)) {
        classes.push(vec![SPACE]);
    }
    let pool: Vec<u8> = classes.iter().flatten().copied().collect();
    if pool.is_empty() {
        return Err(ApiError::InvalidParameter(
            "The password must contain at least one character type.".into(),
        ));
    }

    let required: &[Vec<u8>] = if spec.require_each_included_type.unwrap_or(true) {
        &classes
    } else {
        &[]
    };
    if length < required.len() {
        return Err(ApiError::InvalidParameter(
            "Password length is too short based on the required types.".into(),
        ));
    }

    let mut rng = OsRng;
    let mut buf: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::with_capacity(length));
    for class in required {
        buf.push(draw(class, &mut rng)?);
    }
    while buf.len() < length {
        buf.push(draw(&pool, &mut rng)?);
    }
    // Required characters were placed first; a uniform shuffle moves them to random positions.
    buf.shuffle(&mut rng);

    // Exact capacity: the string never reallocates, so no unzeroized copy is left behind.
    let mut password = Zeroizing::new(String::with_capacity(length));
    password.extend(buf.iter().map(|b| char::from(*b)));
    Ok(password)
}

/// Checks the model constraints; answers the password length to use.
fn validate(spec: &PasswordSpec) -> Result<usize, ApiError> {
    let mut errors: Vec<String> = Vec::new();
    let length = spec.password_length.unwrap_or(DEFAULT_LENGTH);
    if length < MIN_LENGTH {
        errors.push(format!(
            "Value '{length}' at 'passwordLength' failed to satisfy constraint: \
             Member must have value greater than or equal to {MIN_LENGTH}"
        ));
    } else if length > MAX_LENGTH {
        errors.push(format!(
            "Value '{length}' at 'passwordLength' failed to satisfy constraint: \
             Member must have value less than or equal to {MAX_LENGTH}"
        ));
    }
    if let Some(exclude) = spec.exclude_characters.as_deref() {
        if exclude.chars().count() > MAX_EXCLUDE_CHARACTERS {
            errors.push(format!(
                "Value '{exclude}' at 'excludeCharacters' failed to satisfy constraint: \
                 Member must have length less than or equal to {MAX_EXCLUDE_CHARACTERS}"
            ));
        }
    }
    if !errors.is_empty() {
        return Err(validation_error(&errors));
    }
    usize::try_from(length).map_err(ApiError::internal)
}

/// AWS's aggregated model-validation message.
fn validation_error(errors: &[String]) -> ApiError {
    let n = errors.len();
    let noun = if n == 1 { "error" } else { "errors" };
    ApiError::Validation(format!(
        "{n} validation {noun} detected: {}",
        errors.join("; ")
    ))
}

/// One uniformly chosen byte of a non-empty set.
fn draw(set: &[u8], rng: &mut OsRng) -> Result<u8, ApiError> {
    set.choose(rng)
        .copied()
        .ok_or_else(|| ApiError::internal("password generator drew from an empty set"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PasswordSpec {
        PasswordSpec::default()
    }

    fn has(p: &str, class: &[u8]) -> bool {
        p.bytes().any(|b| class.contains(&b))
    }

    fn only(p: &str, allowed: &[&[u8]]) -> bool {
        p.bytes().all(|b| allowed.iter().any(|c| c.contains(&b)))
    }

    #[test]
    fn punctuation_is_the_32_ascii_punctuation_characters() {
        assert_eq!(PUNCTUATION.len(), 32);
        let expected: Vec<u8> = (0x21u8..=0x7e)
            .filter(|b| b.is_ascii_punctuation())
            .collect();
        let mut got = PUNCTUATION.to_vec();
        got.sort_unstable();
        assert_eq!(got, expected);
    }

    #[test]
    fn default_is_32_chars_with_all_four_classes() {
        for _ in 0..50 {
            let p = generate(&spec()).unwrap();
            assert_eq!(p.len(), 32);
            assert!(has(&p, LOWERCASE), "{}", *p);
            assert!(has(&p, UPPERCASE), "{}", *p);
            assert!(has(&p, DIGITS), "{}", *p);
            assert!(has(&p, PUNCTUATION), "{}", *p);
            assert!(!p.contains(' '));
            assert!(only(&p, &[LOWERCASE, UPPERCASE, DIGITS, PUNCTUATION]));
        }
    }

    #[test]
    fn spec_deserializes_from_aws_json() {
        let s: PasswordSpec = serde_json::from_str(
            r#"{"PasswordLength": 12, "ExcludeCharacters": "abc", "ExcludeNumbers": true,
                "ExcludePunctuation": false, "ExcludeUppercase": false,
                "ExcludeLowercase": false, "IncludeSpace": true,
                "RequireEachIncludedType": false}"#,
        )
        .unwrap();
        assert_eq!(s.password_length, Some(12));
        assert_eq!(s.exclude_characters.as_deref(), Some("abc"));
        assert_eq!(s.exclude_numbers, Some(true));
        assert_eq!(s.include_space, Some(true));
        assert_eq!(s.require_each_included_type, Some(false));
        let e = serde_json::from_str::<PasswordSpec>(r#"{"Bogus": 1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `Bogus`"), "{e}");
        let empty: PasswordSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(generate(&empty).unwrap().len(), 32);
    }

    #[test]
    fn exclude_numbers() {
        let s = PasswordSpec {
            exclude_numbers: Some(true),
            password_length: Some(200),
            ..spec()
        };
        for _ in 0..20 {
            let p = generate(&s).unwrap();
            assert!(!has(&p, DIGITS));
            assert!(has(&p, LOWERCASE) && has(&p, UPPERCASE) && has(&p, PUNCTUATION));
        }
    }

    #[test]
    fn exclude_punctuation() {
        let s = PasswordSpec {
            exclude_punctuation: Some(true),
            password_length: Some(200),
            ..spec()
        };
        for _ in 0..20 {
            let p = generate(&s).unwrap();
            assert!(!has(&p, PUNCTUATION));
            assert!(only(&p, &[LOWERCASE, UPPERCASE, DIGITS]));
            assert!(has(&p, LOWERCASE) && has(&p, UPPERCASE) && has(&p, DIGITS));
        }
    }

    #[test]
    fn exclude_uppercase() {
        let s = PasswordSpec {
            exclude_uppercase: Some(true),
            password_length: Some(200),
            ..spec()
        };
        for _ in 0..20 {
            let p = generate(&s).unwrap();
            assert!(!has(&p, UPPERCASE));
            assert!(has(&p, LOWERCASE) && has(&p, DIGITS) && has(&p, PUNCTUATION));
        }
    }

    #[test]
    fn exclude_lowercase() {
        let s = PasswordSpec {
            exclude_lowercase: Some(true),
            password_length: Some(200),
            ..spec()
        };
        for _ in 0..20 {
            let p = generate(&s).unwrap();
            assert!(!has(&p, LOWERCASE));
            assert!(has(&p, UPPERCASE) && has(&p, DIGITS) && has(&p, PUNCTUATION));
        }
    }

    #[test]
    fn explicit_false_flags_behave_like_absent_ones() {
        let s = PasswordSpec {
            exclude_lowercase: Some(false),
            exclude_uppercase: Some(false),
            exclude_numbers: Some(false),
            exclude_punctuation: Some(false),
            include_space: Some(false),
            require_each_included_type: Some(true),
            ..spec()
        };
        let p = generate(&s).unwrap();
        assert_eq!(p.len(), 32);
        assert!(has(&p, LOWERCASE) && has(&p, UPPERCASE) && has(&p, DIGITS));
        assert!(has(&p, PUNCTUATION) && !p.contains(' '));
    }

    #[test]
    fn exclude_characters_is_honoured() {
        let excluded = "aeiouAEIOU0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}";
        let s = PasswordSpec {
            exclude_characters: Some(excluded.into()),
            password_length: Some(64),
            ..spec()
        };
        for _ in 0..200 {
            let p = generate(&s).unwrap();
            assert_eq!(p.len(), 64);
            assert!(!p.chars().any(|c| excluded.contains(c)), "{}", *p);
            // '~' is the only punctuation left and is still required.
            assert!(p.contains('~'), "{}", *p);
            // Digits were all excluded, so they are not required.
            assert!(!has(&p, DIGITS));
        }
    }

    #[test]
    fn class_emptied_by_exclusions_is_not_required() {
        let s = PasswordSpec {
            exclude_characters: Some("0123456789".into()),
            password_length: Some(3),
            ..spec()
        };
        // Three remaining classes fit in three characters.
        let p = generate(&s).unwrap();
        assert!(has(&p, LOWERCASE) && has(&p, UPPERCASE) && has(&p, PUNCTUATION));
    }

    #[test]
    fn include_space() {
        let s = PasswordSpec {
            include_space: Some(true),
            password_length: Some(4096),
            ..spec()
        };
        let p = generate(&s).unwrap();
        assert!(p.contains(' '));
        // With RequireEachIncludedType (the default) the space is a required type.
        let five = PasswordSpec {
            include_space: Some(true),
            password_length: Some(5),
            ..spec()
        };
        for _ in 0..50 {
            let p = generate(&five).unwrap();
            assert!(p.contains(' ') && has(&p, LOWERCASE) && has(&p, UPPERCASE));
            assert!(has(&p, DIGITS) && has(&p, PUNCTUATION));
        }
        let four = PasswordSpec {
            password_length: Some(4),
            ..five
        };
        assert_eq!(
            generate(&four).unwrap_err(),
            ApiError::InvalidParameter(
                "Password length is too short based on the required types.".into()
            )
        );
        // Only the space can be left: allowed.
        let s = PasswordSpec {
            include_space: Some(true),
            exclude_lowercase: Some(true),
            exclude_uppercase: Some(true),
            exclude_numbers: Some(true),
            exclude_punctuation: Some(true),
            password_length: Some(5),
            ..spec()
        };
        assert_eq!(generate(&s).unwrap().as_str(), "     ");
        // ExcludeCharacters beats IncludeSpace.
        let s = PasswordSpec {
            include_space: Some(true),
            exclude_characters: Some(" ".into()),
            password_length: Some(4096),
            ..spec()
        };
        assert!(!generate(&s).unwrap().contains(' '));
    }

    #[test]
    fn length_bounds() {
        let ok = PasswordSpec {
            password_length: Some(4096),
            ..spec()
        };
        assert_eq!(generate(&ok).unwrap().len(), 4096);
        let one = PasswordSpec {
            password_length: Some(1),
            require_each_included_type: Some(false),
            ..spec()
        };
        assert_eq!(generate(&one).unwrap().len(), 1);

        let too_long = PasswordSpec {
            password_length: Some(4097),
            ..spec()
        };
        assert_eq!(
            generate(&too_long).unwrap_err(),
            ApiError::Validation(
                "1 validation error detected: Value '4097' at 'passwordLength' failed to \
                 satisfy constraint: Member must have value less than or equal to 4096"
                    .into()
            )
        );
        let zero = PasswordSpec {
            password_length: Some(0),
            ..spec()
        };
        assert_eq!(
            generate(&zero).unwrap_err(),
            ApiError::Validation(
                "1 validation error detected: Value '0' at 'passwordLength' failed to \
                 satisfy constraint: Member must have value greater than or equal to 1"
                    .into()
            )
        );
        let negative = PasswordSpec {
            password_length: Some(-5),
            ..spec()
        };
        assert!(matches!(
            generate(&negative).unwrap_err(),
            ApiError::Validation(m) if m.contains("Value '-5' at 'passwordLength'")
        ));
        let huge = PasswordSpec {
            password_length: Some(i64::MAX),
            ..spec()
        };
        assert!(matches!(
            generate(&huge).unwrap_err(),
            ApiError::Validation(_)
        ));
    }

    #[test]
    fn exclude_characters_length_limit() {
        let ok = PasswordSpec {
            exclude_characters: Some("a".repeat(4096)),
            ..spec()
        };
        assert!(generate(&ok).is_ok());
        let too_long = PasswordSpec {
            exclude_characters: Some("a".repeat(4097)),
            password_length: Some(0),
            ..spec()
        };
        let err = generate(&too_long).unwrap_err();
        let ApiError::Validation(m) = err else {
            panic!("expected ValidationException, got {err:?}");
        };
        assert!(m.starts_with("2 validation errors detected: Value '0' at 'passwordLength'"));
        assert!(m.ends_with(
            "at 'excludeCharacters' failed to satisfy constraint: \
             Member must have length less than or equal to 4096"
        ));
    }

    #[test]
    fn too_short_for_required_types() {
        let s = PasswordSpec {
            password_length: Some(2),
            ..spec()
        };
        assert_eq!(
            generate(&s).unwrap_err(),
            ApiError::InvalidParameter(
                "Password length is too short based on the required types.".into()
            )
        );
        let four = PasswordSpec {
            password_length: Some(4),
            ..spec()
        };
        for _ in 0..50 {
            let p = generate(&four).unwrap();
            assert!(has(&p, LOWERCASE) && has(&p, UPPERCASE));
            assert!(has(&p, DIGITS) && has(&p, PUNCTUATION));
        }
    }

    #[test]
    fn not_required_allows_length_one() {
        let s = PasswordSpec {
            password_length: Some(1),
            require_each_included_type: Some(false),
            ..spec()
        };
        for _ in 0..50 {
            let p = generate(&s).unwrap();
            assert_eq!(p.len(), 1);
            assert!(only(&p, &[LOWERCASE, UPPERCASE, DIGITS, PUNCTUATION]));
        }
    }

    #[test]
    fn nothing_left_is_rejected() {
        let all_flags = PasswordSpec {
            exclude_lowercase: Some(true),
            exclude_uppercase: Some(true),
            exclude_numbers: Some(true),
            exclude_punctuation: Some(true),
            ..spec()
        };
        let expected = ApiError::InvalidParameter(
            "The password must contain at least one character type.".into(),
        );
        assert_eq!(generate(&all_flags).unwrap_err(), expected);
        let mut everything = String::new();
        everything.extend(LOWERCASE.iter().map(|b| char::from(*b)));
        everything.extend(UPPERCASE.iter().map(|b| char::from(*b)));
        everything.extend(DIGITS.iter().map(|b| char::from(*b)));
        everything.extend(PUNCTUATION.iter().map(|b| char::from(*b)));
        let by_characters = PasswordSpec {
            exclude_characters: Some(everything),
            ..spec()
        };
        assert_eq!(generate(&by_characters).unwrap_err(), expected);
    }

    #[test]
    fn every_character_of_every_class_appears() {
        // 95 possible characters (with space); 20 000 draws make a miss vanishingly unlikely
        // (per character (94/95)^20000 ≈ e^-210).
        let s = PasswordSpec {
            include_space: Some(true),
            password_length: Some(4000),
            ..spec()
        };
        let mut counts = [0usize; 128];
        for _ in 0..5 {
            for b in generate(&s).unwrap().bytes() {
                counts[usize::from(b)] += 1;
            }
        }
        let total: usize = counts.iter().sum();
        assert_eq!(total, 20_000);
        for class in [LOWERCASE, UPPERCASE, DIGITS, PUNCTUATION, b" ".as_slice()] {
            for &b in class {
                let n = counts[usize::from(b)];
                assert!(n > 0, "{:?} never drawn", char::from(b));
                // Expected ≈ 210 each; a uniform sampler stays far inside these bounds.
                assert!(
                    (80..=400).contains(&n),
                    "{:?} drawn {n} times",
                    char::from(b)
                );
            }
        }
        // Nothing outside the 95 printable characters.
        assert_eq!(counts[..0x20].iter().sum::<usize>(), 0);
        assert_eq!(counts[0x7f], 0);
    }

    #[test]
    fn required_characters_are_not_pinned_to_positions() {
        // With only digits excluded-to-one and length 4, the lone required '7' must be able to
        // land anywhere.
        let s = PasswordSpec {
            exclude_characters: Some("012345689".into()),
            password_length: Some(4),
            ..spec()
        };
        let mut seen = [false; 4];
        for _ in 0..400 {
            let p = generate(&s).unwrap();
            if let Some(i) = p.find('7') {
                seen[i] = true;
            }
        }
        assert!(seen.iter().all(|s| *s), "{seen:?}");
    }
}
