//! password: GetRandomPassword's generator.
//!
//! Properties (PBT): `generate` never panics and
//! - succeeds exactly when the documented rules allow it: length in 1..=4096 (default 32),
//!   ExcludeCharacters at most 4096 characters (`ValidationException` otherwise), some
//!   character left to draw from and the length at least the number of required classes
//!   (`InvalidParameterException` otherwise);
//! - on success: exactly the requested length; only printable ASCII; never an excluded
//!   character or a character of an excluded class; a space only with IncludeSpace; and,
//!   with RequireEachIncludedType (default true), at least one character of every included
//!   class that exclusions left non-empty.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use strongroom::secrets::password::{generate, PasswordSpec};

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";
const PUNCT: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

#[derive(Debug, Arbitrary)]
enum Length {
    Absent,
    /// Mostly in range (0..=4097 covers both edges).
    Near(u16),
    Any(i64),
}

#[derive(Debug, Arbitrary)]
struct Input {
    length: Length,
    exclude_characters: Option<String>,
    exclude_numbers: Option<bool>,
    exclude_punctuation: Option<bool>,
    exclude_uppercase: Option<bool>,
    exclude_lowercase: Option<bool>,
    include_space: Option<bool>,
    require_each_included_type: Option<bool>,
}

fuzz_target!(|inp: Input| {
    let length = match inp.length {
        Length::Absent => None,
        Length::Near(n) => Some(i64::from(n % 4098)),
        Length::Any(n) => Some(n),
    };
    let spec = PasswordSpec {
        password_length: length,
        exclude_characters: inp.exclude_characters.clone(),
        exclude_numbers: inp.exclude_numbers,
        exclude_punctuation: inp.exclude_punctuation,
        exclude_uppercase: inp.exclude_uppercase,
        exclude_lowercase: inp.exclude_lowercase,
        include_space: inp.include_space,
        require_each_included_type: inp.require_each_included_type,
    };
    let result = generate(&spec);

    let excluded = inp.exclude_characters.clone().unwrap_or_default();
    let n = length.unwrap_or(32);
    if !(1..=4096).contains(&n) || excluded.chars().count() > 4096 {
        let e = result.expect_err("out-of-range input accepted");
        assert_eq!(e.code(), "ValidationException", "{}", e.message());
        return;
    }
    let class = |chars: &str, off: Option<bool>| -> Vec<char> {
        if off.unwrap_or(false) {
            return Vec::new();
        }
        chars.chars().filter(|c| !excluded.contains(*c)).collect()
    };
    let classes: Vec<Vec<char>> = [
        class(LOWER, inp.exclude_lowercase),
        class(UPPER, inp.exclude_uppercase),
        class(DIGITS, inp.exclude_numbers),
        class(PUNCT, inp.exclude_punctuation),
    ]
    .into_iter()
    .filter(|c| !c.is_empty())
    .collect();
    let space = inp.include_space.unwrap_or(false) && !excluded.contains(' ');
    // With RequireEachIncludedType the space (IncludeSpace) is one of the required types.
    let required = if inp.require_each_included_type.unwrap_or(true) {
        classes.len() + usize::from(space)
    } else {
        0
    };
    let n = usize::try_from(n).expect("in 1..=4096");
    if (classes.is_empty() && !space) || n < required {
        let e = result.expect_err("impossible password generated");
        assert_eq!(e.code(), "InvalidParameterException", "{}", e.message());
        return;
    }
    let p =
        result.unwrap_or_else(|e| panic!("rejected a valid spec: {} {}", e.code(), e.message()));
    assert_eq!(p.chars().count(), n);
    assert_eq!(p.len(), n, "non-ASCII output");
    for c in p.chars() {
        let allowed = classes.iter().any(|cl| cl.contains(&c)) || (space && c == ' ');
        assert!(allowed, "{c:?} not allowed in {p:?}");
    }
    if required > 0 {
        for cl in &classes {
            assert!(
                p.chars().any(|c| cl.contains(&c)),
                "a required class is missing from {p:?}"
            );
        }
        if space {
            assert!(p.contains(' '), "the required space is missing from {p:?}");
        }
    }
});
