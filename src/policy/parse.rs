//! Policy text → validated, pre-compiled [`Policy`] (IAM.md §1, §2). Parsing happens once,
//! when a policy is stored or loaded; evaluation never touches JSON.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use super::condition::Condition;
use super::err::{ParseError, ParseErrors, PolicyError};
use super::index::StatementIndex;
use super::model::{Json, OneOrMore, PolicyDocument, PrincipalDocument, StatementDocument};
use super::pattern::{split_arn, ArnPattern, Pattern};
use super::template::Template;

/// The kinds of policy, for validation rules and for decisions.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyType {
    /// Service control policy (principal's account, per organization level).
    Scp,
    /// Resource control policy (resource's account, per organization level).
    Rcp,
    /// The secret's resource policy.
    Resource,
    /// The principal's identity policies.
    Identity,
    /// The principal's permissions boundary.
    PermissionsBoundary,
    /// Session policies passed when the session was created.
    Session,
}

impl PolicyType {
    /// The short name used in test vectors (`decidedBy`).
    pub fn short_name(self) -> &'static str {
        match self {
            Self::Scp => "scp",
            Self::Rcp => "rcp",
            Self::Resource => "resource",
            Self::Identity => "identity",
            Self::PermissionsBoundary => "pb",
            Self::Session => "session",
        }
    }

    /// Parse a short name (`scp`, `rcp`, `resource`, `identity`, `pb`/`boundary`, `session`).
    pub fn from_short_name(s: &str) -> Option<Self> {
        Some(match s {
            "scp" => Self::Scp,
            "rcp" => Self::Rcp,
            "resource" => Self::Resource,
            "identity" => Self::Identity,
            "pb" | "boundary" | "permissionBoundary" => Self::PermissionsBoundary,
            "session" => Self::Session,
            _ => return None,
        })
    }

    fn takes_principal(self) -> bool {
        matches!(self, Self::Resource | Self::Rcp)
    }

    /// IAM-managed kinds: alphanumeric Sids, restricted charset, Version 2012-10-17 required.
    fn is_iam(self) -> bool {
        matches!(
            self,
            Self::Identity | Self::PermissionsBoundary | Self::Session
        )
    }

    /// Size limit and whether whitespace counts (IAM.md §1.4).
    fn size_limit(self) -> (usize, bool) {
        match self {
            Self::Resource => (20_480, true),
            Self::Identity | Self::PermissionsBoundary => (6_144, false),
            Self::Session => (2_048, false),
            Self::Scp | Self::Rcp => (5_120, true),
        }
    }
}

impl fmt::Display for PolicyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementEffect {
    Allow,
    Deny,
}

/// One entry of a `Principal`/`NotPrincipal` element, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalEntry {
    /// `"*"` or `{"AWS": "*"}`.
    Any,
    /// `"123456789012"` or `arn:…:iam::123456789012:root`: the account (delegation).
    Account(String),
    /// A user, role, session or federated-user ARN.
    Arn(String),
    Service(String),
    Federated(String),
    CanonicalUser(String),
}

#[derive(Debug, Clone)]
pub(crate) struct PrincipalRule {
    pub(crate) not: bool,
    pub(crate) entries: Vec<PrincipalEntry>,
}

#[derive(Debug, Clone)]
pub(crate) enum ActionRule {
    Action(Vec<Pattern>),
    NotAction(Vec<Pattern>),
}

#[derive(Debug, Clone)]
pub(crate) enum ResourcePattern {
    Static(ArnPattern),
    /// Contains policy variables (resource part only); resolved per request.
    Dyn(Template),
}

#[derive(Debug, Clone)]
pub(crate) enum ResourceRule {
    Resource(Vec<ResourcePattern>),
    NotResource(Vec<ResourcePattern>),
}

/// A compiled statement.
#[derive(Debug, Clone)]
pub struct Statement {
    pub(crate) sid: Option<Arc<str>>,
    pub(crate) index: usize,
    pub(crate) effect: StatementEffect,
    pub(crate) principal: Option<PrincipalRule>,
    pub(crate) action: ActionRule,
    pub(crate) resource: ResourceRule,
    pub(crate) conditions: Vec<Condition>,
}

impl Statement {
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }
    pub fn index(&self) -> usize {
        self.index
    }
    pub fn effect(&self) -> StatementEffect {
        self.effect
    }
}

