//! Run decision cases in the shared vectors schema (`vectors/README.md`) and validate policy
//! documents. These helpers back `strongroom policy simulate|validate`; `run_cases_file` is
//! the only function in `policy` that reads a file.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use super::context::{PrincipalInfo, PrincipalType, RequestContext};
use super::err::ParseError;
use super::eval::{authorize, Effect, PolicyGroup, PolicySet};
use super::lint::{lint, Warning};
use super::message::denial_message;
use super::model::Json;
use super::parse::{Policy, PolicyType};

#[derive(Debug, Deserialize)]
struct Case {
    id: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    confidence: String,
    request: CaseRequest,
    #[serde(default)]
    policies: CasePolicies,
    expected: CaseExpected,
}

#[derive(Debug, Deserialize)]
struct CaseRequest {
    action: String,
    resource: CaseResource,
    principal: CasePrincipal,
    #[serde(default)]
    context: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct CaseResource {
    arn: String,
    #[serde(default)]
    account: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CasePrincipal {
    #[serde(rename = "type")]
    kind: String,
    arn: String,
    #[serde(default)]
    role_arn: Option<String>,
    #[serde(default)]
    account: String,
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CasePolicies {
    #[serde(default)]
    identity: Vec<serde_json::Value>,
    #[serde(default)]
    resource: Option<serde_json::Value>,
    #[serde(default)]
    permission_boundary: Option<serde_json::Value>,
    #[serde(default)]
    session: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    scp: Option<Vec<Vec<serde_json::Value>>>,
    #[serde(default)]
    rcp: Option<Vec<Vec<serde_json::Value>>>,
    /// A KMS key policy (Strongroom extension): used as the resource policy, and required
    /// to allow even in the key's own account.
    #[serde(default)]
    key_policy: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaseExpected {
    decision: String,
    #[serde(default)]
    decided_by: Option<String>,
}

/// The outcome of one case.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub id: String,
    pub description: String,
    pub confidence: String,
    pub expected: String,
    pub expected_decided_by: Option<String>,
    /// `None` when the case could not be run (see `error`).
    pub got: Option<Effect>,
    pub got_decided_by: Option<String>,
    pub matched: bool,
    /// Deciding statements, `type[policy]:sid-or-#index`.
    pub deciding: Vec<String>,
    /// The `AccessDeniedException` message for denials.
    pub message: Option<String>,
    pub error: Option<String>,
}

/// The outcome of a case file.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CasesReport {
    pub cases: Vec<CaseResult>,
    /// The file itself could not be read.
    pub error: Option<String>,
}

impl CasesReport {
    /// Every case ran and matched (and there was at least one).
    pub fn all_matched(&self) -> bool {
        self.error.is_none() && !self.cases.is_empty() && self.cases.iter().all(|c| c.matched)
    }

    pub fn failures(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|c| !c.matched)
    }
}

impl fmt::Display for CasesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.error {
            return writeln!(f, "error: {e}");
        }
        let w = self
            .cases
            .iter()
            .map(|c| c.id.len())
            .max()
            .unwrap_or(2)
            .max(2);
        writeln!(
            f,
            "{:w$}  {:26}  {:26}  ok  deciding",
            "id", "expected", "got"
        )?;
        for c in &self.cases {
            let exp = match &c.expected_decided_by {
                Some(by) => format!("{} ({by})", c.expected),
                None => c.expected.clone(),
            };
            let got = match (&c.got, &c.got_decided_by) {
                (Some(g), Some(by)) => format!("{g} ({by})"),
                (Some(g), None) => g.to_string(),
                (None, _) => "error".to_owned(),
            };
            let ok = if c.matched { "ok" } else { "NO" };
            let tail = match &c.error {
                Some(e) => e.clone(),
                None => c.deciding.join(", "),
            };
            let disputed = if c.confidence == "disputed" {
                " [disputed]"
            } else {
                ""
            };
            writeln!(f, "{:w$}  {exp:26}  {got:26}  {ok}  {tail}{disputed}", c.id)?;
        }
        let n = self.cases.len();
        let bad = self.cases.iter().filter(|c| !c.matched).count();
        writeln!(f, "{} of {n} cases matched", n - bad)
    }
}

