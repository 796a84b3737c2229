//! Authorization as an attacker tries it: each test is a caller who must be refused, next to
//! a positive control (the caller who must still succeed), so that neither a hole nor an
//! over-broad refusal passes.

use std::path::Path;

use crate::common::{
    assume_role, call_as, example_policies, key_for, mint, signed_query, sts_as, urlenc,
    user_allowing, write, TestServer,
};

const HOME: &str = "111122223333";
const OTHER: &str = "444455556666";

/// A role of `account` trusting `principal` (an AWS principal ARN), with full Secrets Manager
/// rights.
fn role_trusting(dir: &Path, account: &str, name: &str, principal: &str) {
    write(
        dir,
        &format!("accounts/{account}/roles/{name}.json"),
        &format!(
            r#"{{"RoleName":"{name}","AssumeRolePolicyDocument":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"sts:AssumeRole"}}]}},
              "InlinePolicies":{{"all":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}}]}}}}}}"#
        ),
    );
}

fn try_assume(s: &TestServer, akid: &str, secret: &str, role: &str) -> crate::common::RawResponse {
    s.raw(&signed_query(
        &format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=attempt",
            urlenc(role)
        ),
        sts_as(akid, secret),
    ))
}

/// The decisions recorded for `event` calls by `principal_arn`, newest last.
fn recorded(s: &TestServer, event: &str, principal_arn: &str) -> Vec<serde_json::Value> {
    let r = s.call_signed(
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        &serde_json::json!({
            "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": event}],
            "MaxResults": 50
        })
        .to_string(),
        crate::common::Signing {
            service: "cloudtrail".into(),
            ..crate::common::Signing::default()
        },
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut out: Vec<serde_json::Value> = r.json()["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap())
        .filter(|rec: &serde_json::Value| rec["userIdentity"]["arn"] == principal_arn)
        .collect();
    out.reverse();
    out
}

