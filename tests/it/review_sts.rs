//! STS and role trust under attack: role chaining, session policies of the caller, cross-account
//! trust with the caller's identity policy, ExternalId, `sts:TagSession`, web identity tokens
//! of an issuer another account declares, managed session policies, and root keys of an
//! account that left the principals files. Each attack has a positive control.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{
    now_secs, signed_query, sts_as, urlenc, user_allowing, write, xml_field, RawResponse, Signing,
    TestServer, ACCOUNT,
};

const OTHER: &str = "444455556666";
const HMAC: &str = "review-sts-provider-hmac-secret-0123456789";
const FOREIGN_HMAC: &str = "foreign-account-hmac-secret-0123456789abcd";

/// Temporary credentials: (access key id, secret, session token).
type Session = (String, String, String);

use crate::common::account_directory as directory;

/// Role `name` of `account` with trust `statements` (a JSON array), an inline policy
/// allowing `actions` on everything, and `max` as its MaxSessionDuration.
fn role(dir: &Path, account: &str, name: &str, statements: &str, actions: &[&str], max: i64) {
    let actions = serde_json::to_string(actions).unwrap();
    write(
        dir,
        &format!("accounts/{account}/roles/{name}.json"),
        &format!(
            r#"{{"RoleName":"{name}","MaxSessionDuration":{max},
                "AssumeRolePolicyDocument":{{"Version":"2012-10-17","Statement":{statements}}},
                "InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                    {{"Effect":"Allow","Action":{actions},"Resource":"*"}}]}}}}}}"#
        ),
    );
}

fn role_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

/// An STS call signed with long-term keys, or with a session's when `token` is given.
fn sts(s: &TestServer, akid: &str, secret: &str, token: Option<&str>, form: &str) -> RawResponse {
    s.raw(&signed_query(
        form,
        Signing {
            session_token: token.map(str::to_owned),
            ..sts_as(akid, secret)
        },
    ))
}

fn assume_form(role: &str, name: &str, extra: &str) -> String {
    format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={name}{extra}",
        urlenc(role)
    )
}

fn session_of(r: &RawResponse) -> Session {
    assert_eq!(r.status, 200, "{}", r.body);
    (
        xml_field(&r.body, "AccessKeyId"),
        xml_field(&r.body, "SecretAccessKey"),
        xml_field(&r.body, "SessionToken"),
    )
}

fn key(s: &TestServer, dir: &Path, account: &str, user: &str) -> (String, String) {
    crate::common::key_for(s, dir, account, user)
}

