//! Principals as code: user access keys, GetCallerIdentity, orphaned keys, hot reload.

use std::path::Path;

use crate::common::{
    code, example_policies, mint, now_secs, signed_query, urlenc, xml_field, Signing, TestServer,
};

fn caller_identity(s: &TestServer, akid: &str, secret: &str) -> crate::common::RawResponse {
    s.raw(&signed_query(
        "Action=GetCallerIdentity&Version=2011-06-15",
        Signing {
            akid: akid.into(),
            secret: secret.into(),
            service: "sts".into(),
            ..Signing::default()
        },
    ))
}

/// Poll `check` until it holds, failing with `what` after `within`.
fn until(what: &str, within: std::time::Duration, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: never happened"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The `errorCode`s of the server's `ReloadPolicies` audit records, oldest first.
fn reload_outcomes(s: &TestServer) -> Vec<Option<String>> {
    let store = strongroom::store::Store::open(&s.store_config().database_url).unwrap();
    let rows = store
        .read_blocking(|tx| {
            let mut out = Vec::new();
            for c in tx.audit_chains()? {
                out.extend(tx.audit_range(&c, 0, 1_000_000)?);
            }
            Ok(out)
        })
        .unwrap();
    rows.into_iter()
        .filter(|r| r.event_name == "ReloadPolicies")
        .map(|r| r.error_code)
        .collect()
}

#[test]
fn the_example_directory_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let msg = strongroom::cli::validate_policies(&root).unwrap();
    assert!(msg.contains("OK"), "{msg}");
}

#[test]
fn validation_reports_every_problem_with_file_and_path() {
    let (_t, dir) = example_policies();
    let users = dir.join("accounts/111122223333/users");
    std::fs::write(
        users.join("bob.json"),
        r#"{"UserName":"bob","Groups":["nope"]}"#,
    )
    .unwrap();
    std::fs::write(
        users.join("carol.json"),
        r#"{"UserName":"carol","Bogus":1}"#,
    )
    .unwrap();
    std::fs::write(
        users.join("dave.json"),
        r#"{"UserName":"dave","AttachedPolicies":["arn:aws:iam::111122223333:policy/missing"],
            "InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[{"Effect":"Allow"}]}}}"#,
    )
    .unwrap();
    let err = strongroom::cli::validate_policies(&dir).unwrap_err();
    assert!(err.contains("bob.json: $.Groups[0]"), "{err}");
    assert!(err.contains("carol.json"), "{err}");
    assert!(err.contains("Bogus"), "{err}");
    assert!(err.contains("dave.json: $.AttachedPolicies[0]"), "{err}");
    assert!(err.contains("dave.json: $.InlinePolicies.p"), "{err}");
}

#[test]
fn users_call_with_their_keys_and_sts_knows_them() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    let (akid, secret) = mint(&s, &dir, "alice");

    let r = caller_identity(&s, &akid, &secret);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .contains("<Arn>arn:aws:iam::111122223333:user/engineering/alice</Arn>"),
        "{}",
        r.body
    );
    assert!(r.body.contains("<UserId>AIDA"), "{}", r.body);
    assert!(r.body.contains("<Account>111122223333</Account>"));
    assert_eq!(r.header("content-type"), Some("text/xml"));

    let root = caller_identity(&s, crate::common::AKID, crate::common::SECRET);
    assert!(
        root.body
            .contains("<Arn>arn:aws:iam::111122223333:root</Arn>"),
        "{}",
        root.body
    );

    // a bad signature on the Query protocol answers in XML with the Query code
    let bad = caller_identity(&s, &akid, "wrong");
    assert_eq!(bad.status, 403, "{}", bad.body);
    assert!(
        bad.body.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{}",
        bad.body
    );
    let unknown = caller_identity(&s, "AKIANOPE000000000000", "x");
    assert!(
        unknown.body.contains("<Code>InvalidClientTokenId</Code>"),
        "{}",
        unknown.body
    );
}