/// Finding: a same-account identity allow for `sts:AssumeRole` on `*` was enough to assume
/// any role of the account, whatever its trust policy said.
#[tokio::test]
async fn assume_role_needs_the_trust_policy() {
    let (_t, dir) = example_policies();
    user_allowing(&dir, HOME, "mallory", &["sts:AssumeRole"]);
    user_allowing(&dir, HOME, "delegate", &["sts:AssumeRole"]);
    user_allowing(&dir, HOME, "bystander", &["secretsmanager:ListSecrets"]);
    user_allowing(&dir, OTHER, "partner", &["sts:AssumeRole"]);
    user_allowing(
        &dir,
        OTHER,
        "partner-no-identity",
        &["secretsmanager:ListSecrets"],
    );
    // Trusts the account: delegation, the caller's identity policy must allow too.
    role_trusting(
        &dir,
        HOME,
        "by-account",
        &format!("arn:aws:iam::{HOME}:root"),
    );
    // Trusts one user of another account: cross-account needs both sides.
    role_trusting(
        &dir,
        HOME,
        "for-partner",
        &format!("arn:aws:iam::{OTHER}:user/partner"),
    );
    role_trusting(
        &dir,
        HOME,
        "for-partner-no-identity",
        &format!("arn:aws:iam::{OTHER}:user/partner-no-identity"),
    );
    let s = TestServer::start_with_policies(&dir);
    s.client()
        .create_secret()
        .name("prod/db")
        .secret_string("v")
        .send()
        .await
        .unwrap();

    // The attacker: allowed sts:AssumeRole on *, not trusted by payments-app.
    let (mk, ms) = mint(&s, &dir, "mallory");
    let payments = "arn:aws:iam::111122223333:role/service/payments-app";
    let r = try_assume(&s, &mk, &ms, payments);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("AccessDenied"), "{}", r.body);
    assert!(!r.body.contains("ASIA"), "{}", r.body);
    // ... and a role that does not exist answers the same.
    let r2 = try_assume(&s, &mk, &ms, "arn:aws:iam::111122223333:role/nope");
    assert_eq!(r2.status, 403, "{}", r2.body);
    // The refusal is recorded as a denial.
    let recs = recorded(&s, "AssumeRole", "arn:aws:iam::111122223333:user/mallory");
    assert!(recs.len() >= 2, "{recs:?}");
    assert_eq!(recs[0]["errorCode"], "AccessDenied", "{}", recs[0]);

    // Positive control: the user the trust policy names directly (same account) needs no
    // identity allow for it (ci-bot's own policies do not mention sts:AssumeRole).
    let (ck, cs) = mint(&s, &dir, "ci-bot");
    let (sk, _, _) = assume_role(&s, &ck, &cs, payments, "ci");
    assert!(sk.starts_with("ASIA"));

    // A trust policy naming the account root only delegates: the identity policy decides.
    let by_account = format!("arn:aws:iam::{HOME}:role/by-account");
    let (dk, ds) = mint(&s, &dir, "delegate");
    let r = try_assume(&s, &dk, &ds, &by_account);
    assert_eq!(r.status, 200, "{}", r.body);
    let (bk, bs) = mint(&s, &dir, "bystander");
    let r = try_assume(&s, &bk, &bs, &by_account);
    assert_eq!(r.status, 403, "{}", r.body);

    // Cross-account: the trust policy and the caller's identity policy must both allow.
    let (pk, ps) = key_for(&s, &dir, OTHER, "partner");
    let r = try_assume(
        &s,
        &pk,
        &ps,
        &format!("arn:aws:iam::{HOME}:role/for-partner"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = try_assume(&s, &pk, &ps, &by_account);
    assert_eq!(r.status, 403, "not trusted: {}", r.body);
    let (nk, ns) = key_for(&s, &dir, OTHER, "partner-no-identity");
    let r = try_assume(
        &s,
        &nk,
        &ns,
        &format!("arn:aws:iam::{HOME}:role/for-partner-no-identity"),
    );
    assert_eq!(r.status, 403, "no identity allow: {}", r.body);

    // Root credentials cannot assume a role (AWS refuses the root user).
    let r = try_assume(&s, crate::common::AKID, crate::common::SECRET, &by_account);
    assert_eq!(r.status, 403, "{}", r.body);
}

/// `call` until `done` holds for its answer (a policies directory reload reaching the
/// server), for at most 30 s; the last answer.
fn eventually(
    call: impl Fn() -> crate::common::RawResponse,
    done: impl Fn(&crate::common::RawResponse) -> bool,
) -> crate::common::RawResponse {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = call();
        if done(&r) || std::time::Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A server on embedded SQLite with the principals in `policies`, believing X-Forwarded-For
/// from `trusted_proxies`, serving HTTPS with the test certificate when `tls`.
fn start(policies: &Path, trusted_proxies: &[&str], tls: bool) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let mut cfg = crate::common::config_in(dir.path(), None);
    cfg.tls = tls.then(|| (fixtures.join("cert.pem"), fixtures.join("key.pem")));
    cfg.policies = Some(policies.to_path_buf());
    cfg.trusted_proxies = trusted_proxies.iter().map(|p| p.parse().unwrap()).collect();
    TestServer::launch_config(cfg, dir)
}

/// Send `request` from the local address `from` (127.0.0.x) over plain TCP.
fn send_from(from: &str, to: std::net::SocketAddr, request: &[u8]) -> crate::common::RawResponse {
    use std::io::{Read, Write};
    // A socket bound to a source address before it connects: tokio's TcpSocket, on a
    // runtime of its own thread (the test may itself run on one).
    let from = from.to_owned();
    let stream = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
            sock.connect(to).await.unwrap().into_std().unwrap()
        })
    })
    .join()
    .unwrap();
    stream.set_nonblocking(false).unwrap();
    let mut stream = stream;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    crate::common::parse_response(&buf)
}

