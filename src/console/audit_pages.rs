//! The audit explorer: CloudTrail's LookupEvents called as the signed-in principal (so an
//! auditor sees what `cloudtrail:LookupEvents` lets them see, and each lookup is itself
//! recorded), with more filters than its one lookup attribute: the first filter set goes to
//! LookupEvents, the others are applied to the events it returns, page after page.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{api_time, message, page, with_security_headers, Console, Nav, Signed};
use crate::protocol::Service;

/// LookupEvents pages read for one page of the explorer (50 events each).
const PAGES_PER_VIEW: usize = 10;
/// LookupEvents pages read for one export.
const PAGES_PER_EXPORT: usize = 400;
/// Matching events that end a page of the explorer.
const EVENTS_PER_VIEW: usize = 50;

#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    event_name: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    access_key: String,
    #[serde(default)]
    event_source: String,
    #[serde(default)]
    read_only: String,
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    token: String,
}

impl AuditQuery {
    /// The LookupEvents attributes the filters name, most selective first.
    fn attributes(&self) -> Vec<(&'static str, &str)> {
        [
            ("ResourceName", self.resource.as_str()),
            ("Username", self.user.as_str()),
            ("AccessKeyId", self.access_key.as_str()),
            ("EventName", self.event_name.as_str()),
            ("ResourceType", self.resource_type.as_str()),
            ("EventSource", self.event_source.as_str()),
            ("ReadOnly", self.read_only.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.trim()))
        .filter(|(_, v)| !v.is_empty())
        .collect()
    }

    /// The filters as a query string (without the page token).
    fn to_query_string(&self) -> String {
        let pairs = [
            ("start", &self.start),
            ("end", &self.end),
            ("user", &self.user),
            ("event_name", &self.event_name),
            ("resource", &self.resource),
            ("resource_type", &self.resource_type),
            ("access_key", &self.access_key),
            ("event_source", &self.event_source),
            ("read_only", &self.read_only),
            ("error_code", &self.error_code),
            ("decision", &self.decision),
        ];
        pairs
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(
                        v.trim(),
                        percent_encoding::NON_ALPHANUMERIC
                    )
                )
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// `2026-12-06T06:10` (an HTML datetime-local, taken as UTC), with seconds, or RFC 3339, as
/// epoch seconds.
fn parse_time(s: &str) -> Option<f64> {
    let s = s.trim().replace(' ', "T");
    let candidates = [s.clone(), format!("{s}Z"), format!("{s}:00Z")];
    candidates
        .iter()
        .find_map(|c| crate::audit::parse_rfc3339_ms(c))
        .map(crate::ops::epoch_seconds)
}

/// The LookupEvents input for `q` (its first attribute), from `token`.
fn lookup_input(q: &AuditQuery, token: Option<&str>) -> Result<Value, String> {
    let mut input = json!({ "MaxResults": 50 });
    if let Some((k, v)) = q.attributes().first() {
        input["LookupAttributes"] = json!([{ "AttributeKey": k, "AttributeValue": v }]);
    }
    for (name, text) in [("StartTime", &q.start), ("EndTime", &q.end)] {
        if !text.trim().is_empty() {
            let t = parse_time(text).ok_or_else(|| {
                format!(
                    "`{}` is not a time: use YYYY-MM-DDTHH:MM (UTC).",
                    text.trim()
                )
            })?;
            input[name] = json!(t);
        }
    }
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        input["NextToken"] = json!(t);
    }
    Ok(input)
}