/// A validated, compiled policy, and its label. Cheap to clone and to relabel: the compiled
/// body is shared, so one text compiled once serves every secret or principal it is attached
/// to (the server's policy cache is keyed by text; a label is per attachment).
// CAUTION: this type is publicly exported
#[derive(Debug, Clone)]
pub struct Policy {
    label: Arc<str>,
    body: Arc<Compiled>,
}

/// What [`Policy`] shares between its labels.
#[derive(Debug)]
struct Compiled {
    kind: PolicyType,
    version: Option<String>,
    id: Option<String>,
    statements: Vec<Statement>,
    index: StatementIndex,
    document: PolicyDocument,
    /// The condition keys its conditions are on (lowercase), for
    /// [`Policy::mentions_condition_key`].
    condition_keys: Vec<String>,
    /// Its condition values that hold a policy variable (`${...}`), lowercased: a variable
    /// reads a key too.
    variable_values: Vec<String>,
}

impl Policy {
    /// Parse and validate `text` as a policy of `kind`; every error found is returned.
    pub fn parse(text: &str, kind: PolicyType) -> Result<Self, ParseErrors> {
        check_size(text, kind).map_err(|e| ParseErrors::one(None, e))?;
        let json = Json::parse(text).map_err(|e| ParseErrors::one(None, e))?;
        let doc = PolicyDocument::from_json_at(&json).map_err(|(st, e)| ParseErrors::one(st, e))?;
        Self::from_document(doc, kind)
    }