/// A GetSecretValue of `id` signed by `akid`/`secret`, with extra headers (signed too).
fn get_request(akid: &str, secret: &str, id: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    crate::common::signed_request(
        "secretsmanager.GetSecretValue",
        format!(r#"{{"SecretId":"{id}"}}"#).as_bytes(),
        crate::common::Signing {
            akid: akid.into(),
            secret: secret.into(),
            extra_headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..crate::common::Signing::default()
        },
    )
}

/// A user allowed GetSecretValue from the office (198.51.100.0/24) only, and denied it from
/// a blocked range (203.0.113.0/24).
fn office_user(dir: &Path) {
    write(
        dir,
        &format!("accounts/{HOME}/users/office.json"),
        r#"{"UserName":"office","InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*",
             "Condition":{"IpAddress":{"aws:SourceIp":"198.51.100.0/24"}}},
            {"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*",
             "Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}]}}}"#,
    );
}

/// Finding: `--trusted-proxies` was parsed but never applied: behind a proxy every request
/// had the proxy's address, so IP conditions saw the proxy, not the caller.
#[tokio::test]
async fn source_ip_comes_from_trusted_proxies_only() {
    let (_t, dir) = example_policies();
    office_user(&dir);
    let s = start(&dir, &["127.0.0.2/32"], false);
    s.client()
        .create_secret()
        .name("office/db")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let (k, sk) = mint(&s, &dir, "office");
    let via = |xff: &str, from: &str| {
        send_from(
            from,
            s.addr,
            &get_request(&k, &sk, "office/db", &[("x-forwarded-for", xff)]),
        )
    };
    // Positive control: the proxy forwards a caller from the office.
    let r = via("198.51.100.7", "127.0.0.2");
    assert_eq!(r.status, 200, "{}", r.body);
    // The caller behind the proxy is in the blocked range: the Deny applies.
    let r = via("203.0.113.9", "127.0.0.2");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    // A client-supplied office address in front of the real one does not help: the
    // rightmost address the trusted proxy did not add decides.
    let r = via("198.51.100.7, 203.0.113.9", "127.0.0.2");
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    // A caller that is not a trusted proxy cannot claim an address with the header.
    let r = via("198.51.100.7", "127.0.0.3");
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);

    // The audit records the forwarded caller's address.
    let recs = recorded(
        &s,
        "GetSecretValue",
        &format!("arn:aws:iam::{HOME}:user/office"),
    );
    let addrs: Vec<&str> = recs
        .iter()
        .map(|r| r["sourceIPAddress"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        addrs,
        ["198.51.100.7", "203.0.113.9", "203.0.113.9", "127.0.0.3"],
        "{recs:?}"
    );
}

/// A user allowed GetSecretValue, denied it without TLS.
fn tls_only_user(dir: &Path) {
    write(
        dir,
        &format!("accounts/{HOME}/users/tls-only.json"),
        r#"{"UserName":"tls-only","InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"},
            {"Effect":"Deny","Action":"*","Resource":"*",
             "Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}}}"#,
    );
}

/// Finding: `aws:SecureTransport` was false even on the TLS listener, so a policy requiring
/// TLS refused every request (and one denying TLS allowed every one).
#[tokio::test]
async fn secure_transport_is_true_on_tls_only() {
    let (_t, dir) = example_policies();
    tls_only_user(&dir);
    let tls = start(&dir, &[], true);
    let (k, sk) = mint(&tls, &dir, "tls-only");
    let create = crate::common::signed_request(
        "secretsmanager.CreateSecret",
        br#"{"Name":"t/db","SecretString":"v","ClientRequestToken":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#,
        crate::common::Signing::default(),
    );
    assert_eq!(crate::common::send_tls(tls.addr, &create).status, 200);
    // Positive control: over TLS the request is allowed.
    let r = crate::common::send_tls(tls.addr, &get_request(&k, &sk, "t/db", &[]));
    assert_eq!(r.status, 200, "{}", r.body);

    // Plain HTTP: denied, and a forged X-Forwarded-Proto from an untrusted peer changes
    // nothing; from a trusted proxy that terminated TLS it is believed.
    let plain = start(&dir, &["127.0.0.2/32"], false);
    let (k, sk) = mint(&plain, &dir, "tls-only");
    plain
        .client()
        .create_secret()
        .name("t/db")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let r = plain.raw(&get_request(&k, &sk, "t/db", &[]));
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let forged = get_request(&k, &sk, "t/db", &[("x-forwarded-proto", "https")]);
    let r = send_from("127.0.0.3", plain.addr, &forged);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let r = send_from("127.0.0.2", plain.addr, &forged);
    assert_eq!(r.status, 200, "{}", r.body);
}

fn new_key(s: &TestServer) -> (String, String) {
    let r = s.call("TrentService.CreateKey", r#"{"Description":"k"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let m = &r.json()["KeyMetadata"];
    (
        m["KeyId"].as_str().unwrap().to_owned(),
        m["Arn"].as_str().unwrap().to_owned(),
    )
}

/// Finding: a version was decrypted with the permissions of the secret's current key: after
/// the secret moved to another key, a caller allowed only the new key read old versions.
#[tokio::test]
async fn a_version_is_read_with_the_key_that_sealed_it() {
    let (_t, dir) = example_policies();
    let s = start(&dir, &[], false);
    let (old_id, _) = new_key(&s);
    let (new_id, new_arn) = new_key(&s);
    write(
        &dir,
        &format!("accounts/{HOME}/users/reader.json"),
        &format!(
            r#"{{"UserName":"reader","InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":["secretsmanager:GetSecretValue","secretsmanager:BatchGetSecretValue"],"Resource":"*"}},
                {{"Effect":"Allow","Action":"kms:Decrypt","Resource":"{new_arn}"}}]}}}}}}"#
        ),
    );
    let c = s.client();
    let first = c
        .create_secret()
        .name("moved")
        .secret_string("under-old-key")
        .kms_key_id(&old_id)
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    // Two more values: the first loses its labels (a version kept by VersionId only).
    for v in ["second", "third"] {
        c.put_secret_value()
            .secret_id("moved")
            .secret_string(v)
            .send()
            .await
            .unwrap();
    }
    // Moving the secret to another key re-encrypts the labelled versions only (as AWS).
    c.update_secret()
        .secret_id("moved")
        .kms_key_id(&new_id)
        .send()
        .await
        .unwrap();
    let (k, sk) = mint(&s, &dir, "reader");
    let get =
        |body: serde_json::Value| call_as(&s, &k, &sk, "secretsmanager.GetSecretValue", &body);
    // Positive control: the current version, under the key the reader may use (once the
    // server has loaded the user written after it started).
    let r = eventually(
        || get(serde_json::json!({"SecretId": "moved"})),
        |r| r.status == 200,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["SecretString"], "third");
    let r = get(serde_json::json!({"SecretId": "moved", "VersionStage": "AWSPREVIOUS"}));
    assert_eq!(r.json()["SecretString"], "second", "{}", r.body);
    // The first version is still sealed under the old key: refused.
    let r = get(serde_json::json!({"SecretId": "moved", "VersionId": first}));
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    assert!(r.body.contains("kms:Decrypt"), "{}", r.body);
    assert!(!r.body.contains("under-old-key"));
    // The owner (the account root) still reads it.
    let v = c
        .get_secret_value()
        .secret_id("moved")
        .version_id(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(v.secret_string(), Some("under-old-key"));
    // BatchGetSecretValue reads AWSCURRENT, re-encrypted under the new key: allowed.
    let r = call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.BatchGetSecretValue",
        &serde_json::json!({"SecretIdList": ["moved"]}),
    );
    assert_eq!(
        r.json()["SecretValues"][0]["SecretString"],
        "third",
        "{}",
        r.body
    );
}