/// A session assumes another role (role chaining) for at most one hour, as on AWS: a longer
/// `DurationSeconds` is refused even when the role's MaxSessionDuration allows it, so a
/// short session cannot turn itself into a twelve-hour one.
#[tokio::test]
async fn a_chained_session_lasts_at_most_one_hour() {
    let (_t, dir) = directory();
    user_allowing(&dir, ACCOUNT, "dev", &["sts:AssumeRole"]);
    let dev = format!("arn:aws:iam::{ACCOUNT}:user/dev");
    role(
        &dir,
        ACCOUNT,
        "first",
        &format!(
            r#"[{{"Effect":"Allow","Principal":{{"AWS":"{dev}"}},"Action":"sts:AssumeRole"}}]"#
        ),
        &["sts:AssumeRole"],
        3600,
    );
    role(
        &dir,
        ACCOUNT,
        "second",
        &format!(
            r#"[{{"Effect":"Allow","Principal":{{"AWS":["{dev}","{}"]}},"Action":"sts:AssumeRole"}}]"#,
            role_arn(ACCOUNT, "first")
        ),
        &["secretsmanager:GetSecretValue"],
        43200,
    );
    let s = TestServer::start_with_policies(&dir);
    let (ak, sk) = key(&s, &dir, ACCOUNT, "dev");
    let second = role_arn(ACCOUNT, "second");

    // positive controls: a user may take the role's maximum; a session may chain for an hour
    let r = sts(
        &s,
        &ak,
        &sk,
        None,
        &assume_form(&second, "direct", "&DurationSeconds=43200"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let first = session_of(&sts(
        &s,
        &ak,
        &sk,
        None,
        &assume_form(&role_arn(ACCOUNT, "first"), "hop1", "&DurationSeconds=900"),
    ));
    let r = sts(
        &s,
        &first.0,
        &first.1,
        Some(&first.2),
        &assume_form(&second, "hop2", "&DurationSeconds=3600"),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // the attack: the 15-minute session asks for twelve hours of the next role
    let r = sts(
        &s,
        &first.0,
        &first.1,
        Some(&first.2),
        &assume_form(&second, "hop3", "&DurationSeconds=43200"),
    );
    assert!(
        !r.body.contains("<Credentials>"),
        "a chained session was issued for 12 hours: {}",
        xml_field(&r.body, "Expiration")
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(xml_field(&r.body, "Code"), "ValidationError", "{}", r.body);
}

/// The caller's own session policy bounds the AssumeRole it makes, whether the trust policy
/// names the caller's account (delegation) or the caller's role; only a trust naming the
/// session itself grants past it (as on AWS).
#[tokio::test]
async fn a_caller_s_session_policy_bounds_its_assume_role() {
    let (_t, dir) = directory();
    user_allowing(&dir, ACCOUNT, "dev", &["sts:AssumeRole"]);
    let dev = format!("arn:aws:iam::{ACCOUNT}:user/dev");
    role(
        &dir,
        ACCOUNT,
        "hub",
        &format!(
            r#"[{{"Effect":"Allow","Principal":{{"AWS":"{dev}"}},"Action":"sts:AssumeRole"}}]"#
        ),
        &["sts:AssumeRole", "secretsmanager:*"],
        3600,
    );
    let hub = role_arn(ACCOUNT, "hub");
    let session_arn = format!("arn:aws:sts::{ACCOUNT}:assumed-role/hub/narrow");
    for (name, principal) in [
        ("by-account", format!("arn:aws:iam::{ACCOUNT}:root")),
        ("by-role", hub.clone()),
        ("by-session", session_arn.clone()),
    ] {
        role(
            &dir,
            ACCOUNT,
            name,
            &format!(
                r#"[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"sts:AssumeRole"}}]"#
            ),
            &["secretsmanager:ListSecrets"],
            3600,
        );
    }
    let s = TestServer::start_with_policies(&dir);
    let (ak, sk) = key(&s, &dir, ACCOUNT, "dev");
    let secrets_only = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}]}"#;
    let wide = session_of(&sts(&s, &ak, &sk, None, &assume_form(&hub, "wide", "")));
    let narrow = session_of(&sts(
        &s,
        &ak,
        &sk,
        None,
        &assume_form(&hub, "narrow", &format!("&Policy={}", urlenc(secrets_only))),
    ));
    for target in ["by-account", "by-role"] {
        let arn = role_arn(ACCOUNT, target);
        // positive control: the same role's session without a session policy
        let r = sts(
            &s,
            &wide.0,
            &wide.1,
            Some(&wide.2),
            &assume_form(&arn, "ok", ""),
        );
        assert_eq!(r.status, 200, "{target}: {}", r.body);
        let r = sts(
            &s,
            &narrow.0,
            &narrow.1,
            Some(&narrow.2),
            &assume_form(&arn, "no", ""),
        );
        assert_eq!(r.status, 403, "{target}: {}", r.body);
        assert!(!r.body.contains("<Credentials>"), "{target}: {}", r.body);
    }
    // a trust policy naming the session exactly grants it directly
    let r = sts(
        &s,
        &narrow.0,
        &narrow.1,
        Some(&narrow.2),
        &assume_form(&role_arn(ACCOUNT, "by-session"), "direct", ""),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // ...and no other session of the same role
    let r = sts(
        &s,
        &wide.0,
        &wide.1,
        Some(&wide.2),
        &assume_form(&role_arn(ACCOUNT, "by-session"), "other", ""),
    );
    assert_eq!(r.status, 403, "{}", r.body);
}

/// Across accounts both the role's trust policy and the caller's identity policy must allow
/// `sts:AssumeRole`, even when the trust names the caller exactly; a required ExternalId must
/// be sent and equal.
#[tokio::test]
async fn cross_account_assume_role_needs_trust_identity_and_external_id() {
    let (_t, dir) = directory();
    write(
        &dir,
        &format!("accounts/{OTHER}/account.json"),
        &format!(r#"{{"AccountId":"{OTHER}"}}"#),
    );
    user_allowing(&dir, OTHER, "partner", &["sts:AssumeRole"]);
    user_allowing(&dir, OTHER, "bystander", &["secretsmanager:ListSecrets"]);
    let bystander = format!("arn:aws:iam::{OTHER}:user/bystander");
    role(
        &dir,
        ACCOUNT,
        "vendor",
        &format!(
            r#"[{{"Effect":"Allow","Principal":{{"AWS":["arn:aws:iam::{OTHER}:root","{bystander}"]}},
                 "Action":"sts:AssumeRole","Condition":{{"StringEquals":{{"sts:ExternalId":"ext-7f3a"}}}}}}]"#
        ),
        &["secretsmanager:ListSecrets"],
        3600,
    );
    let s = TestServer::start_with_policies(&dir);
    let vendor = role_arn(ACCOUNT, "vendor");
    let (pk, ps) = key(&s, &dir, OTHER, "partner");
    let (bk, bs) = key(&s, &dir, OTHER, "bystander");

    // positive control
    let r = sts(
        &s,
        &pk,
        &ps,
        None,
        &assume_form(&vendor, "p1", "&ExternalId=ext-7f3a"),
    );
    let session = session_of(&r);
    let who = sts(
        &s,
        &session.0,
        &session.1,
        Some(&session.2),
        "Action=GetCallerIdentity&Version=2011-06-15",
    );
    assert_eq!(xml_field(&who.body, "Account"), ACCOUNT, "{}", who.body);
    assert_eq!(
        xml_field(&who.body, "Arn"),
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/vendor/p1")
    );

    for (what, extra) in [
        ("no external id", String::new()),
        ("a wrong external id", "&ExternalId=ext-0000".to_owned()),
        ("a differently cased one", "&ExternalId=EXT-7F3A".to_owned()),
    ] {
        let r = sts(&s, &pk, &ps, None, &assume_form(&vendor, "p2", &extra));
        assert_eq!(r.status, 403, "{what}: {}", r.body);
    }
    // named exactly by the trust, but its own account's policies do not allow sts:AssumeRole
    let r = sts(
        &s,
        &bk,
        &bs,
        None,
        &assume_form(&vendor, "b1", "&ExternalId=ext-7f3a"),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(!r.body.contains("<Credentials>"), "{}", r.body);
    // the default account's root (same account as the role) cannot assume roles at all
    let r = sts(
        &s,
        crate::common::AKID,
        crate::common::SECRET,
        None,
        &assume_form(&vendor, "r1", "&ExternalId=ext-7f3a"),
    );
    assert_eq!(r.status, 403, "{}", r.body);
}

/// Session tags need `sts:TagSession` in the trust policy, and a trust that allows tagging
/// only with given values refuses others; the session's tags then override the role's.
#[tokio::test]
async fn session_tags_need_tag_session_and_its_conditions() {
    let (_t, dir) = directory();
    user_allowing(&dir, ACCOUNT, "dev", &["sts:AssumeRole", "sts:TagSession"]);
    let dev = format!("arn:aws:iam::{ACCOUNT}:user/dev");
    role(
        &dir,
        ACCOUNT,
        "untaggable",
        &format!(
            r#"[{{"Effect":"Allow","Principal":{{"AWS":"{dev}"}},"Action":"sts:AssumeRole"}}]"#
        ),
        &["secretsmanager:ListSecrets"],
        3600,
    );
    // the role reads secrets of the team its principal tag names
    write(
        &dir,
        &format!("accounts/{ACCOUNT}/roles/team-reader.json"),
        &format!(
            r#"{{"RoleName":"team-reader","Tags":{{"team":"nobody"}},
                "AssumeRolePolicyDocument":{{"Version":"2012-10-17","Statement":[
                  {{"Effect":"Allow","Principal":{{"AWS":"{dev}"}},"Action":"sts:AssumeRole"}},
                  {{"Effect":"Allow","Principal":{{"AWS":"{dev}"}},"Action":"sts:TagSession",
                    "Condition":{{"StringEquals":{{"aws:RequestTag/team":"payments"}},
                                  "ForAllValues:StringEquals":{{"aws:TagKeys":["team"]}}}}}}]}},
                "InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                  {{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*",
                    "Condition":{{"StringEquals":{{"aws:ResourceTag/team":"${{aws:PrincipalTag/team}}"}}}}}}]}}}}}}"#
        ),
    );
    let s = TestServer::start_with_policies(&dir);
    let root = s.client();
    for (name, team) in [("payments/db", "payments"), ("ledger/db", "ledger")] {
        root.create_secret()
            .name(name)
            .secret_string("v")
            .tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key("team")
                    .value(team)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let (ak, sk) = key(&s, &dir, ACCOUNT, "dev");
    let tag = |k: &str, v: &str| format!("&Tags.member.1.Key={k}&Tags.member.1.Value={v}");

    // without sts:TagSession in the trust: untagged works, tagged does not
    let untaggable = role_arn(ACCOUNT, "untaggable");
    let r = sts(&s, &ak, &sk, None, &assume_form(&untaggable, "u1", ""));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = sts(
        &s,
        &ak,
        &sk,
        None,
        &assume_form(&untaggable, "u2", &tag("team", "payments")),
    );
    assert_eq!(r.status, 403, "{}", r.body);

    // with a conditioned sts:TagSession: only the value it allows, only the key it allows
    let reader = role_arn(ACCOUNT, "team-reader");
    for bad in [
        tag("team", "ledger"),
        format!(
            "{}&Tags.member.2.Key=admin&Tags.member.2.Value=true",
            tag("team", "payments")
        ),
    ] {
        let r = sts(&s, &ak, &sk, None, &assume_form(&reader, "t1", &bad));
        assert_eq!(r.status, 403, "{bad}: {}", r.body);
    }
    let session = session_of(&sts(
        &s,
        &ak,
        &sk,
        None,
        &assume_form(&reader, "t2", &tag("team", "payments")),
    ));
    let client = session_client(&s, &session);
    // the session tag replaces the role's `team` tag
    client
        .get_secret_value()
        .secret_id("payments/db")
        .send()
        .await
        .unwrap();
    let e = client
        .get_secret_value()
        .secret_id("ledger/db")
        .send()
        .await
        .unwrap_err();
    assert_eq!(crate::common::code(&e), "AccessDeniedException");
}

