//! The policy simulator form: IAM's SimulatePrincipalPolicy called as the signed-in
//! principal (so it needs `iam:SimulatePrincipalPolicy` on the simulated principal, and is
//! recorded like any IAM call), answered by the evaluator that decides real requests.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{csrf_refused, page, xml_text, Console, Nav};

#[derive(Debug)]
struct ResultRow {
    action: String,
    resource: String,
    decision: String,
    class: &'static str,
    matched: Vec<String>,
    missing: String,
}

#[derive(Template)]
#[template(path = "simulate.html")]
struct SimulatePage {
    nav: Option<Nav>,
    section: &'static str,
    csrf: String,
    principal: String,
    actions: String,
    resources: String,
    context: String,
    error: Option<String>,
    results: Vec<ResultRow>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SimulateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    principal: String,
    #[serde(default)]
    actions: String,
    #[serde(default)]
    resources: String,
    #[serde(default)]
    context: String,
}

fn lines(s: &str) -> impl Iterator<Item = &str> {
    s.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// The Query form of a SimulatePrincipalPolicy call for `f`.
fn query_form(f: &SimulateForm) -> Vec<(String, String)> {
    let mut p = vec![
        ("Action".to_owned(), "SimulatePrincipalPolicy".to_owned()),
        ("Version".to_owned(), "2010-05-08".to_owned()),
        ("PolicySourceArn".to_owned(), f.principal.trim().to_owned()),
    ];
    for (i, a) in lines(&f.actions).enumerate() {
        p.push((format!("ActionNames.member.{}", i + 1), a.to_owned()));
    }
    for (i, r) in lines(&f.resources).enumerate() {
        p.push((format!("ResourceArns.member.{}", i + 1), r.to_owned()));
    }
    for (i, (k, v)) in lines(&f.context)
        .filter_map(|l| l.split_once('='))
        .enumerate()
    {
        let n = i + 1;
        p.push((
            format!("ContextEntries.member.{n}.ContextKeyName"),
            k.trim().to_owned(),
        ));
        p.push((
            format!("ContextEntries.member.{n}.ContextKeyValues.member.1"),
            v.trim().to_owned(),
        ));
        p.push((
            format!("ContextEntries.member.{n}.ContextKeyType"),
            "string".to_owned(),
        ));
    }
    p
}

/// Every `<tag>` element's text in `xml`.
fn all_texts(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    xml.split(&open)
        .skip(1)
        .map(|chunk| xml_text(&format!("{open}{chunk}"), tag))
        .collect()
}

/// The evaluation results of a SimulatePrincipalPolicy answer.
fn results_of(xml: &str) -> Vec<ResultRow> {
    xml.split("<EvalActionName>")
        .skip(1)
        .map(|chunk| {
            let chunk = format!("<EvalActionName>{chunk}");
            let decision = xml_text(&chunk, "EvalDecision");
            let ids = all_texts(&chunk, "SourcePolicyId");
            let types = all_texts(&chunk, "SourcePolicyType");
            let matched = ids
                .iter()
                .zip(types.iter().chain(std::iter::repeat(&String::new())))
                .map(|(id, t)| {
                    if t.is_empty() {
                        id.clone()
                    } else {
                        format!("{id} ({t})")
                    }
                })
                .collect();
            let missing = xml_text(&chunk, "MissingContextValues");
            ResultRow {
                action: xml_text(&chunk, "EvalActionName"),
                resource: xml_text(&chunk, "EvalResourceName"),
                class: if decision == "allowed" { "ok" } else { "bad" },
                decision,
                matched,
                missing: all_texts(&missing, "member").join(", "),
            }
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Prefill {
    #[serde(default)]
    principal: String,
}

pub(crate) async fn form(
    req: HttpRequest,
    c: web::Data<Console>,
    q: web::Query<Prefill>,
) -> HttpResponse {
    let s = match c.signed_in(&req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    page(
        200,
        &SimulatePage {
            nav: s.nav(),
            section: "simulate",
            csrf: s.claims.csrf.clone(),
            principal: q.into_inner().principal,
            actions: String::new(),
            resources: String::new(),
            context: String::new(),
            error: None,
            results: vec![],
        },
    )
}

pub(crate) async fn run(
    req: HttpRequest,
    c: web::Data<Console>,
    f: web::Form<SimulateForm>,
) -> HttpResponse {
    let s = match c.signed_in(&req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let f = f.into_inner();
    if !s.claims.csrf_matches(&f.csrf) {
        return csrf_refused(&s);
    }
    let (status, error, results) = match c.call_query(&s, &query_form(&f)).await {
        Ok(xml) => (200, None, results_of(&xml)),
        Err(e) => (e.status, Some(e.text), vec![]),
    };
    page(
        status,
        &SimulatePage {
            nav: s.nav(),
            section: "simulate",
            csrf: s.claims.csrf.clone(),
            principal: f.principal,
            actions: f.actions,
            resources: f.resources,
            context: f.context,
            error,
            results,
        },
    )
}