/// The CloudTrail record of a LookupEvents event.
fn record_of(e: &Value) -> Value {
    e["CloudTrailEvent"]
        .as_str()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// Whether event `e` (with its record `r`) passes every filter of `q` (the one LookupEvents
/// applied passes again).
fn matches(q: &AuditQuery, e: &Value, r: &Value) -> bool {
    let eq = |want: &str, got: Option<&str>| {
        let want = want.trim();
        want.is_empty() || got == Some(want)
    };
    let resources: Vec<&Value> = e["Resources"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let any_resource = |field: &str, want: &str| {
        let want = want.trim();
        want.is_empty() || resources.iter().any(|x| x[field].as_str() == Some(want))
    };
    eq(&q.user, e["Username"].as_str())
        && eq(&q.event_name, e["EventName"].as_str())
        && eq(&q.access_key, e["AccessKeyId"].as_str())
        && eq(&q.event_source, e["EventSource"].as_str())
        && eq(&q.read_only, e["ReadOnly"].as_str())
        && any_resource("ResourceName", &q.resource)
        && any_resource("ResourceType", &q.resource_type)
        && eq(&q.error_code, r["errorCode"].as_str())
        && eq(&q.decision, r["authorization"]["decision"].as_str())
}

/// Read LookupEvents pages from `token` until `want` events match or `pages` were read.
/// Returns the matching events (with their records), how many were read, and the token of
/// the next unread page.
async fn scan(
    c: &Console,
    s: &Signed,
    q: &AuditQuery,
    want: usize,
    pages: usize,
) -> Result<(Vec<(Value, Value)>, usize, Option<String>), super::CallError> {
    let mut token = Some(q.token.clone()).filter(|t| !t.is_empty());
    let mut out = vec![];
    let mut read = 0;
    for _ in 0..pages {
        let input = lookup_input(q, token.as_deref())
            .map_err(|text| super::CallError { status: 400, text })?;
        let v = c
            .call(s, Service::CloudTrail, "LookupEvents", &input)
            .await?;
        for e in v["Events"].as_array().cloned().unwrap_or_default() {
            read += 1;
            let r = record_of(&e);
            if matches(q, &e, &r) {
                out.push((e, r));
            }
        }
        token = v["NextToken"].as_str().map(str::to_owned);
        if token.is_none() || out.len() >= want {
            break;
        }
    }
    Ok((out, read, token))
}

/// One change of a secret, from the audit trail.
#[derive(Debug)]
pub(crate) struct Change {
    pub id: String,
    pub time: String,
    pub name: String,
    pub user: String,
    pub error: String,
}

/// The recorded writes on the secret `arn` (rotation, new values, label moves, ...), newest
/// first, read through LookupEvents as the signed-in principal.
pub(crate) async fn history(
    c: &Console,
    s: &Signed,
    arn: &str,
) -> Result<Vec<Change>, super::CallError> {
    let q = AuditQuery {
        resource: arn.to_owned(),
        read_only: "false".to_owned(),
        ..AuditQuery::default()
    };
    let (events, _, _) = scan(c, s, &q, 20, 4).await?;
    Ok(events
        .iter()
        .map(|(e, r)| {
            let row = row_of(e, r);
            Change {
                id: row.id,
                time: row.time,
                name: row.name,
                user: row.user,
                error: row.error,
            }
        })
        .collect())
}

#[derive(Debug)]
struct Choice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Debug)]
struct Field {
    name: &'static str,
    label: &'static str,
    hint: &'static str,
    value: String,
    choices: Vec<Choice>,
}

#[derive(Debug)]
struct EventRow {
    id: String,
    time: String,
    name: String,
    source: String,
    user: String,
    resource: String,
    decision: String,
    decision_class: &'static str,
    error: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct ListPage {
    nav: Option<Nav>,
    section: &'static str,
    account: String,
    fields: Vec<Field>,
    filter_query: String,
    error: Option<String>,
    rows: Vec<EventRow>,
    scanned: usize,
    next_token: Option<String>,
}

fn choices(current: &str, list: &[(&'static str, &'static str)]) -> Vec<Choice> {
    list.iter()
        .map(|(value, label)| Choice {
            value,
            label,
            selected: *value == current,
        })
        .collect()
}

fn fields_of(q: &AuditQuery) -> Vec<Field> {
    let text = |name, label, hint, value: &String| Field {
        name,
        label,
        hint,
        value: value.clone(),
        choices: vec![],
    };
    vec![
        text("start", "From (UTC)", "2026-01-31T00:00", &q.start),
        text("end", "To (UTC)", "2026-01-31T23:59", &q.end),
        text("user", "User name", "alice", &q.user),
        text("event_name", "Event name", "GetSecretValue", &q.event_name),
        text(
            "resource",
            "Resource ARN",
            "arn:aws:secretsmanager:…",
            &q.resource,
        ),
        text(
            "resource_type",
            "Resource type",
            "AWS::SecretsManager::Secret",
            &q.resource_type,
        ),
        text("access_key", "Access key ID", "AKIA…", &q.access_key),
        text(
            "event_source",
            "Event source",
            "secretsmanager.amazonaws.com",
            &q.event_source,
        ),
        text(
            "error_code",
            "Error code",
            "AccessDeniedException",
            &q.error_code,
        ),
        Field {
            name: "read_only",
            label: "Read-only",
            hint: "",
            value: q.read_only.clone(),
            choices: choices(
                &q.read_only,
                &[("", "Any"), ("true", "Reads"), ("false", "Writes")],
            ),
        },
        Field {
            name: "decision",
            label: "Decision",
            hint: "",
            value: q.decision.clone(),
            choices: choices(
                &q.decision,
                &[
                    ("", "Any"),
                    ("Allow", "Allowed"),
                    ("ExplicitDeny", "Denied explicitly"),
                    ("ImplicitDeny", "Denied implicitly"),
                ],
            ),
        },
    ]
}

fn decision_class(d: &str) -> &'static str {
    match d {
        "Allow" => "ok",
        "ExplicitDeny" | "ImplicitDeny" => "bad",
        _ => "",
    }
}