#[tokio::test]
async fn deactivated_deleted_and_orphaned_keys_are_refused() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    let (akid, secret) = mint(&s, &dir, "ci-bot");
    assert_eq!(caller_identity(&s, &akid, &secret).status, 200);

    let cfg = s.store_config();
    let listed =
        strongroom::cli::list_access_keys(&cfg, Some("111122223333"), Some("ci-bot")).unwrap();
    assert!(
        listed.contains(&akid) && !listed.contains(&secret),
        "{listed}"
    );

    strongroom::cli::change_access_key(&cfg, &akid, strongroom::cli::KeyChange::Deactivate)
        .unwrap();
    // The server trusts a looked-up key for a few seconds (the cache's expiry itself is
    // `authn`'s unit test, on an injected clock): the change takes effect once it has passed.
    let within = std::time::Duration::from_secs(15);
    until("the deactivated key refused", within, || {
        let r = caller_identity(&s, &akid, &secret);
        assert!(
            r.status == 200 || r.body.contains("<Code>InvalidClientTokenId</Code>"),
            "{}",
            r.body
        );
        r.status != 200
    });
    strongroom::cli::change_access_key(&cfg, &akid, strongroom::cli::KeyChange::Activate).unwrap();
    until("the reactivated key accepted", within, || {
        caller_identity(&s, &akid, &secret).status == 200
    });

    // the user disappears from the files: the key is orphaned and refused after the reload
    std::fs::remove_file(dir.join("accounts/111122223333/users/ci-bot.json")).unwrap();
    std::fs::remove_file(dir.join("accounts/111122223333/roles/payments-app.json")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = caller_identity(&s, &akid, &secret);
        if r.body.contains("InvalidClientTokenId") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "orphaned key still accepted: {}",
            r.body
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // with the SDK, an orphaned key is an unrecognized client
    let c = s.client_in("us-east-1", &akid, &secret);
    let e = c.list_secrets().send().await.unwrap_err();
    assert_eq!(code(&e), "UnrecognizedClientException");

    strongroom::cli::change_access_key(&cfg, &akid, strongroom::cli::KeyChange::Delete).unwrap();
    assert!(strongroom::cli::list_access_keys(&cfg, None, None)
        .unwrap()
        .find(&akid)
        .is_none());
}

