//! filters: ListSecrets / BatchGetSecretValue `Filters`.
//!
//! Properties:
//! - `compile` and `matches` never panic (PBT);
//! - `compile` succeeds exactly when the model constraints hold (at most 10 filters, each with
//!   a known key and 1..=10 values of at most 512 characters from `[a-zA-Z0-9 :_@/+=.\-!]`);
//!   otherwise it answers `ValidationException` (model violations) or
//!   `InvalidParameterException` (missing key / missing values) — checked against a naive
//!   restatement of the rules (DRT);
//! - no filters match everything; filters are ANDed (the list matches exactly when each
//!   filter alone matches); within a filter, positives are ORed and negatives exclude
//!   (metamorphic, PBT);
//! - single-value matching equals a naive reference matcher (prefix for name / tag-key /
//!   tag-value; word matching for description / all / primary-region / owning-service) (DRT).
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use strongroom::secrets::filters::{compile, Filter, FilterSubject};

const KEYS: [&str; 7] = [
    "all",
    "name",
    "tag-key",
    "description",
    "tag-value",
    "primary-region",
    "owning-service",
];

#[derive(Debug, Arbitrary)]
enum KeyChoice {
    Known(u8),
    Other(String),
    Missing,
}

#[derive(Debug, Arbitrary)]
struct FilterIn {
    key: KeyChoice,
    values: Option<Vec<String>>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    filters: Vec<FilterIn>,
    name: String,
    description: Option<String>,
    tags: Vec<(String, String)>,
    primary_region: Option<String>,
    owning_service: Option<String>,
}

fn to_filter(f: &FilterIn) -> Filter {
    Filter {
        key: match &f.key {
            KeyChoice::Known(i) => Some(KEYS[usize::from(*i) % KEYS.len()].to_owned()),
            KeyChoice::Other(s) => Some(s.clone()),
            KeyChoice::Missing => None,
        },
        values: f.values.clone(),
    }
}

fn valid_value(v: &str) -> bool {
    v.chars().count() <= 512
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || " :_@/+=.-!".contains(c))
}

/// The documented rules, restated naively: Ok, or the expected error code.
fn expected(filters: &[Filter]) -> Result<(), &'static str> {
    let model_ok = filters.len() <= 10
        && filters.iter().all(|f| {
            f.key.as_deref().map_or(true, |k| KEYS.contains(&k))
                && f.values
                    .as_deref()
                    .map_or(true, |v| v.len() <= 10 && v.iter().all(|s| valid_value(s)))
        });
    if !model_ok {
        return Err("ValidationException");
    }
    if filters
        .iter()
        .any(|f| f.key.is_none() || f.values.as_deref().map_or(true, <[String]>::is_empty))
    {
        return Err("InvalidParameterException");
    }
    Ok(())
}

