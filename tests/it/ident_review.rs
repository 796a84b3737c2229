//! Findings of the authorization review in identities: JWT claims that stand in for others,
//! roles re-created under an old name, database file modes, root keys of member accounts,
//! and KMS key policies as the simulator and the server decide them.

use std::path::Path;
use std::process::Command;

use crate::common::{
    example_policies, mint, now_secs, signed_query, sts_as, urlenc, xml_field, Signing, TestServer,
    ACCOUNT,
};

const HMAC: &str = "review-provider-hmac-secret-0123456789abcdef";
const ROLE: &str = "arn:aws:iam::111122223333:role/ci-deployer";

/// An HS256 issuer `https://ci.example.test` (with `extra` fields in its provider file) and a
/// role it may assume when the token's `sub` is `repo:payments/api` and, with `repo_condition`,
/// its `repo` claim is `payments/api`.
fn add_issuer(dir: &Path, extra: &str, repo_condition: bool) {
    let acct = dir.join("accounts/111122223333");
    std::fs::create_dir_all(acct.join("identity-providers")).unwrap();
    std::fs::write(acct.join("identity-providers/ci.hmac"), HMAC).unwrap();
    std::fs::write(
        acct.join("identity-providers/ci.json"),
        format!(
            r#"{{"Issuer":"https://ci.example.test","Audiences":["strongroom"],"HmacSecretFile":"ci.hmac",
                "Algorithms":["HS256"]{extra}}}"#
        ),
    )
    .unwrap();
    let repo = if repo_condition {
        r#","ci.example.test:repo":"payments/api""#
    } else {
        ""
    };
    std::fs::write(
        acct.join("roles/ci-deployer.json"),
        format!(
            r#"{{"RoleName":"ci-deployer","AttachedPolicies":["arn:aws:iam::111122223333:policy/payments-app-read"],
            "AssumeRolePolicyDocument":{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow",
              "Principal":{{"Federated":"https://ci.example.test"}},"Action":"sts:AssumeRoleWithWebIdentity",
              "Condition":{{"StringEquals":{{"ci.example.test:aud":"strongroom",
                                           "ci.example.test:sub":"repo:payments/api"{repo}}}}}}}]}}}}"#
        ),
    )
    .unwrap();
}

/// The error code of a Query (XML) answer.
fn code_of(r: &crate::common::RawResponse) -> String {
    xml_field(&r.body, "Code")
}

fn jwt(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(HMAC.as_bytes()),
    )
    .unwrap()
}

fn claims(sub: &str) -> serde_json::Value {
    serde_json::json!({"iss":"https://ci.example.test","aud":"strongroom","sub":sub,
                       "exp":now_secs()+600,"iat":now_secs()})
}

fn unsigned_query(form: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
        form.len()
    )
    .into_bytes()
}

fn web_identity(s: &TestServer, token: &str) -> crate::common::RawResponse {
    let form = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=build-1&WebIdentityToken={token}",
        urlenc(ROLE)
    );
    s.raw(&unsigned_query(&form))
}

fn bearer(s: &TestServer, token: &str) -> crate::common::RawResponse {
    let body = r#"{"SecretId":"payments/db"}"#;
    let req = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\nx-strongroom-role: {ROLE}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: secretsmanager.GetSecretValue\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.raw(req.as_bytes())
}

/// Finding 4: a claim whose name differs from `sub` only in case cannot stand in for the
/// subject, and a claim no provider declared is no condition key.
#[tokio::test]
async fn a_claim_named_like_sub_cannot_stand_in_for_the_subject() {
    let (_t, dir) = example_policies();
    add_issuer(&dir, "", false);
    let s = TestServer::start_with_policies(&dir);
    s.client()
        .create_secret()
        .name("payments/db")
        .secret_string("p")
        .send()
        .await
        .unwrap();

    // positive control: the subject the trust policy names
    let good = jwt(&claims("repo:payments/api"));
    let r = web_identity(&s, &good);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(bearer(&s, &good).status, 200);

    // the attacker's own subject, with the victim's in a claim named SUB / Sub / sUB
    for name in ["SUB", "Sub", "sUB"] {
        let mut c = claims("repo:attacker/tool");
        c[name] = serde_json::json!("repo:payments/api");
        let token = jwt(&c);
        let r = web_identity(&s, &token);
        assert!(
            r.status == 400 || r.status == 403,
            "{name}: {} {}",
            r.status,
            r.body
        );
        assert!(!r.body.contains("<Credentials>"), "{name}: {}", r.body);
        let r = bearer(&s, &token);
        assert!(r.status == 400 || r.status == 403, "{name}: {}", r.body);
        assert!(!r.body.contains("\"SecretString\""), "{name}: {}", r.body);
    }
    // the same with the victim's subject as `sub`: refused too (which claim would count?)
    let mut c = claims("repo:payments/api");
    c["SUB"] = serde_json::json!("repo:attacker/tool");
    let r = web_identity(&s, &jwt(&c));
    assert!(
        code_of(&r).starts_with("InvalidIdentityToken"),
        "{}",
        r.body
    );
    // a token whose `aud` has a twin `AUD`
    let mut c = claims("repo:payments/api");
    c["AUD"] = serde_json::json!("strongroom");
    assert!(code_of(&web_identity(&s, &jwt(&c))).starts_with("InvalidIdentityToken"));
}

