//! Which policies take part in a decision, through the real server: service control policies
//! of every kind of principal of a member account (users, role sessions, the root user), at
//! every level of the tree, across accounts (the caller's account's, never the resource's)
//! and across a reload that moves an account; group membership and managed policies changed
//! by a reload; principals of one name in two accounts or of two kinds; one resource policy
//! text on secrets of two owners; role boundaries and session policies against resource
//! policy grants. Each refusal has a positive control.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{
    signed_query, sts_as, urlenc, write, xml_field, RawResponse, Signing, TestServer, ACCOUNT,
};

const ORG: &str = "o-assemblytest01";
/// In OU `workloads`, whose SCPs deny DescribeSecret.
const MEMBER: &str = "444455556666";
/// In OU `sandbox`, which has no SCP attached.
const SANDBOX: &str = "555566667777";
/// At the organization's root, with only a deny-only SCP attached to the account itself.
const DENY_ONLY: &str = "666677778888";
/// Not in the organization.
const OUTSIDER: &str = "777788889999";

const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// Credentials: long-term (no token) or a session's.
#[derive(Clone)]
struct Who {
    akid: String,
    secret: String,
    token: Option<String>,
}

fn sm(s: &TestServer, who: &Who, op: &str, body: &serde_json::Value) -> RawResponse {
    s.call_signed(
        &format!("secretsmanager.{op}"),
        &body.to_string(),
        Signing {
            akid: who.akid.clone(),
            secret: who.secret.clone(),
            session_token: who.token.clone(),
            ..Signing::default()
        },
    )
}

fn pair(out: &str) -> Who {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    Who {
        akid: v["AccessKeyId"].as_str().unwrap().to_owned(),
        secret: v["SecretAccessKey"].as_str().unwrap().to_owned(),
        token: None,
    }
}

fn user_key(s: &TestServer, dir: &Path, account: &str, user: &str) -> Who {
    pair(&strongroom::cli::create_access_key(&s.store_config(), dir, account, user).unwrap())
}

fn root_key(s: &TestServer, dir: &Path, account: &str) -> Who {
    if account == ACCOUNT {
        return Who {
            akid: crate::common::AKID.into(),
            secret: crate::common::SECRET.into(),
            token: None,
        };
    }
    pair(&strongroom::cli::create_root_access_key(&s.store_config(), dir, account).unwrap())
}

/// AssumeRole as `who` (optionally with an inline session `policy`): the raw answer.
fn assume(s: &TestServer, who: &Who, role: &str, name: &str, policy: Option<&str>) -> RawResponse {
    let mut form = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={name}",
        urlenc(role)
    );
    if let Some(p) = policy {
        form.push_str(&format!("&Policy={}", urlenc(p)));
    }
    s.raw(&signed_query(
        &form,
        Signing {
            session_token: who.token.clone(),
            ..sts_as(&who.akid, &who.secret)
        },
    ))
}

fn session(s: &TestServer, who: &Who, role: &str, name: &str, policy: Option<&str>) -> Who {
    let r = assume(s, who, role, name, policy);
    assert_eq!(r.status, 200, "{}", r.body);
    Who {
        akid: xml_field(&r.body, "AccessKeyId"),
        secret: xml_field(&r.body, "SecretAccessKey"),
        token: Some(xml_field(&r.body, "SessionToken")),
    }
}

fn account_json(dir: &Path, account: &str) {
    write(
        dir,
        &format!("accounts/{account}/account.json"),
        &format!(r#"{{"AccountId":"{account}"}}"#),
    );
}

/// User `name` of `account` allowed `actions` on everything (none: no policy at all).
fn user(dir: &Path, account: &str, name: &str, actions: &[&str]) {
    account_json(dir, account);
    let policies = if actions.is_empty() {
        String::new()
    } else {
        format!(
            r#","InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":{},"Resource":"*"}}]}}}}"#,
            serde_json::to_string(actions).unwrap()
        )
    };
    write(
        dir,
        &format!("accounts/{account}/users/{name}.json"),
        &format!(r#"{{"UserName":"{name}"{policies}}}"#),
    );
}

/// Role `name` of `account`, assumable by the account's principals that may (its root in the
/// trust policy), allowed `actions` on everything, with `extra` fields of the role file.
fn role(dir: &Path, account: &str, name: &str, actions: &[&str], extra: &str) {
    account_json(dir, account);
    write(
        dir,
        &format!("accounts/{account}/roles/{name}.json"),
        &format!(
            r#"{{"RoleName":"{name}"{extra},
                "AssumeRolePolicyDocument":{{"Version":"2012-10-17","Statement":[
                    {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"sts:AssumeRole"}}]}},
                "InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                    {{"Effect":"Allow","Action":{},"Resource":"*"}}]}}}}}}"#,
            serde_json::to_string(actions).unwrap()
        ),
    );
}

fn role_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

fn user_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:user/{name}")
}

