//! ListSecrets / BatchGetSecretValue `Filters`.
//!
//! Validation copies AWS: model constraints (at most 10 filters, at most 10 values per
//! filter, each value at most 512 characters matching `^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$`,
//! the key one of the enum) answer `ValidationException` with all violations in one message;
//! then a filter without `Key` answers `InvalidParameterException` "Invalid filter key" and a
//! filter without (or with empty) `Values` answers "Invalid filter values for key: KEY".
//!
//! Matching: filters are ANDed. Within one filter a secret matches when it matches any
//! positive value (or the filter has none) and no negated (`!`-prefixed) value matches it.
//!
//! - `name`, `tag-key`, `tag-value`: case-sensitive prefix of the name / of any tag key / of
//!   any tag value.
//! - `description`, `all` (case-insensitive) and `primary-region`, `owning-service`
//!   (case-sensitive): word matching. The field and the value are split into words: at
//!   whitespace and the characters `/-_+=.@`, before a character that is not lowercase and
//!   follows a lowercase one (`myTest`: `my`, `Test`), and before a character that is not
//!   lowercase and starts a lowercase run (`SecretFTag`: `Secret`, `F`, `Tag`;
//!   `COMPANYthings`: `COMPAN`, `Ythings`). The value matches when it is a prefix of the
//!   whole field, or when each of its words is a prefix of some word of the field (AWS:
//!   "breaks the filter value string into words"). A value that is only separators has no
//!   words and matches nothing but a field it prefixes. These rules reproduce the cases moto
//!   verified against AWS (`tests/test_secretsmanager/test_list_secrets.py`).
//! - `all` searches the name, the description, the tag keys and the tag values.

use crate::error::ApiError;

/// Most filters in one request.
pub const MAX_FILTERS: usize = 10;
/// Most values in one filter.
pub const MAX_VALUES: usize = 10;
/// Longest filter value, in characters.
pub const MAX_VALUE_LENGTH: usize = 512;
/// The model pattern of a filter value, as AWS prints it.
const VALUE_PATTERN: &str = r"^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$";
/// The enum value set, in the order AWS prints it.
const KEY_ENUM: &str =
    "[all, name, tag-key, description, tag-value, primary-region, owning-service]";
/// Word separators besides whitespace.
const SEPARATORS: &[char] = &['/', '-', '_', '+', '=', '.', '@'];

/// One `Filters` member of a request.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    pub key: Option<String>,
    pub values: Option<Vec<String>>,
}

/// What a secret exposes to filters.
#[derive(Debug, Clone)]
pub struct FilterSubject<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub tags: &'a [(String, String)],
    pub primary_region: Option<&'a str>,
    pub owning_service: Option<&'a str>,
}

/// Validated filters, ready to match secrets.
#[derive(Debug, Clone, Default)]
pub struct CompiledFilters {
    filters: Vec<CompiledFilter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterKey {
    All,
    Name,
    Description,
    TagKey,
    TagValue,
    PrimaryRegion,
    OwningService,
}

impl FilterKey {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(Self::All),
            "name" => Some(Self::Name),
            "description" => Some(Self::Description),
            "tag-key" => Some(Self::TagKey),
            "tag-value" => Some(Self::TagValue),
            "primary-region" => Some(Self::PrimaryRegion),
            "owning-service" => Some(Self::OwningService),
            _ => None,
        }
    }

    /// Whether matching ignores case (values are lowercased at compile time).
    fn case_insensitive(self) -> bool {
        matches!(self, Self::All | Self::Description)
    }
}

#[derive(Debug, Clone)]
struct CompiledFilter {
    key: FilterKey,
    /// Values without `!`.
    positive: Vec<Pattern>,
    /// Negated values with the `!` removed.
    negative: Vec<Pattern>,
}

/// One filter value, lowercased for case-insensitive keys.
#[derive(Debug, Clone)]
struct Pattern {
    /// The whole value.
    whole: String,
    /// Its words (split before lowercasing, so that `AppBeta` is `app`, `beta`).
    words: Vec<String>,
}