fn lower(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// Words: split at whitespace and `/-_+=.@`; a character that is not lowercase also starts a
/// word after a lowercase one (`AppBeta`: `App`, `Beta`) or when a lowercase run follows it
/// (`SecretFTag`: `Secret`, `F`, `Tag`; `COMPANYthings`: `COMPAN`, `Ythings`).
fn words(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = vec![String::new()];
    let mut prev: Option<char> = None;
    for (i, &c) in chars.iter().enumerate() {
        if c.is_whitespace() || "/-_+=.@".contains(c) {
            out.push(String::new());
            prev = None;
            continue;
        }
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        let current_open = out.last().is_some_and(|w| !w.is_empty());
        if current_open && !c.is_lowercase() && (next_lower || prev.is_some_and(char::is_lowercase)) {
            out.push(String::new());
        }
        out.last_mut().expect("non-empty").push(c);
        prev = Some(c);
    }
    out.into_iter().filter(|w| !w.is_empty()).collect()
}

/// A value hits a field when the field starts with it, or when each of the value's words
/// (split before lowercasing) starts some word of the field.
fn word_hit(field: &str, value: &str, ci: bool) -> bool {
    let norm = |s: &str| if ci { lower(s) } else { s.to_owned() };
    if norm(field).starts_with(&norm(value)) {
        return true;
    }
    let field_words: Vec<String> = words(field).iter().map(|w| norm(w)).collect();
    let value_words: Vec<String> = words(value).iter().map(|w| norm(w)).collect();
    !value_words.is_empty()
        && value_words
            .iter()
            .all(|vw| field_words.iter().any(|fw| fw.starts_with(vw.as_str())))
}

/// Whether one value (without `!`) hits the subject under `key`.
fn reference_hit(key: &str, value: &str, s: &Input) -> bool {
    let w = |f: &str, ci: bool| word_hit(f, value, ci);
    match key {
        "name" => s.name.starts_with(value),
        "tag-key" => s.tags.iter().any(|(k, _)| k.starts_with(value)),
        "tag-value" => s.tags.iter().any(|(_, v)| v.starts_with(value)),
        "description" => s.description.as_deref().is_some_and(|d| w(d, true)),
        "primary-region" => s.primary_region.as_deref().is_some_and(|d| w(d, false)),
        "owning-service" => s.owning_service.as_deref().is_some_and(|d| w(d, false)),
        // `all` searches the name, the description, tag keys and tag values.
        "all" => {
            w(&s.name, true)
                || s.description.as_deref().is_some_and(|d| w(d, true))
                || s.tags.iter().any(|(k, v)| w(k, true) || w(v, true))
        }
        _ => unreachable!("known keys only"),
    }
}

fuzz_target!(|inp: Input| {
    let filters: Vec<Filter> = inp.filters.iter().map(to_filter).collect();
    let subject = FilterSubject {
        name: &inp.name,
        description: inp.description.as_deref(),
        tags: &inp.tags,
        primary_region: inp.primary_region.as_deref(),
        owning_service: inp.owning_service.as_deref(),
    };

    let none = compile(&[]).expect("no filters compile");
    assert!(
        none.is_empty() && none.matches(&subject),
        "no filters must match everything"
    );

    let compiled = compile(&filters);
    match (&compiled, expected(&filters)) {
        (Ok(_), Ok(())) => {}
        (Err(e), Err(code)) => assert_eq!(e.code(), code, "{}", e.message()),
        (got, want) => panic!("compile gave {got:?}, the rules say {want:?}"),
    }
    let Ok(all) = compiled else { return };
    let whole = all.matches(&subject);

    // AND across filters; OR of positives and exclusion by negatives within a filter.
    let mut each = true;
    for f in &filters {
        let key = f.key.clone().expect("compiled");
        let values = f.values.clone().expect("compiled");
        let alone = compile(std::slice::from_ref(f))
            .expect("a valid filter alone")
            .matches(&subject);
        each &= alone;
        let single = |v: &str| {
            compile(&[Filter {
                key: Some(key.clone()),
                values: Some(vec![v.to_owned()]),
            }])
            .expect("one valid value")
            .matches(&subject)
        };
        let (neg, pos): (Vec<&String>, Vec<&String>) =
            values.iter().partition(|v| v.starts_with('!'));
        let pos_hit = pos.is_empty() || pos.iter().any(|v| single(v));
        let neg_ok = neg.iter().all(|v| single(v));
        assert_eq!(
            alone,
            pos_hit && neg_ok,
            "filter {f:?} is not OR-of-positives minus negatives"
        );

        // Each single value against the naive reference matcher.
        for v in &values {
            let (negated, bare) = match v.strip_prefix('!') {
                Some(b) => (true, b),
                None => (false, v.as_str()),
            };
            let hit = reference_hit(&key, bare, &inp);
            assert_eq!(
                single(v),
                hit != negated,
                "key {key} value {v:?} on {inp:?}"
            );
        }
    }
    assert_eq!(whole, each, "filters are not ANDed");
});