fn empty_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("policies");
    account_json(&dir, ACCOUNT);
    (t, dir)
}

/// The organization file with `workloads` and `sandbox` holding the given accounts.
fn organization(dir: &Path, workloads: &str, sandbox: &str) {
    write(
        dir,
        "organization/organization.json",
        &format!(
            r#"{{"Id":"{ORG}","ManagementAccount":"{ACCOUNT}",
                "Root":{{"Name":"Root","Id":"r-asm1","Policies":["FullAWSAccess","deny-tag"],
                  "Accounts":[{{"AccountId":"{ACCOUNT}"}},
                              {{"AccountId":"{DENY_ONLY}","Policies":["deny-describe"]}}],
                  "OrganizationalUnits":[
                    {{"Name":"workloads","Id":"ou-asm1-workload1","Policies":["FullAWSAccess","deny-describe"],
                      "Accounts":[{{"AccountId":"{workloads}"}}]}},
                    {{"Name":"sandbox","Id":"ou-asm1-sandbox01",
                      "Accounts":[{{"AccountId":"{sandbox}"}}]}}]}}}}"#
        ),
    );
}

/// Every account with a power user `dev` and a power role `app`; the organization: the root
/// level allows everything but TagResource, OU `workloads` denies DescribeSecret, OU
/// `sandbox` has nothing attached, and DENY_ONLY's own level has only a deny.
fn org_directory() -> (tempfile::TempDir, std::path::PathBuf) {
    let (t, dir) = empty_dir();
    let power = ["secretsmanager:*", "sts:AssumeRole"];
    for account in [ACCOUNT, MEMBER, SANDBOX, DENY_ONLY, OUTSIDER] {
        user(&dir, account, "dev", &power);
        role(&dir, account, "app", &power, "");
    }
    write(&dir, "organization/scps/FullAWSAccess.json", ALLOW_ALL);
    write(
        &dir,
        "organization/scps/deny-describe.json",
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoDescribe","Effect":"Deny",
            "Action":"secretsmanager:DescribeSecret","Resource":"*"}]}"#,
    );
    write(
        &dir,
        "organization/scps/deny-tag.json",
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoTags","Effect":"Deny",
            "Action":"secretsmanager:TagResource","Resource":"*"}]}"#,
    );
    organization(&dir, MEMBER, SANDBOX);
    let msg = strongroom::cli::validate_policies(&dir).unwrap();
    assert!(msg.contains("OK"), "{msg}");
    (t, dir)
}