/// Run every case of a vectors-schema JSON array.
pub fn run_cases(json: &str) -> CasesReport {
    match serde_json::from_str::<Vec<Case>>(json) {
        Ok(cases) => CasesReport {
            cases: cases.iter().map(run_case).collect(),
            error: None,
        },
        Err(e) => CasesReport {
            cases: Vec::new(),
            error: Some(format!("cases are not in the vectors schema: {e}")),
        },
    }
}

/// Read a case file and run it.
pub fn run_cases_file(path: &std::path::Path) -> std::io::Result<CasesReport> {
    Ok(run_cases(&std::fs::read_to_string(path)?))
}

fn run_case(c: &Case) -> CaseResult {
    let mut r = CaseResult {
        id: c.id.clone(),
        description: c.description.clone(),
        confidence: c.confidence.clone(),
        expected: c.expected.decision.clone(),
        expected_decided_by: c.expected.decided_by.clone(),
        got: None,
        got_decided_by: None,
        matched: false,
        deciding: Vec::new(),
        message: None,
        error: None,
    };
    let built = context(&c.request).and_then(|ctx| Ok((ctx, policy_set(&c.policies)?)));
    let (ctx, set) = match built {
        Ok(x) => x,
        Err(e) => {
            r.error = Some(e);
            return r;
        }
    };
    let d = authorize(&ctx, &set);
    r.got = Some(d.effect);
    r.got_decided_by = d.decided_by().map(|t| t.short_name().to_owned());
    r.deciding = d.deciding.iter().map(ToString::to_string).collect();
    r.message = denial_message(&ctx, &d);
    let by_ok = match (&c.expected.decided_by, d.decided_by()) {
        (None, _) => true,
        (Some(want), got) => PolicyType::from_short_name(want) == got,
    };
    r.matched = Effect::parse(&c.expected.decision) == Some(d.effect) && by_ok;
    r
}

fn context(req: &CaseRequest) -> Result<RequestContext, String> {
    let p = &req.principal;
    let kind = PrincipalType::parse(&p.kind)
        .ok_or_else(|| format!("unknown principal type `{}`", p.kind))?;
    let info = PrincipalInfo {
        kind,
        arn: p.arn.clone(),
        issuer_arn: p.role_arn.clone().or_else(|| match kind {
            PrincipalType::AssumedRole => super::context::role_arn_of_session(&p.arn),
            _ => None,
        }),
        account: p.account.clone(),
        user_name: p.user_name.clone(),
        user_id: p.user_id.clone(),
        tags: p.tags.clone(),
    };
    let mut ctx = RequestContext::new(
        info,
        &req.action,
        &req.resource.arn,
        req.resource.account.as_deref(),
    );
    // As the server does for every KMS action: the calling principal's account (a case may
    // still set it, to simulate what it would not be).
    if req.action.to_ascii_lowercase().starts_with("kms:") && !p.account.is_empty() {
        ctx = ctx.with("kms:CallerAccount", [p.account.as_str()]);
    }
    // As the server does for every request: the principal's own request, not one a service
    // makes on its behalf (a case's `context` may say otherwise).
    ctx = ctx.with_own_request_keys();
    for (k, v) in &req.context {
        let values: Vec<String> = match v {
            serde_json::Value::Array(a) => a.iter().map(scalar).collect::<Result<_, _>>()?,
            other => vec![scalar(other)?],
        };
        ctx = ctx.with(k, values);
    }
    Ok(ctx)
}

fn scalar(v: &serde_json::Value) -> Result<String, String> {
    match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("context value `{other}` is not a string")),
    }
}

fn parse_one(
    v: &serde_json::Value,
    kind: PolicyType,
    label: String,
) -> Result<Arc<Policy>, String> {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match Policy::parse(&text, kind) {
        Ok(p) => {
            let label = match p.id() {
                Some(id) if !id.is_empty() => id.to_owned(),
                _ => label,
            };
            Ok(Arc::new(p.with_label(&label)))
        }
        Err(e) => Err(format!("{label}: {e}")),
    }
}

fn group(vs: &[serde_json::Value], kind: PolicyType, name: &str) -> Result<PolicyGroup, String> {
    vs.iter()
        .enumerate()
        .map(|(i, v)| parse_one(v, kind, format!("{name}{i}")))
        .collect::<Result<Vec<_>, _>>()
        .map(PolicyGroup::new)
}