    /// Validate and compile an already-parsed document.
    pub fn from_document(doc: PolicyDocument, kind: PolicyType) -> Result<Self, ParseErrors> {
        let mut errors = Vec::new();
        let mut push = |statement, error| errors.push(ParseError { statement, error });
        match doc.version.as_deref() {
            Some("2012-10-17") => {}
            Some("2008-10-17") | None if kind.is_iam() => push(None, PolicyError::VersionRequired),
            Some("2008-10-17") | None => {}
            Some(v) => push(None, PolicyError::UnsupportedVersion(v.to_owned())),
        }
        if doc.id.is_some() && kind == PolicyType::Identity {
            push(None, PolicyError::IdNotAllowed);
        }
        let vars = doc.version.as_deref() == Some("2012-10-17");
        let mut sids = HashSet::new();
        let mut statements = Vec::new();
        for (i, sd) in doc.statements.iter().enumerate() {
            if let Some(sid) = sd.sid.as_deref().filter(|s| !s.is_empty()) {
                if kind.is_iam() && !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
                    push(Some(i), PolicyError::InvalidSid(sid.to_owned()));
                }
                if !sids.insert(sid.to_owned()) {
                    push(Some(i), PolicyError::DuplicateSid(sid.to_owned()));
                }
            }
            match compile_statement(sd, i, kind, vars) {
                Ok(st) => statements.push(st),
                Err(es) => {
                    for e in es {
                        push(Some(i), e);
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(ParseErrors(errors));
        }
        let index = StatementIndex::build(
            statements
                .iter()
                .enumerate()
                .map(|(i, s)| (u32::try_from(i).unwrap_or(u32::MAX), s)),
        );
        let mut condition_keys: Vec<String> = Vec::new();
        let mut variable_values: Vec<String> = Vec::new();
        for c in statements.iter().flat_map(|st| &st.conditions) {
            if !condition_keys.contains(&c.key) {
                condition_keys.push(c.key.clone());
            }
            for v in c.raw_values.iter().filter(|v| v.contains("${")) {
                variable_values.push(v.to_ascii_lowercase());
            }
        }
        Ok(Self {
            label: Arc::from(doc.id.as_deref().unwrap_or("")),
            body: Arc::new(Compiled {
                kind,
                version: doc.version.clone(),
                id: doc.id.clone(),
                statements,
                index,
                document: doc,
                condition_keys,
                variable_values,
            }),
        })
    }

    /// Name the policy (e.g. its ARN) for decisions and audit records.
    pub fn with_label(mut self, label: &str) -> Self {
        self.label = Arc::from(label);
        self
    }

    /// This policy under another label, sharing the compiled body.
    #[must_use]
    pub fn relabelled(&self, label: &str) -> Self {
        Self {
            label: Arc::from(label),
            body: Arc::clone(&self.body),
        }
    }

    pub fn kind(&self) -> PolicyType {
        self.body.kind
    }
    pub fn version(&self) -> Option<&str> {
        self.body.version.as_deref()
    }
    pub fn id(&self) -> Option<&str> {
        self.body.id.as_deref()
    }
    /// The label given with [`Policy::with_label`], or the document `Id`, or empty.
    pub fn label(&self) -> &str {
        &self.label
    }
    pub(crate) fn label_arc(&self) -> &Arc<str> {
        &self.label
    }
    pub fn statements(&self) -> &[Statement] {
        &self.body.statements
    }
    pub(crate) fn index(&self) -> &StatementIndex {
        &self.body.index
    }
    pub fn document(&self) -> &PolicyDocument {
        &self.body.document
    }
    /// Whether a condition of this policy reads `key` (lowercase), as its key or within a
    /// value (a policy variable). Asked per request: answered from lists made when the policy
    /// was compiled.
    pub fn mentions_condition_key(&self, key: &str) -> bool {
        self.body.condition_keys.iter().any(|k| k == key)
            || self.body.variable_values.iter().any(|v| v.contains(key))
    }

    /// Whether policy variables are recognised (Version 2012-10-17).
    pub fn variables_enabled(&self) -> bool {
        self.body.version.as_deref() == Some("2012-10-17")
    }
}

fn check_size(text: &str, kind: PolicyType) -> Result<(), PolicyError> {
    let (limit, whitespace_counts) = kind.size_limit();
    let actual = if whitespace_counts {
        text.chars().count()
    } else {
        text.chars().filter(|c| !c.is_whitespace()).count()
    };
    if text.trim().is_empty() {
        return Err(PolicyError::Empty);
    }
    if actual > limit {
        return Err(PolicyError::TooLarge { limit, actual });
    }
    if kind.is_iam() {
        if let Some(c) = text
            .chars()
            .find(|&c| !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}'))
        {
            return Err(PolicyError::InvalidCharacter(c));
        }
    }
    Ok(())
}

fn compile_statement(
    sd: &StatementDocument,
    index: usize,
    kind: PolicyType,
    vars: bool,
) -> Result<Statement, Vec<PolicyError>> {
    let mut errs = Vec::new();
    let effect = match sd.effect.as_deref() {
        Some("Allow") => StatementEffect::Allow,
        Some("Deny") => StatementEffect::Deny,
        Some(other) => {
            errs.push(PolicyError::InvalidEffect(other.to_owned()));
            StatementEffect::Deny
        }
        None => {
            errs.push(PolicyError::MissingEffect);
            StatementEffect::Deny
        }
    };
    let principal = match (&sd.principal, &sd.not_principal) {
        (Some(_), Some(_)) => {
            errs.push(PolicyError::Conflicting("Principal"));
            None
        }
        (None, None) => {
            if kind.takes_principal() {
                errs.push(PolicyError::PrincipalRequired);
            }
            None
        }
        (p, np) => {
            if !kind.takes_principal() {
                errs.push(PolicyError::PrincipalNotAllowed);
            }
            let not = np.is_some();
            if not && effect == StatementEffect::Allow && kind == PolicyType::Resource {
                errs.push(PolicyError::NotPrincipalWithAllow);
            }
            p.as_ref()
                .or(np.as_ref())
                .and_then(|d| match principal_entries(d, kind) {
                    Ok(entries) => Some(PrincipalRule { not, entries }),
                    Err(e) => {
                        errs.push(e);
                        None
                    }
                })
        }
    };
    let action = match (&sd.action, &sd.not_action) {
        (Some(_), Some(_)) => Err(PolicyError::Conflicting("Action")),
        (None, None) => Err(PolicyError::MissingActions),
        (Some(a), None) => actions(a).map(ActionRule::Action),
        (None, Some(a)) => actions(a).map(ActionRule::NotAction),
    };
    let resource = match (&sd.resource, &sd.not_resource) {
        (Some(_), Some(_)) => Err(PolicyError::Conflicting("Resource")),
        (None, None) => Err(PolicyError::MissingResources),
        (Some(r), None) => resources(r, vars).map(ResourceRule::Resource),
        (None, Some(r)) => resources(r, vars).map(ResourceRule::NotResource),
    };
    let mut conditions = Vec::new();
    for (op, keys) in sd.condition.iter().flatten() {
        for (key, values) in keys {
            match Condition::compile(op, key, values.clone(), vars) {
                Ok(c) => conditions.push(c),
                Err(e) => errs.push(e),
            }
        }
    }
    let (action, resource) = match (action, resource) {
        (Ok(a), Ok(r)) if errs.is_empty() => (a, r),
        (a, r) => {
            errs.extend(a.err());
            errs.extend(r.err());
            return Err(errs);
        }
    };
    Ok(Statement {
        sid: sd.sid.as_deref().map(Arc::from),
        index,
        effect,
        principal,
        action,
        resource,
        conditions,
    })
}

fn actions(list: &OneOrMore<String>) -> Result<Vec<Pattern>, PolicyError> {
    list.iter()
        .map(|a| {
            if a == "*" {
                return Ok(Pattern::glob("*"));
            }
            match a.matches(':').count() {
                0 => Err(PolicyError::ActionVendor(a.clone())),
                1 if a.starts_with(':') => Err(PolicyError::ActionVendor(a.clone())),
                1 => Ok(Pattern::glob(&a.to_ascii_lowercase())),
                _ => Err(PolicyError::ActionColons(a.clone())),
            }
        })
        .collect()
}

fn resources(list: &OneOrMore<String>, vars: bool) -> Result<Vec<ResourcePattern>, PolicyError> {
    list.iter().map(|r| resource_pattern(r, vars)).collect()
}

fn resource_pattern(r: &str, vars: bool) -> Result<ResourcePattern, PolicyError> {
    if r == "*" {
        return Ok(ResourcePattern::Static(ArnPattern::Any));
    }
    if !r.starts_with("arn:") {
        return Err(PolicyError::ResourceFormat(r.to_owned()));
    }
    if !vars {
        return Ok(ResourcePattern::Static(ArnPattern::glob(r)));
    }
    let head_has_var = match split_arn(r) {
        Some(parts) => parts.iter().take(5).any(|p| p.contains("${")),
        None => r.contains("${"),
    };
    let tmpl = Template::parse(r).map_err(|b| PolicyError::InvalidVariable(b.0))?;
    match tmpl {
        None => Ok(ResourcePattern::Static(ArnPattern::glob(r))),
        Some(t) => {
            if head_has_var && t.has_variables() {
                return Err(PolicyError::VariableOutsideResourcePart(r.to_owned()));
            }
            match t.static_toks() {
                Some(toks) => Ok(ResourcePattern::Static(ArnPattern::from_toks(toks))),
                None => Ok(ResourcePattern::Dyn(t)),
            }
        }
    }
}

/// Whether a 12-digit account id.
fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn principal_entries(
    doc: &PrincipalDocument,
    kind: PolicyType,
) -> Result<Vec<PrincipalEntry>, PolicyError> {
    let map = match doc {
        PrincipalDocument::Wildcard => return Ok(vec![PrincipalEntry::Any]),
        PrincipalDocument::Map(m) => m,
    };
    let mut out = Vec::new();
    for (k, values) in map {
        for v in values.iter() {
            let bad = || PolicyError::InvalidPrincipal(format!("\"{k}\":\"{v}\""));
            let entry = match k.as_str() {
                "AWS" if v == "*" => PrincipalEntry::Any,
                "AWS" => aws_principal(v).ok_or_else(bad)?,
                "Service" if !v.is_empty() && !v.contains('*') => {
                    PrincipalEntry::Service(v.clone())
                }
                "Federated" if kind != PolicyType::Resource && !v.contains('*') => {
                    PrincipalEntry::Federated(v.clone())
                }
                "CanonicalUser" if kind != PolicyType::Resource && !v.contains('*') => {
                    PrincipalEntry::CanonicalUser(v.clone())
                }
                _ => return Err(bad()),
            };
            if kind == PolicyType::Rcp && entry != PrincipalEntry::Any {
                return Err(bad());
            }
            out.push(entry);
        }
    }
    Ok(out)
}

/// An `AWS` principal value: account id or IAM/STS ARN, no partial wildcards, no groups.
fn aws_principal(v: &str) -> Option<PrincipalEntry> {
    if is_account_id(v) {
        return Some(PrincipalEntry::Account(v.to_owned()));
    }
    if v.contains('*') || v.contains('?') {
        return None;
    }
    let [arn, _partition, service, region, account, res] = split_arn(v)?;
    if arn != "arn" || !region.is_empty() || !is_account_id(account) {
        return None;
    }
    match service {
        "iam" if res == "root" => Some(PrincipalEntry::Account(account.to_owned())),
        "iam" if res.starts_with("user/") || res.starts_with("role/") => {
            Some(PrincipalEntry::Arn(v.to_owned()))
        }
        "sts" => {
            let ok = res
                .strip_prefix("assumed-role/")
                .is_some_and(|r| r.split('/').count() == 2 && !r.split('/').any(str::is_empty))
                || res
                    .strip_prefix("federated-user/")
                    .is_some_and(|n| !n.is_empty());
            ok.then(|| PrincipalEntry::Arn(v.to_owned()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str, kind: PolicyType) -> PolicyError {
        Policy::parse(text, kind).unwrap_err().errors()[0]
            .error
            .clone()
    }

    const OK: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"A1","Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;

    #[test]
    fn parses_a_simple_identity_policy() {
        let p = Policy::parse(OK, PolicyType::Identity).unwrap();
        assert_eq!(p.statements().len(), 1);
        assert_eq!(p.statements()[0].sid(), Some("A1"));
        assert!(p.variables_enabled());
    }

    #[test]
    fn iam_wording() {
        let e = err(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
            PolicyType::Identity,
        );
        assert_eq!(e.aws_message(), "Policy statement must contain actions.");
        let e = err(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b"}]}"#,
            PolicyType::Identity,
        );
        assert_eq!(e.aws_message(), "Policy statement must contain resources.");
        let e = err(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"GetSecretValue","Resource":"*"}]}"#,
            PolicyType::Identity,
        );
        assert_eq!(
            e.aws_message(),
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
        );
        let e = err(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b:c","Resource":"*"}]}"#,
            PolicyType::Identity,
        );
        assert_eq!(
            e.aws_message(),
            "Actions/Condition can contain only one colon."
        );
        let e = err(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"secret"}]}"#,
            PolicyType::Identity,
        );
        assert_eq!(
            e.aws_message(),
            "Resource secret must be in ARN format or \"*\"."
        );
        assert_eq!(
            e.to_string(),
            "resource `secret` must be in arn format or `*`"
        );
        let e = err(
            r#"{"Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*"}]}"#,
            PolicyType::Identity,
        );
        assert_eq!(
            e.aws_message(),
            "Policy document must be version 2012-10-17 or greater."
        );
        let e = err(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"a:b","Resource":"*"}]}"#,
            PolicyType::Identity,
        );
        assert_eq!(
            e.aws_message(),
            "Policy document should not specify a principal."
        );
    }

    #[test]
    fn grammar_errors() {
        use PolicyType::*;
        let cases: &[(&str, PolicyType)] = &[
            (
                r#"{"Version":"2012-10-18","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*"}]}"#,
                Resource,
            ),
            (r#"{"Version":"2012-10-17","Statement":[]}"#, Resource),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"allow","Principal":"*","Action":"a:b","Resource":"*"}]}"#,
                Resource,
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*"}]}"#,
                Resource,
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::*:root"},"Action":"a:b","Resource":"*"}]}"#,
                Resource,
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:group/g"},"Action":"a:b","Resource":"*"}]}"#,
                Resource,
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"111111111111"},"Action":"a:b","Resource":"*"}]}"#,
                Resource,
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"cognito-identity.amazonaws.com"},"Action":"a:b","Resource":"*"}]}"#,
                Resource,
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"a:b","NotAction":"a:c","Resource":"*"}]}"#,
                Resource,
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"x","Effect":"Allow","Principal":"*","Action":"a:b","Resource":"*"},{"Sid":"x","Effect":"Deny","Principal":"*","Action":"a:b","Resource":"*"}]}"#,
                Resource,
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"has space","Effect":"Allow","Action":"a:b","Resource":"*"}]}"#,
                Identity,
            ),
            (
                r#"{"Version":"2012-10-17","Id":"x","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*"}]}"#,
                Identity,
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"arn:aws:s3:::${aws:username}:x","Condition":{"StringEquals":{"aws:username":"a"}}},{"Effect":"Allow","Action":"a:b","Resource":"arn:aws:secretsmanager:us-east-1:${aws:PrincipalAccount}:secret:x"}]}"#,
                Identity,
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"StringEqualz":{"aws:username":"a"}}}]}"#,
                Identity,
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"a:b","Resource":"*"}]}"#,
                Scp,
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"111111111111"},"Action":"a:b","Resource":"*"}]}"#,
                Rcp,
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Effect":"Deny"}]}"#,
                Identity,
            ),
        ];
        let mut errors = Vec::new();
        for (text, kind) in cases {
            errors.push(err(text, *kind));
        }
        let p = |s: &str| PolicyError::InvalidPrincipal(s.to_owned());
        let want = [
            PolicyError::UnsupportedVersion("2012-10-18".into()),
            PolicyError::MissingStatement,
            PolicyError::InvalidEffect("allow".into()),
            PolicyError::PrincipalRequired,
            p(r#""AWS":"arn:aws:iam::*:root""#),
            p(r#""AWS":"arn:aws:iam::111111111111:group/g""#),
            PolicyError::NotPrincipalWithAllow,
            p(r#""Federated":"cognito-identity.amazonaws.com""#),
            PolicyError::Conflicting("Action"),
            PolicyError::DuplicateSid("x".into()),
            PolicyError::InvalidSid("has space".into()),
            PolicyError::IdNotAllowed,
            PolicyError::VariableOutsideResourcePart(
                "arn:aws:secretsmanager:us-east-1:${aws:PrincipalAccount}:secret:x".into(),
            ),
            PolicyError::UnknownOperator("StringEqualz".into()),
            PolicyError::PrincipalNotAllowed,
            p(r#""AWS":"111111111111""#),
            PolicyError::Json("duplicate key `Effect` at line 1 column 93".into()),
        ];
        assert_eq!(errors.len(), want.len());
        for ((text, _), (got, want)) in cases.iter().zip(errors.iter().zip(want)) {
            assert_eq!(*got, want, "{text}");
        }
    }

    #[test]
    fn resource_policy_rules() {
        // any Sid string in resource policies; both versions; variables literal under 2008
        let p = Policy::parse(
            r#"{"Version":"2008-10-17","Statement":[{"Sid":"any sid!","Effect":"Allow","Principal":{"AWS":["111111111111","arn:aws:iam::222222222222:root","arn:aws:sts::1:assumed-role/r/s"]},"Action":"secretsmanager:*","Resource":"*"}]}"#,
            PolicyType::Resource,
        );
        // `arn:aws:sts::1:…` has a short account id
        assert_eq!(
            p.unwrap_err().errors()[0].error,
            PolicyError::InvalidPrincipal(r#""AWS":"arn:aws:sts::1:assumed-role/r/s""#.into())
        );
        let p = Policy::parse(
            r#"{"Statement":[{"Sid":"any sid!","Effect":"Allow","Principal":{"AWS":["111111111111","arn:aws:iam::222222222222:root","arn:aws:sts::333333333333:assumed-role/r/s"]},"Action":"secretsmanager:*","Resource":"*"}]}"#,
            PolicyType::Resource,
        )
        .unwrap();
        assert!(!p.variables_enabled());
        let entries = &p.statements()[0].principal.as_ref().unwrap().entries;
        assert_eq!(entries[0], PrincipalEntry::Account("111111111111".into()));
        assert_eq!(entries[1], PrincipalEntry::Account("222222222222".into()));
    }

    #[test]
    fn size_limits() {
        let big = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"a:b","Resource":"*","Condition":{{"StringEquals":{{"a:b":"{}"}}}}}}]}}"#,
            "x".repeat(20_480)
        );
        assert!(matches!(
            err(&big, PolicyType::Resource),
            PolicyError::TooLarge { limit: 20_480, .. }
        ));
        let spaced = format!(
            r#"{{"Version":"2012-10-17",{}"Statement":[{{"Effect":"Allow","Action":"a:b","Resource":"*"}}]}}"#,
            " ".repeat(7_000)
        );
        assert!(Policy::parse(&spaced, PolicyType::Identity).is_ok());
        assert_eq!(
            err(&spaced, PolicyType::Scp),
            PolicyError::TooLarge {
                limit: 5_120,
                actual: 7_087
            }
        );
        assert!(matches!(
            err("  ", PolicyType::Resource),
            PolicyError::Empty
        ));
        let unicode = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"StringEquals":{"a:b":"€"}}}]}"#;
        assert_eq!(
            err(unicode, PolicyType::Identity),
            PolicyError::InvalidCharacter('€')
        );
    }

    #[test]
    fn every_error_is_reported() {
        let e = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"},{"Effect":"Allow","Action":"a:b"}]}"#,
            PolicyType::Identity,
        )
        .unwrap_err();
        assert_eq!(e.errors().len(), 2);
        assert_eq!(e.errors()[1].statement, Some(1));
    }
}