/// The ARN of a new secret `name` created by `who`.
fn create(s: &TestServer, who: &Who, name: &str) -> String {
    let r = sm(
        s,
        who,
        "CreateSecret",
        &json!({"Name": name, "SecretString": "v",
            "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
    );
    assert_eq!(r.status, 200, "{name}: {}", r.body);
    r.json()["ARN"].as_str().unwrap().to_owned()
}

fn allowed(r: &RawResponse) -> bool {
    r.status == 200
}

fn refused(r: &RawResponse) -> bool {
    r.status == 400 && r.error_type() == "AccessDeniedException"
}

fn describe(s: &TestServer, who: &Who, id: &str) -> RawResponse {
    sm(s, who, "DescribeSecret", &json!({"SecretId": id}))
}

/// Poll `check` until it holds (a reload of the principals files), failing after 20 s.
fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: never happened");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A member account's users, role sessions and root user are all bound by the SCPs of its
/// OU; the same principals of an account in an OU without that SCP, and of the management
/// account, are not.
#[tokio::test]
async fn scps_bind_every_principal_of_a_member_account() {
    let (_t, dir) = org_directory();
    let s = TestServer::start_with_policies(&dir);
    for (account, bound) in [(MEMBER, true), (SANDBOX, false), (ACCOUNT, false)] {
        let dev = user_key(&s, &dir, account, "dev");
        let app = session(&s, &dev, &role_arn(account, "app"), "s1", None);
        let root = root_key(&s, &dir, account);
        for (who, label) in [(&dev, "user"), (&app, "role session"), (&root, "root")] {
            let name = format!("{account}/{}", label.replace(' ', "-"));
            let arn = create(&s, who, &name);
            let r = describe(&s, who, &arn);
            if bound {
                assert!(refused(&r), "{account} {label}: {} {}", r.status, r.body);
            } else {
                assert!(allowed(&r), "{account} {label}: {} {}", r.status, r.body);
            }
        }
    }
}

/// An SCP attached at the organization's root binds the accounts of every OU below it (and
/// those placed at the root), not the management account nor an account outside.
#[tokio::test]
async fn an_scp_at_the_root_binds_every_account_below_it() {
    let (_t, dir) = org_directory();
    let s = TestServer::start_with_policies(&dir);
    let tag = |who: &Who, arn: &str| {
        sm(
            &s,
            who,
            "TagResource",
            &json!({"SecretId": arn, "Tags": [{"Key": "k", "Value": "v"}]}),
        )
    };
    for (account, bound) in [
        (MEMBER, true),
        (SANDBOX, true),
        (ACCOUNT, false),
        (OUTSIDER, false),
    ] {
        let dev = user_key(&s, &dir, account, "dev");
        let app = session(&s, &dev, &role_arn(account, "app"), "s1", None);
        for (who, label) in [(&dev, "user"), (&app, "session")] {
            let arn = create(&s, who, &format!("tagged/{label}"));
            let r = tag(who, &arn);
            assert_eq!(
                refused(&r),
                bound,
                "{account} {label}: {} {}",
                r.status,
                r.body
            );
            if !bound {
                assert!(allowed(&r), "{account} {label}: {}", r.body);
            }
        }
    }
}

/// A level whose only SCP is a deny allows nothing: every principal of the account is
/// refused everything, even what the deny does not name (and cannot take a role), while an
/// account whose levels have nothing attached works.
#[tokio::test]
async fn a_level_with_only_a_deny_scp_refuses_everything() {
    let (_t, dir) = org_directory();
    let s = TestServer::start_with_policies(&dir);
    let dev = user_key(&s, &dir, DENY_ONLY, "dev");
    let root = root_key(&s, &dir, DENY_ONLY);
    for (who, label) in [(&dev, "user"), (&root, "root")] {
        let r = sm(
            &s,
            who,
            "CreateSecret",
            &json!({"Name": format!("x/{label}"), "SecretString": "v",
                "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
        );
        assert!(refused(&r), "{label}: {} {}", r.status, r.body);
        let r = sm(&s, who, "ListSecrets", &json!({}));
        assert!(refused(&r), "{label}: {} {}", r.status, r.body);
    }
    let r = assume(&s, &dev, &role_arn(DENY_ONLY, "app"), "s1", None);
    assert_eq!(r.status, 403, "{}", r.body);
    // positive control: an account whose own level and OU have nothing attached
    let sandbox = user_key(&s, &dir, SANDBOX, "dev");
    create(&s, &sandbox, "x/user");
    let r = sm(&s, &sandbox, "ListSecrets", &json!({}));
    assert!(allowed(&r), "{}", r.body);
}

/// Across accounts, the caller's account's SCPs decide, not the resource's: a member caller
/// bound by an SCP deny is refused another account's secret whose resource policy names it;
/// a caller from outside (or from the management account) reads a member account's secret
/// that the member's own SCPs would refuse to the member.
#[tokio::test]
async fn across_accounts_the_caller_s_scps_apply_and_the_resource_account_s_do_not() {
    let (_t, dir) = org_directory();
    let s = TestServer::start_with_policies(&dir);
    let grant = |principals: &[String]| {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"AWS": principals}, "Action": "secretsmanager:DescribeSecret",
            "Resource": "*"}]})
        .to_string()
    };
    // the outsider's secret names a bound member's user and session and an unbound one's
    let outsider_root = root_key(&s, &dir, OUTSIDER);
    let theirs = create(&s, &outsider_root, "shared/outside");
    let member_dev = user_key(&s, &dir, MEMBER, "dev");
    let member_app = session(&s, &member_dev, &role_arn(MEMBER, "app"), "s1", None);
    let sandbox_dev = user_key(&s, &dir, SANDBOX, "dev");
    let sandbox_app = session(&s, &sandbox_dev, &role_arn(SANDBOX, "app"), "s1", None);
    let r = sm(
        &s,
        &outsider_root,
        "PutResourcePolicy",
        &json!({"SecretId": theirs, "ResourcePolicy": grant(&[
            user_arn(MEMBER, "dev"),
            role_arn(MEMBER, "app"),
            user_arn(SANDBOX, "dev"),
            role_arn(SANDBOX, "app"),
        ])}),
    );
    assert!(allowed(&r), "{}", r.body);
    for (who, label) in [(&member_dev, "user"), (&member_app, "session")] {
        let r = describe(&s, who, &theirs);
        assert!(refused(&r), "member {label}: {} {}", r.status, r.body);
    }
    for (who, label) in [(&sandbox_dev, "user"), (&sandbox_app, "session")] {
        let r = describe(&s, who, &theirs);
        assert!(allowed(&r), "sandbox {label}: {} {}", r.status, r.body);
    }

    // the member's secret, shared with the outsider and the management account
    let member_root = root_key(&s, &dir, MEMBER);
    let ours = create(&s, &member_root, "shared/member");
    let r = sm(
        &s,
        &member_root,
        "PutResourcePolicy",
        &json!({"SecretId": ours, "ResourcePolicy": grant(&[
            user_arn(OUTSIDER, "dev"),
            user_arn(ACCOUNT, "dev"),
        ])}),
    );
    assert!(allowed(&r), "{}", r.body);
    // the member itself is refused by its SCP...
    assert!(refused(&describe(&s, &member_dev, &ours)));
    // ...which does not reach callers of other accounts
    for account in [OUTSIDER, ACCOUNT] {
        let dev = user_key(&s, &dir, account, "dev");
        let r = describe(&s, &dev, &ours);
        assert!(allowed(&r), "{account}: {} {}", r.status, r.body);
    }
}

