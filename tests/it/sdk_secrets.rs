//! Secrets Manager behaviour through the official SDK.

use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};

use crate::common::{code, message, TestServer, MARKER};

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

/// The whole lifecycle; run on SQLite here and on PostgreSQL in `store_backends`.
pub async fn lifecycle(server: &TestServer) {
    let c = server.client();
    let value = format!("{{\"password\":\"{MARKER}\"}}");

    // create + get
    let created = c
        .create_secret()
        .name("app/db")
        .secret_string(&value)
        .description("the database")
        .tags(tag("team", "payments"))
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap().to_owned();
    let prefix = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-";
    assert!(arn.starts_with(prefix), "{arn}");
    assert_eq!(arn.len(), prefix.len() + 6);
    let v1 = created.version_id().unwrap().to_owned();
    let got = c
        .get_secret_value()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some(value.as_str()));
    assert_eq!(got.version_id(), Some(v1.as_str()));
    assert_eq!(got.version_stages(), ["AWSCURRENT"]);
    assert!(got.created_date().is_some());

    // by full ARN and by partial ARN (no suffix)
    let by_arn = c.get_secret_value().secret_id(&arn).send().await.unwrap();
    assert_eq!(by_arn.arn(), Some(arn.as_str()));
    let partial = &arn[..arn.len() - 7];
    let by_partial = c
        .get_secret_value()
        .secret_id(partial)
        .send()
        .await
        .unwrap();
    assert_eq!(by_partial.arn(), Some(arn.as_str()));

    // duplicate name
    let dup = c
        .create_secret()
        .name("app/db")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&dup), "ResourceExistsException");

    // put: new current, previous follows
    let put = c
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("v2")
        .send()
        .await
        .unwrap();
    let v2 = put.version_id().unwrap().to_owned();
    assert_eq!(put.version_stages(), ["AWSCURRENT"]);
    let cur = c
        .get_secret_value()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(cur.secret_string(), Some("v2"));
    let prev = c
        .get_secret_value()
        .secret_id("app/db")
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .unwrap();
    assert_eq!(prev.secret_string(), Some(value.as_str()));
    assert_eq!(prev.version_id(), Some(v1.as_str()));
    // by version id
    let pinned = c
        .get_secret_value()
        .secret_id("app/db")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(pinned.secret_string(), Some(value.as_str()));
    let e = c
        .get_secret_value()
        .secret_id("app/db")
        .version_id(&v1)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    assert_eq!(
        message(&e),
        "You provided a VersionStage that is not associated to the provided VersionId."
    );

    // pending does not move current
    let token = "00000000-0000-0000-0000-00000000pend";
    let pending = c
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("v3")
        .client_request_token(token)
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    assert_eq!(pending.version_stages(), ["AWSPENDING"]);
    let cur = c
        .get_secret_value()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(cur.version_id(), Some(v2.as_str()));

    // idempotency: same token + same value is a no-op, different value is refused
    let again = c
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("v3")
        .client_request_token(token)
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    assert_eq!(again.version_id(), Some(token));
    let clash = c
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("other")
        .client_request_token(token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&clash), "ResourceExistsException");
    let short = c
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("x")
        .client_request_token("short")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&short), "InvalidParameterException");

    // describe
    let d = c
        .describe_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(d.description(), Some("the database"));
    assert_eq!(d.tags().len(), 1);
    assert!(d.kms_key_id().is_none(), "default key is omitted");
    let stages = d.version_ids_to_stages().unwrap();
    assert_eq!(stages.get(&v2).unwrap(), &vec!["AWSCURRENT".to_owned()]);
    assert_eq!(stages.get(&v1).unwrap(), &vec!["AWSPREVIOUS".to_owned()]);
    assert_eq!(stages.get(token).unwrap(), &vec!["AWSPENDING".to_owned()]);

    // move AWSCURRENT to the pending version
    let e = c
        .update_secret_version_stage()
        .secret_id("app/db")
        .version_stage("AWSCURRENT")
        .move_to_version_id(token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException");
    c.update_secret_version_stage()
        .secret_id("app/db")
        .version_stage("AWSCURRENT")
        .move_to_version_id(token)
        .remove_from_version_id(&v2)
        .send()
        .await
        .unwrap();
    let cur = c
        .get_secret_value()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(cur.secret_string(), Some("v3"));
    let prev = c
        .get_secret_value()
        .secret_id("app/db")
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .unwrap();
    assert_eq!(prev.version_id(), Some(v2.as_str()));

    // list versions: v1 is now deprecated (no label)
    let versions = c
        .list_secret_version_ids()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = versions
        .versions()
        .iter()
        .filter_map(|v| v.version_id())
        .collect();
    assert!(!ids.contains(&v1.as_str()), "{ids:?}");
    let all = c
        .list_secret_version_ids()
        .secret_id("app/db")
        .include_deprecated(true)
        .send()
        .await
        .unwrap();
    assert_eq!(all.versions().len(), 3);

    // update metadata and value
    c.update_secret()
        .secret_id("app/db")
        .description("new description")
        .send()
        .await
        .unwrap();
    let up = c
        .update_secret()
        .secret_id("app/db")
        .secret_string("v4")
        .send()
        .await
        .unwrap();
    assert!(up.version_id().is_some());
    assert_eq!(
        c.get_secret_value()
            .secret_id("app/db")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("v4")
    );

    // tags
    c.tag_resource()
        .secret_id("app/db")
        .tags(tag("env", "prod"))
        .send()
        .await
        .unwrap();
    c.untag_resource()
        .secret_id("app/db")
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let d = c
        .describe_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = d.tags().iter().filter_map(|t| t.key()).collect();
    assert_eq!(keys, ["env"]);
    assert_eq!(d.description(), Some("new description"));

    // binary
    let bytes: Vec<u8> = (0..=255u8).collect();
    c.create_secret()
        .name("app/cert")
        .secret_binary(Blob::new(bytes.clone()))
        .send()
        .await
        .unwrap();
    let b = c
        .get_secret_value()
        .secret_id("app/cert")
        .send()
        .await
        .unwrap();
    assert_eq!(b.secret_binary().unwrap().as_ref(), bytes.as_slice());
    assert!(b.secret_string().is_none());

    // list with filters
    let l = c
        .list_secrets()
        .filters(
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values("app/")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(l.secret_list().len(), 2);
    let l = c
        .list_secrets()
        .filters(
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values("!app/c")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let names: Vec<_> = l.secret_list().iter().filter_map(|s| s.name()).collect();
    assert_eq!(names, ["app/db"]);
    let l = c
        .list_secrets()
        .filters(
            Filter::builder()
                .key(FilterNameStringType::TagKey)
                .values("env")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(l.secret_list().len(), 1);

    // pagination
    let mut pages = c.list_secrets().max_results(1).into_paginator().send();
    let mut seen = 0;
    while let Some(page) = pages.next().await {
        seen += page.unwrap().secret_list().len();
    }
    assert_eq!(seen, 2);

    // batch get: two found, one missing
    let batch = c
        .batch_get_secret_value()
        .secret_id_list("app/db")
        .secret_id_list("app/cert")
        .secret_id_list("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(batch.secret_values().len(), 2);
    assert_eq!(batch.errors().len(), 1);
    assert_eq!(
        batch.errors()[0].error_code(),
        Some("ResourceNotFoundException")
    );

    // delete with a recovery window, reads refused, restore
    let e = c
        .delete_secret()
        .secret_id("app/db")
        .recovery_window_in_days(7)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException");
    let e = c
        .delete_secret()
        .secret_id("app/db")
        .recovery_window_in_days(6)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException");
    let del = c
        .delete_secret()
        .secret_id("app/db")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert!(del.deletion_date().is_some());
    let e = c
        .get_secret_value()
        .secret_id("app/db")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let e = c
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    assert_eq!(
        c.list_secrets().send().await.unwrap().secret_list().len(),
        1
    );
    assert_eq!(
        c.list_secrets()
            .include_planned_deletion(true)
            .send()
            .await
            .unwrap()
            .secret_list()
            .len(),
        2
    );
    let e = c
        .create_secret()
        .name("app/db")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    c.restore_secret().secret_id("app/db").send().await.unwrap();
    assert_eq!(
        c.get_secret_value()
            .secret_id("app/db")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("v4")
    );

    // force delete: gone at once, name reusable
    c.delete_secret()
        .secret_id("app/db")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let e = c
        .describe_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    assert_eq!(
        message(&e),
        "Secrets Manager can't find the specified secret."
    );
    let again = c
        .create_secret()
        .name("app/db")
        .secret_string("fresh")
        .send()
        .await
        .unwrap();
    assert_ne!(
        again.arn(),
        Some(arn.as_str()),
        "a new secret gets a new suffix"
    );
    // force-deleting an unknown secret succeeds
    c.delete_secret()
        .secret_id("never-existed")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();

    // random password
    let p = c
        .get_random_password()
        .password_length(40)
        .exclude_punctuation(true)
        .send()
        .await
        .unwrap();
    let pw = p.random_password().unwrap();
    assert_eq!(pw.len(), 40);
    assert!(pw.chars().all(|ch| ch.is_ascii_alphanumeric()));
    let e = c
        .get_random_password()
        .password_length(5000)
        .send()
        .await
        .unwrap_err();
    assert!(
        code(&e).contains("Validation") || code(&e).contains("InvalidParameter"),
        "{}",
        code(&e)
    );
}

#[tokio::test]
async fn lifecycle_on_sqlite() {
    let server = TestServer::start();
    lifecycle(&server).await;
}

#[tokio::test]
async fn regions_are_separate_and_unserved_regions_refused() {
    let server = TestServer::start();
    let us = server.client();
    let eu = server.client_in("eu-west-1", crate::common::AKID, crate::common::SECRET);
    us.create_secret()
        .name("shared-name")
        .secret_string("us")
        .send()
        .await
        .unwrap();
    let e = eu
        .get_secret_value()
        .secret_id("shared-name")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    let eu_made = eu
        .create_secret()
        .name("shared-name")
        .secret_string("eu")
        .send()
        .await
        .unwrap();
    assert!(eu_made
        .arn()
        .unwrap()
        .starts_with("arn:aws:secretsmanager:eu-west-1:"));
    assert_eq!(
        us.get_secret_value()
            .secret_id("shared-name")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("us")
    );
    let ap = server.client_in("ap-south-1", crate::common::AKID, crate::common::SECRET);
    let e = ap.list_secrets().send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    assert!(message(&e).contains("ap-south-1"));
}

#[tokio::test]
async fn authentication_errors() {
    let server = TestServer::start();
    let bad_key = server.client_in("us-east-1", "AKIANOTKNOWN00000000", "whatever");
    let e = bad_key.list_secrets().send().await.unwrap_err();
    assert_eq!(code(&e), "UnrecognizedClientException");
    let bad_secret = server.client_in("us-east-1", crate::common::AKID, "wrong-secret");
    let e = bad_secret.list_secrets().send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidSignatureException");
}

#[tokio::test]
async fn validation_errors() {
    let server = TestServer::start();
    let c = server.client();
    let e = c
        .create_secret()
        .name("bad name!")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationException");
    let e = c
        .create_secret()
        .name("both")
        .secret_string("x")
        .secret_binary(Blob::new(b"y".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException");
    let big = "x".repeat(65_537);
    let e = c
        .create_secret()
        .name("big")
        .secret_string(big)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationException");
    c.create_secret()
        .name("max")
        .secret_string("x".repeat(65_536))
        .send()
        .await
        .unwrap();
    let e = c
        .create_secret()
        .name("reserved")
        .secret_string("x")
        .tags(tag("aws:owner", "me"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException");
    let e = c
        .put_secret_value()
        .secret_id("max")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    assert_eq!(
        message(&e),
        "You must provide either SecretString or SecretBinary."
    );
    // a secret without a value
    c.create_secret().name("empty").send().await.unwrap();
    let e = c
        .get_secret_value()
        .secret_id("empty")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    assert_eq!(
        message(&e),
        "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT"
    );
    // its first value becomes AWSCURRENT even when asked for AWSPENDING only
    let p = c
        .put_secret_value()
        .secret_id("empty")
        .secret_string("first")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    let mut st = p.version_stages().to_vec();
    st.sort();
    assert_eq!(st, ["AWSCURRENT", "AWSPENDING"]);
}
