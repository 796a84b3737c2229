//! Cross-account replicas: who may associate which replica, with which role and key, and
//! what the association gives either account (AssociateCrossAccountReplica,
//! DisassociateCrossAccountReplica, CreateSecret's `CrossAccountPrimaryARN`).

use std::path::Path;

use serde_json::{json, Value};

use crate::common::{example_policies, user_allowing, write, TestServer};
use crate::cross_account_replica::{
    assert_error, replica_status, setup, user, As, OUTSIDER, PRIMARY, REPLICA,
};

/// A user of `account` whose only identity policy is `statements`.
fn user_with(dir: &Path, account: &str, name: &str, statements: &Value) {
    write(
        dir,
        &format!("accounts/{account}/users/{name}.json"),
        &json!({"UserName": name, "InlinePolicies": {"p": {
            "Version": "2012-10-17", "Statement": statements}}})
        .to_string(),
    );
}

/// The primary (value `value`) and a replica its account created for it, with a key that
/// lets the primary's account encrypt: `(primary ARN, replica ARN)`.
fn primary_and_replica(p: &As<'_>, r: &As<'_>, name: &str, value: &str) -> (String, String) {
    let primary = p.ok("CreateSecret", json!({"Name": name, "SecretString": value}))["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let rkey = r.key_shared_with(REPLICA, PRIMARY);
    let replica = r.ok(
        "CreateSecret",
        json!({"Name": format!("copy/{name}"), "CrossAccountPrimaryARN": primary, "KmsKeyId": rkey}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    (primary, replica)
}

fn associate(
    by: &As<'_>,
    primary: &str,
    replica: &str,
    extra: Value,
) -> crate::common::RawResponse {
    let mut body = json!({"SecretId": primary, "CrossAccountReplicaARN": replica});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    by.call("AssociateCrossAccountReplica", body)
}

fn replicas_of(p: &As<'_>, primary: &str) -> Value {
    p.ok("DescribeSecret", json!({"SecretId": primary}))["CrossAccountReplicas"].clone()
}

#[test]
fn a_replication_role_is_passed_only_with_pass_role_on_that_role() {
    let (_t, dir) = example_policies();
    setup(&dir);
    user_allowing(&dir, PRIMARY, "nopass", &["secretsmanager:*", "kms:*"]);
    user_with(
        &dir,
        PRIMARY,
        "passone",
        &json!([
            {"Effect": "Allow", "Action": ["secretsmanager:*", "kms:*"], "Resource": "*"},
            {"Effect": "Allow", "Action": "iam:PassRole",
             "Resource": format!("arn:aws:iam::{PRIMARY}:role/replicator-a")}]),
    );
    let s = TestServer::start_with_policies(&dir);
    let p = user(&s, &dir, PRIMARY, "padmin");
    let r = user(&s, &dir, REPLICA, "radmin");
    let nopass = user(&s, &dir, PRIMARY, "nopass");
    let passone = user(&s, &dir, PRIMARY, "passone");
    let (primary, replica) = primary_and_replica(&p, &r, "app/role", "role-value");
    let role_a = format!("arn:aws:iam::{PRIMARY}:role/replicator-a");
    let role_b = format!("arn:aws:iam::{PRIMARY}:role/replicator-b");

    // attacker: a role of its own account, without iam:PassRole at all
    let refused = associate(
        &nopass,
        &primary,
        &replica,
        json!({"ReplicationRoleARN": role_a}),
    );
    assert_error(&refused, "AccessDeniedException", "iam:PassRole");
    // attacker: a role other than the one it may pass
    let refused = associate(
        &passone,
        &primary,
        &replica,
        json!({"ReplicationRoleARN": role_b}),
    );
    assert_error(&refused, "AccessDeniedException", "iam:PassRole");
    // attacker: a role of the replica's account (whose trust the primary's account can't pass)
    let refused = associate(
        &passone,
        &primary,
        &replica,
        json!({"ReplicationRoleARN": format!("arn:aws:iam::{REPLICA}:role/replicator-a")}),
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    // a role ARN of another partition or resource type
    for bad in [
        format!("arn:aws-cn:iam::{PRIMARY}:role/replicator-a"),
        format!("arn:aws:iam::{PRIMARY}:user/replicator-a"),
        format!("arn:aws:iam::{REPLICA}:role/x:role/replicator-a"),
    ] {
        let refused = associate(&p, &primary, &replica, json!({"ReplicationRoleARN": bad}));
        assert!(
            ["InvalidParameterException", "AccessDeniedException"]
                .contains(&refused.error_type().as_str()),
            "{}",
            refused.body
        );
    }
    assert!(replicas_of(&p, &primary).is_null());
    assert_eq!(replica_status(&r, &replica)["ReplicationStatus"], "Pending");

    // positive controls: the role it may pass; without a role, no iam:PassRole is needed
    let done = passone.ok(
        "AssociateCrossAccountReplica",
        json!({"SecretId": primary, "CrossAccountReplicaARN": replica, "ReplicationRoleARN": role_a}),
    );
    assert_eq!(done["ReplicationStatus"], "InSync");
    assert_eq!(replicas_of(&p, &primary)[0]["ReplicationRoleARN"], role_a);
    nopass.ok(
        "AssociateCrossAccountReplica",
        json!({"SecretId": primary, "CrossAccountReplicaARN": replica}),
    );
    assert_eq!(r.value(&replica), "role-value");
}

#[test]
fn sealing_into_the_replica_key_needs_encrypt_in_the_callers_own_policies_too() {
    let (_t, dir) = example_policies();
    setup(&dir);
    // everything but kms:Encrypt (the replica key's policy grants the account)
    user_allowing(
        &dir,
        PRIMARY,
        "noencrypt",
        &[
            "secretsmanager:*",
            "kms:Decrypt",
            "kms:DescribeKey",
            "kms:GenerateDataKey",
        ],
    );
    // kms:Encrypt, but only on keys of its own account
    user_with(
        &dir,
        PRIMARY,
        "ownkeys",
        &json!([
            {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
            {"Effect": "Allow", "Action": "kms:*",
             "Resource": format!("arn:aws:kms:*:{PRIMARY}:key/*")}]),
    );
    let s = TestServer::start_with_policies(&dir);
    let p = user(&s, &dir, PRIMARY, "padmin");
    let r = user(&s, &dir, REPLICA, "radmin");
    let (primary, replica) = primary_and_replica(&p, &r, "app/key", "key-value");
    for name in ["noencrypt", "ownkeys"] {
        let attacker = user(&s, &dir, PRIMARY, name);
        let refused = associate(&attacker, &primary, &replica, json!({}));
        assert_error(&refused, "AccessDeniedException", "kms:Encrypt");
    }
    assert!(replicas_of(&p, &primary).is_null());
    assert_eq!(replica_status(&r, &replica)["ReplicationStatus"], "Pending");
    // positive control
    associate(&p, &primary, &replica, json!({}));
    assert_eq!(r.value(&replica), "key-value");
}

#[test]
fn the_association_gives_the_replica_account_nothing_on_the_primary() {
    let (_t, dir) = example_policies();
    setup(&dir);
    let s = TestServer::start_with_policies(&dir);
    let p = user(&s, &dir, PRIMARY, "padmin");
    let r = user(&s, &dir, REPLICA, "radmin");
    let (primary, replica) = primary_and_replica(&p, &r, "app/rev", "rev-value");
    let done = associate(&p, &primary, &replica, json!({}));
    assert_eq!(done.status, 200, "{}", done.body);

    // attacker: the replica's administrator, on the primary
    for (op, body) in [
        ("GetSecretValue", json!({"SecretId": primary})),
        ("DescribeSecret", json!({"SecretId": primary})),
        ("GetResourcePolicy", json!({"SecretId": primary})),
        ("ListSecretVersionIds", json!({"SecretId": primary})),
        (
            "PutSecretValue",
            json!({"SecretId": primary, "SecretString": "forged"}),
        ),
        (
            "PutResourcePolicy",
            json!({"SecretId": primary, "ResourcePolicy": json!({"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{REPLICA}:root")},
                "Action": "secretsmanager:*", "Resource": "*"}]}).to_string()}),
        ),
        (
            "DisassociateCrossAccountReplica",
            json!({"SecretId": primary, "CrossAccountReplicaARN": replica}),
        ),
        (
            "AssociateCrossAccountReplica",
            json!({"SecretId": primary, "CrossAccountReplicaARN": replica}),
        ),
        (
            "AcceptCrossAccountReplication",
            json!({"SecretId": primary}),
        ),
    ] {
        let refused = r.call(op, body);
        assert!(
            refused.status >= 400 && !refused.body.contains("rev-value"),
            "{op}: {} {}",
            refused.status,
            refused.body
        );
    }
    // the replica can't be turned around into a primary of the primary, nor chained on
    let back = r.call(
        "AssociateCrossAccountReplica",
        json!({"SecretId": replica, "CrossAccountReplicaARN": primary}),
    );
    assert!(back.status >= 400, "{}", back.body);
    let o = user(&s, &dir, OUTSIDER, "oadmin");
    let okey = o.key_shared_with(OUTSIDER, REPLICA);
    let chained = o.ok(
        "CreateSecret",
        json!({"Name": "chain", "CrossAccountPrimaryARN": replica, "KmsKeyId": okey}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = r.call(
        "AssociateCrossAccountReplica",
        json!({"SecretId": replica, "CrossAccountReplicaARN": chained, "ReplicaRestriction": "NoRestriction"}),
    );
    assert_error(
        &refused,
        "InvalidParameterException",
        "Operation not permitted on a cross-account replica secret",
    );

    // positive controls: each reads its own; the primary is unchanged
    assert_eq!(p.value(&primary), "rev-value");
    assert_eq!(r.value(&replica), "rev-value");
    assert_eq!(replicas_of(&p, &primary)[0]["ReplicaSecretARN"], replica);
}

#[test]
fn consent_names_the_primary_by_its_exact_arn() {
    let (_t, dir) = example_policies();
    setup(&dir);
    let s = TestServer::start_with_policies(&dir);
    let p = user(&s, &dir, PRIMARY, "padmin");
    let r = user(&s, &dir, REPLICA, "radmin");
    let primary = p.ok(
        "CreateSecret",
        json!({"Name": "app/arn", "SecretString": "first-value"}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let rkey = r.key_shared_with(REPLICA, PRIMARY);
    let (stem, _suffix) = primary.rsplit_once('-').unwrap();
    let other_suffix = format!("{stem}-AAAAAA");
    let upper = primary.replace("app/arn", "APP/ARN");
    let mut consents = Vec::new();
    for (i, named) in [stem.to_owned(), other_suffix, upper]
        .into_iter()
        .enumerate()
    {
        let c = r.call(
            "CreateSecret",
            json!({"Name": format!("copy/{i}"), "CrossAccountPrimaryARN": named, "KmsKeyId": rkey}),
        );
        if c.status == 200 {
            consents.push(c.json()["ARN"].as_str().unwrap().to_owned());
        }
    }
    // attacker: replicas whose consent names a near miss of the primary's ARN
    for replica in &consents {
        let refused = associate(&p, &primary, replica, json!({}));
        assert_error(
            &refused,
            "InvalidRequestException",
            "isn't a cross-account replica",
        );
    }

    // a consent for a primary deleted since is no consent for a new secret of that name
    let old = r.ok(
        "CreateSecret",
        json!({"Name": "copy/old", "CrossAccountPrimaryARN": primary, "KmsKeyId": rkey}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    p.ok(
        "DeleteSecret",
        json!({"SecretId": primary, "ForceDeleteWithoutRecovery": true}),
    );
    let renewed = p.ok(
        "CreateSecret",
        json!({"Name": "app/arn", "SecretString": "second-value"}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(renewed, primary);
    let refused = associate(&p, &renewed, &old, json!({}));
    assert_error(
        &refused,
        "InvalidRequestException",
        "isn't a cross-account replica",
    );
    assert_eq!(replica_status(&r, &old)["ReplicationStatus"], "Pending");
    for replica in consents.iter().chain([&old]) {
        assert_error(
            &r.call("GetSecretValue", json!({"SecretId": replica})),
            "ResourceNotFoundException",
            "",
        );
    }

    // positive control: a consent naming the new primary's ARN
    let fresh = r.ok(
        "CreateSecret",
        json!({"Name": "copy/new", "CrossAccountPrimaryARN": renewed, "KmsKeyId": rkey}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = associate(&p, &renewed, &fresh, json!({}));
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(r.value(&fresh), "second-value");
}

#[test]
fn after_disassociation_the_primary_writes_nothing_into_the_replica() {
    let (_t, dir) = example_policies();
    setup(&dir);
    let s = TestServer::start_with_policies(&dir);
    let p = user(&s, &dir, PRIMARY, "padmin");
    let r = user(&s, &dir, REPLICA, "radmin");
    let (primary, replica) = primary_and_replica(&p, &r, "app/gone", "kept-value");
    let done = associate(&p, &primary, &replica, json!({}));
    assert_eq!(done.status, 200, "{}", done.body);
    p.ok(
        "DisassociateCrossAccountReplica",
        json!({"SecretId": primary, "CrossAccountReplicaARN": replica}),
    );
    // the primary's writes no longer reach it
    p.ok(
        "PutSecretValue",
        json!({"SecretId": primary, "SecretString": "after-value", "ClientRequestToken": "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"}),
    );
    assert_eq!(r.value(&replica), "kept-value");
    assert_eq!(
        replica_status(&r, &replica)["ReplicationStatus"],
        "Detached"
    );
    assert!(replicas_of(&p, &primary).is_null());
    // nor can a second disassociation or any other call of the primary's account reach it
    let again = p.call(
        "DisassociateCrossAccountReplica",
        json!({"SecretId": primary, "CrossAccountReplicaARN": replica}),
    );
    assert_error(
        &again,
        "ResourceNotFoundException",
        "can't find cross-account replica",
    );
    for (op, body) in [
        ("GetSecretValue", json!({"SecretId": replica})),
        ("DescribeSecret", json!({"SecretId": replica})),
    ] {
        let refused = p.call(op, body);
        assert!(refused.status >= 400, "{op}: {}", refused.body);
    }
    // once the replica's account promoted it, the primary's account can't take it back
    r.ok("StopReplicationToReplica", json!({"SecretId": replica}));
    let refused = associate(&p, &primary, &replica, json!({}));
    assert_error(&refused, "AccessDeniedException", "");
    assert_eq!(r.value(&replica), "kept-value");
    // positive control: the replica's account owns it now
    r.ok(
        "PutSecretValue",
        json!({"SecretId": replica, "SecretString": "own-value"}),
    );
    assert_eq!(r.value(&replica), "own-value");
}

#[test]
fn same_org_is_decided_on_the_organization_in_force() {
    let (_t, dir) = example_policies();
    setup(&dir);
    let s = TestServer::start_with_policies(&dir);
    let p = user(&s, &dir, PRIMARY, "padmin");
    let r = user(&s, &dir, REPLICA, "radmin");
    let (primary, replica) = primary_and_replica(&p, &r, "app/org", "org-value");
    let done = associate(&p, &primary, &replica, json!({}));
    assert_eq!(done.status, 200, "{}", done.body);

    // the replica's account leaves the organization
    write(
        &dir,
        "organization/organization.json",
        &format!(
            r#"{{"Id":"o-xacct000001","ManagementAccount":"{PRIMARY}",
                "Root":{{"Id":"r-ab12","Policies":["FullAWSAccess"],
                  "Accounts":[{{"AccountId":"{PRIMARY}"}}]}}}}"#
        ),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let refused = loop {
        let a = associate(
            &p,
            &primary,
            &replica,
            json!({"ReplicaRestriction": "SameOrg"}),
        );
        if a.status != 200 || std::time::Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_error(&refused, "InvalidRequestException", "same organization");
    // the default is SameOrg
    let refused = associate(&p, &primary, &replica, json!({}));
    assert_error(&refused, "InvalidRequestException", "same organization");
    // positive control: NoRestriction
    let done = associate(
        &p,
        &primary,
        &replica,
        json!({"ReplicaRestriction": "NoRestriction"}),
    );
    assert_eq!(done.status, 200, "{}", done.body);
}

#[test]
fn a_key_policy_no_longer_granting_the_primary_account_stops_replication() {
    let (_t, dir) = example_policies();
    setup(&dir);
    let s = TestServer::start_with_policies(&dir);
    let p = user(&s, &dir, PRIMARY, "padmin");
    let r = user(&s, &dir, REPLICA, "radmin");
    let primary = p.ok(
        "CreateSecret",
        json!({"Name": "app/rk", "SecretString": "first-value"}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let rkey = r.key_shared_with(REPLICA, PRIMARY);
    let replica = r.ok(
        "CreateSecret",
        json!({"Name": "copy/rk", "CrossAccountPrimaryARN": primary, "KmsKeyId": rkey}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = associate(&p, &primary, &replica, json!({}));
    assert_eq!(done.status, 200, "{}", done.body);
    let shared = r.ok("TrentService.GetKeyPolicy", json!({"KeyId": rkey}))["Policy"]
        .as_str()
        .unwrap()
        .to_owned();

    // the replica's account takes the primary's account out of its key policy
    let own_only = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Owner", "Effect": "Allow",
         "Principal": {"AWS": format!("arn:aws:iam::{REPLICA}:root")},
         "Action": "kms:*", "Resource": "*"}]});
    r.ok(
        "TrentService.PutKeyPolicy",
        json!({"KeyId": rkey, "Policy": own_only.to_string()}),
    );
    // attacker: the primary's next write is not sealed into the replica's key
    p.ok(
        "PutSecretValue",
        json!({"SecretId": primary, "SecretString": "second-value", "ClientRequestToken": "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"}),
    );
    assert_eq!(r.value(&replica), "first-value");
    let entry = &replicas_of(&p, &primary)[0];
    assert_eq!(entry["ReplicationStatus"], "Failed", "{entry}");
    assert!(
        entry["StatusMessage"]
            .as_str()
            .unwrap()
            .contains("kms:Encrypt"),
        "{entry}"
    );
    assert_eq!(p.value(&primary), "second-value");

    // positive control: granted again, the next write brings the replica back in sync
    r.ok(
        "TrentService.PutKeyPolicy",
        json!({"KeyId": rkey, "Policy": shared}),
    );
    p.ok(
        "PutSecretValue",
        json!({"SecretId": primary, "SecretString": "third-value", "ClientRequestToken": "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"}),
    );
    assert_eq!(r.value(&replica), "third-value");
    assert_eq!(replicas_of(&p, &primary)[0]["ReplicationStatus"], "InSync");
}