/// An account moved to another OU by a reload is bound by its new OU's SCPs at once (and no
/// longer by the old one's), for its users and for sessions issued before the move.
#[tokio::test]
async fn an_account_moved_between_ous_by_a_reload_takes_its_new_scps() {
    let (_t, dir) = org_directory();
    let s = TestServer::start_with_policies(&dir);
    let member_dev = user_key(&s, &dir, MEMBER, "dev");
    let sandbox_dev = user_key(&s, &dir, SANDBOX, "dev");
    let sandbox_app = session(&s, &sandbox_dev, &role_arn(SANDBOX, "app"), "s1", None);
    let member_secret = create(&s, &member_dev, "moved/m");
    let sandbox_secret = create(&s, &sandbox_dev, "moved/s");
    assert!(refused(&describe(&s, &member_dev, &member_secret)));
    assert!(allowed(&describe(&s, &sandbox_dev, &sandbox_secret)));
    assert!(allowed(&describe(&s, &sandbox_app, &sandbox_secret)));

    // swap the two accounts' OUs
    organization(&dir, SANDBOX, MEMBER);
    until("the member account leaves `workloads`", || {
        allowed(&describe(&s, &member_dev, &member_secret))
    });
    let r = describe(&s, &sandbox_dev, &sandbox_secret);
    assert!(refused(&r), "{} {}", r.status, r.body);
    let r = describe(&s, &sandbox_app, &sandbox_secret);
    assert!(refused(&r), "{} {}", r.status, r.body);
}