fn session_client(s: &TestServer, session: &Session) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .http_client(strongroom::client::https_client())
        .endpoint_url(s.endpoint())
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            &session.0,
            &session.1,
            Some(session.2.clone()),
            None,
            "session",
        ))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

/// An HS256 issuer `https://ci.example.test` in `account` with `secret`, and `extra` fields.
fn issuer(dir: &Path, account: &str, secret: &str, extra: &str) {
    write(
        dir,
        &format!("accounts/{account}/identity-providers/ci.hmac"),
        secret,
    );
    write(
        dir,
        &format!("accounts/{account}/identity-providers/ci.json"),
        &format!(
            r#"{{"Issuer":"https://ci.example.test","Audiences":["strongroom"],"HmacSecretFile":"ci.hmac",
                "Algorithms":["HS256"]{extra}}}"#
        ),
    );
}

fn jwt_with(secret: &str, claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn ci_claims(extra: &serde_json::Value) -> serde_json::Value {
    let mut c = serde_json::json!({"iss":"https://ci.example.test","aud":"strongroom",
        "sub":"repo:payments/api","exp":now_secs()+600,"iat":now_secs()});
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    c
}

fn unsigned_query(form: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
        form.len()
    )
    .into_bytes()
}

fn web_identity(s: &TestServer, role: &str, token: &str, extra: &str) -> RawResponse {
    s.raw(&unsigned_query(&format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=build-1&WebIdentityToken={token}{extra}",
        urlenc(role)
    )))
}

