//! The rest of the principals directory, read-only, each part through the API operation
//! that answers it, called as the signed-in principal: the organization's accounts and SCPs
//! (AWS Organizations' ListAccounts, ListPolicies, DescribePolicy), the account's identity
//! providers (IAM's ListOpenIDConnectProviders, GetOpenIDConnectProvider), and the last
//! reload's status and errors (Strongroom's GetPrincipalsReloadStatus).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::{json, Value};

use super::xml;
use super::{api_time, page, CallError, Console, Nav, Signed};
use crate::protocol::Service;

/// At most this many pages of a list are read for one view.
const MAX_PAGES: usize = 10;

/// Every page of the JSON list operation `op` (its `member` items), following `NextToken`.
async fn list_all(
    c: &Console,
    s: &Signed,
    service: Service,
    op: &str,
    input: Value,
    member: &str,
) -> Result<Vec<Value>, CallError> {
    let mut out = Vec::new();
    let mut input = input;
    for _ in 0..MAX_PAGES {
        let v = c.call(s, service, op, &input).await?;
        out.extend(v[member].as_array().cloned().unwrap_or_default());
        match v["NextToken"].as_str() {
            Some(t) => input["NextToken"] = Value::String(t.to_owned()),
            None => break,
        }
    }
    Ok(out)
}

fn text(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_owned()
}

struct AccountRow {
    id: String,
    name: String,
    path: String,
    status: String,
}

struct ScpRow {
    id: String,
    name: String,
    arn: String,
    content: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "organization.html")]
struct OrganizationPage {
    nav: Option<Nav>,
    section: &'static str,
    tab: &'static str,
    account: String,
    management: String,
    accounts: Vec<AccountRow>,
    accounts_error: Option<String>,
    scps: Vec<ScpRow>,
    scps_error: Option<String>,
}