/// A reload that removes a user from a group takes the group's policies from it at once,
/// and one that changes a managed policy's document applies the new document at once; the
/// users left unchanged keep what they had.
#[tokio::test]
async fn a_reload_applies_group_membership_and_managed_policy_changes_at_once() {
    let (_t, dir) = empty_dir();
    let acct = format!("accounts/{ACCOUNT}");
    write(
        &dir,
        &format!("{acct}/groups/readers.json"),
        r#"{"GroupName":"readers","InlinePolicies":{"read":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"secretsmanager:DescribeSecret","Resource":"*"}]}}}"#,
    );
    let managed = |action: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"secretsmanager:{action}","Resource":"*"}}]}}"#
        )
    };
    write(
        &dir,
        &format!("{acct}/policies/tagger.json"),
        &managed("TagResource"),
    );
    let member = |name: &str, groups: &str| {
        write(
            &dir,
            &format!("{acct}/users/{name}.json"),
            &format!(
                r#"{{"UserName":"{name}","Groups":{groups},
                    "AttachedPolicies":["arn:aws:iam::{ACCOUNT}:policy/tagger"]}}"#
            ),
        );
    };
    member("bob", r#"["readers"]"#);
    member("carol", r#"["readers"]"#);
    let s = TestServer::start_with_policies(&dir);
    let root = root_key(&s, &dir, ACCOUNT);
    let arn = create(&s, &root, "grouped");
    let bob = user_key(&s, &dir, ACCOUNT, "bob");
    let carol = user_key(&s, &dir, ACCOUNT, "carol");
    let tag = |who: &Who| {
        sm(
            &s,
            who,
            "TagResource",
            &json!({"SecretId": arn, "Tags": [{"Key": "k", "Value": "v"}]}),
        )
    };
    let untag = |who: &Who| {
        sm(
            &s,
            who,
            "UntagResource",
            &json!({"SecretId": arn, "TagKeys": ["k"]}),
        )
    };
    for who in [&bob, &carol] {
        assert!(allowed(&describe(&s, who, &arn)));
        assert!(allowed(&tag(who)));
        assert!(refused(&untag(who)));
    }

    // bob leaves the group; the managed policy now allows UntagResource instead
    member("bob", "[]");
    write(
        &dir,
        &format!("{acct}/policies/tagger.json"),
        &managed("UntagResource"),
    );
    until("the reload", || allowed(&untag(&carol)));
    let r = describe(&s, &bob, &arn);
    assert!(refused(&r), "{} {}", r.status, r.body);
    for who in [&bob, &carol] {
        let r = tag(who);
        assert!(refused(&r), "{} {}", r.status, r.body);
    }
    assert!(allowed(&describe(&s, &carol, &arn)));
    assert!(allowed(&untag(&bob)));
}

/// Principals of one name share nothing: a user `app` of another account, and a role `app`
/// of the same account, get their own policies, whatever `app` was allowed before them.
#[tokio::test]
async fn principals_of_one_name_in_two_accounts_or_of_two_kinds_share_no_policies() {
    let (_t, dir) = empty_dir();
    user(
        &dir,
        ACCOUNT,
        "app",
        &["secretsmanager:DescribeSecret", "sts:AssumeRole"],
    );
    user(&dir, MEMBER, "app", &[]);
    role(&dir, ACCOUNT, "app", &["secretsmanager:ListSecrets"], "");
    let s = TestServer::start_with_policies(&dir);
    let root = root_key(&s, &dir, ACCOUNT);
    let ours = create(&s, &root, "named/ours");
    let member_root = root_key(&s, &dir, MEMBER);
    let theirs = create(&s, &member_root, "named/theirs");
    let app = user_key(&s, &dir, ACCOUNT, "app");
    let other_app = user_key(&s, &dir, MEMBER, "app");
    let role_app = session(&s, &app, &role_arn(ACCOUNT, "app"), "app", None);
    for _ in 0..2 {
        assert!(allowed(&describe(&s, &app, &ours)));
        let r = describe(&s, &other_app, &theirs);
        assert!(refused(&r), "{} {}", r.status, r.body);
        let r = describe(&s, &role_app, &ours);
        assert!(refused(&r), "{} {}", r.status, r.body);
        assert!(allowed(&sm(&s, &role_app, "ListSecrets", &json!({}))));
    }
}

/// One resource policy text on secrets of two accounts is decided for each secret's owner:
/// the grant naming a user is a direct grant on its own account's secret, and on the other
/// account's secret it still needs the user's identity policy.
#[tokio::test]
async fn one_resource_policy_text_on_two_owners_secrets_is_decided_per_owner() {
    let (_t, dir) = empty_dir();
    user(&dir, ACCOUNT, "plain", &[]);
    account_json(&dir, MEMBER);
    let s = TestServer::start_with_policies(&dir);
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": user_arn(ACCOUNT, "plain")},
        "Action": "secretsmanager:DescribeSecret", "Resource": "*"}]})
    .to_string();
    let root = root_key(&s, &dir, ACCOUNT);
    let member_root = root_key(&s, &dir, MEMBER);
    let ours = create(&s, &root, "text/ours");
    let theirs = create(&s, &member_root, "text/theirs");
    for (who, arn) in [(&root, &ours), (&member_root, &theirs)] {
        let r = sm(
            &s,
            who,
            "PutResourcePolicy",
            &json!({"SecretId": arn, "ResourcePolicy": policy}),
        );
        assert!(allowed(&r), "{}", r.body);
    }
    let plain = user_key(&s, &dir, ACCOUNT, "plain");
    for _ in 0..2 {
        let r = describe(&s, &plain, &theirs);
        assert!(refused(&r), "{} {}", r.status, r.body);
        let r = describe(&s, &plain, &ours);
        assert!(allowed(&r), "{} {}", r.status, r.body);
    }
}

/// A role's permissions boundary caps its sessions: an identity allow beyond it, and a
/// resource policy grant naming the role, are refused; a grant naming the session itself is
/// not capped (IAM.md §5.4).
#[tokio::test]
async fn a_role_s_boundary_caps_its_sessions_but_not_a_grant_to_the_session() {
    let (_t, dir) = empty_dir();
    user(&dir, ACCOUNT, "dev", &["sts:AssumeRole"]);
    write(
        &dir,
        &format!("accounts/{ACCOUNT}/policies/describe-only.json"),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:DescribeSecret","Resource":"*"}]}"#,
    );
    role(
        &dir,
        ACCOUNT,
        "bounded",
        &["secretsmanager:*"],
        &format!(r#","PermissionsBoundary":"arn:aws:iam::{ACCOUNT}:policy/describe-only""#),
    );
    let s = TestServer::start_with_policies(&dir);
    let root = root_key(&s, &dir, ACCOUNT);
    let arn = create(&s, &root, "bounded");
    let dev = user_key(&s, &dir, ACCOUNT, "dev");
    let sess = session(&s, &dev, &role_arn(ACCOUNT, "bounded"), "s1", None);
    let read_policy = |who: &Who| sm(&s, who, "GetResourcePolicy", &json!({"SecretId": arn}));
    assert!(allowed(&describe(&s, &sess, &arn)));
    let r = read_policy(&sess);
    assert!(refused(&r), "{} {}", r.status, r.body);
    let grant_to = |principal: &str| {
        let r = sm(
            &s,
            &root,
            "PutResourcePolicy",
            &json!({"SecretId": arn, "ResourcePolicy": json!({"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal},
                "Action": "secretsmanager:GetResourcePolicy", "Resource": "*"}]}).to_string()}),
        );
        assert!(allowed(&r), "{}", r.body);
    };
    grant_to(&role_arn(ACCOUNT, "bounded"));
    let r = read_policy(&sess);
    assert!(refused(&r), "{} {}", r.status, r.body);
    grant_to(&format!("arn:aws:sts::{ACCOUNT}:assumed-role/bounded/s1"));
    let r = read_policy(&sess);
    assert!(allowed(&r), "{} {}", r.status, r.body);
}

