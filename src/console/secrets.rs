//! The secrets pages: ListSecrets with its filters, a secret's details and versions
//! (DescribeSecret, ListSecretVersionIds), and revealing one version's value
//! (GetSecretValue, on a POST carrying the session's CSRF token).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{api_time, csrf_refused, page, CallError, Console, Nav, Signed};
use crate::protocol::Service;

/// ListSecrets' filter keys, as the search form offers them.
const FILTER_KEYS: &[(&str, &str)] = &[
    ("all", "Any field"),
    ("name", "Name (prefix)"),
    ("description", "Description (prefix)"),
    ("tag-key", "Tag key (prefix)"),
    ("tag-value", "Tag value (prefix)"),
    ("primary-region", "Primary region"),
    ("owning-service", "Owning service"),
];

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    key: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    deleted: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

#[derive(Debug)]
struct ShownQuery {
    key: String,
    q: String,
    deleted: bool,
}

#[derive(Debug)]
struct Opt {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Debug)]
struct Row {
    name: String,
    arn: String,
    description: String,
    tags: Vec<(String, String)>,
    rotation: String,
    changed: String,
    deleted: Option<String>,
}

#[derive(Template)]
#[template(path = "secrets.html")]
struct ListPage {
    nav: Option<Nav>,
    section: &'static str,
    filter_keys: Vec<Opt>,
    query: ShownQuery,
    error: Option<String>,
    rows: Vec<Row>,
    next_token: Option<String>,
}