/// The organization's accounts and SCPs.
pub(crate) async fn organization(req: HttpRequest, c: web::Data<Console>) -> HttpResponse {
    let s = match c.signed_in(&req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (accounts, accounts_error) = match list_all(
        &c,
        &s,
        Service::Organizations,
        "ListAccounts",
        json!({}),
        "Accounts",
    )
    .await
    {
        Ok(list) => (list, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let management = accounts
        .iter()
        .find(|a| {
            // The management account's own ARN names itself as the organization's owner.
            let id = text(a, "Id");
            text(a, "Arn").starts_with(&format!("arn:aws:organizations::{id}:"))
        })
        .map(|a| text(a, "Id"))
        .unwrap_or_default();
    let accounts: Vec<AccountRow> = accounts
        .iter()
        .map(|a| AccountRow {
            id: text(a, "Id"),
            name: text(a, "Name"),
            path: a["Paths"][0].as_str().unwrap_or("").to_owned(),
            status: text(a, "Status"),
        })
        .collect();
    let (scps, scps_error) = match list_all(
        &c,
        &s,
        Service::Organizations,
        "ListPolicies",
        json!({"Filter": "SERVICE_CONTROL_POLICY"}),
        "Policies",
    )
    .await
    {
        Ok(list) => {
            let mut rows = Vec::with_capacity(list.len());
            for p in list {
                let id = text(&p, "Id");
                let described = c
                    .call(
                        &s,
                        Service::Organizations,
                        "DescribePolicy",
                        &json!({ "PolicyId": id }),
                    )
                    .await;
                let (content, error) = match described {
                    Ok(d) => (pretty(d["Policy"]["Content"].as_str().unwrap_or("")), None),
                    Err(e) => (String::new(), Some(e.text)),
                };
                rows.push(ScpRow {
                    name: text(&p, "Name"),
                    arn: text(&p, "Arn"),
                    id,
                    content,
                    error,
                });
            }
            (rows, None)
        }
        Err(e) => (Vec::new(), Some(e)),
    };
    let status = match (&accounts_error, &scps_error) {
        (Some(a), Some(_)) => a.status,
        _ => 200,
    };
    page(
        status,
        &OrganizationPage {
            nav: s.nav(),
            section: "principals",
            tab: "organization",
            account: s.principal.account_id.clone(),
            management,
            accounts,
            accounts_error: accounts_error.map(|e| e.text),
            scps,
            scps_error: scps_error.map(|e| e.text),
        },
    )
}

/// A JSON document pretty-printed (as given when it is not JSON).
fn pretty(doc: &str) -> String {
    serde_json::from_str::<Value>(doc)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| doc.to_owned())
}

struct ProviderRow {
    arn: String,
    url: String,
    audiences: Vec<String>,
    algorithms: String,
    key_source: String,
    key_files: String,
    key_count: String,
    leeway: String,
    session_tags: Vec<(String, String)>,
    role_claim: String,
    condition_claims: Vec<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "providers.html")]
struct ProvidersPage {
    nav: Option<Nav>,
    section: &'static str,
    tab: &'static str,
    account: String,
    error: Option<String>,
    providers: Vec<ProviderRow>,
}

fn query_form(action: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut form = vec![
        ("Action".to_owned(), action.to_owned()),
        ("Version".to_owned(), "2010-05-08".to_owned()),
    ];
    form.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    form
}

fn provider_row(arn: String, answer: Result<String, CallError>) -> ProviderRow {
    let mut row = ProviderRow {
        url: arn
            .split_once(":oidc-provider/")
            .map(|(_, u)| u.to_owned())
            .unwrap_or_default(),
        arn,
        audiences: Vec::new(),
        algorithms: String::new(),
        key_source: String::new(),
        key_files: String::new(),
        key_count: String::new(),
        leeway: String::new(),
        session_tags: Vec::new(),
        role_claim: String::new(),
        condition_claims: Vec::new(),
        error: None,
    };
    let result = match answer {
        Ok(text) => {
            xml::parse(&text).and_then(|root| root.find("GetOpenIDConnectProviderResult").cloned())
        }
        Err(e) => {
            row.error = Some(e.text);
            return row;
        }
    };
    let Some(r) = result else {
        row.error = Some("The answer could not be read.".to_owned());
        return row;
    };
    let list =
        |name: &str| -> Vec<String> { r.members(name).iter().map(|m| m.text.clone()).collect() };
    row.url = r.text_of("Url");
    row.audiences = list("ClientIDList");
    row.algorithms = list("Algorithms").join(", ");
    row.key_source = match r.text_of("KeySource").as_str() {
        "JwksFile" => "a JWKS file".to_owned(),
        "PublicKeyFiles" => "public key files".to_owned(),
        "HmacSecretFile" => "an HMAC secret file (the secret is not shown)".to_owned(),
        other => other.to_owned(),
    };
    row.key_files = list("KeyFiles").join(", ");
    row.key_count = r.text_of("KeyCount");
    row.leeway = r.text_of("LeewaySeconds");
    row.session_tags = r
        .members("SessionTagClaims")
        .iter()
        .map(|m| (m.text_of("Claim"), m.text_of("TagKey")))
        .collect();
    row.role_claim = r.text_of("RoleClaim");
    row.condition_claims = list("ConditionClaims");
    row
}

/// The account's identity providers.
pub(crate) async fn providers(req: HttpRequest, c: web::Data<Console>) -> HttpResponse {
    let s = match c.signed_in(&req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let listed = c
        .call_query(&s, &query_form("ListOpenIDConnectProviders", &[]))
        .await;
    let (status, error, arns) = match listed {
        Ok(text) => match xml::parse(&text) {
            Some(root) => (
                200,
                None,
                root.find("OpenIDConnectProviderList")
                    .map(|l| {
                        l.children
                            .iter()
                            .map(|m| m.text_of("Arn"))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
            ),
            None => (
                500,
                Some("The answer could not be read.".to_owned()),
                vec![],
            ),
        },
        Err(e) => (e.status, Some(e.text), vec![]),
    };
    let mut rows = Vec::with_capacity(arns.len());
    for arn in arns {
        let answer = c
            .call_query(
                &s,
                &query_form(
                    "GetOpenIDConnectProvider",
                    &[("OpenIDConnectProviderArn", &arn)],
                ),
            )
            .await;
        rows.push(provider_row(arn, answer));
    }
    page(
        status,
        &ProvidersPage {
            nav: s.nav(),
            section: "principals",
            tab: "providers",
            account: s.principal.account_id.clone(),
            error,
            providers: rows,
        },
    )
}

struct ReloadError {
    file: String,
    path: String,
    message: String,
}

struct Status {
    watched: bool,
    fingerprint: String,
    in_force_since: String,
    attempted: String,
    accepted: bool,
    checked: String,
    errors: Vec<ReloadError>,
    not_shown: u64,
}

#[derive(Template)]
#[template(path = "reload.html")]
struct ReloadPage {
    nav: Option<Nav>,
    section: &'static str,
    tab: &'static str,
    error: Option<String>,
    status: Option<Status>,
}

/// The last reload's status and errors.
pub(crate) async fn reload(req: HttpRequest, c: web::Data<Console>) -> HttpResponse {
    let s = match c.signed_in(&req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let answer = c
        .call(
            &s,
            Service::Strongroom,
            "GetPrincipalsReloadStatus",
            &json!({}),
        )
        .await;
    let (code, error, status) = match answer {
        Ok(v) => (
            200,
            None,
            Some(Status {
                watched: v["DirectoryWatched"].as_bool().unwrap_or(false),
                fingerprint: text(&v, "Fingerprint"),
                in_force_since: api_time(&v["InForceSince"]),
                attempted: api_time(&v["LastAttempt"]),
                accepted: v["LastAttemptResult"] == "Accepted",
                checked: api_time(&v["LastChecked"]),
                errors: v["Errors"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|e| ReloadError {
                                file: text(e, "File"),
                                path: text(e, "Path"),
                                message: text(e, "Message"),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                not_shown: v["ErrorsNotShown"].as_u64().unwrap_or(0),
            }),
        ),
        Err(e) => (e.status, Some(e.text), None),
    };
    page(
        code,
        &ReloadPage {
            nav: s.nav(),
            section: "principals",
            tab: "reload",
            error,
            status,
        },
    )
}