/// A user who may read `team=a` secrets (by tag) and run BatchGetSecretValue, with
/// `secretsmanager:ListSecrets` when `list`.
fn tagged_reader(dir: &Path, name: &str, list: bool) {
    let mut actions = vec!["secretsmanager:BatchGetSecretValue"];
    if list {
        actions.push("secretsmanager:ListSecrets");
    }
    write(
        dir,
        &format!("accounts/{HOME}/users/{name}.json"),
        &format!(
            r#"{{"UserName":"{name}","InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":{},"Resource":"*"}},
                {{"Effect":"Allow","Action":["secretsmanager:GetSecretValue","secretsmanager:DescribeSecret"],"Resource":"*",
                  "Condition":{{"StringEquals":{{"aws:ResourceTag/team":"a"}}}}}}]}}}}}}"#,
            serde_json::to_string(&actions).unwrap()
        ),
    );
}

/// Findings: BatchGetSecretValue with Filters did not require `secretsmanager:ListSecrets`,
/// and its `Errors` named the secrets the caller may not read; a denial named an existing
/// secret's full ARN and a missing one's bare name (and BatchGet answered ResourceNotFound
/// for one, AccessDenied for the other): existence oracles.
#[tokio::test]
async fn no_listing_or_existence_oracle() {
    let (_t, dir) = example_policies();
    tagged_reader(&dir, "lister", true);
    tagged_reader(&dir, "nolist", false);
    let s = start(&dir, &[], false);
    let c = s.client();
    for (name, team) in [("app/one", "a"), ("app/two", "a"), ("app/hidden", "b")] {
        c.create_secret()
            .name(name)
            .secret_string(format!("value-of-{name}"))
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
    // A resource policy that denies: its reason must not show through either.
    c.put_resource_policy()
        .secret_id("app/hidden")
        .resource_policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"*"},"Action":"secretsmanager:*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/x":"y"}}},{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/lister"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#,
        )
        .send()
        .await
        .unwrap();
    let filter = serde_json::json!({"Filters": [{"Key": "name", "Values": ["app/"]}]});
    let (nk, ns) = mint(&s, &dir, "nolist");
    let r = call_as(&s, &nk, &ns, "secretsmanager.BatchGetSecretValue", &filter);
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    assert!(r.body.contains("secretsmanager:ListSecrets"), "{}", r.body);
    assert!(!r.body.contains("value-of"), "{}", r.body);

    let (lk, ls) = mint(&s, &dir, "lister");
    let r = call_as(&s, &lk, &ls, "secretsmanager.BatchGetSecretValue", &filter);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let names: Vec<&str> = v["SecretValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{v}");
    assert!(
        names.contains(&"app/one") && names.contains(&"app/two"),
        "{v}"
    );
    assert_eq!(v["Errors"], serde_json::json!([]), "{v}");
    assert!(!r.body.contains("hidden"), "{}", r.body);

    // An existing secret the caller may not read and a missing one answer alike.
    let get = |id: &str| {
        call_as(
            &s,
            &lk,
            &ls,
            "secretsmanager.GetSecretValue",
            &serde_json::json!({ "SecretId": id }),
        )
    };
    let hidden = get("app/hidden");
    let missing = get("app/missing");
    assert_eq!(
        hidden.error_type(),
        "AccessDeniedException",
        "{}",
        hidden.body
    );
    assert_eq!(
        missing.error_type(),
        "AccessDeniedException",
        "{}",
        missing.body
    );
    let m = |r: &crate::common::RawResponse| {
        r.json()["Message"].as_str().unwrap_or("").to_owned()
            + r.json()["message"].as_str().unwrap_or("")
    };
    assert_eq!(
        m(&hidden).replace("app/hidden", "NAME"),
        m(&missing).replace("app/missing", "NAME"),
        "{} / {}",
        hidden.body,
        missing.body
    );
    assert!(m(&hidden).ends_with("secret:app/hidden"), "{}", hidden.body);
    // DescribeSecret too.
    let d = |id: &str| {
        call_as(
            &s,
            &lk,
            &ls,
            "secretsmanager.DescribeSecret",
            &serde_json::json!({ "SecretId": id }),
        )
    };
    let (dh, dm) = (d("app/hidden"), d("app/missing"));
    assert_eq!(dh.error_type(), "AccessDeniedException", "{}", dh.body);
    assert_eq!(
        m(&dh).replace("app/hidden", "NAME"),
        m(&dm).replace("app/missing", "NAME")
    );
    // BatchGet by id: both AccessDenied, same message shape.
    let r = call_as(
        &s,
        &lk,
        &ls,
        "secretsmanager.BatchGetSecretValue",
        &serde_json::json!({"SecretIdList": ["app/hidden", "app/missing", "app/one"]}),
    );
    let v = r.json();
    assert_eq!(v["SecretValues"].as_array().unwrap().len(), 1, "{v}");
    let errs = v["Errors"].as_array().unwrap();
    assert_eq!(errs.len(), 2, "{v}");
    for e in errs {
        assert_eq!(e["ErrorCode"], "AccessDeniedException", "{v}");
    }
    assert_eq!(
        errs[0]["Message"]
            .as_str()
            .unwrap()
            .replace("app/hidden", "NAME"),
        errs[1]["Message"]
            .as_str()
            .unwrap()
            .replace("app/missing", "NAME"),
        "{v}"
    );
    // Positive control: a missing secret the caller may read answers ResourceNotFound.
    write(
        &dir,
        &format!("accounts/{HOME}/users/lister.json"),
        r#"{"UserName":"lister","InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}]}}}"#,
    );
    let r = eventually(
        || get("app/missing"),
        |r| r.error_type() == "ResourceNotFoundException",
    );
    assert_eq!(r.error_type(), "ResourceNotFoundException", "{}", r.body);
    // ... and the resource policy's explicit deny still refuses the existing one.
    assert_eq!(get("app/hidden").error_type(), "AccessDeniedException");
}

