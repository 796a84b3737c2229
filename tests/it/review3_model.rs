//! A web identity caller is no member of the role's account: `aws:PrincipalAccount`, which
//! AWS puts only in signed requests, is absent from its AssumeRoleWithWebIdentity, so a trust
//! statement open to `*` but pinned to the account's principals does not admit a token holder.

use std::path::Path;

use crate::common::{
    key_for, now_secs, signed_query, sts_as, urlenc, user_allowing, write, RawResponse, TestServer,
    ACCOUNT,
};

const HMAC: &str = "review3-model-provider-hmac-secret-0123456789";

use crate::common::account_directory as directory;

/// Role `name` with trust `statements` (a JSON array) and an inline policy allowing
/// `secretsmanager:*`.
fn role(dir: &Path, name: &str, statements: &str) {
    write(
        dir,
        &format!("accounts/{ACCOUNT}/roles/{name}.json"),
        &format!(
            r#"{{"RoleName":"{name}","MaxSessionDuration":3600,
                "AssumeRolePolicyDocument":{{"Version":"2012-10-17","Statement":{statements}}},
                "InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                    {{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}}]}}}}}}"#
        ),
    );
}

/// An HS256 issuer `https://ci.example.test` declared by the account.
fn issuer(dir: &Path) {
    write(
        dir,
        &format!("accounts/{ACCOUNT}/identity-providers/ci.hmac"),
        HMAC,
    );
    write(
        dir,
        &format!("accounts/{ACCOUNT}/identity-providers/ci.json"),
        r#"{"Issuer":"https://ci.example.test","Audiences":["strongroom"],"HmacSecretFile":"ci.hmac",
            "Algorithms":["HS256"]}"#,
    );
}

fn token(sub: &str) -> String {
    let claims = serde_json::json!({"iss":"https://ci.example.test","aud":"strongroom",
        "sub":sub,"exp":now_secs()+600,"iat":now_secs()});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(HMAC.as_bytes()),
    )
    .unwrap()
}

fn web_identity(s: &TestServer, role: &str, token: &str) -> RawResponse {
    let form = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=build-1&WebIdentityToken={token}",
        urlenc(role)
    );
    s.raw(
        format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
            form.len()
        )
        .as_bytes(),
    )
}

/// A trust statement `Principal: "*"` pinned with `aws:PrincipalAccount` to the role's own
/// account ("anyone in this account may assume it"), over every STS action: an IAM user of
/// the account assumes the role; the holder of any token of an issuer the account declares
/// does not, since a web identity request is unsigned and carries no principal account.
#[tokio::test]
async fn a_web_identity_token_does_not_satisfy_a_principal_account_condition() {
    let (_t, dir) = directory();
    issuer(&dir);
    user_allowing(&dir, ACCOUNT, "dev", &["sts:AssumeRole"]);
    let open = format!("arn:aws:iam::{ACCOUNT}:role/account-wide");
    role(
        &dir,
        "account-wide",
        &format!(
            r#"[{{"Effect":"Allow","Principal":"*","Action":"sts:*",
                  "Condition":{{"StringEquals":{{"aws:PrincipalAccount":"{ACCOUNT}"}}}}}}]"#
        ),
    );
    let federated = format!("arn:aws:iam::{ACCOUNT}:role/ci");
    role(
        &dir,
        "ci",
        r#"[{"Effect":"Allow","Principal":{"Federated":"https://ci.example.test"},
             "Action":"sts:AssumeRoleWithWebIdentity",
             "Condition":{"StringEquals":{"ci.example.test:sub":"repo:payments/api"}}}]"#,
    );
    let s = TestServer::start_with_policies(&dir);

    // positive controls: a user of the account assumes the account-wide role; the token
    // assumes the role that trusts its issuer
    let (ak, sk) = key_for(&s, &dir, ACCOUNT, "dev");
    let form = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=dev",
        urlenc(&open)
    );
    let r = s.raw(&signed_query(&form, sts_as(&ak, &sk)));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = web_identity(&s, &federated, &token("repo:payments/api"));
    assert_eq!(r.status, 200, "{}", r.body);

    // a token of the declared issuer, for any subject, is no principal of the account
    let r = web_identity(&s, &open, &token("repo:someone-else/anything"));
    assert!(!r.body.contains("<Credentials>"), "{}", r.body);
    assert_eq!(r.status, 403, "{}", r.body);
}
