//! The rest of the principals directory in the console and the API: the organization's
//! accounts and SCPs (Organizations' ListAccounts, ListPolicies, DescribePolicy), identity
//! providers (IAM's ListOpenIDConnectProviders, GetOpenIDConnectProvider) and the last
//! reload's status (`strongroom:GetPrincipalsReloadStatus`). Each is refused to a principal
//! its policies do not allow, with the API's denial message and none of the data, and shown
//! to one they do.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::console::{events, html_escape, Browser};
use crate::common::{
    call_as, config_in, key_for, signed_query, user_allowing, write, RawResponse, Signing,
    TestServer, ACCOUNT, AKID, SECRET,
};

/// The member account of the declared organization.
pub(crate) const MEMBER: &str = "444455556666";
/// The identity provider's HMAC secret: never shown.
const IDP_SECRET: &str = "directory-idp-hmac-secret-0123456789abcdef";

/// The actions that read the directory's accounts, SCPs, providers and reload status.
pub(crate) const DIRECTORY_READS: &[&str] = &[
    "organizations:ListAccounts",
    "organizations:ListPolicies",
    "organizations:DescribePolicy",
    "iam:ListOpenIDConnectProviders",
    "iam:GetOpenIDConnectProvider",
    "strongroom:GetPrincipalsReloadStatus",
];

/// An organization ([`ACCOUNT`] its management account, [`MEMBER`] aliased `payments-prod`
/// under an OU), the SCPs `deny-leave` (attached at the root) and `unattached`, and an
/// identity provider of [`ACCOUNT`] with an HMAC key file.
pub(crate) fn declare_directory(p: &Path) {
    write(
        p,
        &format!("accounts/{MEMBER}/account.json"),
        &format!(r#"{{"AccountId":"{MEMBER}","Alias":"payments-prod"}}"#),
    );
    write(
        p,
        "organization/organization.json",
        &format!(
            r#"{{"Id":"o-exampleorg01","ManagementAccount":"{ACCOUNT}",
                "Root":{{"Id":"r-ab12","Policies":["deny-leave"],
                  "OrganizationalUnits":[{{"Name":"prod","Id":"ou-ab12-prod0001",
                    "Accounts":[{{"AccountId":"{MEMBER}"}}]}}]}}}}"#
        ),
    );
    write(
        p,
        "organization/scps/deny-leave.json",
        r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"AllowAll","Effect":"Allow","Action":"*","Resource":"*"},
            {"Sid":"DenyLeavingTheOrganization","Effect":"Deny","Action":"organizations:LeaveOrganization","Resource":"*"}]}"#,
    );
    write(
        p,
        "organization/scps/unattached.json",
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"NotAttachedAnywhere","Effect":"Deny","Action":"kms:*","Resource":"*"}]}"#,
    );
    write(
        p,
        &format!("accounts/{ACCOUNT}/identity-providers/idp.hmac"),
        IDP_SECRET,
    );
    write(
        p,
        &format!("accounts/{ACCOUNT}/identity-providers/idp.json"),
        r#"{"Issuer":"https://idp.example.test","Audiences":["strongroom-console"],
            "HmacSecretFile":"idp.hmac","Algorithms":["HS256"],
            "SessionTagClaims":{"team":"Team"},"RoleClaim":"role","LeewaySeconds":30}"#,
    );
}

struct Dir {
    s: TestServer,
    policies: tempfile::TempDir,
    /// Allowed [`DIRECTORY_READS`].
    auditor: (String, String),
    /// Allowed `secretsmanager:ListSecrets` only.
    limited: (String, String),
    /// Allowed `iam:*`.
    iam_admin: (String, String),
    /// A user of the member account allowed `*`.
    member_admin: (String, String),
}

fn dir_fixture() -> Dir {
    let policies = tempfile::tempdir().unwrap();
    let p = policies.path();
    declare_directory(p);
    user_allowing(p, ACCOUNT, "auditor", DIRECTORY_READS);
    user_allowing(p, ACCOUNT, "limited", &["secretsmanager:ListSecrets"]);
    user_allowing(p, ACCOUNT, "iam-admin", &["iam:*"]);
    user_allowing(p, MEMBER, "member-admin", &["*"]);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config_in(dir.path(), None);
    cfg.console = true;
    cfg.policies = Some(p.to_path_buf());
    let s = TestServer::launch_config(cfg, dir);
    let auditor = key_for(&s, p, ACCOUNT, "auditor");
    let limited = key_for(&s, p, ACCOUNT, "limited");
    let iam_admin = key_for(&s, p, ACCOUNT, "iam-admin");
    let member_admin = key_for(&s, p, MEMBER, "member-admin");
    Dir {
        s,
        policies,
        auditor,
        limited,
        iam_admin,
        member_admin,
    }
}