/// Finding: errors on a decision path ended in allow: a stored resource policy that cannot be
/// parsed was dropped with its Deny statements.
#[tokio::test]
async fn an_unreadable_resource_policy_refuses() {
    let (_t, dir) = example_policies();
    user_allowing(&dir, HOME, "reader", &["secretsmanager:GetSecretValue"]);
    let s = start(&dir, &[], false);
    s.client()
        .create_secret()
        .name("guarded")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let (k, sk) = mint(&s, &dir, "reader");
    let get = || {
        call_as(
            &s,
            &k,
            &sk,
            "secretsmanager.GetSecretValue",
            &serde_json::json!({"SecretId": "guarded"}),
        )
    };
    assert_eq!(get().status, 200, "positive control");
    // A policy text the evaluator cannot read (as a damaged row, or one written by a
    // different version) lands in the store.
    {
        use diesel::{Connection, RunQueryDsl};
        let path = s.database_url.trim_start_matches("sqlite://").to_owned();
        let mut conn = diesel::SqliteConnection::establish(&path).unwrap();
        diesel::sql_query("PRAGMA busy_timeout = 10000")
            .execute(&mut conn)
            .unwrap();
        diesel::sql_query(
            "UPDATE secrets SET resource_policy = '{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":\"secretsmanager:*\",\"Resource\":\"*\",\"Condition\":{\"NoSuchOperator\":{\"a\":\"b\"}}}]}' WHERE name = 'guarded'",
        )
        .execute(&mut conn)
        .unwrap();
    }
    let r = get();
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let recs = recorded(
        &s,
        "GetSecretValue",
        &format!("arn:aws:iam::{HOME}:user/reader"),
    );
    let last = recs.last().unwrap();
    assert!(
        last["authorization"]["reason"]
            .as_str()
            .unwrap()
            .contains("resource policy cannot be read"),
        "{last}"
    );
}