/// Validates filters as AWS does and compiles them for [`CompiledFilters::matches`].
pub fn compile(filters: &[Filter]) -> Result<CompiledFilters, ApiError> {
    let errors = model_errors(filters);
    if !errors.is_empty() {
        return Err(validation_error(&errors));
    }

    let mut compiled = Vec::with_capacity(filters.len());
    for filter in filters {
        let Some(key_str) = filter.key.as_deref() else {
            return Err(ApiError::InvalidParameter("Invalid filter key".into()));
        };
        let Some(key) = FilterKey::parse(key_str) else {
            // Already reported by the model check; kept for totality.
            return Err(ApiError::InvalidParameter("Invalid filter key".into()));
        };
        let values = match filter.values.as_deref() {
            Some(v) if !v.is_empty() => v,
            _ => {
                return Err(ApiError::InvalidParameter(format!(
                    "Invalid filter values for key: {key_str}"
                )))
            }
        };
        let ci = key.case_insensitive();
        let norm = |s: &str| if ci { s.to_lowercase() } else { s.to_owned() };
        let pattern = |v: &str| Pattern {
            whole: norm(v),
            words: split_words(v).into_iter().map(norm).collect(),
        };
        let mut positive = Vec::new();
        let mut negative = Vec::new();
        for value in values {
            match value.strip_prefix('!') {
                Some(rest) => negative.push(pattern(rest)),
                None => positive.push(pattern(value)),
            }
        }
        compiled.push(CompiledFilter {
            key,
            positive,
            negative,
        });
    }
    Ok(CompiledFilters { filters: compiled })
}

/// The model-constraint violations, in AWS's wording and order.
fn model_errors(filters: &[Filter]) -> Vec<String> {
    let mut errors = Vec::new();
    if filters.len() > MAX_FILTERS {
        let shown: Vec<String> = filters.iter().map(render_filter).collect();
        errors.push(format!(
            "Value '[{}]' at 'filters' failed to satisfy constraint: \
             Member must have length less than or equal to {MAX_FILTERS}",
            shown.join(", ")
        ));
    }
    for (i, filter) in filters.iter().enumerate() {
        let n = i.saturating_add(1);
        if let Some(key) = filter.key.as_deref() {
            if FilterKey::parse(key).is_none() {
                errors.push(format!(
                    "Value '{key}' at 'filters.{n}.member.key' failed to satisfy constraint: \
                     Member must satisfy enum value set: {KEY_ENUM}"
                ));
            }
        }
        if let Some(values) = filter.values.as_deref() {
            if values.len() > MAX_VALUES {
                errors.push(format!(
                    "Value '{}' at 'filters.{n}.member.values' failed to satisfy constraint: \
                     Member must have length less than or equal to {MAX_VALUES}",
                    render_list(values)
                ));
            }
            if values.iter().any(|v| !value_is_valid(v)) {
                errors.push(format!(
                    "Value '{}' at 'filters.{n}.member.values' failed to satisfy constraint: \
                     Member must satisfy constraint: [Member must have length less than or \
                     equal to {MAX_VALUE_LENGTH}, Member must have length greater than or equal \
                     to 0, Member must satisfy regular expression pattern: {VALUE_PATTERN}]",
                    render_list(values)
                ));
            }
        }
    }
    errors
}

/// Length and charset of one value (`[a-zA-Z0-9 :_@/+=.\-!]`, which covers the optional `!`).
fn value_is_valid(v: &str) -> bool {
    v.chars().count() <= MAX_VALUE_LENGTH
        && v.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, ' ' | ':' | '_' | '@' | '/' | '+' | '=' | '.' | '-' | '!')
        })
}

fn render_list(values: &[String]) -> String {
    format!("[{}]", values.join(", "))
}