#[test]
fn a_broken_change_is_refused_and_the_old_set_stays() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    let (akid, secret) = mint(&s, &dir, "alice");
    // break the directory: alice's file stops parsing
    std::fs::write(
        dir.join("accounts/111122223333/users/alice.json"),
        "{ not json",
    )
    .unwrap();
    // the watcher tries the change and refuses it, which it records
    until(
        "a refused reload in the audit trail",
        std::time::Duration::from_secs(15),
        || reload_outcomes(&s).contains(&Some("PolicySetRefused".to_owned())),
    );
    let r = caller_identity(&s, &akid, &secret);
    assert_eq!(
        r.status, 200,
        "the previous set must stay in force: {}",
        r.body
    );
    // a good change is taken: a new user appears without a restart
    std::fs::write(
        dir.join("accounts/111122223333/users/alice.json"),
        r#"{"UserName":"alice","Path":"/engineering/"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("accounts/111122223333/users/erin.json"),
        r#"{"UserName":"erin"}"#,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let (akid2, secret2) = loop {
        match strongroom::cli::create_access_key(&s.store_config(), &dir, "111122223333", "erin") {
            Ok(out) => {
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                break (
                    v["AccessKeyId"].as_str().unwrap().to_owned(),
                    v["SecretAccessKey"].as_str().unwrap().to_owned(),
                );
            }
            Err(e) => assert!(std::time::Instant::now() < deadline, "{e}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = caller_identity(&s, &akid2, &secret2);
        if r.status == 200 {
            assert!(r.body.contains("user/erin"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", r.body);
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

fn assume(s: &TestServer, akid: &str, secret: &str, form: &str) -> crate::common::RawResponse {
    s.raw(&signed_query(form, crate::common::sts_as(akid, secret)))
}

#[tokio::test]
async fn assume_role_gives_working_session_credentials() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    let root = s.client();
    root.create_secret()
        .name("payments/db")
        .secret_string("p")
        .send()
        .await
        .unwrap();
    root.create_secret()
        .name("other/db")
        .secret_string("o")
        .send()
        .await
        .unwrap();
    let (akid, secret) = mint(&s, &dir, "ci-bot");
    let role = "arn:aws:iam::111122223333:role/service/payments-app";
    let r = assume(
        &s,
        &akid,
        &secret,
        &format!("Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=build-42&DurationSeconds=900", urlenc(role)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let sk = xml_field(&r.body, "AccessKeyId");
    let ss = xml_field(&r.body, "SecretAccessKey");
    let st = xml_field(&r.body, "SessionToken");
    assert!(sk.starts_with("ASIA"), "{}", r.body);
    assert!(
        r.body
            .contains("<Arn>arn:aws:sts::111122223333:assumed-role/payments-app/build-42</Arn>"),
        "{}",
        r.body
    );

    // the session calls Secrets Manager with the role's policies
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .http_client(strongroom::client::https_client())
        .endpoint_url(s.endpoint())
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            &sk,
            &ss,
            Some(st.clone()),
            None,
            "session",
        ))
        .build();
    let session = aws_sdk_secretsmanager::Client::from_conf(conf);
    assert_eq!(
        session
            .get_secret_value()
            .secret_id("payments/db")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("p")
    );
    let e = session
        .get_secret_value()
        .secret_id("other/db")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    assert!(crate::common::message(&e).starts_with(
        "User: arn:aws:sts::111122223333:assumed-role/payments-app/build-42 is not authorized"
    ));

    // GetCallerIdentity with the session
    let who = s.raw(&signed_query(
        "Action=GetCallerIdentity&Version=2011-06-15",
        Signing {
            akid: sk.clone(),
            secret: ss.clone(),
            service: "sts".into(),
            session_token: Some(st.clone()),
            ..Signing::default()
        },
    ));
    assert!(
        who.body.contains("assumed-role/payments-app/build-42"),
        "{}",
        who.body
    );
    assert!(who.body.contains(":build-42</UserId>"), "{}", who.body);

    // a tampered token is refused
    let mut bad = st.clone();
    bad.insert(10, 'A');
    let r = s.raw(&signed_query(
        "Action=GetCallerIdentity&Version=2011-06-15",
        Signing {
            akid: sk.clone(),
            secret: ss.clone(),
            service: "sts".into(),
            session_token: Some(bad),
            ..Signing::default()
        },
    ));
    assert!(r.body.contains("InvalidClientTokenId"), "{}", r.body);

    // a session policy narrows the session
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:DescribeSecret","Resource":"*"}]}"#;
    let r = assume(
        &s,
        &akid,
        &secret,
        &format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=narrow&Policy={}",
            urlenc(role),
            urlenc(policy)
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .http_client(strongroom::client::https_client())
        .endpoint_url(s.endpoint())
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            xml_field(&r.body, "AccessKeyId"),
            xml_field(&r.body, "SecretAccessKey"),
            Some(xml_field(&r.body, "SessionToken")),
            None,
            "session",
        ))
        .build();
    let narrow = aws_sdk_secretsmanager::Client::from_conf(conf);
    narrow
        .describe_secret()
        .secret_id("payments/db")
        .send()
        .await
        .unwrap();
    let e = narrow
        .get_secret_value()
        .secret_id("payments/db")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");

    // alice is not in the trust policy
    let (ak, sk2) = mint(&s, &dir, "alice");
    let r = assume(
        &s,
        &ak,
        &sk2,
        &format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=x1",
            urlenc(role)
        ),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("<Code>AccessDenied</Code>"), "{}", r.body);
    // too long for the role
    let r = assume(&s, &akid, &secret, &format!("Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=x2&DurationSeconds=43200", urlenc(role)));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("<Code>ValidationError</Code>"),
        "{}",
        r.body
    );
}

#[test]
fn expired_session_tokens_are_refused() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    let master =
        strongroom::crypto::master::MasterKeyring::load(&s.data_dir().join("master.key")).unwrap();
    let claims = strongroom::auth::session::SessionClaims {
        akid: "ASIAEXPIRED000000001".into(),
        secret: "expired-secret".into(),
        account: "111122223333".into(),
        role_arn: "arn:aws:iam::111122223333:role/service/payments-app".into(),
        role_name: "payments-app".into(),
        role_id: "AROAX".into(),
        session_name: "old".into(),
        issued_ms: 0,
        expires_ms: 1000,
        issuer: "sts.amazonaws.com".into(),
        tags: Default::default(),
        session_policy: None,
        source: "test".into(),
    };
    let token = strongroom::auth::session::encode_token(&claims, |b| {
        master
            .active()
            .unwrap()
            .seal(b, strongroom::auth::session::TOKEN_AAD)
            .map(|s| (s, i32::try_from(master.active_id()).unwrap()))
    })
    .unwrap();
    let r = s.call_signed(
        "secretsmanager.ListSecrets",
        "{}",
        Signing {
            akid: "ASIAEXPIRED000000001".into(),
            secret: "expired-secret".into(),
            session_token: Some(token),
            ..Signing::default()
        },
    );
    assert_eq!(r.error_type(), "ExpiredTokenException", "{}", r.body);
}

#[test]
fn iam_policy_simulator_answers_with_the_live_policies() {
    let (_t, dir) = example_policies();
    let s = TestServer::start_with_policies(&dir);
    let q = |form: &str| {
        s.raw(&signed_query(
            form,
            Signing {
                service: "iam".into(),
                ..Signing::default()
            },
        ))
    };
    let secret = urlenc("arn:aws:secretsmanager:us-east-1:111122223333:secret:payments/db-AbCdEf");
    let r = q(&format!(
        "Action=SimulatePrincipalPolicy&Version=2010-05-08&PolicySourceArn={}&ActionNames.member.1=secretsmanager%3AGetSecretValue&ActionNames.member.2=secretsmanager%3APutSecretValue&ResourceArns.member.1={secret}",
        urlenc("arn:aws:iam::111122223333:user/ci-bot")
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<EvalDecision>allowed</EvalDecision>"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("<EvalDecision>implicitDeny</EvalDecision>"),
        "{}",
        r.body
    );
    assert!(r.body.contains("policy/payments-app-read"), "{}", r.body);

    let deny = urlenc(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"},{"Effect":"Deny","Action":"secretsmanager:DeleteSecret","Resource":"*"}]}"#,
    );
    let r = q(&format!(
        "Action=SimulateCustomPolicy&Version=2010-05-08&PolicyInputList.member.1={deny}&ActionNames.member.1=secretsmanager%3ADeleteSecret&ActionNames.member.2=secretsmanager%3AGetSecretValue"
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<EvalDecision>explicitDeny</EvalDecision>"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("<EvalDecision>allowed</EvalDecision>"),
        "{}",
        r.body
    );

    // The keys a decision read but was not given are listed (MissingContextValues), each
    // once; a key given is not, nor a key of a statement for another action.
    let fenced = urlenc(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"},{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"},"Bool":{"aws:SecureTransport":"false"}}},{"Effect":"Deny","Action":"secretsmanager:DeleteSecret","Resource":"*","Condition":{"StringEquals":{"aws:RequestTag/team":"x"}}}]}"#,
    );
    let simulate = |extra: &str| {
        q(&format!(
            "Action=SimulateCustomPolicy&Version=2010-05-08&PolicyInputList.member.1={fenced}&ActionNames.member.1=secretsmanager%3AGetSecretValue{extra}"
        ))
    };
    let r = simulate("");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<member>aws:SourceIp</member>"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("<member>aws:SecureTransport</member>"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("aws:RequestTag/team"), "{}", r.body);
    let r = simulate(
        "&ContextEntries.member.1.ContextKeyName=aws%3ASourceIp&ContextEntries.member.1.ContextKeyType=ip&ContextEntries.member.1.ContextKeyValues.member.1=192.0.2.1",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !r.body.contains("<member>aws:SourceIp</member>"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("<member>aws:SecureTransport</member>"),
        "{}",
        r.body
    );

    let r = q("Action=SimulatePrincipalPolicy&Version=2010-05-08&PolicySourceArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Auser%2Fnobody&ActionNames.member.1=a%3Ab");
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("<Code>NoSuchEntity</Code>"));
}