/// AWS refuses another account's use of a secret under the default key
/// (`aws/secretsmanager`), reads and writes alike: the other account could never decrypt it.
#[tokio::test]
async fn another_account_cannot_use_the_default_key() {
    let (_t, dir) = example_policies();
    user_allowing(
        &dir,
        OTHER,
        "outsider",
        &["secretsmanager:*", "kms:Decrypt", "kms:GenerateDataKey"],
    );
    let s = start(&dir, &[], false);
    let c = s.client();
    let arn = c
        .create_secret()
        .name("shared")
        .secret_string("home-value")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    c.put_resource_policy()
        .secret_id("shared")
        .resource_policy(format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OTHER}:root"}},"Action":"secretsmanager:*","Resource":"*"}}]}}"#
        ))
        .send()
        .await
        .unwrap();
    let (k, sk) = key_for(&s, &dir, OTHER, "outsider");
    const MSG: &str = "You can't access a secret from a different AWS account if you encrypt the secret with the default KMS service key.";
    let r = call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.GetSecretValue",
        &serde_json::json!({ "SecretId": arn }),
    );
    assert_eq!(r.error_type(), "InvalidRequestException", "{}", r.body);
    assert!(r.body.contains(MSG), "{}", r.body);
    let r = call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.PutSecretValue",
        &serde_json::json!({
            "SecretId": arn,
            "SecretString": "planted",
            "ClientRequestToken": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
        }),
    );
    assert_eq!(r.error_type(), "InvalidRequestException", "{}", r.body);
    assert!(r.body.contains(MSG), "{}", r.body);
    // Nothing was written: the owner still reads its own value, in one version.
    let v = c
        .get_secret_value()
        .secret_id("shared")
        .send()
        .await
        .unwrap();
    assert_eq!(v.secret_string(), Some("home-value"));
    let versions = c
        .list_secret_version_ids()
        .secret_id("shared")
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 1);
    // Positive control: the resource policy does let the other account describe it.
    let r = call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.DescribeSecret",
        &serde_json::json!({ "SecretId": arn }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

const HMAC: &str = "attacker-test-provider-hmac-0123456789";

/// An OIDC provider `https://ci.attack.test` (HS256) and two roles: `deployer` trusts its
/// tokens for `repo:payments/*`, `admin-role` trusts only `repo:admin/*`.
fn web_identity(dir: &Path) {
    write(
        dir,
        &format!("accounts/{HOME}/identity-providers/ci.hmac"),
        HMAC,
    );
    write(
        dir,
        &format!("accounts/{HOME}/identity-providers/ci.json"),
        r#"{"Issuer":"https://ci.attack.test","Audiences":["strongroom"],"HmacSecretFile":"ci.hmac","Algorithms":["HS256"]}"#,
    );
    for (role, sub) in [
        ("deployer", "repo:payments/*"),
        ("admin-role", "repo:admin/*"),
    ] {
        write(
            dir,
            &format!("accounts/{HOME}/roles/{role}.json"),
            &format!(
                r#"{{"RoleName":"{role}","InlinePolicies":{{"all":{{"Version":"2012-10-17","Statement":[
                    {{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}}]}}}},
                  "AssumeRolePolicyDocument":{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow",
                    "Principal":{{"Federated":"https://ci.attack.test"}},"Action":"sts:AssumeRoleWithWebIdentity",
                    "Condition":{{"StringEquals":{{"ci.attack.test:aud":"strongroom"}},
                                 "StringLike":{{"ci.attack.test:sub":"{sub}"}}}}}}]}}}}"#
            ),
        );
    }
}