fn bearer_without_role_header(s: &TestServer, token: &str) -> RawResponse {
    let body = r#"{"SecretId":"payments/db"}"#;
    let req = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: secretsmanager.GetSecretValue\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.raw(req.as_bytes())
}

/// A trust in 111122223333 of the issuer `https://ci.example.test`, which that account and
/// another both declare: the token is verified with the role account's keys only, so the other
/// account's key (and its `RoleClaim`) mints nothing in the role's account, through
/// AssumeRoleWithWebIdentity or a `Bearer` call.
#[tokio::test]
async fn an_issuer_declared_by_another_account_mints_no_session_of_a_role() {
    let (_t, dir) = directory();
    write(
        &dir,
        &format!("accounts/{OTHER}/account.json"),
        &format!(r#"{{"AccountId":"{OTHER}"}}"#),
    );
    issuer(&dir, ACCOUNT, HMAC, r#","RoleClaim":"role""#);
    issuer(&dir, OTHER, FOREIGN_HMAC, r#","RoleClaim":"role""#);
    let deployer = role_arn(ACCOUNT, "deployer");
    role(
        &dir,
        ACCOUNT,
        "deployer",
        r#"[{"Effect":"Allow","Principal":{"Federated":"https://ci.example.test"},
             "Action":"sts:AssumeRoleWithWebIdentity",
             "Condition":{"StringEquals":{"ci.example.test:aud":"strongroom",
                                          "ci.example.test:sub":"repo:payments/api"}}}]"#,
        &["secretsmanager:GetSecretValue"],
        3600,
    );
    let s = TestServer::start_with_policies(&dir);
    s.client()
        .create_secret()
        .name("payments/db")
        .secret_string("p")
        .send()
        .await
        .unwrap();
    let claims = ci_claims(&serde_json::json!({"role": deployer}));

    // positive control: the role account's own key
    let good = jwt_with(HMAC, &claims);
    let r = web_identity(&s, &deployer, &good, "");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = bearer_without_role_header(&s, &good);
    assert_eq!(r.status, 200, "{}", r.body);

    // the same claims signed with the other account's key for that issuer
    let foreign = jwt_with(FOREIGN_HMAC, &claims);
    let r = web_identity(&s, &deployer, &foreign, "");
    assert!(r.status == 400 || r.status == 403, "{}", r.body);
    assert!(!r.body.contains("<Credentials>"), "{}", r.body);
    let r = bearer_without_role_header(&s, &foreign);
    assert!(r.status == 400 || r.status == 403, "{}", r.body);
    assert!(!r.body.contains("SecretString"), "{}", r.body);
}

/// AssumeRoleWithWebIdentity refuses managed session policies (`PolicyArns`), which it does
/// not apply, as AssumeRole does: a caller asking for a narrowed session must not receive
/// one with every permission of the role.
#[tokio::test]
async fn web_identity_refuses_managed_session_policies_it_would_not_apply() {
    let (_t, dir) = directory();
    issuer(&dir, ACCOUNT, HMAC, "");
    user_allowing(&dir, ACCOUNT, "dev", &["sts:AssumeRole"]);
    let dev = format!("arn:aws:iam::{ACCOUNT}:user/dev");
    let deployer = role_arn(ACCOUNT, "deployer");
    role(
        &dir,
        ACCOUNT,
        "deployer",
        &format!(
            r#"[{{"Effect":"Allow","Principal":{{"Federated":"https://ci.example.test"}},
                 "Action":"sts:AssumeRoleWithWebIdentity",
                 "Condition":{{"StringEquals":{{"ci.example.test:sub":"repo:payments/api"}}}}}},
                {{"Effect":"Allow","Principal":{{"AWS":"{dev}"}},"Action":"sts:AssumeRole"}}]"#
        ),
        &["secretsmanager:*"],
        3600,
    );
    let s = TestServer::start_with_policies(&dir);
    let token = jwt_with(HMAC, &ci_claims(&serde_json::json!({})));
    let narrowing = format!(
        "&PolicyArns.member.1.arn={}",
        urlenc("arn:aws:iam::aws:policy/SecretsManagerReadOnly")
    );

    // positive control: without PolicyArns
    let r = web_identity(&s, &deployer, &token, "");
    assert_eq!(r.status, 200, "{}", r.body);
    // AssumeRole says it does not support them
    let (ak, sk) = key(&s, &dir, ACCOUNT, "dev");
    let r = sts(&s, &ak, &sk, None, &assume_form(&deployer, "x", &narrowing));
    assert!(!r.body.contains("<Credentials>"), "{}", r.body);

    // refused, or (if issued) narrowed to the read-only policy it names
    let r = web_identity(&s, &deployer, &token, &narrowing);
    if r.status == 200 {
        let created = session_client(&s, &session_of(&r))
            .create_secret()
            .name("written/by-a-read-only-session")
            .secret_string("w")
            .send()
            .await;
        assert!(
            created.is_err(),
            "PolicyArns was ignored: a session asked for read-only created a secret"
        );
    } else {
        assert!(!r.body.contains("<Credentials>"), "{}", r.body);
    }
}