fn render_filter(f: &Filter) -> String {
    format!(
        "Filter(Key={}, Values={})",
        f.key.as_deref().unwrap_or("null"),
        f.values
            .as_deref()
            .map_or_else(|| "null".to_owned(), render_list)
    )
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

impl CompiledFilters {
    /// Whether the secret passes every filter (true when there are none).
    pub fn matches(&self, s: &FilterSubject<'_>) -> bool {
        self.filters.iter().all(|f| f.matches(s))
    }

    /// Whether no filter was given.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Whether a secret named `name` passes every `name` filter (the other filters are not
    /// looked at): a secret [`Self::matches`] also passes this, so a listing may drop by
    /// name alone what cannot match.
    pub fn matches_name(&self, name: &str) -> bool {
        let subject = FilterSubject {
            name,
            description: None,
            tags: &[],
            primary_region: None,
            owning_service: None,
        };
        self.filters
            .iter()
            .filter(|f| f.key == FilterKey::Name)
            .all(|f| f.matches(&subject))
    }

    /// Prefixes every matching secret's name starts with one of: the positive values of a
    /// `name` filter that has some and none of them empty (its negated values, and the
    /// other filters, narrow further). `None` when no filter bounds the names so.
    pub fn name_prefixes(&self) -> Option<Vec<&str>> {
        self.filters
            .iter()
            .find(|f| {
                f.key == FilterKey::Name
                    && !f.positive.is_empty()
                    && f.positive.iter().all(|p| !p.whole.is_empty())
            })
            .map(|f| f.positive.iter().map(|p| p.whole.as_str()).collect())
    }
}

impl CompiledFilter {
    fn matches(&self, s: &FilterSubject<'_>) -> bool {
        let hit = self.positive.is_empty() || self.positive.iter().any(|v| self.value_hits(v, s));
        hit && !self.negative.iter().any(|v| self.value_hits(v, s))
    }

    /// Whether one value matches the subject under this filter's key.
    fn value_hits(&self, value: &Pattern, s: &FilterSubject<'_>) -> bool {
        let ci = self.key.case_insensitive();
        let words = |field: &str| word_match(field, value, ci);
        let prefix = value.whole.as_str();
        match self.key {
            FilterKey::Name => s.name.starts_with(prefix),
            FilterKey::TagKey => s.tags.iter().any(|(k, _)| k.starts_with(prefix)),
            FilterKey::TagValue => s.tags.iter().any(|(_, v)| v.starts_with(prefix)),
            FilterKey::Description => s.description.is_some_and(words),
            FilterKey::PrimaryRegion => s.primary_region.is_some_and(words),
            FilterKey::OwningService => s.owning_service.is_some_and(words),
            FilterKey::All => {
                words(s.name)
                    || s.description.is_some_and(words)
                    || s.tags.iter().any(|(k, v)| words(k) || words(v))
            }
        }
    }
}

/// Word matching of `value` (already lowercased when `ci`) against `field`.
fn word_match(field: &str, value: &Pattern, ci: bool) -> bool {
    if starts_with(field, &value.whole, ci) {
        return true;
    }
    if value.words.is_empty() {
        return false;
    }
    let field_words = split_words(field);
    value
        .words
        .iter()
        .all(|vw| field_words.iter().any(|fw| starts_with(fw, vw, ci)))
}

/// Whether `hay` starts with `prefix`; with `ci`, `hay` is lowercased on the fly (`prefix` is
/// already lowercase).
fn starts_with(hay: &str, prefix: &str, ci: bool) -> bool {
    if !ci {
        return hay.starts_with(prefix);
    }
    let mut hay_chars = hay.chars().flat_map(char::to_lowercase);
    prefix.chars().all(|p| hay_chars.next() == Some(p))
}

/// Splits on whitespace and [`SEPARATORS`]; a word also starts at a character that is not
/// lowercase when it follows a lowercase character or starts a lowercase run.
fn split_words(s: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    let mut prev: Option<char> = None;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() || SEPARATORS.contains(&c) {
            if let Some(st) = start.take() {
                words.extend(s.get(st..i));
            }
            prev = None;
            continue;
        }
        let starts_run = chars.peek().is_some_and(|(_, n)| n.is_lowercase());
        let boundary = !c.is_lowercase() && (starts_run || prev.is_some_and(char::is_lowercase));
        match start {
            None => start = Some(i),
            Some(st) if boundary => {
                words.extend(s.get(st..i));
                start = Some(i);
            }
            Some(_) => {}
        }
        prev = Some(c);
    }
    if let Some(st) = start {
        words.extend(s.get(st..));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(key: &str, values: &[&str]) -> Filter {
        Filter {
            key: Some(key.to_owned()),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn subject<'a>(
        name: &'a str,
        description: Option<&'a str>,
        tags: &'a [(String, String)],
    ) -> FilterSubject<'a> {
        FilterSubject {
            name,
            description,
            tags,
            primary_region: None,
            owning_service: None,
        }
    }

    fn hits(filters: &[Filter], s: &FilterSubject<'_>) -> bool {
        compile(filters).unwrap().matches(s)
    }

    // --- validation ---

    #[test]
    fn empty_filters_match_everything() {
        let c = compile(&[]).unwrap();
        assert!(c.is_empty());
        assert!(c.matches(&subject("x", None, &[])));
        assert!(!compile(&[f("name", &["x"])]).unwrap().is_empty());
    }

    #[test]
    fn deserializes_from_aws_json() {
        let v: Vec<Filter> =
            serde_json::from_str(r#"[{"Key":"name","Values":["a","!b"]},{"Key":"all"}]"#).unwrap();
        assert_eq!(v[0].key.as_deref(), Some("name"));
        assert_eq!(v[0].values.as_ref().unwrap().len(), 2);
        assert!(v[1].values.is_none());
    }

    #[test]
    fn missing_key_is_invalid_parameter() {
        let filter = Filter {
            key: None,
            values: Some(vec!["a".into()]),
        };
        assert_eq!(
            compile(&[filter]).unwrap_err(),
            ApiError::InvalidParameter("Invalid filter key".into())
        );
    }

    #[test]
    fn unknown_key_is_validation_with_position() {
        let err = compile(&[f("name", &["a"]), f("Name", &["a"])]).unwrap_err();
        assert_eq!(
            err,
            ApiError::Validation(
                "1 validation error detected: Value 'Name' at 'filters.2.member.key' failed to \
                 satisfy constraint: Member must satisfy enum value set: [all, name, tag-key, \
                 description, tag-value, primary-region, owning-service]"
                    .into()
            )
        );
    }

    #[test]
    fn missing_or_empty_values_are_invalid_parameter() {
        let none = Filter {
            key: Some("tag-key".into()),
            values: None,
        };
        assert_eq!(
            compile(&[none]).unwrap_err(),
            ApiError::InvalidParameter("Invalid filter values for key: tag-key".into())
        );
        assert_eq!(
            compile(&[f("description", &[])]).unwrap_err(),
            ApiError::InvalidParameter("Invalid filter values for key: description".into())
        );
    }

    #[test]
    fn validation_beats_invalid_parameter() {
        let no_key = Filter {
            key: None,
            values: Some(vec!["a".into()]),
        };
        let err = compile(&[no_key, f("bogus", &["a"])]).unwrap_err();
        assert!(matches!(err, ApiError::Validation(m) if m.contains("'filters.2.member.key'")));
    }

    #[test]
    fn too_many_filters() {
        let many: Vec<Filter> = (0..11).map(|_| f("name", &["a"])).collect();
        let err = compile(&many).unwrap_err();
        let ApiError::Validation(m) = err else {
            panic!("expected ValidationException, got {err:?}");
        };
        assert!(m.starts_with("1 validation error detected: Value '[Filter(Key=name"));
        assert!(m.ends_with(
            "at 'filters' failed to satisfy constraint: \
             Member must have length less than or equal to 10"
        ));
        let ten: Vec<Filter> = (0..10).map(|_| f("name", &["a"])).collect();
        assert!(compile(&ten).is_ok());
    }

    #[test]
    fn too_many_values() {
        let vals: Vec<String> = (0..11).map(|i| format!("v{i}")).collect();
        let refs: Vec<&str> = vals.iter().map(String::as_str).collect();
        assert_eq!(
            compile(&[f("name", &refs)]).unwrap_err(),
            ApiError::Validation(
                "1 validation error detected: Value '[v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, \
                 v10]' at 'filters.1.member.values' failed to satisfy constraint: Member must \
                 have length less than or equal to 10"
                    .into()
            )
        );
        assert!(compile(&[f("name", &refs[..10])]).is_ok());
    }

    #[test]
    fn value_charset_and_length() {
        assert!(compile(&[f("all", &["a-Z 0:_@/+=.!x", "!neg", "", "!"])]).is_ok());
        let long_ok = "a".repeat(512);
        assert!(compile(&[f("name", &[&long_ok])]).is_ok());
        let expected = ApiError::Validation(
            "1 validation error detected: Value '[ok, bad#]' at 'filters.1.member.values' \
             failed to satisfy constraint: Member must satisfy constraint: [Member must have \
             length less than or equal to 512, Member must have length greater than or equal \
             to 0, Member must satisfy regular expression pattern: \
             ^\\!?[a-zA-Z0-9 :_@\\/\\+\\=\\.\\-\\!]*$]"
                .into(),
        );
        assert_eq!(
            compile(&[f("name", &["ok", "bad#"])]).unwrap_err(),
            expected
        );
        for bad in ["a*", "é", "a\tb", "(x)", "a,b"] {
            assert!(
                matches!(compile(&[f("name", &[bad])]), Err(ApiError::Validation(_))),
                "{bad:?} accepted"
            );
        }
        let long_bad = "a".repeat(513);
        assert!(matches!(
            compile(&[f("name", &[&long_bad])]),
            Err(ApiError::Validation(_))
        ));
    }

    #[test]
    fn several_violations_in_one_message() {
        let err = compile(&[f("nope", &["a"]), f("name", &["#"])]).unwrap_err();
        let ApiError::Validation(m) = err else {
            panic!("expected ValidationException, got {err:?}");
        };
        assert!(m.starts_with("2 validation errors detected: Value 'nope' at 'filters.1"));
        assert!(m.contains("; Value '[#]' at 'filters.2.member.values'"));
    }

    // --- matching per key ---

    #[test]
    fn name_is_case_sensitive_prefix() {
        let s = subject("prod/db/Password", None, &[]);
        assert!(hits(&[f("name", &["prod/"])], &s));
        assert!(hits(&[f("name", &["prod/db/Password"])], &s));
        assert!(!hits(&[f("name", &["Prod"])], &s));
        assert!(!hits(&[f("name", &["db"])], &s));
        assert!(!hits(&[f("name", &["Password"])], &s));
    }

    #[test]
    fn tag_key_and_tag_value_are_case_sensitive_prefixes() {
        let t = tags(&[("Environment", "production"), ("team", "Payments")]);
        let s = subject("x", None, &t);
        assert!(hits(&[f("tag-key", &["Env"])], &s));
        assert!(hits(&[f("tag-key", &["team"])], &s));
        assert!(!hits(&[f("tag-key", &["env"])], &s));
        assert!(!hits(&[f("tag-key", &["prod"])], &s));
        assert!(hits(&[f("tag-value", &["prod"])], &s));
        assert!(hits(&[f("tag-value", &["Pay"])], &s));
        assert!(!hits(&[f("tag-value", &["pay"])], &s));
        assert!(!hits(&[f("tag-value", &["Env"])], &s));
        let none = subject("x", None, &[]);
        assert!(!hits(&[f("tag-key", &["E"])], &none));
        assert!(!hits(&[f("tag-value", &["p"])], &none));
    }

    #[test]
    fn description_is_case_insensitive_word_prefix() {
        let s = subject("x", Some("Master DB password for the billing-service"), &[]);
        assert!(hits(&[f("description", &["master"])], &s));
        assert!(hits(&[f("description", &["PASS"])], &s));
        assert!(hits(&[f("description", &["billing"])], &s));
        assert!(hits(&[f("description", &["serv"])], &s));
        assert!(hits(&[f("description", &["master db"])], &s));
        assert!(!hits(&[f("description", &["aster"])], &s));
        assert!(!hits(&[f("description", &["word"])], &s));
        assert!(!hits(&[f("description", &["x"])], &subject("x", None, &[])));
    }

    #[test]
    fn primary_region_and_owning_service() {
        let s = FilterSubject {
            name: "rds!cluster-1",
            description: None,
            tags: &[],
            primary_region: Some("eu-west-1"),
            owning_service: Some("rds"),
        };
        assert!(hits(&[f("primary-region", &["eu-west"])], &s));
        assert!(hits(&[f("primary-region", &["eu"])], &s));
        assert!(hits(&[f("primary-region", &["west"])], &s));
        assert!(!hits(&[f("primary-region", &["us"])], &s));
        assert!(!hits(&[f("primary-region", &["EU"])], &s));
        assert!(hits(&[f("owning-service", &["rds"])], &s));
        assert!(hits(&[f("owning-service", &["r"])], &s));
        assert!(!hits(&[f("owning-service", &["RDS"])], &s));
        assert!(!hits(&[f("owning-service", &["ds"])], &s));
        let plain = subject("x", None, &[]);
        assert!(!hits(&[f("primary-region", &["eu"])], &plain));
        assert!(!hits(&[f("owning-service", &["rds"])], &plain));
        assert!(hits(&[f("owning-service", &["!rds"])], &plain));
        assert!(!hits(&[f("owning-service", &["!rds"])], &s));
    }

    #[test]
    fn all_searches_name_description_and_tags_case_insensitively() {
        let t = tags(&[("CostCenter", "Finance-Ops")]);
        let s = FilterSubject {
            name: "e2e/cli/MySecretValue",
            description: Some("Used by the Nightly job"),
            tags: &t,
            primary_region: Some("ap-south-1"),
            owning_service: Some("appflow"),
        };
        for v in [
            "e2e",
            "e2e/cli",
            "E2E/CLI/my",
            "cli",
            "my",
            "secret",
            "VALUE",
            "nightly",
            "job",
            "cost",
            "center",
            "finance",
            "ops",
            "e2e cli",
        ] {
            assert!(hits(&[f("all", &[v])], &s), "{v:?} should match");
        }
        for v in [
            "ecret",
            "ightly",
            "inance",
            "zzz",
            "cli/e2e/x",
            "my e2e zzz",
            // The primary region and the owning service are not searched by `all`.
            "ap-south",
            "south",
            "appflow",
        ] {
            assert!(!hits(&[f("all", &[v])], &s), "{v:?} should not match");
        }
    }

    // --- negation, AND/OR ---

    #[test]
    fn values_are_ored() {
        let s = subject("beta", None, &[]);
        assert!(hits(&[f("name", &["alpha", "beta"])], &s));
        assert!(!hits(&[f("name", &["alpha", "gamma"])], &s));
    }

    #[test]
    fn filters_are_anded() {
        let t = tags(&[("env", "prod")]);
        let s = subject("db-password", Some("database"), &t);
        assert!(hits(&[f("name", &["db"]), f("tag-value", &["prod"])], &s));
        assert!(!hits(&[f("name", &["db"]), f("tag-value", &["dev"])], &s));
        assert!(!hits(&[f("name", &["api"]), f("tag-value", &["prod"])], &s));
        assert!(hits(
            &[
                f("name", &["db"]),
                f("description", &["data"]),
                f("tag-key", &["env"])
            ],
            &s
        ));
    }

    #[test]
    fn negation_only_matches_everything_not_excluded() {
        let a = subject("prod/a", None, &[]);
        let b = subject("dev/b", None, &[]);
        let only_neg = [f("name", &["!prod"])];
        assert!(!hits(&only_neg, &a));
        assert!(hits(&only_neg, &b));
        let two_neg = [f("name", &["!prod", "!dev"])];
        assert!(!hits(&two_neg, &a));
        assert!(!hits(&two_neg, &b));
        assert!(hits(&two_neg, &subject("test/c", None, &[])));
    }

    #[test]
    fn negation_with_positive_values() {
        let filter = [f("name", &["prod", "!prod/legacy"])];
        assert!(hits(&filter, &subject("prod/api", None, &[])));
        assert!(!hits(&filter, &subject("prod/legacy/db", None, &[])));
        assert!(!hits(&filter, &subject("dev/api", None, &[])));
    }

    #[test]
    fn negation_on_multivalued_and_word_fields() {
        let t = tags(&[("env", "prod"), ("owner", "alice")]);
        let s = subject("x", Some("Alpha service"), &t);
        // Any tag key with the prefix excludes the secret.
        assert!(!hits(&[f("tag-key", &["!own"])], &s));
        assert!(hits(&[f("tag-key", &["!team"])], &s));
        assert!(hits(&[f("tag-key", &["!team"])], &subject("y", None, &[])));
        assert!(!hits(&[f("description", &["!SERVICE"])], &s));
        assert!(hits(&[f("description", &["!beta"])], &s));
        assert!(!hits(&[f("all", &["!ALICE"])], &s));
        assert!(hits(&[f("all", &["alpha", "!bob"])], &s));
    }

    #[test]
    fn empty_value_matches_everything_and_bare_bang_excludes_everything() {
        let s = subject("anything", None, &[]);
        assert!(hits(&[f("name", &[""])], &s));
        assert!(!hits(&[f("name", &["!"])], &s));
    }

    // --- what a listing may narrow by before matching ---

    #[test]
    fn name_prefixes_come_from_a_name_filter_of_nonempty_positive_values() {
        let c = |fs: &[Filter]| compile(fs).unwrap();
        assert_eq!(c(&[]).name_prefixes(), None);
        assert_eq!(c(&[f("name", &["!a"])]).name_prefixes(), None);
        assert_eq!(c(&[f("name", &["a", ""])]).name_prefixes(), None);
        assert_eq!(c(&[f("tag-key", &["a"])]).name_prefixes(), None);
        assert_eq!(c(&[f("all", &["a"])]).name_prefixes(), None);
        assert_eq!(
            c(&[f("name", &["a", "!ab", "c"])]).name_prefixes(),
            Some(vec!["a", "c"])
        );
        assert_eq!(
            c(&[f("name", &["!x"]), f("name", &["p/"])]).name_prefixes(),
            Some(vec!["p/"])
        );
        let m = c(&[f("name", &["prod", "!prod/legacy"]), f("tag-key", &["x"])]);
        assert!(m.matches_name("prod/api"));
        assert!(!m.matches_name("prod/legacy/db"));
        assert!(!m.matches_name("dev"));
        assert!(c(&[f("description", &["x"])]).matches_name("anything"));
    }

    proptest::proptest! {
        /// Whatever `matches` accepts passes `matches_name` and, when `name_prefixes`
        /// answers, starts with one of them: narrowing by them never drops a match.
        #[test]
        fn narrowing_by_name_keeps_every_match(
            names in proptest::collection::vec("[ab/!]{0,4}", 1..4),
            values in proptest::collection::vec("!?[ab/]{0,3}", 1..4),
            other in proptest::option::of("[ab]{0,2}"),
            tag in "[ab]{0,2}",
        ) {
            let mut fs = vec![f("name", &values.iter().map(String::as_str).collect::<Vec<_>>())];
            if let Some(o) = &other {
                fs.push(f("tag-key", &[o.as_str()]));
            }
            let c = compile(&fs).unwrap();
            let t = tags(&[(tag.as_str(), "v")]);
            for n in &names {
                let s = subject(n, None, &t);
                if c.matches(&s) {
                    proptest::prop_assert!(c.matches_name(n));
                    if let Some(ps) = c.name_prefixes() {
                        proptest::prop_assert!(ps.iter().any(|p| n.starts_with(p)));
                    }
                }
                if other.is_none() {
                    proptest::prop_assert_eq!(c.matches(&s), c.matches_name(n));
                }
            }
        }
    }

    // --- word splitting ---

    #[test]
    fn camel_case_and_separator_splitting() {
        assert_eq!(split_words("MySecretValue"), ["My", "Secret", "Value"]);
        assert_eq!(split_words("mySecret"), ["my", "Secret"]);
        assert_eq!(split_words("HTTPServer"), ["HTTP", "Server"]);
        assert_eq!(
            split_words("dbPassword2Rotate"),
            ["db", "Password", "2", "Rotate"]
        );
        // AWS (moto's verified cases): a capital before a lowercase run starts a word.
        assert_eq!(split_words("SecretFTag"), ["Secret", "F", "Tag"]);
        assert_eq!(split_words("COMPANYthings"), ["COMPAN", "Ythings"]);
        assert_eq!(split_words("COMPANY"), ["COMPANY"]);
        assert_eq!(split_words("Thirdsecret"), ["Thirdsecret"]);
        assert_eq!(
            split_words("a/b-c_d+e=f.g@h i\tj"),
            ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
        );
        assert_eq!(split_words("prod//api--Key  "), ["prod", "api", "Key"]);
        assert_eq!(split_words("team/DbAdmin"), ["team", "Db", "Admin"]);
        assert!(split_words("/-_").is_empty());
        assert!(split_words("").is_empty());
        assert_eq!(split_words("ünïcodeWörd"), ["ünïcode", "Wörd"]);
    }

    #[test]
    fn a_camel_case_value_is_split_before_it_is_lowercased() {
        let s = subject("prod/AppBeta/u1x2y3", None, &[]);
        assert!(hits(&[f("all", &["AppBeta"])], &s));
        assert!(hits(&[f("all", &["appBeta"])], &s));
        assert!(hits(&[f("all", &["Beta"])], &s));
        assert!(!hits(&[f("all", &["+"])], &s));
        assert!(!hits(
            &[f("all", &["company"])],
            &subject("uat/COMPANYthings/x", None, &[])
        ));
        assert!(hits(
            &[f("all", &["Ythings"])],
            &subject("uat/COMPANYthings/x", None, &[])
        ));
        assert!(hits(&[f("all", &["t"])], &subject("SecretFTag", None, &[])));
    }

    #[test]
    fn camel_case_words_match_through_description_and_all() {
        let s = subject("x", Some("RotateDbCredentials"), &[]);
        assert!(hits(&[f("description", &["db"])], &s));
        assert!(hits(&[f("description", &["cred"])], &s));
        assert!(hits(&[f("description", &["rotatedb"])], &s));
        assert!(!hits(&[f("description", &["tate"])], &s));
        assert!(hits(
            &[f("all", &["credentials"])],
            &subject("RotateDbCredentials", None, &[])
        ));
    }
}