fn levels(
    ls: &Option<Vec<Vec<serde_json::Value>>>,
    kind: PolicyType,
    name: &str,
) -> Result<Option<Vec<Arc<PolicyGroup>>>, String> {
    ls.as_ref()
        .map(|ls| {
            ls.iter()
                .enumerate()
                .map(|(l, vs)| group(vs, kind, &format!("{name}{l}.")).map(Arc::new))
                .collect()
        })
        .transpose()
}

fn policy_set(p: &CasePolicies) -> Result<PolicySet, String> {
    let key_policy = p.key_policy.as_ref().filter(|v| !v.is_null());
    if key_policy.is_some() && p.resource.as_ref().is_some_and(|v| !v.is_null()) {
        return Err("a case has either `resource` or `keyPolicy`, not both".into());
    }
    Ok(PolicySet {
        identity: Arc::new(group(&p.identity, PolicyType::Identity, "identity")?),
        resource: p
            .resource
            .as_ref()
            .filter(|v| !v.is_null())
            .map(|v| parse_one(v, PolicyType::Resource, "resource".into()))
            .or_else(|| key_policy.map(|v| parse_one(v, PolicyType::Resource, "keyPolicy".into())))
            .transpose()?,
        resource_required: key_policy.is_some(),
        boundary: p
            .permission_boundary
            .as_ref()
            .filter(|v| !v.is_null())
            .map(|v| parse_one(v, PolicyType::PermissionsBoundary, "boundary".into()))
            .transpose()?,
        session: p
            .session
            .as_ref()
            .map(|vs| group(vs, PolicyType::Session, "session").map(Arc::new))
            .transpose()?,
        scp: levels(&p.scp, PolicyType::Scp, "scp")?,
        rcp: levels(&p.rcp, PolicyType::Rcp, "rcp")?,
    })
}

/// The result of validating one document.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationReport {
    pub kind: PolicyType,
    pub errors: Vec<ParseError>,
    pub warnings: Vec<Warning>,
}

impl ValidationReport {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} policy: {}",
            self.kind,
            if self.is_valid() { "valid" } else { "invalid" }
        )?;
        for e in &self.errors {
            writeln!(f, "error: {e} ({})", e.error.aws_message())?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

/// Validate a document, guessing its kind: a resource policy if any statement names a
/// principal, an identity policy otherwise.
pub fn validate_document(json: &str) -> ValidationReport {
    let kind = match Json::parse(json) {
        Ok(j) if names_principal(&j) => PolicyType::Resource,
        _ => PolicyType::Identity,
    };
    validate_document_as(json, kind)
}

/// Validate a document as a policy of `kind`: errors, then warnings if it is valid.
pub fn validate_document_as(json: &str, kind: PolicyType) -> ValidationReport {
    match Policy::parse(json, kind) {
        Ok(p) => ValidationReport {
            kind,
            errors: Vec::new(),
            warnings: lint(&p),
        },
        Err(e) => ValidationReport {
            kind,
            errors: e.errors().to_vec(),
            warnings: Vec::new(),
        },
    }
}

fn names_principal(j: &Json) -> bool {
    let Json::Object(top) = j else { return false };
    let stmts: Vec<&Json> = match top.iter().find(|(k, _)| k == "Statement").map(|(_, v)| v) {
        Some(Json::Array(a)) => a.iter().collect(),
        Some(o) => vec![o],
        None => Vec::new(),
    };
    stmts.iter().any(|s| match s {
        Json::Object(fields) => fields
            .iter()
            .any(|(k, _)| k == "Principal" || k == "NotPrincipal"),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_guesses_kind_and_reports() {
        let r = validate_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#,
        );
        assert_eq!(r.kind, PolicyType::Resource);
        assert!(r.is_valid());
        assert_eq!(r.warnings.len(), 1);
        let r = validate_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
        );
        assert_eq!(r.kind, PolicyType::Identity);
        assert!(!r.is_valid());
        assert!(r
            .to_string()
            .contains("Policy statement must contain actions."));
    }

    #[test]
    fn bad_case_files_are_reported() {
        assert!(!run_cases("{").all_matched());
        assert!(!run_cases("[]").all_matched());
        let r = run_cases(
            r#"[{"id":"x","request":{"action":"a:b","resource":{"arn":"*"},"principal":{"type":"Alien","arn":"x","account":"1"}},"expected":{"decision":"Allow"}}]"#,
        );
        assert!(!r.all_matched());
        assert!(r.to_string().contains("unknown principal type"));
    }
}