fn row_of(e: &Value, r: &Value) -> EventRow {
    let decision = r["authorization"]["decision"].as_str().unwrap_or_default();
    EventRow {
        id: e["EventId"].as_str().unwrap_or_default().to_owned(),
        time: api_time(&e["EventTime"]),
        name: e["EventName"].as_str().unwrap_or_default().to_owned(),
        source: e["EventSource"].as_str().unwrap_or_default().to_owned(),
        user: e["Username"]
            .as_str()
            .or_else(|| r["userIdentity"]["arn"].as_str())
            .or_else(|| r["userIdentity"]["invokedBy"].as_str())
            .unwrap_or_default()
            .to_owned(),
        resource: e["Resources"][0]["ResourceName"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        decision: decision.to_owned(),
        decision_class: decision_class(decision),
        error: r["errorCode"].as_str().unwrap_or_default().to_owned(),
    }
}

pub(crate) async fn list(
    req: HttpRequest,
    c: web::Data<Console>,
    q: web::Query<AuditQuery>,
) -> HttpResponse {
    let s = match c.signed_in(&req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = q.into_inner();
    let (status, error, rows, scanned, next_token) =
        match scan(&c, &s, &q, EVENTS_PER_VIEW, PAGES_PER_VIEW).await {
            Ok((events, read, next)) => (
                200,
                None,
                events.iter().map(|(e, r)| row_of(e, r)).collect(),
                read,
                next,
            ),
            Err(e) => (e.status, Some(e.text), vec![], 0, None),
        };
    page(
        status,
        &ListPage {
            nav: s.nav(),
            section: "audit",
            account: s.principal.account_id.clone(),
            fields: fields_of(&q),
            filter_query: q.to_query_string(),
            error,
            rows,
            scanned,
            next_token,
        },
    )
}

/// The decision of record `r`, in words: the verdict, its style class, and the sentence.
fn explain(r: &Value) -> (&'static str, &'static str, String) {
    let a = &r["authorization"];
    let action = format!(
        "{}:{}",
        r["eventSource"]
            .as_str()
            .unwrap_or_default()
            .split('.')
            .next()
            .unwrap_or_default(),
        r["eventName"].as_str().unwrap_or_default()
    );
    let on = r["resources"][0]["ARN"]
        .as_str()
        .map(|arn| format!(" on {arn}"))
        .unwrap_or_default();
    let statement = a["statement"].as_str();
    let policy = a["policyArnOrId"].as_str();
    let kind = a["decidingPolicyType"]
        .as_str()
        .map(|k| format!("{} policy", k.to_lowercase()))
        .unwrap_or_else(|| "policy".to_owned());
    // A statement without a Sid is named by its index (`#0`).
    let statement = statement.map(|st| match st.strip_prefix('#') {
        Some(i) => format!("statement {i} (no Sid)"),
        None => format!("statement \u{201c}{st}\u{201d}"),
    });
    let which = match (statement, policy) {
        (Some(st), Some(p)) => format!("{st} of the {kind} {p}"),
        (None, Some(p)) => format!("the {kind} {p}"),
        (Some(st), None) => st,
        (None, None) => String::new(),
    };
    let reason = a["reason"]
        .as_str()
        .map(|x| format!(" (evaluator: {x})"))
        .unwrap_or_default();
    match a["decision"].as_str() {
        Some("Allow") => (
            "allowed",
            "ok",
            if which.is_empty() {
                format!("Allowed: {action}{on} was allowed{reason}.")
            } else {
                format!("Allowed: {which} allows {action}{on}, and no statement denies it{reason}.")
            },
        ),
        Some("ExplicitDeny") => (
            "denied",
            "bad",
            format!(
                "Denied explicitly: {} denies {action}{on}; an explicit deny overrides every allow{reason}.",
                if which.is_empty() { "a statement".to_owned() } else { which }
            ),
        ),
        Some("ImplicitDeny") => (
            "denied",
            "bad",
            format!(
                "Denied implicitly: no statement of the policies that apply allows {action}{on}{}{reason}.",
                if which.is_empty() {
                    String::new()
                } else {
                    format!(" (the layer that did not allow it: {which})")
                }
            ),
        ),
        Some("Service") => (
            "done by the service",
            "",
            "The server did this itself (no caller, no policy decision).".to_owned(),
        ),
        _ => {
            let outcome = r["responseElements"]["consoleLogin"].as_str();
            let text = match (outcome, r["errorCode"].as_str(), r["errorMessage"].as_str()) {
                (Some(o), _, m) => format!(
                    "Console sign-in: {o}{}. Sign-in checks the access key pair; no policy is evaluated.",
                    m.map(|m| format!(" ({m})")).unwrap_or_default()
                ),
                (None, Some(code), m) => format!(
                    "No policy decided: the request failed before authorization with {code}{}.",
                    m.map(|m| format!(": {m}")).unwrap_or_default()
                ),
                (None, None, _) => "No policy decision was recorded for this event.".to_owned(),
            };
            ("not decided by a policy", "", text)
        }
    }
}

#[derive(Template)]
#[template(path = "event.html")]
struct EventPage {
    nav: Option<Nav>,
    section: &'static str,
    id: String,
    name: String,
    time: String,
    error: Option<String>,
    verdict: &'static str,
    decision_class: &'static str,
    explanation: String,
    facts: Vec<(String, String)>,
    record: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventQuery {
    #[serde(default)]
    id: String,
}

pub(crate) async fn event(
    req: HttpRequest,
    c: web::Data<Console>,
    q: web::Query<EventQuery>,
) -> HttpResponse {
    let s = match c.signed_in(&req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let input = json!({
        "LookupAttributes": [{ "AttributeKey": "EventId", "AttributeValue": q.id }],
        "MaxResults": 1,
    });
    let found = c
        .call(&s, Service::CloudTrail, "LookupEvents", &input)
        .await;
    let e = match found {
        Ok(v) => v["Events"][0].clone(),
        Err(e) => return message(e.status, s.nav(), "Event", &e.text),
    };
    if e.is_null() {
        return message(
            404,
            s.nav(),
            "Event",
            "No event of your account has that id.",
        );
    }
    let r = record_of(&e);
    let (verdict, class, explanation) = explain(&r);
    let mut facts = vec![];
    let mut add = |k: &str, v: &Value| {
        if let Some(t) = v.as_str().filter(|t| !t.is_empty()) {
            facts.push((k.to_owned(), t.to_owned()));
        }
    };
    add("Event ID", &r["eventID"]);
    add("Time (UTC)", &r["eventTime"]);
    add("Source", &r["eventSource"]);
    add("Caller", &r["userIdentity"]["arn"]);
    add("Invoked by", &r["userIdentity"]["invokedBy"]);
    add("Access key", &r["userIdentity"]["accessKeyId"]);
    add("Source IP", &r["sourceIPAddress"]);
    add("User agent", &r["userAgent"]);
    add("Region", &r["awsRegion"]);
    add("Resource", &r["resources"][0]["ARN"]);
    add("Decision", &r["authorization"]["decision"]);
    add(
        "Deciding policy type",
        &r["authorization"]["decidingPolicyType"],
    );
    add("Deciding policy", &r["authorization"]["policyArnOrId"]);
    add("Deciding statement", &r["authorization"]["statement"]);
    add("Error code", &r["errorCode"]);
    add("Error message", &r["errorMessage"]);
    add("Request ID", &r["requestID"]);
    page(
        200,
        &EventPage {
            nav: s.nav(),
            section: "audit",
            id: q.id.clone(),
            name: r["eventName"].as_str().unwrap_or_default().to_owned(),
            time: api_time(&e["EventTime"]),
            error: None,
            verdict,
            decision_class: class,
            explanation,
            facts,
            record: serde_json::to_string_pretty(&r).unwrap_or_default(),
        },
    )
}

/// The events of the current filter as JSON Lines (one CloudTrail record a line), read
/// through LookupEvents like the explorer's pages.
pub(crate) async fn export(
    req: HttpRequest,
    c: web::Data<Console>,
    q: web::Query<AuditQuery>,
) -> HttpResponse {
    let s = match c.signed_in(&req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = q.into_inner();
    match scan(&c, &s, &q, usize::MAX, PAGES_PER_EXPORT).await {
        Ok((events, _, _)) => {
            let mut body = String::new();
            for (e, _) in &events {
                if let Some(line) = e["CloudTrailEvent"].as_str() {
                    body.push_str(line);
                    body.push('\n');
                }
            }
            with_security_headers(
                HttpResponse::Ok()
                    .content_type("application/x-ndjson")
                    .insert_header((
                        "content-disposition",
                        "attachment; filename=\"strongroom-audit.jsonl\"",
                    ))
                    .body(body),
            )
        }
        Err(e) => message(e.status, s.nav(), "Export", &e.text),
    }
}