fn org(s: &TestServer, who: &(String, String), op: &str, body: &Value) -> RawResponse {
    call_as(
        s,
        &who.0,
        &who.1,
        &format!("AWSOrganizationsV20161128.{op}"),
        body,
    )
}

fn iam(s: &TestServer, who: &(String, String), form: &str) -> RawResponse {
    s.raw(&signed_query(
        &format!("{form}&Version=2010-05-08"),
        Signing {
            akid: who.0.clone(),
            secret: who.1.clone(),
            service: "iam".into(),
            ..Signing::default()
        },
    ))
}

fn reload_status(s: &TestServer, who: &(String, String)) -> RawResponse {
    call_as(
        s,
        &who.0,
        &who.1,
        "Strongroom.GetPrincipalsReloadStatus",
        &json!({}),
    )
}

fn signed_in(s: &TestServer, who: &(String, String)) -> Browser {
    let mut b = Browser::new(s);
    assert_eq!(b.sign_in(&who.0, &who.1).status, 303);
    b
}

fn message(r: &RawResponse) -> String {
    r.json()["Message"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn the_organizations_accounts_and_scps_are_the_management_accounts_to_read() {
    let d = dir_fixture();
    let root = (AKID.to_owned(), SECRET.to_owned());

    // Positive control: the auditor (and root) of the management account read them.
    for who in [&d.auditor, &root] {
        let r = org(&d.s, who, "ListAccounts", &json!({}));
        assert_eq!(r.status, 200, "{}", r.body);
        let accounts = r.json()["Accounts"].as_array().unwrap().clone();
        let member = accounts.iter().find(|a| a["Id"] == MEMBER).unwrap();
        assert_eq!(member["Name"], "payments-prod");
        assert_eq!(
            member["Arn"],
            format!("arn:aws:organizations::{ACCOUNT}:account/o-exampleorg01/{MEMBER}")
        );
        assert_eq!(
            member["Paths"][0],
            format!("o-exampleorg01/r-ab12/ou-ab12-prod0001/{MEMBER}/")
        );
        assert!(accounts.iter().any(|a| a["Id"] == ACCOUNT), "{accounts:?}");
    }
    // Pages of MaxResults, followed by their NextToken.
    let first = org(&d.s, &d.auditor, "ListAccounts", &json!({"MaxResults": 1}));
    assert_eq!(first.json()["Accounts"].as_array().unwrap().len(), 1);
    let token = first.json()["NextToken"].as_str().unwrap().to_owned();
    let second = org(
        &d.s,
        &d.auditor,
        "ListAccounts",
        &json!({"MaxResults": 1, "NextToken": token}),
    );
    assert_eq!(
        second.json()["Accounts"][0]["Id"],
        MEMBER,
        "{}",
        second.body
    );
    assert!(second.json()["NextToken"].is_null());

    let policies = org(
        &d.s,
        &d.auditor,
        "ListPolicies",
        &json!({"Filter": "SERVICE_CONTROL_POLICY"}),
    );
    assert_eq!(policies.status, 200, "{}", policies.body);
    assert_eq!(
        policies.json()["Policies"].as_array().unwrap().len(),
        2,
        "{}",
        policies.body
    );
    assert!(policies.body.contains("\"Name\":\"deny-leave\""));
    assert!(policies
        .body
        .contains("\"Type\":\"SERVICE_CONTROL_POLICY\""));
    let tags = org(
        &d.s,
        &d.auditor,
        "ListPolicies",
        &json!({"Filter": "TAG_POLICY"}),
    );
    assert_eq!(tags.json()["Policies"], json!([]), "{}", tags.body);
    let no_filter = org(&d.s, &d.auditor, "ListPolicies", &json!({}));
    assert_eq!(no_filter.error_type(), "ValidationException");
    let described = org(
        &d.s,
        &d.auditor,
        "DescribePolicy",
        &json!({"PolicyId": "deny-leave"}),
    );
    assert_eq!(described.status, 200, "{}", described.body);
    let policy = &described.json()["Policy"];
    assert_eq!(
        policy["PolicySummary"]["Arn"],
        format!(
            "arn:aws:organizations::{ACCOUNT}:policy/o-exampleorg01/service_control_policy/deny-leave"
        )
    );
    assert!(policy["Content"]
        .as_str()
        .unwrap()
        .contains("DenyLeavingTheOrganization"));
    let missing = org(
        &d.s,
        &d.auditor,
        "DescribePolicy",
        &json!({"PolicyId": "p-nosuchpolicy"}),
    );
    assert_eq!(missing.error_type(), "PolicyNotFoundException");

    // Attacker: a principal its policies do not allow is refused with IAM's denial.
    let mut denials = Vec::new();
    for (op, body) in [
        ("ListAccounts", json!({})),
        ("ListPolicies", json!({"Filter": "SERVICE_CONTROL_POLICY"})),
        ("DescribePolicy", json!({"PolicyId": "deny-leave"})),
    ] {
        let r = org(&d.s, &d.limited, op, &body);
        assert_eq!(r.error_type(), "AccessDeniedException", "{op}: {}", r.body);
        assert!(
            message(&r).contains(&format!("is not authorized to perform: organizations:{op}")),
            "{}",
            r.body
        );
        assert!(!r.body.contains("DenyLeaving") && !r.body.contains(MEMBER));
        denials.push(message(&r));
    }
    // A member account, even allowed everything, is not the management account.
    let member = org(&d.s, &d.member_admin, "ListAccounts", &json!({}));
    assert_eq!(
        member.error_type(),
        "AccessDeniedException",
        "{}",
        member.body
    );
    assert_eq!(
        message(&member),
        "You don't have permissions to access this resource."
    );
    assert!(!member.body.contains("payments-prod"));

    // The console page is the same calls.
    let mut b = signed_in(&d.s, &d.auditor);
    let page = b.get("/console/organization");
    assert_eq!(page.status, 200, "{}", page.body);
    for want in [
        MEMBER,
        "payments-prod",
        "management",
        "deny-leave",
        "unattached",
        "DenyLeavingTheOrganization",
        "o-exampleorg01/r-ab12/ou-ab12-prod0001/",
        "aria-current=\"page\">Accounts and SCPs",
    ] {
        assert!(page.body.contains(want), "{want}: {}", page.body);
    }
    let mut l = signed_in(&d.s, &d.limited);
    let refused = l.get("/console/organization");
    assert_eq!(refused.status, 400, "{}", refused.body);
    for denial in &denials[..2] {
        assert!(
            refused
                .body
                .contains(&html_escape(&format!("AccessDeniedException: {denial}"))),
            "{denial}\n{}",
            refused.body
        );
    }
    for leak in [MEMBER, "payments-prod", "deny-leave", "DenyLeaving"] {
        assert!(!refused.body.contains(leak), "{leak}: {}", refused.body);
    }
    // Each read is the caller's own recorded call.
    let recorded = events(&d.s, "ListAccounts");
    assert!(recorded
        .iter()
        .any(|e| e["userIdentity"]["userName"] == "limited"
            && e["errorCode"] == "AccessDeniedException"
            && e["eventSource"] == "organizations.amazonaws.com"));
    assert!(recorded
        .iter()
        .any(|e| e["userIdentity"]["userName"] == "auditor" && e["errorCode"].is_null()));
    assert!(events(&d.s, "DescribePolicy")
        .iter()
        .any(|e| e["userIdentity"]["userName"] == "auditor" && e["userAgent"] == "console-test"));
}

#[test]
fn identity_providers_are_shown_without_their_keys() {
    let d = dir_fixture();
    let arn = format!("arn:aws:iam::{ACCOUNT}:oidc-provider/idp.example.test");

    let list = iam(&d.s, &d.auditor, "Action=ListOpenIDConnectProviders");
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains(&format!("<Arn>{arn}</Arn>")),
        "{}",
        list.body
    );
    let got = iam(
        &d.s,
        &d.auditor,
        &format!(
            "Action=GetOpenIDConnectProvider&OpenIDConnectProviderArn={}",
            crate::common::urlenc(&arn)
        ),
    );
    assert_eq!(got.status, 200, "{}", got.body);
    for want in [
        "<Url>idp.example.test</Url>",
        "<member>strongroom-console</member>",
        "<KeySource>HmacSecretFile</KeySource>",
        "<member>idp.hmac</member>",
        "<RoleClaim>role</RoleClaim>",
        "<LeewaySeconds>30</LeewaySeconds>",
        "<TagKey>Team</TagKey>",
        "<member>azp</member>",
    ] {
        assert!(got.body.contains(want), "{want}: {}", got.body);
    }
    assert!(!got.body.contains(IDP_SECRET));
    let other = iam(
        &d.s,
        &d.auditor,
        "Action=GetOpenIDConnectProvider&OpenIDConnectProviderArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Aoidc-provider%2Fnone.example",
    );
    assert_eq!(other.status, 404, "{}", other.body);
    assert!(other.body.contains("<Code>NoSuchEntity</Code>"));

    // Attacker: refused both, with IAM's denial and no provider.
    let refused_list = iam(&d.s, &d.limited, "Action=ListOpenIDConnectProviders");
    assert_eq!(refused_list.status, 403, "{}", refused_list.body);
    assert!(refused_list
        .body
        .contains("is not authorized to perform: iam:ListOpenIDConnectProviders"));
    assert!(!refused_list.body.contains("idp.example.test"));
    let refused_get = iam(
        &d.s,
        &d.limited,
        &format!(
            "Action=GetOpenIDConnectProvider&OpenIDConnectProviderArn={}",
            crate::common::urlenc(&arn)
        ),
    );
    assert_eq!(refused_get.status, 403, "{}", refused_get.body);
    assert!(!refused_get.body.contains("strongroom-console"));
    let denial = xml_message(&refused_list.body);
    // Another account's principal, allowed everything, sees only its own account's (none).
    let theirs = iam(&d.s, &d.member_admin, "Action=ListOpenIDConnectProviders");
    assert_eq!(theirs.status, 200, "{}", theirs.body);
    assert!(!theirs.body.contains("idp.example.test"), "{}", theirs.body);
    let across = iam(
        &d.s,
        &d.member_admin,
        &format!(
            "Action=GetOpenIDConnectProvider&OpenIDConnectProviderArn={}",
            crate::common::urlenc(&arn)
        ),
    );
    assert_eq!(across.status, 404, "{}", across.body);
    assert!(!across.body.contains("strongroom-console"));

    let mut b = signed_in(&d.s, &d.auditor);
    let page = b.get("/console/providers");
    assert_eq!(page.status, 200, "{}", page.body);
    for want in [
        "idp.example.test",
        "strongroom-console",
        "idp.hmac",
        "HS256",
        "claim team → tag Team",
        "the secret is not shown",
        "<code>idp.example.test:sub</code>",
    ] {
        assert!(page.body.contains(want), "{want}: {}", page.body);
    }
    assert!(!page.body.contains(IDP_SECRET));
    let mut l = signed_in(&d.s, &d.limited);
    let refused = l.get("/console/providers");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused
            .body
            .contains(&html_escape(&format!("AccessDenied: {denial}"))),
        "{denial}\n{}",
        refused.body
    );
    assert!(!refused.body.contains("idp.example.test"));
    assert!(!refused.body.contains("strongroom-console"));
}

