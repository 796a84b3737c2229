//! The principals directory, read-only: IAM's GetAccountAuthorizationDetails called as the
//! signed-in principal (so it needs `iam:GetAccountAuthorizationDetails`), showing the
//! account's users, groups, roles and managed policies with their policy documents.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::xml::{self, Node};
use super::{page, Console, Nav};

#[derive(Debug)]
struct Doc {
    name: String,
    /// An attached managed policy's ARN; empty for an inline policy.
    arn: String,
    /// The document, pretty-printed (inline policies and managed policies' own list).
    text: String,
}

#[derive(Debug)]
struct Entity {
    kind: &'static str,
    name: String,
    arn: String,
    detail: String,
    trust: String,
    docs: Vec<Doc>,
    simulate: bool,
}

#[derive(Template)]
#[template(path = "principals.html")]
struct PrincipalsPage {
    nav: Option<Nav>,
    section: &'static str,
    tab: &'static str,
    account: String,
    error: Option<String>,
    sections: Vec<Section>,
}

#[derive(Debug)]
struct Section {
    title: &'static str,
    list: Vec<Entity>,
}

/// A URL-encoded policy document, pretty-printed.
fn document(encoded: &str) -> String {
    let text = percent_encoding::percent_decode_str(encoded)
        .decode_utf8_lossy()
        .into_owned();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text)
}

/// The inline (`list`) and attached policies of an entity.
fn docs_of(n: &Node, list: &str) -> Vec<Doc> {
    let mut docs: Vec<Doc> = n
        .members(list)
        .iter()
        .map(|p| Doc {
            name: p.text_of("PolicyName"),
            arn: String::new(),
            text: document(&p.text_of("PolicyDocument")),
        })
        .collect();
    docs.extend(n.members("AttachedManagedPolicies").iter().map(|p| Doc {
        name: p.text_of("PolicyName"),
        arn: p.text_of("PolicyArn"),
        text: String::new(),
    }));
    docs
}

fn entities(result: &Node) -> (Vec<Entity>, Vec<Entity>, Vec<Entity>, Vec<Entity>) {
    let users = result
        .members("UserDetailList")
        .iter()
        .map(|u| {
            let groups: Vec<String> = u
                .members("GroupList")
                .iter()
                .map(|g| g.text.clone())
                .collect();
            Entity {
                kind: "user",
                name: u.text_of("UserName"),
                arn: u.text_of("Arn"),
                detail: if groups.is_empty() {
                    String::new()
                } else {
                    format!("also the policies of its groups: {}", groups.join(", "))
                },
                trust: String::new(),
                docs: docs_of(u, "UserPolicyList"),
                simulate: true,
            }
        })
        .collect();
    let groups = result
        .members("GroupDetailList")
        .iter()
        .map(|g| Entity {
            kind: "group",
            name: g.text_of("GroupName"),
            arn: g.text_of("Arn"),
            detail: String::new(),
            trust: String::new(),
            docs: docs_of(g, "GroupPolicyList"),
            simulate: false,
        })
        .collect();
    let roles = result
        .members("RoleDetailList")
        .iter()
        .map(|r| Entity {
            kind: "role",
            name: r.text_of("RoleName"),
            arn: r.text_of("Arn"),
            detail: String::new(),
            trust: document(&r.text_of("AssumeRolePolicyDocument")),
            docs: docs_of(r, "RolePolicyList"),
            simulate: true,
        })
        .collect();
    let policies = result
        .members("Policies")
        .iter()
        .map(|p| Entity {
            kind: "policy",
            name: p.text_of("PolicyName"),
            arn: p.text_of("Arn"),
            detail: String::new(),
            trust: String::new(),
            docs: p
                .members("PolicyVersionList")
                .iter()
                .filter(|v| v.text_of("IsDefaultVersion") == "true")
                .map(|v| Doc {
                    name: v.text_of("VersionId"),
                    arn: String::new(),
                    text: document(&v.text_of("Document")),
                })
                .collect(),
            simulate: false,
        })
        .collect();
    (users, groups, roles, policies)
}

pub(crate) async fn list(req: HttpRequest, c: web::Data<Console>) -> HttpResponse {
    let s = match c.signed_in(&req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form = vec![
        (
            "Action".to_owned(),
            "GetAccountAuthorizationDetails".to_owned(),
        ),
        ("Version".to_owned(), "2010-05-08".to_owned()),
    ];
    let (status, error, (users, groups, roles, policies)) = match c.call_query(&s, &form).await {
        Ok(text) => match xml::parse(&text).and_then(|root| {
            root.find("GetAccountAuthorizationDetailsResult")
                .map(entities)
        }) {
            Some(all) => (200, None, all),
            None => (
                500,
                Some("The answer could not be read.".to_owned()),
                Default::default(),
            ),
        },
        Err(e) => (e.status, Some(e.text), Default::default()),
    };
    page(
        status,
        &PrincipalsPage {
            nav: s.nav(),
            section: "principals",
            tab: "principals",
            account: s.principal.account_id.clone(),
            error,
            sections: vec![
                Section {
                    title: "Users",
                    list: users,
                },
                Section {
                    title: "Groups",
                    list: groups,
                },
                Section {
                    title: "Roles",
                    list: roles,
                },
                Section {
                    title: "Managed policies",
                    list: policies,
                },
            ],
        },
    )
}