const HMAC: &str = "ci-provider-hmac-secret-0123456789abcdef";

fn add_web_identity(dir: &Path) {
    let acct = dir.join("accounts/111122223333");
    std::fs::create_dir_all(acct.join("identity-providers")).unwrap();
    std::fs::write(acct.join("identity-providers/ci.hmac"), HMAC).unwrap();
    std::fs::write(
        acct.join("identity-providers/ci.json"),
        r#"{"Issuer":"https://ci.example.test","Audiences":["strongroom"],"HmacSecretFile":"ci.hmac",
            "Algorithms":["HS256"],"SessionTagClaims":{"repo":"repo"}}"#,
    )
    .unwrap();
    std::fs::write(
        acct.join("roles/ci-deployer.json"),
        r#"{"RoleName":"ci-deployer","AttachedPolicies":["arn:aws:iam::111122223333:policy/payments-app-read"],
            "AssumeRolePolicyDocument":{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
              "Principal":{"Federated":"https://ci.example.test"},"Action":"sts:AssumeRoleWithWebIdentity",
              "Condition":{"StringEquals":{"ci.example.test:aud":"strongroom"},
                           "StringLike":{"ci.example.test:sub":"repo:payments/*"}}}]}}"#,
    )
    .unwrap();
}

fn jwt(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(HMAC.as_bytes()),
    )
    .unwrap()
}

fn good_claims() -> serde_json::Value {
    serde_json::json!({"iss":"https://ci.example.test","aud":"strongroom","sub":"repo:payments/api","repo":"payments/api","exp":now_secs()+600,"iat":now_secs()})
}

