//! The KMS subset and customer keys protecting secrets (raw signed JSON requests).

use crate::common::{code, TestServer};

#[tokio::test]
async fn customer_key_protects_secrets_and_disabling_blocks_reads() {
    let s = TestServer::start();
    let r = s.call("TrentService.CreateKey", r#"{"Description":"it key"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let meta = &r.json()["KeyMetadata"];
    let key_id = meta["KeyId"].as_str().unwrap().to_owned();
    let key_arn = meta["Arn"].as_str().unwrap().to_owned();
    assert_eq!(meta["KeyState"], "Enabled");
    assert_eq!(meta["KeyManager"], "CUSTOMER");

    let r = s.call(
        "TrentService.CreateAlias",
        &format!(r#"{{"AliasName":"alias/it-key","TargetKeyId":"{key_id}"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.call(
        "TrentService.CreateAlias",
        &format!(r#"{{"AliasName":"alias/it-key","TargetKeyId":"{key_id}"}}"#),
    );
    assert_eq!(r.error_type(), "AlreadyExistsException");

    let c = s.client();
    c.create_secret()
        .name("kms/secret")
        .secret_string("protected")
        .kms_key_id("alias/it-key")
        .send()
        .await
        .unwrap();
    let d = c
        .describe_secret()
        .secret_id("kms/secret")
        .send()
        .await
        .unwrap();
    assert_eq!(d.kms_key_id(), Some(key_arn.as_str()));
    assert_eq!(
        c.get_secret_value()
            .secret_id("kms/secret")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("protected")
    );

    // disabled key: reads and writes fail as AWS does
    let r = s.call(
        "TrentService.DisableKey",
        &format!(r#"{{"KeyId":"{key_id}"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let e = c
        .get_secret_value()
        .secret_id("kms/secret")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "DecryptionFailure");
    let e = c
        .put_secret_value()
        .secret_id("kms/secret")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "EncryptionFailure");
    let r = s.call(
        "TrentService.EnableKey",
        &format!(r#"{{"KeyId":"{key_id}"}}"#),
    );
    assert_eq!(r.status, 200);

    // rotation keeps old versions readable, new versions use the new material
    let r = s.call(
        "TrentService.RotateKeyOnDemand",
        &format!(r#"{{"KeyId":"{key_id}"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    c.put_secret_value()
        .secret_id("kms/secret")
        .secret_string("after-rotation")
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.get_secret_value()
            .secret_id("kms/secret")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("after-rotation")
    );
    assert_eq!(
        c.get_secret_value()
            .secret_id("kms/secret")
            .version_stage("AWSPREVIOUS")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("protected")
    );

    // listing
    let r = s.call("TrentService.ListKeys", "{}");
    assert!(r.body.contains(&key_id));
    let r = s.call("TrentService.ListAliases", "{}");
    assert!(r.body.contains("alias/it-key"));
    // a marker this server did not issue is KMS's InvalidMarkerException
    for (target, marker) in [
        ("TrentService.ListKeys", "***"),
        ("TrentService.ListKeys", "bm9jb2xvbg"), // "nocolon": not a cursor of ours
        ("TrentService.ListAliases", "***"),
    ] {
        let r = s.call(target, &format!(r#"{{"Marker":"{marker}"}}"#));
        assert_eq!(
            r.error_type(),
            "InvalidMarkerException",
            "{target} {marker}: {}",
            r.body
        );
    }
    // the managed key exists after a secret used the default
    c.create_secret()
        .name("default-key")
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let r = s.call(
        "TrentService.DescribeKey",
        r#"{"KeyId":"alias/aws/secretsmanager"}"#,
    );
    assert_eq!(r.json()["KeyMetadata"]["KeyManager"], "AWS");

    // scheduled deletion blocks use
    let r = s.call(
        "TrentService.ScheduleKeyDeletion",
        &format!(r#"{{"KeyId":"{key_id}","PendingWindowInDays":7}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let e = c
        .get_secret_value()
        .secret_id("kms/secret")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "DecryptionFailure");
    let r = s.call(
        "TrentService.CancelKeyDeletion",
        &format!(r#"{{"KeyId":"{key_id}"}}"#),
    );
    assert_eq!(r.status, 200);

    // unknown keys
    let r = s.call("TrentService.DescribeKey", r#"{"KeyId":"alias/nope"}"#);
    assert_eq!(r.error_type(), "NotFoundException");
    let e = c
        .create_secret()
        .name("bad-key")
        .secret_string("x")
        .kms_key_id("alias/nope")
        .send()
        .await
        .unwrap_err();
    // (AWS answers an unknown KmsKeyId with InvalidParameterException: boto/boto3#1533)
    assert_eq!(code(&e), "InvalidParameterException");
    assert_eq!(
        crate::common::message(&e),
        "Secrets Manager can't find the specified KMS key: alias/nope"
    );
}

/// A list operation's marker pages only that operation: ListKeys' marker given to ListAliases
/// (or the other way round) is `InvalidMarkerException`, as a marker this server never issued.
#[test]
fn a_kms_marker_pages_only_the_operation_that_issued_it() {
    let s = TestServer::start();
    for i in 0..3 {
        let r = s.call("TrentService.CreateKey", r#"{"Description":"paged"}"#);
        assert_eq!(r.status, 200, "{}", r.body);
        let key_id = r.json()["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = s.call(
            "TrentService.CreateAlias",
            &format!(r#"{{"AliasName":"alias/paged-{i}","TargetKeyId":"{key_id}"}}"#),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let marker = |target: &str| {
        let r = s.call(target, r#"{"Limit":1}"#);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["NextMarker"].as_str().unwrap().to_owned()
    };
    let keys = marker("TrentService.ListKeys");
    let aliases = marker("TrentService.ListAliases");
    for (target, own, other) in [
        ("TrentService.ListKeys", &keys, &aliases),
        ("TrentService.ListAliases", &aliases, &keys),
    ] {
        let page = |m: &str| s.call(target, &format!(r#"{{"Limit":1,"Marker":"{m}"}}"#));
        assert_eq!(page(own).status, 200, "{target}");
        let r = page(other);
        assert_eq!(
            r.error_type(),
            "InvalidMarkerException",
            "{target}: {}",
            r.body
        );
    }
}