/// A session policy caps a session's identity allows and a resource policy grant naming its
/// role; a grant naming the session itself is not capped (IAM.md §5.4); a session without a
/// session policy has the role's permissions.
#[tokio::test]
async fn a_session_policy_caps_its_role_s_grants_but_not_a_grant_to_the_session() {
    let (_t, dir) = empty_dir();
    user(&dir, ACCOUNT, "dev", &["sts:AssumeRole"]);
    role(
        &dir,
        ACCOUNT,
        "narrowed",
        &[
            "secretsmanager:DescribeSecret",
            "secretsmanager:ListSecrets",
        ],
        "",
    );
    let s = TestServer::start_with_policies(&dir);
    let root = root_key(&s, &dir, ACCOUNT);
    let arn = create(&s, &root, "narrowed");
    let dev = user_key(&s, &dir, ACCOUNT, "dev");
    let only_list = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"}]}"#;
    let capped = session(
        &s,
        &dev,
        &role_arn(ACCOUNT, "narrowed"),
        "capped",
        Some(only_list),
    );
    let full = session(&s, &dev, &role_arn(ACCOUNT, "narrowed"), "full", None);
    assert!(allowed(&sm(&s, &capped, "ListSecrets", &json!({}))));
    assert!(allowed(&describe(&s, &full, &arn)));
    let r = describe(&s, &capped, &arn);
    assert!(refused(&r), "{} {}", r.status, r.body);
    let grant_to = |principal: &str| {
        let r = sm(
            &s,
            &root,
            "PutResourcePolicy",
            &json!({"SecretId": arn, "ResourcePolicy": json!({"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal},
                "Action": "secretsmanager:GetResourcePolicy", "Resource": "*"}]}).to_string()}),
        );
        assert!(allowed(&r), "{}", r.body);
    };
    let read_policy = |who: &Who| sm(&s, who, "GetResourcePolicy", &json!({"SecretId": arn}));
    grant_to(&role_arn(ACCOUNT, "narrowed"));
    let r = read_policy(&capped);
    assert!(refused(&r), "{} {}", r.status, r.body);
    assert!(allowed(&read_policy(&full)));
    grant_to(&format!(
        "arn:aws:sts::{ACCOUNT}:assumed-role/narrowed/capped"
    ));
    let r = read_policy(&capped);
    assert!(allowed(&r), "{} {}", r.status, r.body);
}

/// A KMS call as `who`.
fn kms(s: &TestServer, who: &Who, op: &str, body: &serde_json::Value) -> RawResponse {
    s.call_signed(
        &format!("TrentService.{op}"),
        &body.to_string(),
        Signing {
            akid: who.akid.clone(),
            secret: who.secret.clone(),
            session_token: who.token.clone(),
            service: "kms".into(),
            ..Signing::default()
        },
    )
}

/// User `name` allowed `secretsmanager:*` and `kms:*`, with one more statement (a Deny).
fn user_with_deny(dir: &Path, name: &str, deny: &serde_json::Value) {
    let doc = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["secretsmanager:*", "kms:*"], "Resource": "*"},
        deny,
    ]});
    write(
        dir,
        &format!("accounts/{ACCOUNT}/users/{name}.json"),
        &json!({"UserName": name, "InlinePolicies": {"p": doc}}).to_string(),
    );
}