fn unsigned_query(form: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
        form.len()
    )
    .into_bytes()
}

fn bearer(s: &TestServer, token: &str, target: &str, body: &str) -> crate::common::RawResponse {
    let req = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\nx-strongroom-role: arn:aws:iam::111122223333:role/ci-deployer\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: {target}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.raw(req.as_bytes())
}

#[tokio::test]
async fn web_identity_and_bearer_callers() {
    let (_t, dir) = example_policies();
    add_web_identity(&dir);
    let s = TestServer::start_with_policies(&dir);
    s.client()
        .create_secret()
        .name("payments/db")
        .secret_string("p")
        .send()
        .await
        .unwrap();
    s.client()
        .create_secret()
        .name("other/db")
        .secret_string("o")
        .send()
        .await
        .unwrap();
    let role = urlenc("arn:aws:iam::111122223333:role/ci-deployer");

    // AssumeRoleWithWebIdentity (unsigned, as the SDKs send it)
    let form = format!("Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={role}&RoleSessionName=build-1&WebIdentityToken={}", jwt(good_claims()));
    let r = s.raw(&unsigned_query(&form));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(
            "<SubjectFromWebIdentityToken>repo:payments/api</SubjectFromWebIdentityToken>"
        ),
        "{}",
        r.body
    );
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .http_client(strongroom::client::https_client())
        .endpoint_url(s.endpoint())
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            xml_field(&r.body, "AccessKeyId"),
            xml_field(&r.body, "SecretAccessKey"),
            Some(xml_field(&r.body, "SessionToken")),
            None,
            "web",
        ))
        .build();
    let c = aws_sdk_secretsmanager::Client::from_conf(conf);
    assert_eq!(
        c.get_secret_value()
            .secret_id("payments/db")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("p")
    );
    let e = c
        .get_secret_value()
        .secret_id("other/db")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");

    // Bearer callers
    let ok = bearer(
        &s,
        &jwt(good_claims()),
        "secretsmanager.GetSecretValue",
        r#"{"SecretId":"payments/db"}"#,
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["SecretString"], "p");

    let mut expired = good_claims();
    expired["exp"] = serde_json::json!(now_secs() - 3600);
    let mut future = good_claims();
    future["nbf"] = serde_json::json!(now_secs() + 3600);
    let mut aud = good_claims();
    aud["aud"] = serde_json::json!("someone-else");
    let mut iss = good_claims();
    iss["iss"] = serde_json::json!("https://evil.example.test");
    let mut sub = good_claims();
    sub["sub"] = serde_json::json!("repo:other/api");
    let bad_sig = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &good_claims(),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-right-secret-not-the-right"),
    )
    .unwrap();
    use base64::Engine;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let alg_none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg":"none","typ":"JWT"})),
        b64(&good_claims())
    );
    for (what, token, want) in [
        ("expired", jwt(expired), "ExpiredTokenException"),
        (
            "not yet valid",
            jwt(future),
            "InvalidIdentityTokenException",
        ),
        ("wrong audience", jwt(aud), "InvalidIdentityTokenException"),
        ("unknown issuer", jwt(iss), "InvalidIdentityTokenException"),
        ("bad signature", bad_sig, "InvalidIdentityTokenException"),
        ("alg none", alg_none, "InvalidIdentityTokenException"),
        (
            "garbage",
            "not.a.jwt".to_owned(),
            "InvalidIdentityTokenException",
        ),
        ("trust refuses subject", jwt(sub), "AccessDeniedException"),
    ] {
        let r = bearer(
            &s,
            &token,
            "secretsmanager.GetSecretValue",
            r#"{"SecretId":"payments/db"}"#,
        );
        assert_eq!(r.error_type(), want, "{what}: {}", r.body);
        assert!(
            !r.body.contains(&token[..token.len().min(40)]),
            "{what}: token echoed"
        );
        let form = format!("Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={role}&RoleSessionName=x1&WebIdentityToken={token}");
        let r = s.raw(&unsigned_query(&form));
        assert!(r.status == 400 || r.status == 403, "{what}: {}", r.body);
        if what == "expired" {
            // STS's own code and wording for an expired web identity token.
            assert!(
                r.body.contains("<Code>ExpiredTokenException</Code>")
                    && r.body.contains("Token expired: current date/time "),
                "{}",
                r.body
            );
        }
    }
}