fn tags_of(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    (
                        t["Key"].as_str().unwrap_or_default().to_owned(),
                        t["Value"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn rotation_of(s: &Value) -> String {
    if s["RotationEnabled"].as_bool() == Some(true) {
        let next = api_time(&s["NextRotationDate"]);
        if next.is_empty() {
            "enabled".into()
        } else {
            format!("enabled, next {next}")
        }
    } else {
        "off".into()
    }
}

pub(crate) async fn list(
    req: HttpRequest,
    c: web::Data<Console>,
    q: web::Query<ListQuery>,
) -> HttpResponse {
    let s = match c.signed_in(&req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = q.into_inner();
    let key = if FILTER_KEYS.iter().any(|(k, _)| *k == q.key) {
        q.key.clone()
    } else {
        "all".to_owned()
    };
    let deleted = q.deleted.as_deref() == Some("true");
    let mut input = json!({ "MaxResults": 50, "SortOrder": "asc" });
    let text = q.q.trim();
    if !text.is_empty() {
        input["Filters"] = json!([{ "Key": key, "Values": [text] }]);
    }
    if deleted {
        input["IncludePlannedDeletion"] = json!(true);
    }
    if let Some(t) = q.token.as_deref().filter(|t| !t.is_empty()) {
        input["NextToken"] = json!(t);
    }
    let (status, error, rows, next_token) = match c
        .call(&s, Service::SecretsManager, "ListSecrets", &input)
        .await
    {
        Ok(v) => {
            let rows = v["SecretList"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|e| Row {
                            name: e["Name"].as_str().unwrap_or_default().to_owned(),
                            arn: e["ARN"].as_str().unwrap_or_default().to_owned(),
                            description: e["Description"].as_str().unwrap_or_default().to_owned(),
                            tags: tags_of(&e["Tags"]),
                            rotation: rotation_of(e),
                            changed: api_time(&e["LastChangedDate"]),
                            deleted: e["DeletedDate"]
                                .as_f64()
                                .map(|_| api_time(&e["DeletedDate"])),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let next = v["NextToken"].as_str().map(str::to_owned);
            (200, None, rows, next)
        }
        Err(e) => (e.status, Some(e.text), vec![], None),
    };
    page(
        status,
        &ListPage {
            nav: s.nav(),
            section: "secrets",
            filter_keys: FILTER_KEYS
                .iter()
                .map(|(value, label)| Opt {
                    value,
                    label,
                    selected: *value == key,
                })
                .collect(),
            query: ShownQuery {
                key,
                q: q.q,
                deleted,
            },
            error,
            rows,
            next_token,
        },
    )
}

#[derive(Debug)]
struct Version {
    version_id: String,
    stages: Vec<String>,
    created: String,
    accessed: String,
}

#[derive(Debug)]
struct Revealed {
    version_id: String,
    stages: String,
    value: String,
}

#[derive(Template)]
#[template(path = "secret.html")]
struct SecretPage {
    nav: Option<Nav>,
    section: &'static str,
    name: String,
    arn: String,
    csrf: String,
    error: Option<String>,
    facts: Vec<(String, String)>,
    tags: Vec<(String, String)>,
    versions: Vec<Version>,
    versions_error: Option<String>,
    revealed: Option<Revealed>,
    history: Vec<super::audit_pages::Change>,
    history_error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ShowQuery {
    #[serde(default)]
    id: String,
}

/// The details of a secret, as DescribeSecret answers them.
fn facts_of(d: &Value) -> Vec<(String, String)> {
    let mut facts = vec![];
    let mut text = |label: &str, v: &Value| {
        if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
            facts.push((label.to_owned(), s.to_owned()));
        }
    };
    text("ARN", &d["ARN"]);
    text("Description", &d["Description"]);
    text("KMS key", &d["KmsKeyId"]);
    text("Owning service", &d["OwningService"]);
    text("Primary region", &d["PrimaryRegion"]);
    text("Rotation function", &d["RotationLambdaARN"]);
    let mut time = |label: &str, v: &Value| {
        let t = api_time(v);
        if !t.is_empty() {
            facts.push((label.to_owned(), format!("{t} UTC")));
        }
    };
    time("Created", &d["CreatedDate"]);
    time("Last changed", &d["LastChangedDate"]);
    time("Last rotated", &d["LastRotatedDate"]);
    time("Next rotation", &d["NextRotationDate"]);
    time("Scheduled for deletion", &d["DeletedDate"]);
    // Secrets Manager keeps the day of the last access only.
    let accessed = api_time(&d["LastAccessedDate"]);
    if let Some(day) = accessed.get(..10) {
        facts.push(("Last accessed (day)".to_owned(), day.to_owned()));
    }
    facts.push((
        "Rotation".to_owned(),
        if d["RotationEnabled"].as_bool() == Some(true) {
            let rules = &d["RotationRules"];
            if rules.is_null() {
                "enabled".to_owned()
            } else {
                format!("enabled, rules {rules}")
            }
        } else {
            "off".to_owned()
        },
    ));
    if let Some(replicas) = d["ReplicationStatus"].as_array().filter(|a| !a.is_empty()) {
        let shown: Vec<String> = replicas
            .iter()
            .map(|r| {
                format!(
                    "{} ({})",
                    r["Region"].as_str().unwrap_or_default(),
                    r["Status"].as_str().unwrap_or_default()
                )
            })
            .collect();
        facts.push(("Replicas".to_owned(), shown.join(", ")));
    }
    facts
}

/// The secret page for `id`, with `revealed` (and the status and error of the reveal).
async fn secret_page(
    c: &Console,
    s: &Signed,
    id: &str,
    revealed: Option<Revealed>,
    reveal_error: Option<CallError>,
) -> HttpResponse {
    let describe = c
        .call(
            s,
            Service::SecretsManager,
            "DescribeSecret",
            &json!({ "SecretId": id }),
        )
        .await;
    let (mut status, mut error, name, arn, facts, tags, stages_by_version) = match describe {
        Ok(d) => (
            200,
            None,
            d["Name"].as_str().unwrap_or(id).to_owned(),
            d["ARN"].as_str().unwrap_or(id).to_owned(),
            facts_of(&d),
            tags_of(&d["Tags"]),
            d["VersionIdsToStages"].clone(),
        ),
        Err(e) => (
            e.status,
            Some(e.text),
            id.to_owned(),
            id.to_owned(),
            vec![],
            vec![],
            Value::Null,
        ),
    };
    let listed = c
        .call(
            s,
            Service::SecretsManager,
            "ListSecretVersionIds",
            &json!({ "SecretId": id, "IncludeDeprecated": true, "MaxResults": 100 }),
        )
        .await;
    let (versions, versions_error) = match listed {
        Ok(v) => (
            v["Versions"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|e| Version {
                            version_id: e["VersionId"].as_str().unwrap_or_default().to_owned(),
                            stages: e["VersionStages"]
                                .as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(Value::as_str)
                                        .map(str::to_owned)
                                        .collect()
                                })
                                .unwrap_or_default(),
                            created: api_time(&e["CreatedDate"]),
                            accessed: api_time(&e["LastAccessedDate"])
                                .get(..10)
                                .unwrap_or_default()
                                .to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            None,
        ),
        Err(e) => {
            // What DescribeSecret told, when listing versions is not allowed.
            let versions = stages_by_version
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(vid, stages)| Version {
                            version_id: vid.clone(),
                            stages: stages
                                .as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(Value::as_str)
                                        .map(str::to_owned)
                                        .collect()
                                })
                                .unwrap_or_default(),
                            created: String::new(),
                            accessed: String::new(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            (versions, Some(e.text))
        }
    };
    let (history, history_error) = match super::audit_pages::history(c, s, &arn).await {
        Ok(h) => (h, None),
        Err(e) => (vec![], Some(e.text)),
    };
    if let Some(e) = reveal_error {
        status = e.status;
        error = Some(e.text);
    }
    page(
        status,
        &SecretPage {
            nav: s.nav(),
            section: "secrets",
            name,
            arn,
            csrf: s.claims.csrf.clone(),
            error,
            facts,
            tags,
            versions,
            versions_error,
            revealed,
            history,
            history_error,
        },
    )
}

pub(crate) async fn show(
    req: HttpRequest,
    c: web::Data<Console>,
    q: web::Query<ShowQuery>,
) -> HttpResponse {
    let s = match c.signed_in(&req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    secret_page(&c, &s, &q.id, None, None).await
}

#[derive(Deserialize)]
pub(crate) struct RevealForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    version_id: String,
}

pub(crate) async fn reveal(
    req: HttpRequest,
    c: web::Data<Console>,
    form: web::Form<RevealForm>,
) -> HttpResponse {
    let s = match c.signed_in(&req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !s.claims.csrf_matches(&form.csrf) {
        return csrf_refused(&s);
    }
    let mut input = json!({ "SecretId": form.id });
    if !form.version_id.is_empty() {
        input["VersionId"] = json!(form.version_id);
    }
    match c
        .call(&s, Service::SecretsManager, "GetSecretValue", &input)
        .await
    {
        Ok(v) => {
            let value = match (v["SecretString"].as_str(), v["SecretBinary"].as_str()) {
                (Some(text), _) => text.to_owned(),
                (None, Some(b64)) => format!("(binary, base64) {b64}"),
                (None, None) => String::new(),
            };
            let stages: Vec<&str> = v["VersionStages"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let revealed = Revealed {
                version_id: v["VersionId"].as_str().unwrap_or_default().to_owned(),
                stages: stages.join(", "),
                value,
            };
            secret_page(&c, &s, &form.id, Some(revealed), None).await
        }
        Err(e) => secret_page(&c, &s, &form.id, None, Some(e)).await,
    }
}