fn token(sub: &str) -> String {
    let now = crate::common::now_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"iss":"https://ci.attack.test","aud":"strongroom","sub":sub,"exp":now+600,"iat":now}),
        &jsonwebtoken::EncodingKey::from_secret(HMAC.as_bytes()),
    )
    .unwrap()
}

/// A request with `Authorization: Bearer`, naming `role`: form-encoded (Query protocol)
/// when `target` is `None`, else JSON for `target`.
fn bearer(
    s: &TestServer,
    jwt: &str,
    role: &str,
    target: Option<&str>,
    body: &str,
) -> crate::common::RawResponse {
    let (ctype, target) = match target {
        Some(t) => (
            "application/x-amz-json-1.1",
            format!("x-amz-target: {t}\r\n"),
        ),
        None => ("application/x-www-form-urlencoded", String::new()),
    };
    s.raw(
        format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {jwt}\r\nx-strongroom-role: arn:aws:iam::{HOME}:role/{role}\r\ncontent-type: {ctype}\r\n{target}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// Bearer callers: the named role's trust policy decides (a token the role does not trust
/// is refused on every protocol), and the Query protocol (STS, IAM) accepts them too.
#[tokio::test]
async fn bearer_callers_on_both_protocols_need_the_role_trust() {
    let (_t, dir) = example_policies();
    web_identity(&dir);
    let s = start(&dir, &[], false);
    s.client()
        .create_secret()
        .name("payments/db")
        .secret_string("p")
        .send()
        .await
        .unwrap();
    let ok = token("repo:payments/api");
    let who = "Action=GetCallerIdentity&Version=2011-06-15";
    // Positive control: the trusted token, on the Query protocol and on JSON.
    let r = bearer(&s, &ok, "deployer", None, who);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .contains(&format!("<Arn>arn:aws:sts::{HOME}:assumed-role/deployer/")),
        "{}",
        r.body
    );
    let get = r#"{"SecretId":"payments/db"}"#;
    let r = bearer(
        &s,
        &ok,
        "deployer",
        Some("secretsmanager.GetSecretValue"),
        get,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // The same token naming a role that does not trust it.
    let r = bearer(&s, &ok, "admin-role", None, who);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("<Code>AccessDenied</Code>"), "{}", r.body);
    let r = bearer(
        &s,
        &ok,
        "admin-role",
        Some("secretsmanager.GetSecretValue"),
        get,
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    // A role that trusts no web identity at all.
    let r = bearer(&s, &ok, "service/payments-app", None, who);
    assert_eq!(r.status, 403, "{}", r.body);
    // A token signed with another key.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"iss":"https://ci.attack.test","aud":"strongroom","sub":"repo:payments/api","exp":crate::common::now_secs()+600}),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-provider-key-000000000000"),
    )
    .unwrap();
    let r = bearer(&s, &forged, "deployer", None, who);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("InvalidIdentityToken"), "{}", r.body);
}