/// Finding 4: a claim becomes a condition key only when its provider declares it.
#[tokio::test]
async fn only_declared_claims_become_condition_keys() {
    // undeclared: the trust policy's `ci.example.test:repo` condition never matches
    let (_t, dir) = example_policies();
    add_issuer(&dir, "", true);
    let s = TestServer::start_with_policies(&dir);
    let mut c = claims("repo:payments/api");
    c["repo"] = serde_json::json!("payments/api");
    let r = web_identity(&s, &jwt(&c));
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(code_of(&r), "AccessDenied", "{}", r.body);

    // declared in ConditionClaims: it does
    let (_t2, dir2) = example_policies();
    add_issuer(&dir2, r#","ConditionClaims":["repo"]"#, true);
    let s2 = TestServer::start_with_policies(&dir2);
    let r = web_identity(&s2, &jwt(&c));
    assert_eq!(r.status, 200, "{}", r.body);
    // and a wrong value does not match
    c["repo"] = serde_json::json!("other/api");
    let r = web_identity(&s2, &jwt(&c));
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(code_of(&r), "AccessDenied", "{}", r.body);
    // a declared claim with a twin in another case is refused
    c["repo"] = serde_json::json!("other/api");
    c["Repo"] = serde_json::json!("payments/api");
    assert!(code_of(&web_identity(&s2, &jwt(&c))).starts_with("InvalidIdentityToken"));
}

#[test]
fn declared_condition_claims_are_checked_when_loading() {
    for (claims, want) in [
        (r#"["Sub"]"#, "every provider has"),
        (r#"["repo","REPO"]"#, "listed twice"),
        (r#"["exp"]"#, "checked when the token is verified"),
    ] {
        let (_t, dir) = example_policies();
        add_issuer(&dir, &format!(r#","ConditionClaims":{claims}"#), false);
        let errors = strongroom::identity::load_dir(&dir).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.path.starts_with("$.ConditionClaims") && e.message.contains(want)),
            "{claims}: {errors:?}"
        );
    }
}

/// GetCallerIdentity with session credentials.
fn whoami(s: &TestServer, creds: &(String, String, String)) -> crate::common::RawResponse {
    s.raw(&signed_query(
        "Action=GetCallerIdentity&Version=2011-06-15",
        Signing {
            session_token: Some(creds.2.clone()),
            ..sts_as(&creds.0, &creds.1)
        },
    ))
}

fn assume_payments(s: &TestServer, akid: &str, secret: &str) -> crate::common::RawResponse {
    s.raw(&signed_query(
        &format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=s1",
            urlenc("arn:aws:iam::111122223333:role/service/payments-app")
        ),
        sts_as(akid, secret),
    ))
}

fn session_of(r: &crate::common::RawResponse) -> (String, String, String) {
    assert_eq!(r.status, 200, "{}", r.body);
    (
        xml_field(&r.body, "AccessKeyId"),
        xml_field(&r.body, "SecretAccessKey"),
        xml_field(&r.body, "SessionToken"),
    )
}

/// The role id part of an AssumeRole answer's `AssumedRoleId` (`AROA…:session`).
fn role_id_of(r: &crate::common::RawResponse) -> String {
    let id = xml_field(&r.body, "AssumedRoleId");
    id.split(':').next().unwrap().to_owned()
}

/// Poll `check` (each try a request to the server) until it holds: the server's policy
/// watcher applies a change to the files within a few seconds.
fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: never happened"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A server on `data_dir` (kept from a stopped one) with `policies`.
fn restart(dir: tempfile::TempDir, url: String, policies: &Path) -> TestServer {
    let mut cfg = crate::common::config_in(dir.path(), Some(url));
    cfg.policies = Some(policies.to_path_buf());
    TestServer::launch_config(cfg, dir)
}

/// Finding 12: a role removed and declared again is a new role (a new RoleId); sessions of the
/// old one stay refused. While the role exists its id survives restarts and reloads.
#[tokio::test]
async fn a_role_declared_again_does_not_revive_old_sessions() {
    role_declared_again(None);
}

/// The same on PostgreSQL, where several servers share the role ids.
#[tokio::test]
async fn a_role_declared_again_does_not_revive_old_sessions_on_postgres() {
    let Some(base) = crate::common::postgres_base_url() else {
        eprintln!("skipped: STRONGROOM_TEST_DATABASE_URL is not set");
        return;
    };
    role_declared_again(Some(crate::common::fresh_postgres_db(&base)));
}

fn role_declared_again(database_url: Option<String>) {
    let (_t, dir) = example_policies();
    let mut s = TestServer::start_configured(database_url, &["us-east-1"], None, Some(dir.clone()));
    let (akid, secret) = mint(&s, &dir, "ci-bot");
    let first = assume_payments(&s, &akid, &secret);
    let old = session_of(&first);
    let old_id = role_id_of(&first);
    assert!(old_id.starts_with("AROA") && old_id.len() == 21, "{old_id}");
    assert_eq!(whoami(&s, &old).status, 200);

    // positive control: a restart keeps the role, its id and its sessions
    let url = s.database_url.clone();
    let data = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    s.stop();
    let s = restart(data, url, &dir);
    assert_eq!(whoami(&s, &old).status, 200, "session lost on restart");
    assert_eq!(role_id_of(&assume_payments(&s, &akid, &secret)), old_id);
    // an unrelated change to the files (a reload) keeps it too
    let marker = "arn:aws:iam::111122223333:role/service/reloaded";
    std::fs::write(
        dir.join("accounts/111122223333/roles/reloaded.json"),
        r#"{"RoleName":"reloaded","Path":"/service/","AssumeRolePolicyDocument":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/ci-bot"},"Action":"sts:AssumeRole"}]}}"#,
    )
    .unwrap();
    until("the new role is in force", || {
        let r = s.raw(&signed_query(
            &format!(
                "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=s2",
                urlenc(marker)
            ),
            sts_as(&akid, &secret),
        ));
        r.status == 200
    });
    assert_eq!(whoami(&s, &old).status, 200, "session lost on reload");
    assert_eq!(role_id_of(&assume_payments(&s, &akid, &secret)), old_id);

    // the role is removed: its sessions stop working
    let file = dir.join("accounts/111122223333/roles/payments-app.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    until("the removal is in force", || {
        let r = whoami(&s, &old);
        assert!(
            r.status == 200 || code_of(&r) == "InvalidClientTokenId",
            "{}",
            r.body
        );
        r.status != 200
    });

    // ... and declared again, identical: a new role
    std::fs::write(&file, &text).unwrap();
    let mut again = None;
    until("the role is back", || {
        let r = assume_payments(&s, &akid, &secret);
        let ok = r.status == 200;
        again = Some(r);
        ok
    });
    let again = again.unwrap();
    let new_id = role_id_of(&again);
    assert_ne!(new_id, old_id, "a re-created role kept its RoleId");
    assert!(new_id.starts_with("AROA") && new_id.len() == 21, "{new_id}");
    let old_after = whoami(&s, &old);
    assert_ne!(
        old_after.status, 200,
        "a session of the deleted role works again: {}",
        old_after.body
    );
    assert_eq!(
        code_of(&old_after),
        "InvalidClientTokenId",
        "{}",
        old_after.body
    );
    let new = session_of(&again);
    assert_eq!(whoami(&s, &new).status, 200);
}

/// Finding 12: the database files are readable by their owner only.
#[tokio::test]
async fn database_files_are_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let s = TestServer::start();
    // a write, so that every file (WAL and shared memory included) exists
    s.client()
        .create_secret()
        .name("mode/check")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let mut checked = 0;
    for f in crate::common::files_under(&s.data_dir()) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("strongroom.db") {
            continue;
        }
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{name} is {mode:o}");
        checked += 1;
    }
    // the database, the audit chain and its index, each with a WAL and shared memory
    assert!(checked >= 6, "only {checked} database files");
    // and everything else the server keeps there but the audit signing key's public half
    for f in crate::common::files_under(&s.data_dir()) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        if !name.ends_with(".pub") {
            assert_eq!(mode & 0o077, 0, "{name} is {mode:o}");
        }
    }
    let mode = std::fs::metadata(s.data_dir())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "the data dir is {mode:o}");

    // a database created 0644 by an older version is made owner-only when opened
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = strongroom::store::Store::open(&format!("sqlite://{}", db.display())).unwrap();
    drop(store);
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
}