/// A root access key of an account that is no longer declared in the principals files is
/// refused once the files are reloaded, as a removed user's keys are.
#[tokio::test]
async fn a_root_key_of_an_account_removed_from_the_files_is_refused() {
    let (_t, dir) = directory();
    write(
        &dir,
        &format!("accounts/{OTHER}/account.json"),
        &format!(r#"{{"AccountId":"{OTHER}"}}"#),
    );
    user_allowing(&dir, OTHER, "member-user", &["secretsmanager:ListSecrets"]);
    let s = TestServer::start_with_policies(&dir);
    let out = strongroom::cli::create_root_access_key(&s.store_config(), &dir, OTHER).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (rk, rs) = (
        v["AccessKeyId"].as_str().unwrap().to_owned(),
        v["SecretAccessKey"].as_str().unwrap().to_owned(),
    );
    let (uk, us) = key(&s, &dir, OTHER, "member-user");
    let who = |k: &str, sec: &str| {
        sts(
            &s,
            k,
            sec,
            None,
            "Action=GetCallerIdentity&Version=2011-06-15",
        )
    };
    assert_eq!(who(&rk, &rs).status, 200);
    assert_eq!(who(&uk, &us).status, 200);

    std::fs::remove_dir_all(dir.join(format!("accounts/{OTHER}"))).unwrap();
    // the reload took effect: the account's user is refused
    let deadline = Instant::now() + Duration::from_secs(15);
    while who(&uk, &us).status == 200 {
        assert!(Instant::now() < deadline, "the reload never took effect");
        std::thread::sleep(Duration::from_millis(200));
    }
    // positive control: the default account's bootstrap root key still works
    assert_eq!(who(crate::common::AKID, crate::common::SECRET).status, 200);
    let r = who(&rk, &rs);
    assert_eq!(
        r.status,
        403,
        "the root key of the removed account still authenticates: {}",
        xml_field(&r.body, "Arn")
    );
}