/// Finding: the IAM simulator answered NoSuchEntity before authorizing, authorized in the
/// caller's own account (so another account's principals could be simulated), and its
/// context lacked keys a real request has (region, time, organization).
#[tokio::test]
async fn the_simulator_authorizes_first_in_the_subject_account() {
    let (_t, dir) = example_policies();
    user_allowing(&dir, HOME, "simulator", &["iam:SimulatePrincipalPolicy"]);
    user_allowing(
        &dir,
        HOME,
        "nobody-special",
        &["secretsmanager:ListSecrets"],
    );
    user_allowing(&dir, OTHER, "victim", &["secretsmanager:*"]);
    write(
        &dir,
        &format!("accounts/{HOME}/users/regional.json"),
        r#"{"UserName":"regional","InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*",
             "Condition":{"StringEquals":{"aws:RequestedRegion":"us-east-1"},
                          "DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}}]}}}"#,
    );
    let s = start(&dir, &[], false);
    let simulate = |akid: &str, secret: &str, source: &str| {
        s.raw(&signed_query(
            &format!(
                "Action=SimulatePrincipalPolicy&Version=2010-05-08&PolicySourceArn={}&ActionNames.member.1=secretsmanager%3AGetSecretValue",
                urlenc(source)
            ),
            crate::common::Signing {
                akid: akid.into(),
                secret: secret.into(),
                service: "iam".into(),
                ..crate::common::Signing::default()
            },
        ))
    };
    let (k, sk) = mint(&s, &dir, "simulator");
    // Another account's user: not the caller's to simulate.
    let r = simulate(&k, &sk, &format!("arn:aws:iam::{OTHER}:user/victim"));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(!r.body.contains("EvalDecision"), "{}", r.body);
    // A caller without the permission learns nothing about who exists.
    let (nk, ns) = mint(&s, &dir, "nobody-special");
    let missing = simulate(&nk, &ns, &format!("arn:aws:iam::{HOME}:user/ghost"));
    let present = simulate(&nk, &ns, &format!("arn:aws:iam::{HOME}:user/regional"));
    assert_eq!(missing.status, 403, "{}", missing.body);
    assert_eq!(present.status, 403, "{}", present.body);
    // Positive controls: the allowed caller gets NoSuchEntity for a missing user, and the
    // simulation of a region- and time-conditioned policy matches the real request.
    let r = simulate(&k, &sk, &format!("arn:aws:iam::{HOME}:user/ghost"));
    assert_eq!(r.status, 404, "{}", r.body);
    let r = simulate(&k, &sk, &format!("arn:aws:iam::{HOME}:user/regional"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<EvalDecision>allowed</EvalDecision>"),
        "{}",
        r.body
    );
    s.client()
        .create_secret()
        .name("regional/db")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let (rk, rs) = mint(&s, &dir, "regional");
    let r = call_as(
        &s,
        &rk,
        &rs,
        "secretsmanager.GetSecretValue",
        &serde_json::json!({"SecretId": "regional/db"}),
    );
    assert_eq!(r.status, 200, "the real request agrees: {}", r.body);
}

/// Session tags whose keys differ only in case would both feed `aws:PrincipalTag/k`, one
/// shadowing the other (an ABAC guardrail on `Team` bypassed with `team`): refused, as IAM
/// treats tag keys case-insensitively. A session with distinct keys still gets them.
#[tokio::test]
async fn session_tags_differing_only_in_case_are_refused() {
    let (_t, dir) = example_policies();
    let s = start(&dir, &[], false);
    let (ck, cs) = mint(&s, &dir, "ci-bot");
    let role = urlenc("arn:aws:iam::111122223333:role/service/payments-app");
    let tagged = |tags: &str| {
        s.raw(&signed_query(
            &format!(
                "Action=AssumeRole&Version=2011-06-15&RoleArn={role}&RoleSessionName=tags{tags}"
            ),
            sts_as(&ck, &cs),
        ))
    };
    let r = tagged("&Tags.member.1.Key=Team&Tags.member.1.Value=red&Tags.member.2.Key=team&Tags.member.2.Value=blue");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("<Code>ValidationError</Code>"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("Tag keys are case insensitive"),
        "{}",
        r.body
    );
    let r = tagged("&Tags.member.1.Key=team&Tags.member.1.Value=red&Tags.member.2.Key=env&Tags.member.2.Value=prod");
    assert_eq!(r.status, 200, "{}", r.body);
}