/// AWS's network perimeter for identities ("Denies access to AWS based on the source IP"):
/// a Deny of everything from outside given ranges unless an AWS service makes the request on
/// the caller's behalf (`"Bool": {"aws:ViaAWSService": "false"}`), and the same with
/// `aws:PrincipalIsAWSService`. Both keys are in every signed request's context (false for
/// a principal's own call), so the Deny refuses a direct call from outside the ranges; the
/// caller inside them is not refused.
#[tokio::test]
async fn a_network_deny_sparing_aws_services_refuses_direct_calls_from_outside() {
    let (_t, dir) = empty_dir();
    let deny = |key: &str, ranges: &[&str]| {
        json!({"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
            "NotIpAddress": {"aws:SourceIp": ranges},
            "Bool": {key: "false"}}})
    };
    let outside = ["192.0.2.0/24"];
    let inside = ["127.0.0.0/8", "::1/128"];
    user_with_deny(&dir, "remote-via", &deny("aws:ViaAWSService", &outside));
    user_with_deny(
        &dir,
        "remote-service",
        &deny("aws:PrincipalIsAWSService", &outside),
    );
    user_with_deny(&dir, "office-via", &deny("aws:ViaAWSService", &inside));
    user_with_deny(
        &dir,
        "office-service",
        &deny("aws:PrincipalIsAWSService", &inside),
    );
    let s = TestServer::start_with_policies(&dir);
    let root = root_key(&s, &dir, ACCOUNT);
    let arn = create(&s, &root, "perimeter");
    for name in ["remote-via", "remote-service"] {
        let who = user_key(&s, &dir, ACCOUNT, name);
        let r = describe(&s, &who, &arn);
        assert!(refused(&r), "{name}: {} {}", r.status, r.body);
        let r = sm(&s, &who, "ListSecrets", &json!({}));
        assert!(refused(&r), "{name}: {} {}", r.status, r.body);
    }
    for name in ["office-via", "office-service"] {
        let who = user_key(&s, &dir, ACCOUNT, name);
        let r = describe(&s, &who, &arn);
        assert!(allowed(&r), "{name}: {} {}", r.status, r.body);
    }
}

/// A key that may be used only through an AWS service (`Deny kms:*` with
/// `"Bool": {"aws:ViaAWSService": "false"}`): Secrets Manager's use of it on the caller's
/// behalf (a forward access session) is allowed, a direct KMS call is refused.
#[tokio::test]
async fn a_key_usable_only_through_aws_services_is_used_by_secrets_manager_not_directly() {
    let (_t, dir) = empty_dir();
    user_with_deny(
        &dir,
        "app",
        &json!({"Effect": "Deny", "Action": "kms:*", "Resource": "*",
            "Condition": {"Bool": {"aws:ViaAWSService": "false"}}}),
    );
    let s = TestServer::start_with_policies(&dir);
    let root = root_key(&s, &dir, ACCOUNT);
    let r = kms(&s, &root, "CreateKey", &json!({"Description": "via only"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let key = r.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = sm(
        &s,
        &root,
        "CreateSecret",
        &json!({"Name": "via-only", "SecretString": "v", "KmsKeyId": key,
            "ClientRequestToken": uuid::Uuid::new_v4().to_string()}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let app = user_key(&s, &dir, ACCOUNT, "app");
    let r = sm(&s, &app, "GetSecretValue", &json!({"SecretId": "via-only"}));
    assert!(allowed(&r), "{} {}", r.status, r.body);
    assert_eq!(r.json()["SecretString"], "v");
    let r = kms(&s, &app, "DescribeKey", &json!({"KeyId": key}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    // positive control: the root user (no identity policy) describes it directly
    let r = kms(&s, &root, "DescribeKey", &json!({"KeyId": key}));
    assert_eq!(r.status, 200, "{}", r.body);
}

/// `aws:ResourceOrgPaths` (the organization path of the account owning the resource) is in
/// the context of a resource of the organization: a Deny of resources outside the caller's
/// own OU (`ForAnyValue:StringNotLike` on it) refuses another OU's secret shared with the
/// caller, and not one of the caller's OU.
#[tokio::test]
async fn a_deny_on_the_resource_s_organization_path_applies() {
    let (_t, dir) = org_directory();
    let own_ou = format!("{ORG}/r-asm1/ou-asm1-sandbox01/*");
    write(
        &dir,
        &format!("accounts/{SANDBOX}/users/fenced.json"),
        &json!({"UserName": "fenced", "InlinePolicies": {"p": {"Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "secretsmanager:*", "Resource": "*",
                 "Condition": {"ForAnyValue:StringNotLike": {"aws:ResourceOrgPaths": own_ou}}}]}}})
        .to_string(),
    );
    let s = TestServer::start_with_policies(&dir);
    let grant = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": [user_arn(SANDBOX, "fenced"), user_arn(SANDBOX, "dev")]},
        "Action": "secretsmanager:GetResourcePolicy", "Resource": "*"}]})
    .to_string();
    // a secret of the other OU (workloads), shared with the fenced user
    let member_root = root_key(&s, &dir, MEMBER);
    let theirs = create(&s, &member_root, "fence/theirs");
    let r = sm(
        &s,
        &member_root,
        "PutResourcePolicy",
        &json!({"SecretId": theirs, "ResourcePolicy": grant}),
    );
    assert!(allowed(&r), "{}", r.body);
    // a secret of its own OU
    let sandbox_root = root_key(&s, &dir, SANDBOX);
    let ours = create(&s, &sandbox_root, "fence/ours");
    let fenced = user_key(&s, &dir, SANDBOX, "fenced");
    let r = sm(&s, &fenced, "GetResourcePolicy", &json!({"SecretId": ours}));
    assert!(allowed(&r), "{} {}", r.status, r.body);
    let r = sm(
        &s,
        &fenced,
        "GetResourcePolicy",
        &json!({"SecretId": theirs}),
    );
    assert!(refused(&r), "{} {}", r.status, r.body);
    // positive control for the share: an unfenced user of the same account reads it
    let dev = user_key(&s, &dir, SANDBOX, "dev");
    let r = sm(&s, &dev, "GetResourcePolicy", &json!({"SecretId": theirs}));
    assert!(allowed(&r), "{} {}", r.status, r.body);
}

const CI_HMAC: &str = "review2-assembly-ci-hmac-secret-0123456789";

/// An HS256-signed token of the issuer `https://ci.example.test`.
fn ci_token() -> String {
    let now = crate::common::now_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": "https://ci.example.test", "aud": "strongroom",
            "sub": "repo:payments/api", "exp": now + 600, "iat": now}),
        &jsonwebtoken::EncodingKey::from_secret(CI_HMAC.as_bytes()),
    )
    .unwrap()
}