fn strongroom_bin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(args)
        .env_remove("STRONGROOM_POLICIES")
        .env_remove("STRONGROOM_CONFIG")
        .env_remove("STRONGROOM_DATABASE_URL")
        .env("STRONGROOM_LOG", "error")
        .output()
        .unwrap()
}

/// Finding 13: `access-key create --root` mints root credentials of a member account; a user
/// that is not declared, an account that is not declared, or `--root` with `--user` are
/// refused with a clear error.
#[tokio::test]
async fn root_keys_of_member_accounts_and_undeclared_users() {
    let (_t, dir) = example_policies();
    let member = "444455556666";
    let acct = dir.join("accounts").join(member);
    std::fs::create_dir_all(&acct).unwrap();
    std::fs::write(
        acct.join("account.json"),
        format!(r#"{{"AccountId":"{member}","Alias":"member"}}"#),
    )
    .unwrap();
    let s = TestServer::start_with_policies(&dir);
    let data = s.data_dir().display().to_string();
    let url = s.database_url.clone();
    let policies = dir.display().to_string();
    let base = |extra: &[&str]| -> std::process::Output {
        let mut a = vec![
            "access-key",
            "create",
            "--data-dir",
            &data,
            "--database-url",
            &url,
            "--policies",
            &policies,
        ];
        a.extend_from_slice(extra);
        strongroom_bin(&a)
    };

    let out = base(&["--account", member, "--root"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["AccountId"], member);
    let akid = v["AccessKeyId"].as_str().unwrap();
    let secret = v["SecretAccessKey"].as_str().unwrap();
    assert!(akid.starts_with("AKIA"), "{v}");
    let r = s.raw(&signed_query(
        "Action=GetCallerIdentity&Version=2011-06-15",
        sts_as(akid, secret),
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        xml_field(&r.body, "Arn"),
        format!("arn:aws:iam::{member}:root")
    );
    assert_eq!(xml_field(&r.body, "Account"), member);
    // the member's root acts in its own account: its secrets are the member's, and the
    // default account's are not in its list
    s.client()
        .create_secret()
        .name("default/only")
        .secret_string("d")
        .send()
        .await
        .unwrap();
    let m = s.client_in("us-east-1", akid, secret);
    let created = m
        .create_secret()
        .name("member/own")
        .secret_string("m")
        .send()
        .await
        .unwrap();
    assert!(
        created.arn().unwrap().starts_with(&format!(
            "arn:aws:secretsmanager:us-east-1:{member}:secret:member/own-"
        )),
        "{created:?}"
    );
    let names: Vec<String> = m
        .list_secrets()
        .send()
        .await
        .unwrap()
        .secret_list()
        .iter()
        .filter_map(|e| e.name().map(str::to_owned))
        .collect();
    assert_eq!(names, vec!["member/own".to_owned()]);
    // the key is listed as a root key of the member
    let list = strongroom_bin(&[
        "access-key",
        "list",
        "--data-dir",
        &data,
        "--database-url",
        &url,
        "--account",
        member,
    ]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains(akid) && text.contains("(root)"), "{text}");

    for (args, want) in [
        (
            vec!["--account", member, "--user", "nobody"],
            "no user `nobody`",
        ),
        (
            vec!["--account", ACCOUNT, "--user", "nobody"],
            "no user `nobody`",
        ),
        (vec!["--account", "999988887777", "--root"], "999988887777"),
        (vec!["--account", member], "--user"),
        (
            vec!["--account", ACCOUNT, "--user", "alice", "--root"],
            "cannot be used with",
        ),
    ] {
        let out = base(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            out.stdout.is_empty()
                || !String::from_utf8_lossy(&out.stdout).contains("SecretAccessKey")
        );
    }
    // positive control: a declared user still gets a key
    let out = base(&["--account", ACCOUNT, "--user", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Finding 13: a KMS key policy that does not name the account decides alone: an identity
/// policy allowing `kms:Decrypt` grants nothing on it, in `strongroom policy simulate` and in
/// the server alike; a key policy delegating to the account lets the identity policy decide.
#[tokio::test]
async fn key_policies_decide_alike_in_the_simulator_and_the_server() {
    let (_t, dir) = example_policies();
    let identity = serde_json::json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":["secretsmanager:GetSecretValue","kms:Decrypt"],"Resource":"*"}]});
    std::fs::write(
        dir.join("accounts/111122223333/users/kms-reader.json"),
        serde_json::json!({"UserName":"kms-reader","InlinePolicies":{"read":identity}}).to_string(),
    )
    .unwrap();
    let s = TestServer::start_with_policies(&dir);
    let role_only = serde_json::json!({"Version":"2012-10-17","Statement":[{"Sid":"RoleOnly",
        "Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/service/payments-app"},
        "Action":"kms:*","Resource":"*"}]});
    let delegating = serde_json::json!({"Version":"2012-10-17","Statement":[{"Sid":"Account",
        "Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},
        "Action":"kms:*","Resource":"*"}]});
    // every principal of the account, by the `kms:CallerAccount` the server sets on each
    // KMS decision (the simulator sets it too when a case does not)
    let caller_account = serde_json::json!({"Version":"2012-10-17","Statement":[{"Sid":"Callers",
        "Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*",
        "Condition":{"StringEquals":{"kms:CallerAccount":ACCOUNT}}}]});
    let c = s.client();
    let mut keys = vec![];
    for (name, policy) in [
        ("role-only", &role_only),
        ("delegating", &delegating),
        ("caller-account", &caller_account),
    ] {
        let r = s.call("TrentService.CreateKey", r#"{"Description":"review"}"#);
        assert_eq!(r.status, 200, "{}", r.body);
        let key_id = r.json()["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_owned();
        let arn = r.json()["KeyMetadata"]["Arn"].as_str().unwrap().to_owned();
        c.create_secret()
            .name(format!("kms/{name}"))
            .secret_string("v")
            .kms_key_id(&key_id)
            .send()
            .await
            .unwrap();
        let body = serde_json::json!({"KeyId":key_id,"PolicyName":"default",
            "Policy":policy.to_string(),"BypassPolicyLockoutSafetyCheck":true});
        let r = s.call("TrentService.PutKeyPolicy", &body.to_string());
        assert_eq!(r.status, 200, "{}", r.body);
        keys.push((name, arn, policy.clone()));
    }
    let (akid, secret) = mint(&s, &dir, "kms-reader");
    let reader = s.client_in("us-east-1", &akid, &secret);
    let mut cases = vec![];
    for (name, arn, policy) in &keys {
        let server = match reader
            .get_secret_value()
            .secret_id(format!("kms/{name}"))
            .send()
            .await
        {
            Ok(_) => "Allow",
            Err(e) => {
                assert_eq!(crate::common::code(&e), "AccessDeniedException", "{name}");
                assert!(
                    crate::common::message(&e).contains("kms:Decrypt"),
                    "{name}: {}",
                    crate::common::message(&e)
                );
                "ImplicitDeny"
            }
        };
        let want = if *name == "role-only" {
            "ImplicitDeny"
        } else {
            "Allow"
        };
        assert_eq!(server, want, "server on the {name} key");
        cases.push(serde_json::json!({
            "id": name,
            "request": {
                "action": "kms:Decrypt",
                "resource": {"arn": arn, "account": ACCOUNT},
                "principal": {"type": "User", "arn": "arn:aws:iam::111122223333:user/kms-reader",
                              "account": ACCOUNT, "userName": "kms-reader"},
                "context": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}
            },
            "policies": {"identity": [identity.clone()], "keyPolicy": policy},
            "expected": {"decision": server}
        }));
    }
    let file = dir.join("cases.json");
    std::fs::write(&file, serde_json::Value::Array(cases).to_string()).unwrap();
    let out = strongroom_bin(&["policy", "simulate", "--cases", file.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "simulator disagrees:\n{report}");
    assert!(report.contains("3 of 3 cases matched"), "{report}");
}
