//! Replication between regions served by the same server, through the AWS SDK with a
//! client per region: the AWS CLI seed's three commands (replicate with a per-region KMS
//! key, remove, stop replication / promote), writes reaching the replicas, each error in
//! AWS's words, and the attacker tests with their positive controls.

use aws_sdk_secretsmanager as sm;
use sm::types::{Filter, FilterNameStringType, ReplicaRegionType, StatusType};

use crate::common::{
    call_as, code, example_policies, key_for, message, user_allowing, Signing, TestServer, AKID,
    SECRET,
};

const ACCOUNT: &str = "111122223333";
const REGIONS: &[&str] = &["us-east-1", "eu-west-1", "eu-west-2"];
const NOT_ON_REPLICA: &str =
    "Operation not permitted on a replica secret. Call must be made in primary secret's region.";

/// A customer managed key created in `region` by the root user; its ARN.
fn key_in(s: &TestServer, region: &str) -> String {
    let r = s.call_signed(
        "TrentService.CreateKey",
        r#"{"Description":"replica key"}"#,
        Signing {
            region: region.into(),
            ..Signing::default()
        },
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let arn = r.json()["KeyMetadata"]["Arn"].as_str().unwrap().to_owned();
    assert!(arn.contains(&format!(":{region}:")), "{arn}");
    arn
}

fn region(name: &str, key: Option<&str>) -> ReplicaRegionType {
    ReplicaRegionType::builder()
        .region(name)
        .set_kms_key_id(key.map(str::to_owned))
        .build()
}

async fn value(c: &sm::Client, id: &str) -> String {
    c.get_secret_value()
        .secret_id(id)
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_owned()
}

/// The seed: replicate to two regions (one under its own customer managed key), read from
/// each replica region, follow the primary's writes there, refuse writes on a replica and
/// the primary's deletion, remove one region, promote the other.
#[tokio::test]
async fn replicate_remove_and_promote_through_the_sdk() {
    let s = TestServer::start_with(None, REGIONS);
    let primary = s.client_in("us-east-1", AKID, SECRET);
    let eu1 = s.client_in("eu-west-1", AKID, SECRET);
    let eu2 = s.client_in("eu-west-2", AKID, SECRET);
    let eu1_key = key_in(&s, "eu-west-1");

    let arn = primary
        .create_secret()
        .name("app/db")
        .description("the database")
        .secret_string("v1")
        .tags(sm::types::Tag::builder().key("team").value("a").build())
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let out = primary
        .replicate_secret_to_regions()
        .secret_id("app/db")
        .add_replica_regions(region("eu-west-1", Some(&eu1_key)))
        .add_replica_regions(region("eu-west-2", None))
        .send()
        .await
        .unwrap();
    assert_eq!(out.arn(), Some(arn.as_str()));
    let st = out.replication_status();
    assert_eq!(st.len(), 2, "{st:?}");
    assert_eq!(st[0].region(), Some("eu-west-1"));
    assert_eq!(st[0].kms_key_id(), Some(eu1_key.as_str()));
    assert_eq!(st[0].status(), Some(&StatusType::InSync));
    assert_eq!(st[1].region(), Some("eu-west-2"));
    assert_eq!(st[1].kms_key_id(), Some("alias/aws/secretsmanager"));
    assert_eq!(st[1].status(), Some(&StatusType::InSync));

    // The replicas, read in their own regions: same name, the primary's ARN with the region
    // swapped, the requested key, the primary's value, description and tags.
    let replica_arn = arn.replace(":us-east-1:", ":eu-west-1:");
    assert_eq!(value(&eu1, "app/db").await, "v1");
    assert_eq!(value(&eu1, &replica_arn).await, "v1");
    assert_eq!(value(&eu2, "app/db").await, "v1");
    let d = eu1
        .describe_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(d.arn(), Some(replica_arn.as_str()));
    assert_eq!(d.primary_region(), Some("us-east-1"));
    assert_eq!(d.kms_key_id(), Some(eu1_key.as_str()));
    assert_eq!(d.description(), Some("the database"));
    assert_eq!(d.tags().len(), 1);
    assert!(d.replication_status().is_empty(), "{d:?}");
    // The primary shows its region and its replicas, with the replica's last access.
    let d = primary
        .describe_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(d.primary_region(), Some("us-east-1"));
    let st = d.replication_status();
    assert_eq!(st.len(), 2, "{d:?}");
    assert!(st[0].last_accessed_date().is_some(), "{st:?}");
    // ListSecrets: PrimaryRegion on both sides, the primary-region filter, no
    // ReplicationStatus in entries.
    for c in [&primary, &eu1] {
        let l = c
            .list_secrets()
            .filters(
                Filter::builder()
                    .key(FilterNameStringType::PrimaryRegion)
                    .values("us-east-1")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(l.secret_list().len(), 1);
        assert_eq!(l.secret_list()[0].primary_region(), Some("us-east-1"));
    }
    let raw = s.call_signed(
        "secretsmanager.ListSecrets",
        "{}",
        Signing {
            region: "eu-west-1".into(),
            ..Signing::default()
        },
    );
    assert!(raw.json()["SecretList"][0]
        .get("ReplicationStatus")
        .is_none());

    // Writes on the primary reach the replicas in the same transaction.
    primary
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("v2")
        .send()
        .await
        .unwrap();
    assert_eq!(value(&eu1, "app/db").await, "v2");
    assert_eq!(value(&eu2, "app/db").await, "v2");
    let prev = eu1
        .get_secret_value()
        .secret_id("app/db")
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .unwrap();
    assert_eq!(prev.secret_string(), Some("v1"));
    primary
        .update_secret()
        .secret_id("app/db")
        .description("moved")
        .send()
        .await
        .unwrap();
    primary
        .tag_resource()
        .secret_id("app/db")
        .tags(sm::types::Tag::builder().key("env").value("prod").build())
        .send()
        .await
        .unwrap();
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/nobody"},"Action":"secretsmanager:*","Resource":"*"}]}"#;
    primary
        .put_resource_policy()
        .secret_id("app/db")
        .resource_policy(policy)
        .send()
        .await
        .unwrap();
    let d = eu2
        .describe_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(d.description(), Some("moved"));
    assert_eq!(d.tags().len(), 2);
    let p = eu2
        .get_resource_policy()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert!(p.resource_policy().unwrap().contains("nobody"));
    let primary_versions = primary
        .list_secret_version_ids()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    let replica_versions = eu1
        .list_secret_version_ids()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    let ids = |v: &[sm::types::SecretVersionsListEntry]| {
        let mut ids: Vec<String> = v
            .iter()
            .map(|e| e.version_id().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(primary_versions.versions()),
        ids(replica_versions.versions())
    );

    // Writes on a replica are refused in AWS's words; nothing changes.
    let e = eu1
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("planted")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException");
    assert_eq!(message(&e), NOT_ON_REPLICA);
    let e = eu1
        .update_secret()
        .secret_id("app/db")
        .description("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(message(&e), NOT_ON_REPLICA);
    let e = eu1
        .delete_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap_err();
    assert_eq!(message(&e), NOT_ON_REPLICA);
    let e = eu1
        .delete_resource_policy()
        .secret_id("app/db")
        .send()
        .await
        .unwrap_err();
    assert_eq!(message(&e), NOT_ON_REPLICA);
    let e = eu1
        .untag_resource()
        .secret_id("app/db")
        .tag_keys("env")
        .send()
        .await
        .unwrap_err();
    assert_eq!(message(&e), NOT_ON_REPLICA);
    let e = eu1
        .replicate_secret_to_regions()
        .secret_id("app/db")
        .add_replica_regions(region("us-east-1", None))
        .send()
        .await
        .unwrap_err();
    assert_eq!(message(&e), NOT_ON_REPLICA);
    assert_eq!(value(&eu1, "app/db").await, "v2");

    // The primary cannot be deleted while it has replicas.
    let e = primary
        .delete_secret()
        .secret_id("app/db")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException");
    assert_eq!(
        message(&e),
        format!(
            "You can't delete secret {arn} that still has replica regions [eu-west-1, eu-west-2]."
        )
    );

    // Remove one region: its replica is gone at once; absent regions are ignored.
    let out = primary
        .remove_regions_from_replication()
        .secret_id("app/db")
        .remove_replica_regions("eu-west-2")
        .remove_replica_regions("eu-west-2")
        .send()
        .await
        .unwrap();
    assert_eq!(out.arn(), Some(arn.as_str()));
    assert_eq!(out.replication_status().len(), 1);
    assert_eq!(out.replication_status()[0].region(), Some("eu-west-1"));
    let e = eu2
        .get_secret_value()
        .secret_id("app/db")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");

    // Promote the remaining replica: it becomes standalone and accepts writes; the
    // primary no longer lists it, and its later writes stay in its own region.
    let out = eu1
        .stop_replication_to_replica()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(out.arn(), Some(replica_arn.as_str()));
    let d = eu1
        .describe_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(d.primary_region(), None);
    eu1.put_secret_value()
        .secret_id("app/db")
        .secret_string("eu-own")
        .send()
        .await
        .unwrap();
    let d = primary
        .describe_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(d.primary_region(), None);
    assert!(d.replication_status().is_empty());
    primary
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("v3")
        .send()
        .await
        .unwrap();
    assert_eq!(value(&eu1, "app/db").await, "eu-own");
    assert_eq!(value(&primary, "app/db").await, "v3");
    // Without replicas the primary can be deleted.
    primary
        .delete_secret()
        .secret_id("app/db")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
}

/// Each refusal in AWS's words (or, for what AWS has no equivalent of, a clear one), the
/// name collision left `Failed` (then overwritten with ForceOverwriteReplicaSecret), and
/// CreateSecret with AddReplicaRegions.
#[tokio::test]
async fn replication_errors_collisions_and_create_with_replicas() {
    let s = TestServer::start_with(None, REGIONS);
    let primary = s.client_in("us-east-1", AKID, SECRET);
    let eu1 = s.client_in("eu-west-1", AKID, SECRET);
    primary
        .create_secret()
        .name("svc")
        .secret_string("primary-value")
        .send()
        .await
        .unwrap();

    let e = primary
        .replicate_secret_to_regions()
        .secret_id("svc")
        .add_replica_regions(region("us-east-1", None))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException");
    assert_eq!(message(&e), "Invalid replica region.");
    // A region this server does not serve: refused, nothing is pretended.
    let e = primary
        .replicate_secret_to_regions()
        .secret_id("svc")
        .add_replica_regions(region("ap-south-1", None))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException");
    assert!(
        message(&e).contains("does not serve region ap-south-1"),
        "{e:?}"
    );
    let r = s.call(
        "secretsmanager.ReplicateSecretToRegions",
        r#"{"SecretId":"svc","AddReplicaRegions":[{"Region":"EU_WEST"}]}"#,
    );
    assert_eq!(r.error_type(), "ValidationException", "{}", r.body);
    let r = s.call(
        "secretsmanager.ReplicateSecretToRegions",
        r#"{"SecretId":"svc","AddReplicaRegions":[]}"#,
    );
    assert_eq!(r.error_type(), "ValidationException", "{}", r.body);
    let r = s.call(
        "secretsmanager.RemoveRegionsFromReplication",
        r#"{"SecretId":"svc"}"#,
    );
    assert_eq!(r.error_type(), "ValidationException", "{}", r.body);
    let e = primary
        .stop_replication_to_replica()
        .secret_id("svc")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequestException");
    let d = primary
        .describe_secret()
        .secret_id("svc")
        .send()
        .await
        .unwrap();
    assert_eq!(d.primary_region(), None);
    assert!(d.replication_status().is_empty());

    // A secret of the same name in the replica region: the call succeeds, the replica is
    // Failed and says why; the other secret is untouched.
    eu1.create_secret()
        .name("svc")
        .secret_string("eu-local")
        .send()
        .await
        .unwrap();
    let out = primary
        .replicate_secret_to_regions()
        .secret_id("svc")
        .add_replica_regions(region("eu-west-1", None))
        .send()
        .await
        .unwrap();
    let st = &out.replication_status()[0];
    assert_eq!(st.status(), Some(&StatusType::Failed));
    assert_eq!(
        st.status_message(),
        Some("Replication failed: Secret name svc already exists in region eu-west-1.")
    );
    assert_eq!(value(&eu1, "svc").await, "eu-local");
    // The Failed replica still counts as a replica region of the primary.
    let e = primary
        .delete_secret()
        .secret_id("svc")
        .send()
        .await
        .unwrap_err();
    assert!(message(&e).contains("[eu-west-1]"), "{e:?}");
    // With ForceOverwriteReplicaSecret the local secret is replaced by the replica.
    let out = primary
        .replicate_secret_to_regions()
        .secret_id("svc")
        .add_replica_regions(region("eu-west-1", None))
        .force_overwrite_replica_secret(true)
        .send()
        .await
        .unwrap();
    let st = &out.replication_status()[0];
    assert_eq!(st.status(), Some(&StatusType::InSync), "{st:?}");
    assert_eq!(st.status_message(), Some("Replication succeeded"));
    assert_eq!(value(&eu1, "svc").await, "primary-value");

    // CreateSecret with AddReplicaRegions: the replica exists when the call returns.
    let out = primary
        .create_secret()
        .name("born/replicated")
        .secret_string("day-one")
        .add_replica_regions(region("eu-west-2", None))
        .send()
        .await
        .unwrap();
    assert_eq!(out.replication_status().len(), 1);
    assert_eq!(
        out.replication_status()[0].status(),
        Some(&StatusType::InSync)
    );
    let eu2 = s.client_in("eu-west-2", AKID, SECRET);
    assert_eq!(value(&eu2, "born/replicated").await, "day-one");
    let e = primary
        .create_secret()
        .name("nowhere")
        .secret_string("x")
        .add_replica_regions(region("ap-south-1", None))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterException");
    let e = primary
        .describe_secret()
        .secret_id("nowhere")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
}

/// Who may replicate: the action itself (also for CreateSecret's AddReplicaRegions), its
/// `secretsmanager:AddReplicaRegions` condition key, and the use of the replica region's
/// customer managed key (`kms:GenerateDataKey`, denied here by that key's own key policy
/// for one caller). Each refused caller replicates nothing; the positive control does.
#[tokio::test]
async fn replication_needs_the_action_and_the_replica_regions_key() {
    let (_t, dir) = example_policies();
    let full = [
        "secretsmanager:*",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:Encrypt",
    ];
    user_allowing(&dir, ACCOUNT, "replicator", &full);
    user_allowing(&dir, ACCOUNT, "key-denied", &full);
    user_allowing(
        &dir,
        ACCOUNT,
        "no-replicate",
        &[
            "secretsmanager:CreateSecret",
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "kms:Decrypt",
            "kms:GenerateDataKey",
        ],
    );
    crate::common::write(
        &dir,
        &format!("accounts/{ACCOUNT}/users/west-2-only.json"),
        r#"{"UserName":"west-2-only","InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["secretsmanager:DescribeSecret","kms:Decrypt","kms:GenerateDataKey"],"Resource":"*"},
            {"Effect":"Allow","Action":"secretsmanager:ReplicateSecretToRegions","Resource":"*",
             "Condition":{"ForAllValues:StringEquals":{"secretsmanager:AddReplicaRegions":["eu-west-2"]}}}]}}}"#,
    );
    let s = TestServer::start_configured(None, REGIONS, None, Some(dir.clone()));
    let root = s.client_in("us-east-1", AKID, SECRET);
    let eu1_root = s.client_in("eu-west-1", AKID, SECRET);
    let eu1_key = key_in(&s, "eu-west-1");
    // The eu-west-1 key's policy delegates to IAM but denies key-denied its use.
    let key_policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "iam", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "deny", "Effect": "Deny", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/key-denied")},
             "Action": "kms:*", "Resource": "*"}
        ]
    });
    let r = s.call_signed(
        "TrentService.PutKeyPolicy",
        &serde_json::json!({"KeyId": eu1_key, "PolicyName": "default", "Policy": key_policy.to_string()})
            .to_string(),
        Signing {
            region: "eu-west-1".into(),
            ..Signing::default()
        },
    );
    assert_eq!(r.status, 200, "{}", r.body);
    root.create_secret()
        .name("guarded")
        .secret_string("g")
        .send()
        .await
        .unwrap();
    let replicate = |region: &str, key: Option<&str>| {
        let mut entry = serde_json::json!({"Region": region});
        if let Some(k) = key {
            entry["KmsKeyId"] = k.into();
        }
        serde_json::json!({"SecretId": "guarded", "AddReplicaRegions": [entry]})
    };
    let nothing_replicated = || async {
        let e = eu1_root
            .describe_secret()
            .secret_id("guarded")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "ResourceNotFoundException");
        let d = root
            .describe_secret()
            .secret_id("guarded")
            .send()
            .await
            .unwrap();
        assert!(d.replication_status().is_empty(), "{d:?}");
    };

    // Without the action.
    let (k, sk) = key_for(&s, &dir, ACCOUNT, "no-replicate");
    let r = call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.ReplicateSecretToRegions",
        &replicate("eu-west-1", None),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    assert!(
        r.body.contains("secretsmanager:ReplicateSecretToRegions"),
        "{}",
        r.body
    );
    let r = call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.CreateSecret",
        &serde_json::json!({"Name": "sneaky", "SecretString": "s",
            "ClientRequestToken": "cccccccccccccccccccccccccccccccccccc",
            "AddReplicaRegions": [{"Region": "eu-west-1"}]}),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    let e = root
        .describe_secret()
        .secret_id("sneaky")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    nothing_replicated().await;

    // The condition key: allowed for eu-west-2 only.
    let (k, sk) = key_for(&s, &dir, ACCOUNT, "west-2-only");
    let r = call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.ReplicateSecretToRegions",
        &replicate("eu-west-1", None),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    nothing_replicated().await;

    // The replica region's key policy refuses the key's use.
    let (k, sk) = key_for(&s, &dir, ACCOUNT, "key-denied");
    let r = call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.ReplicateSecretToRegions",
        &replicate("eu-west-1", Some(&eu1_key)),
    );
    assert_eq!(r.error_type(), "AccessDeniedException", "{}", r.body);
    assert!(r.body.contains("kms:GenerateDataKey"), "{}", r.body);
    nothing_replicated().await;

    // Positive controls: the same request by the replicator; west-2-only in its region.
    let (k, sk) = key_for(&s, &dir, ACCOUNT, "replicator");
    let r = call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.ReplicateSecretToRegions",
        &replicate("eu-west-1", Some(&eu1_key)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ReplicationStatus"][0]["Status"], "InSync");
    assert_eq!(value(&eu1_root, "guarded").await, "g");
    let (k, sk) = key_for(&s, &dir, ACCOUNT, "west-2-only");
    let r = call_as(
        &s,
        &k,
        &sk,
        "secretsmanager.ReplicateSecretToRegions",
        &replicate("eu-west-2", None),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Every request was audited under its own name, refusals included.
    let events = s.call(
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        r#"{"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"ReplicateSecretToRegions"}]}"#,
    );
    let n = events.json()["Events"].as_array().map_or(0, Vec::len);
    assert!(n >= 5, "{}", events.body);
}

/// Each replica is sealed under its own region's key: disabling that key leaves the
/// primary readable and writable, the replica unreadable, and the replica `Failed` after
/// the next write on the primary (which stands); once the key is enabled again, the next
/// write brings the replica back `InSync` with every version.
#[tokio::test]
async fn a_replica_is_sealed_under_its_own_regions_key() {
    let s = TestServer::start_with(None, REGIONS);
    let primary = s.client_in("us-east-1", AKID, SECRET);
    let eu1 = s.client_in("eu-west-1", AKID, SECRET);
    let eu1_key = key_in(&s, "eu-west-1");
    let in_eu1 = |target: &str, body: String| {
        let r = s.call_signed(
            target,
            &body,
            Signing {
                region: "eu-west-1".into(),
                ..Signing::default()
            },
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    primary
        .create_secret()
        .name("sealed")
        .secret_string("one")
        .add_replica_regions(region("eu-west-1", Some(&eu1_key)))
        .send()
        .await
        .unwrap();
    assert_eq!(value(&eu1, "sealed").await, "one");

    in_eu1(
        "TrentService.DisableKey",
        format!(r#"{{"KeyId":"{eu1_key}"}}"#),
    );
    let e = eu1
        .get_secret_value()
        .secret_id("sealed")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "DecryptionFailure", "{e:?}");
    assert_eq!(value(&primary, "sealed").await, "one");
    primary
        .put_secret_value()
        .secret_id("sealed")
        .secret_string("two")
        .send()
        .await
        .unwrap();
    assert_eq!(value(&primary, "sealed").await, "two");
    let d = primary
        .describe_secret()
        .secret_id("sealed")
        .send()
        .await
        .unwrap();
    let st = &d.replication_status()[0];
    assert_eq!(st.status(), Some(&StatusType::Failed), "{st:?}");
    assert!(
        st.status_message()
            .unwrap()
            .starts_with("Replication failed: "),
        "{st:?}"
    );

    // Replicating to the region again retries that replica in place (still failing).
    let out = primary
        .replicate_secret_to_regions()
        .secret_id("sealed")
        .add_replica_regions(region("eu-west-1", Some(&eu1_key)))
        .send()
        .await
        .unwrap();
    let st = &out.replication_status()[0];
    assert_eq!(st.status(), Some(&StatusType::Failed), "{st:?}");
    assert!(
        !st.status_message().unwrap().contains("already exists"),
        "{st:?}"
    );

    in_eu1(
        "TrentService.EnableKey",
        format!(r#"{{"KeyId":"{eu1_key}"}}"#),
    );
    // The replica kept what it had.
    assert_eq!(value(&eu1, "sealed").await, "one");
    let out = primary
        .replicate_secret_to_regions()
        .secret_id("sealed")
        .add_replica_regions(region("eu-west-1", Some(&eu1_key)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.replication_status()[0].status(),
        Some(&StatusType::InSync)
    );
    assert_eq!(value(&eu1, "sealed").await, "two");
    primary
        .put_secret_value()
        .secret_id("sealed")
        .secret_string("three")
        .send()
        .await
        .unwrap();
    let d = primary
        .describe_secret()
        .secret_id("sealed")
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.replication_status()[0].status(),
        Some(&StatusType::InSync)
    );
    // As AWS shows an InSync replica (the AWS CLI's describe-secret example).
    assert_eq!(
        d.replication_status()[0].status_message(),
        Some("Replication succeeded")
    );
    assert_eq!(value(&eu1, "sealed").await, "three");
    let versions = eu1
        .list_secret_version_ids()
        .secret_id("sealed")
        .include_deprecated(true)
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 3);

    // The replica's own key is the one thing that may change in its region: labelled
    // versions move to the new key, later writes are sealed under it, and the primary's
    // ReplicationStatus shows it. Anything more in the same request is refused.
    let other_key = key_in(&s, "eu-west-1");
    let e = eu1
        .update_secret()
        .secret_id("sealed")
        .kms_key_id(&other_key)
        .description("not here")
        .send()
        .await
        .unwrap_err();
    assert_eq!(message(&e), NOT_ON_REPLICA);
    eu1.update_secret()
        .secret_id("sealed")
        .kms_key_id(&other_key)
        .send()
        .await
        .unwrap();
    let d = eu1
        .describe_secret()
        .secret_id("sealed")
        .send()
        .await
        .unwrap();
    assert_eq!(d.kms_key_id(), Some(other_key.as_str()));
    let d = primary
        .describe_secret()
        .secret_id("sealed")
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.replication_status()[0].kms_key_id(),
        Some(other_key.as_str())
    );
    in_eu1(
        "TrentService.DisableKey",
        format!(r#"{{"KeyId":"{eu1_key}"}}"#),
    );
    assert_eq!(value(&eu1, "sealed").await, "three");
    primary
        .put_secret_value()
        .secret_id("sealed")
        .secret_string("four")
        .send()
        .await
        .unwrap();
    assert_eq!(value(&eu1, "sealed").await, "four");
    let d = primary
        .describe_secret()
        .secret_id("sealed")
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.replication_status()[0].status(),
        Some(&StatusType::InSync)
    );
}

/// A PutSecretValue reaches the replicas served here as written: a binary value under
/// AWSPENDING only, then a string under AWSCURRENT (AWSPREVIOUS moving), a retry of the same
/// token changing nothing; each replica's labels and values are the primary's, and each
/// replica opens its values under its own region's key.
#[tokio::test]
async fn puts_reach_the_replicas_with_their_labels_and_binary_values() {
    let s = TestServer::start_with(None, REGIONS);
    let primary = s.client_in("us-east-1", AKID, SECRET);
    let eu1 = s.client_in("eu-west-1", AKID, SECRET);
    let eu2 = s.client_in("eu-west-2", AKID, SECRET);
    let eu1_key = key_in(&s, "eu-west-1");
    primary
        .create_secret()
        .name("app/labels")
        .secret_string("v1")
        .add_replica_regions(region("eu-west-1", Some(&eu1_key)))
        .add_replica_regions(region("eu-west-2", None))
        .send()
        .await
        .unwrap();
    let blob = sm::primitives::Blob::new(vec![0u8, 255, 1, 254, 7]);
    let pending = primary
        .put_secret_value()
        .secret_id("app/labels")
        .secret_binary(blob.clone())
        .client_request_token("tok-binary-pending-0000000000000001")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    assert_eq!(pending.version_stages(), ["AWSPENDING"]);
    // The second time, the same token and value: idempotent, nothing moves.
    for _ in 0..2 {
        let current = primary
            .put_secret_value()
            .secret_id("app/labels")
            .secret_string("v3")
            .client_request_token("tok-string-current-0000000000000002")
            .send()
            .await
            .unwrap();
        assert_eq!(current.version_stages(), ["AWSCURRENT"]);
    }

    let stages = |d: &sm::operation::describe_secret::DescribeSecretOutput| {
        let mut m: Vec<(String, Vec<String>)> = d
            .version_ids_to_stages()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        m.sort();
        m
    };
    let want = stages(
        &primary
            .describe_secret()
            .secret_id("app/labels")
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(want.len(), 3, "{want:?}");
    for (name, c) in [("eu-west-1", &eu1), ("eu-west-2", &eu2)] {
        let d = c
            .describe_secret()
            .secret_id("app/labels")
            .send()
            .await
            .unwrap();
        assert_eq!(stages(&d), want, "{name}");
        assert_eq!(value(c, "app/labels").await, "v3", "{name}");
        let at = |stage: &'static str| {
            c.get_secret_value()
                .secret_id("app/labels")
                .version_stage(stage)
                .send()
        };
        let p = at("AWSPENDING").await.unwrap();
        assert_eq!(p.secret_binary(), Some(&blob), "{name}");
        assert_eq!(p.secret_string(), None, "{name}");
        let prev = at("AWSPREVIOUS").await.unwrap();
        assert_eq!(prev.secret_string(), Some("v1"), "{name}");
    }
    // Each replica's copy is sealed under its region's key: disabling eu-west-1's key makes
    // that replica's values unreadable there, and leaves eu-west-2's readable.
    let r = s.call_signed(
        "TrentService.DisableKey",
        &format!(r#"{{"KeyId":"{eu1_key}"}}"#),
        Signing {
            region: "eu-west-1".into(),
            ..Signing::default()
        },
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let e = eu1
        .get_secret_value()
        .secret_id("app/labels")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "DecryptionFailure", "{e:?}");
    assert_eq!(value(&eu2, "app/labels").await, "v3");
}

/// A connection of the test's own to the server's SQLite store (WAL: the server keeps
/// running), for what no API shows or may do: a version's age, a damaged replica.
fn store_conn(s: &TestServer) -> diesel::SqliteConnection {
    use diesel::{Connection, RunQueryDsl};
    let path = s.database_url.trim_start_matches("sqlite://").to_owned();
    let mut conn = diesel::SqliteConnection::establish(&path).unwrap();
    diesel::sql_query("PRAGMA busy_timeout = 10000")
        .execute(&mut conn)
        .unwrap();
    conn
}

#[derive(diesel::QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct VersionId {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version_id: String,
}

/// A server for REGIONS and a client in us-east-1, with secret `name` (holding `value`)
/// replicated to eu-west-1 and eu-west-2 under their default keys.
async fn with_two_replicas(name: &str, value: &str) -> (TestServer, sm::Client) {
    let s = TestServer::start_with(None, REGIONS);
    let primary = s.client_in("us-east-1", AKID, SECRET);
    primary
        .create_secret()
        .name(name)
        .secret_string(value)
        .add_replica_regions(region("eu-west-1", None))
        .add_replica_regions(region("eu-west-2", None))
        .send()
        .await
        .unwrap();
    (s, primary)
}

/// The ids of the versions the store holds for `name` in `region`, by id.
fn stored_versions(conn: &mut diesel::SqliteConnection, name: &str, region: &str) -> Vec<String> {
    use diesel::RunQueryDsl;
    let mut v: Vec<VersionId> = diesel::sql_query(
        "SELECT v.version_id FROM secret_versions v JOIN secrets s ON s.secret_id = v.secret_id \
         WHERE s.name = ? AND s.region = ?",
    )
    .bind::<diesel::sql_types::Text, _>(name)
    .bind::<diesel::sql_types::Text, _>(region)
    .load(conn)
    .unwrap();
    v.sort();
    v.into_iter().map(|r| r.version_id).collect()
}

/// PutSecretValue of `value` to `id` through `c`; the new version's id.
async fn put(c: &sm::Client, id: &str, value: &str) -> String {
    c.put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned()
}

/// Both replica regions of [`with_two_replicas`] store exactly the versions `want` and serve
/// `current` as AWSCURRENT and `previous` (of version `previous_id`, when given) as
/// AWSPREVIOUS.
async fn assert_replicas_follow(
    s: &TestServer,
    conn: &mut diesel::SqliteConnection,
    name: &str,
    want: &[String],
    current: &str,
    (previous, previous_id): (&str, Option<&str>),
) {
    for r in ["eu-west-1", "eu-west-2"] {
        assert_eq!(stored_versions(conn, name, r), want, "{r}");
        let c = s.client_in(r, AKID, SECRET);
        assert_eq!(value(&c, name).await, current, "{r}");
        let prev = c
            .get_secret_value()
            .secret_id(name)
            .version_stage("AWSPREVIOUS")
            .send()
            .await
            .unwrap();
        assert_eq!(prev.secret_string(), Some(previous), "{r}");
        if let Some(id) = previous_id {
            assert_eq!(prev.version_id(), Some(id), "{r}");
        }
    }
}

/// Beyond 100 versions, a PutSecretValue drops the primary's oldest deprecated versions
/// (older than 24 hours, no label), and each replica served here drops the same ones: the
/// replicas keep exactly the primary's versions.
#[tokio::test]
async fn versions_dropped_on_the_primary_are_dropped_on_its_replicas() {
    use diesel::RunQueryDsl;
    let (s, primary) = with_two_replicas("app/many", "v0").await;
    for i in 1..=100 {
        put(&primary, "app/many", &format!("v{i}")).await;
    }
    let mut conn = store_conn(&s);
    let before = stored_versions(&mut conn, "app/many", "us-east-1");
    assert_eq!(before.len(), 101, "none is old enough to drop yet");
    for r in ["eu-west-1", "eu-west-2"] {
        assert_eq!(stored_versions(&mut conn, "app/many", r), before, "{r}");
    }
    // Every version two days old, as if written then.
    diesel::sql_query("UPDATE secret_versions SET created_at = created_at - 172800000")
        .execute(&mut conn)
        .unwrap();
    put(&primary, "app/many", "v101").await;
    let after = stored_versions(&mut conn, "app/many", "us-east-1");
    assert_eq!(after.len(), 100, "two dropped beyond the limit");
    assert_eq!(after.iter().filter(|v| !before.contains(v)).count(), 1);
    assert_replicas_follow(&s, &mut conn, "app/many", &after, "v101", ("v100", None)).await;
}

/// A replica marked `InSync` whose copy was damaged behind the server's back (a version the
/// primary's labels name is gone from it) is not patched with the next write's difference,
/// which would leave a label on a version it lacks: that write copies the primary in full,
/// and the replica serves every labelled version again. The other replica, undamaged,
/// follows as usual.
#[tokio::test]
async fn a_damaged_in_sync_replica_is_copied_in_full_by_the_next_write() {
    use diesel::RunQueryDsl;
    let (s, primary) = with_two_replicas("app/damaged", "v1").await;
    let v2 = put(&primary, "app/damaged", "v2").await;
    let mut conn = store_conn(&s);
    let replica_of =
        "(SELECT secret_id FROM secrets WHERE name = 'app/damaged' AND region = 'eu-west-1')";
    diesel::sql_query(format!(
        "DELETE FROM secret_stages WHERE secret_id = {replica_of} AND version_id = '{v2}'"
    ))
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query(format!(
        "DELETE FROM secret_versions WHERE secret_id = {replica_of} AND version_id = '{v2}'"
    ))
    .execute(&mut conn)
    .unwrap();
    assert!(!stored_versions(&mut conn, "app/damaged", "eu-west-1").contains(&v2));

    put(&primary, "app/damaged", "v3").await;
    let want = stored_versions(&mut conn, "app/damaged", "us-east-1");
    assert_eq!(want.len(), 3);
    let previous = ("v2", Some(v2.as_str()));
    assert_replicas_follow(&s, &mut conn, "app/damaged", &want, "v3", previous).await;
    let d = primary
        .describe_secret()
        .secret_id("app/damaged")
        .send()
        .await
        .unwrap();
    for st in d.replication_status() {
        assert_eq!(st.status(), Some(&StatusType::InSync), "{st:?}");
    }
}