/// `aws:FederatedProvider` is in the context of every request of a session issued for a web
/// identity token (the provider's ARN, as AWS gives it): a Deny on it refuses that session's
/// requests, through AssumeRoleWithWebIdentity's credentials and a `Bearer` call alike,
/// while a session of the same role from AssumeRole is not refused.
#[tokio::test]
async fn a_deny_on_the_federated_provider_applies_to_web_identity_sessions() {
    let (_t, dir) = empty_dir();
    write(
        &dir,
        &format!("accounts/{ACCOUNT}/identity-providers/ci.hmac"),
        CI_HMAC,
    );
    write(
        &dir,
        &format!("accounts/{ACCOUNT}/identity-providers/ci.json"),
        r#"{"Issuer":"https://ci.example.test","Audiences":["strongroom"],"HmacSecretFile":"ci.hmac",
            "Algorithms":["HS256"]}"#,
    );
    user(&dir, ACCOUNT, "dev", &["sts:AssumeRole"]);
    let provider = format!("arn:aws:iam::{ACCOUNT}:oidc-provider/ci.example.test");
    write(
        &dir,
        &format!("accounts/{ACCOUNT}/roles/ci.json"),
        &json!({"RoleName": "ci",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Federated": "https://ci.example.test"},
                 "Action": "sts:AssumeRoleWithWebIdentity"},
                {"Effect": "Allow", "Principal": {"AWS": user_arn(ACCOUNT, "dev")},
                 "Action": "sts:AssumeRole"}]},
            "InlinePolicies": {"p": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "secretsmanager:DescribeSecret", "Resource": "*",
                 "Condition": {"StringEquals": {"aws:FederatedProvider": provider}}}]}}})
        .to_string(),
    );
    let s = TestServer::start_with_policies(&dir);
    let root = root_key(&s, &dir, ACCOUNT);
    let arn = create(&s, &root, "federated");
    let ci = role_arn(ACCOUNT, "ci");

    // positive control: the role's session from AssumeRole
    let dev = user_key(&s, &dir, ACCOUNT, "dev");
    let assumed = session(&s, &dev, &ci, "human", None);
    assert!(allowed(&describe(&s, &assumed, &arn)));

    // the web identity session: its other rights work, the denied one is refused
    let form = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=build-1&WebIdentityToken={}",
        urlenc(&ci),
        ci_token()
    );
    let r = s.raw(
        format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
            form.len()
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let web = Who {
        akid: xml_field(&r.body, "AccessKeyId"),
        secret: xml_field(&r.body, "SecretAccessKey"),
        token: Some(xml_field(&r.body, "SessionToken")),
    };
    assert!(allowed(&sm(&s, &web, "ListSecrets", &json!({}))));
    let r = describe(&s, &web, &arn);
    assert!(refused(&r), "{} {}", r.status, r.body);

    // a Bearer call with the token
    let bearer = |target: &str, body: &serde_json::Value| {
        let body = body.to_string();
        s.raw(
            format!(
                "POST / HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\nx-strongroom-role: {ci}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: secretsmanager.{target}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                ci_token(),
                body.len()
            )
            .as_bytes(),
        )
    };
    let r = bearer("ListSecrets", &json!({}));
    assert!(allowed(&r), "{} {}", r.status, r.body);
    let r = bearer("DescribeSecret", &json!({"SecretId": arn}));
    assert!(refused(&r), "{} {}", r.status, r.body);
}