/// The `<Message>` of a Query-protocol error.
pub(crate) fn xml_message(body: &str) -> String {
    let (_, rest) = body.split_once("<Message>").unwrap();
    rest.split("</Message>")
        .next()
        .unwrap()
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Poll the reload status (as `who`) until `done` holds, up to 20 s.
fn wait_status(s: &TestServer, who: &(String, String), done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let r = reload_status(s, who);
        assert_eq!(r.status, 200, "{}", r.body);
        last = r.json();
        if done(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the reload status never changed: {last}");
}

#[test]
fn a_refused_reload_is_shown_with_its_errors_until_the_files_are_fixed() {
    let d = dir_fixture();
    let p = d.policies.path();
    let first = wait_status(&d.s, &d.auditor, |_| true);
    assert_eq!(first["LastAttemptResult"], "Accepted", "{first}");
    assert_eq!(first["DirectoryWatched"], true);
    assert_eq!(first["Errors"], json!([]));

    // Attacker: iam:* does not grant it, nor does anything short of the action.
    let mut denials = Vec::new();
    for who in [&d.limited, &d.iam_admin] {
        let r = reload_status(&d.s, who);
        assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
        assert!(message(&r)
            .contains("is not authorized to perform: strongroom:GetPrincipalsReloadStatus"));
        denials.push(message(&r));
    }

    // A bad file in this account and one in another: the reload is refused, the set in
    // force stays, and the errors show (the other account's counted, not shown).
    let bad = format!("accounts/{ACCOUNT}/users/broken.json");
    write(p, &bad, r#"{"UserName":"broken","Bogus":true}"#);
    let other = format!("accounts/{MEMBER}/users/other-broken.json");
    write(p, &other, r#"{"UserName":"other-broken","Secretive":1}"#);
    let refused = wait_status(&d.s, &d.auditor, |v| v["LastAttemptResult"] == "Refused");
    assert_eq!(refused["Errors"][0]["File"], bad.as_str(), "{refused}");
    assert!(refused["Errors"][0]["Message"]
        .as_str()
        .unwrap()
        .contains("Bogus"));
    assert_eq!(refused["Errors"].as_array().unwrap().len(), 1, "{refused}");
    assert_eq!(refused["ErrorsNotShown"], 1, "{refused}");
    assert!(!refused.to_string().contains("Secretive"));
    assert_eq!(refused["Fingerprint"], first["Fingerprint"]);
    assert_eq!(refused["InForceSince"], first["InForceSince"]);
    // The member account's principal (allowed everything) sees its own file's error only.
    let theirs = reload_status(&d.s, &d.member_admin);
    assert_eq!(theirs.status, 200, "{}", theirs.body);
    let theirs = theirs.json();
    assert_eq!(theirs["Errors"][0]["File"], other.as_str(), "{theirs}");
    assert_eq!(theirs["Errors"].as_array().unwrap().len(), 1, "{theirs}");
    assert_eq!(theirs["ErrorsNotShown"], 1);
    assert!(!theirs.to_string().contains("Bogus"));
    assert!(refused["LastAttempt"].as_f64() > first["LastAttempt"].as_f64());
    // The last good set is in force: the auditor still signs in and reads.
    let mut b = signed_in(&d.s, &d.auditor);
    let page = b.get("/console/reload");
    assert_eq!(page.status, 200, "{}", page.body);
    for want in [
        "Refused",
        &bad,
        "Bogus",
        "stays in force",
        "1 more error(s) in other accounts",
    ] {
        assert!(page.body.contains(want), "{want}: {}", page.body);
    }
    assert!(!page.body.contains("other-broken") && !page.body.contains("Secretive"));
    let mut l = signed_in(&d.s, &d.limited);
    let denied = l.get("/console/reload");
    assert_eq!(denied.status, 400, "{}", denied.body);
    assert!(
        denied.body.contains(&html_escape(&format!(
            "AccessDeniedException: {}",
            denials[0]
        ))),
        "{}",
        denied.body
    );
    assert!(!denied.body.contains("broken.json") && !denied.body.contains("Bogus"));

    // Fixed: accepted, the errors gone.
    std::fs::remove_file(p.join(&bad)).unwrap();
    std::fs::remove_file(p.join(&other)).unwrap();
    let fixed = wait_status(&d.s, &d.auditor, |v| v["LastAttemptResult"] == "Accepted");
    assert_eq!(fixed["Errors"], json!([]));
    assert_eq!(fixed["ErrorsNotShown"], 0);
    assert!(fixed["InForceSince"].as_f64() > first["InForceSince"].as_f64());
    let page = b.get("/console/reload");
    assert!(page.body.contains("Accepted"), "{}", page.body);
    assert!(!page.body.contains("Bogus"), "{}", page.body);
    assert!(events(&d.s, "GetPrincipalsReloadStatus")
        .iter()
        .any(|e| e["eventSource"] == "strongroom.local"
            && e["userIdentity"]["userName"] == "iam-admin"
            && e["errorCode"] == "AccessDeniedException"));
}

/// Without an organization, Organizations answers `AWSOrganizationsNotInUseException` (after
/// the IAM decision), and the page says so with the caller's own account.
#[test]
fn without_an_organization_the_accounts_page_says_so() {
    let f = super::console::fixture();
    let r = call_as(
        &f.s,
        AKID,
        SECRET,
        "AWSOrganizationsV20161128.ListAccounts",
        &json!({}),
    );
    assert_eq!(
        r.error_type(),
        "AWSOrganizationsNotInUseException",
        "{}",
        r.body
    );
    let limited = call_as(
        &f.s,
        &f.limited.0,
        &f.limited.1,
        "AWSOrganizationsV20161128.ListAccounts",
        &json!({}),
    );
    assert_eq!(
        limited.error_type(),
        "AccessDeniedException",
        "{}",
        limited.body
    );
    let mut b = signed_in(&f.s, &f.reader);
    let page = b.get("/console/organization");
    assert!(
        page.body.contains(
            "AWSOrganizationsNotInUseException: Your account is not a member of an organization."
        ),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains(&format!("signed in to account {ACCOUNT}")));
}
