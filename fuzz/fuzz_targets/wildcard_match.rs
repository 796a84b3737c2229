//! wildcard_match: the policy pattern matchers against naive references (DRT).
//!
//! Input: `pattern \n candidate`.
//! - `policy::Pattern::glob` (`*` = any sequence, `?` = exactly one character, nothing else
//!   special) agrees with a textbook dynamic-programming matcher over characters; a
//!   `Pattern::literal` matches exactly its own text.
//! - `policy::ArnPattern::glob` agrees with the documented ARN rule restated naively: `*` alone
//!   matches everything; otherwise the pattern is split at `:` into at most six parts (the
//!   sixth keeps its colons); a pattern of fewer parts matches nothing unless it ends with `*`,
//!   in which case the missing parts are `*`; a candidate must have six `:`-separated parts
//!   (the sixth keeps its colons), each matching its part as a glob.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom::policy::{ArnPattern, Pattern};

/// Classic O(n·m) glob matching over characters.
fn naive_glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    // m[i][j]: p[..i] matches s[..j]
    let mut m = vec![vec![false; s.len() + 1]; p.len() + 1];
    m[0][0] = true;
    for i in 1..=p.len() {
        for j in 0..=s.len() {
            m[i][j] = match p[i - 1] {
                '*' => m[i - 1][j] || (j > 0 && m[i][j - 1]),
                '?' => j > 0 && m[i - 1][j - 1],
                c => j > 0 && m[i - 1][j - 1] && s[j - 1] == c,
            };
        }
    }
    m[p.len()][s.len()]
}

fn naive_arn(pattern: &str, s: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let mut parts: Vec<String> = pattern.splitn(6, ':').map(str::to_owned).collect();
    if parts.len() < 6 {
        if !parts.last().is_some_and(|p| p.ends_with('*')) {
            return false;
        }
        while parts.len() < 6 {
            parts.push("*".to_owned());
        }
    }
    let cand: Vec<&str> = s.splitn(6, ':').collect();
    cand.len() == 6 && parts.iter().zip(&cand).all(|(p, c)| naive_glob(p, c))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, candidate) = text.split_once('\n').unwrap_or((text, ""));
    // Keep the reference's quadratic table small.
    if pattern.chars().count() > 200 || candidate.chars().count() > 400 {
        return;
    }
    let glob = Pattern::glob(pattern);
    assert_eq!(
        glob.matches(candidate),
        naive_glob(pattern, candidate),
        "glob {pattern:?} vs {candidate:?}"
    );
    assert!(
        glob.matches(pattern) || pattern.contains(['*', '?']),
        "a literal glob must match itself"
    );
    assert!(Pattern::literal(pattern).matches(pattern));
    assert_eq!(
        Pattern::literal(pattern).matches(candidate),
        pattern == candidate
    );
    assert_eq!(
        ArnPattern::glob(pattern).matches(candidate),
        naive_arn(pattern, candidate),
        "arn {pattern:?} vs {candidate:?}"
    );
});