/// A second server on `first`'s data directory and policies (after an offline command), built
/// through the `serve` command line so it follows the configuration's defaults.
fn restart_on(first: &TestServer, policies: &Path) -> std::net::SocketAddr {
    use clap::Parser;
    let data = first.data_dir();
    let cli = strongroom::config::Cli::try_parse_from([
        "strongroom".to_owned(),
        "serve".to_owned(),
        "--data-dir".to_owned(),
        data.display().to_string(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--account-id".to_owned(),
        crate::common::ACCOUNT.to_owned(),
        "--regions".to_owned(),
        "us-east-1".to_owned(),
        "--policies".to_owned(),
        policies.display().to_string(),
    ])
    .unwrap();
    let strongroom::config::Command::Serve(args) = cli.command else {
        panic!("not serve");
    };
    let cfg = args.resolve().unwrap();
    assert_eq!(cfg.store.database_url, first.database_url);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let sys = actix_web::rt::System::new();
        let _ = sys.block_on(strongroom::server::run(cfg, |a| {
            let _ = tx.send(a);
        }));
    });
    rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap()
}

#[tokio::test]
async fn master_key_rotation_keeps_live_sessions_until_they_expire() {
    let (_t, dir) = example_policies();
    let mut s = TestServer::start_with_policies(&dir);
    s.client()
        .create_secret()
        .name("payments/db")
        .secret_string("p")
        .send()
        .await
        .unwrap();
    let (akid, secret) = mint(&s, &dir, "ci-bot");
    let role = "arn:aws:iam::111122223333:role/service/payments-app";
    let r = assume(
        &s,
        &akid,
        &secret,
        &format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=before-rotation",
            urlenc(role)
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let (sk, ss, st) = (
        xml_field(&r.body, "AccessKeyId"),
        xml_field(&r.body, "SecretAccessKey"),
        xml_field(&r.body, "SessionToken"),
    );

    let cfg = s.store_config();
    // refused while a server uses the key, then done with the server stopped
    let e = strongroom::server::rotate_master_key(&cfg).unwrap_err();
    assert!(e.contains("in use by a running server"), "{e}");
    s.stop();
    crate::common::rotate_after_stop(&cfg);
    let ring = strongroom::crypto::master::MasterKeyring::load(&cfg.master_key_file).unwrap();
    assert_eq!(ring.ids(), vec![2], "rows need only the new key");
    let retired = ring.retired();
    assert_eq!(retired.len(), 1);
    assert_eq!(retired[0].0, 1);

    // a server started on the rotated keyring still accepts the session minted before
    let addr = restart_on(&s, &dir);
    let session = |sk: &str, ss: &str, st: &str| {
        let conf = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .http_client(strongroom::client::https_client())
            .endpoint_url(format!("http://{addr}"))
            .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                sk,
                ss,
                Some(st.to_owned()),
                None,
                "session",
            ))
            .build();
        aws_sdk_secretsmanager::Client::from_conf(conf)
    };
    let v = session(&sk, &ss, &st)
        .get_secret_value()
        .secret_id("payments/db")
        .send()
        .await
        .unwrap();
    assert_eq!(v.secret_string(), Some("p"));
    // and the user's access key (re-sealed by the rotation) mints new sessions there
    let r = crate::common::send_raw(
        addr,
        &signed_query(
            &format!(
                "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=after-rotation",
                urlenc(role)
            ),
            Signing {
                akid: akid.clone(),
                secret: secret.clone(),
                service: "sts".into(),
                ..Signing::default()
            },
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = session(
        &xml_field(&r.body, "AccessKeyId"),
        &xml_field(&r.body, "SecretAccessKey"),
        &xml_field(&r.body, "SessionToken"),
    )
    .get_secret_value()
    .secret_id("payments/db")
    .send()
    .await
    .unwrap();
    assert_eq!(v.secret_string(), Some("p"));

    // ending the retired key before its lifetime is over (dropping it from the ring) ends the
    // old session: refused as an unknown token, never as a server error
    let mut ring = ring;
    ring.retain_active_only();
    ring.save(&cfg.master_key_file).unwrap();
    let addr2 = restart_on(&s, &dir);
    let r = crate::common::send_raw(
        addr2,
        &signed_query(
            "Action=GetCallerIdentity&Version=2011-06-15",
            Signing {
                akid: sk.clone(),
                secret: ss.clone(),
                service: "sts".into(),
                session_token: Some(st.clone()),
                ..Signing::default()
            },
        ),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("<Code>InvalidClientTokenId</Code>"),
        "{}",
        r.body
    );
}
