//! Cross-account replicas in the same region (AssociateCrossAccountReplica,
//! DisassociateCrossAccountReplica, CreateSecret's `CrossAccountPrimaryARN`, DescribeSecret's
//! `CrossAccountPrimary` / `CrossAccountReplicas`), through raw signed requests: the primary's
//! account (the organization's management account), a replica account in the organization
//! and one outside it, all served by one server.

use std::path::Path;

use serde_json::{json, Value};

use crate::common::{call_as, example_policies, key_for, user_allowing, write, RawResponse};
use crate::common::{files_under, TestServer};

pub(crate) const PRIMARY: &str = "111122223333";
pub(crate) const REPLICA: &str = "444455556666";
pub(crate) const OUTSIDER: &str = "777788889999";

/// The organization: the primary's and the replica's accounts, `OUTSIDER` not in it; users
/// with the rights each test needs.
pub(crate) fn setup(dir: &Path) {
    write(
        dir,
        "organization/scps/FullAWSAccess.json",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    );
    write(
        dir,
        "organization/organization.json",
        &format!(
            r#"{{"Id":"o-xacct000001","ManagementAccount":"{PRIMARY}",
                "Root":{{"Id":"r-ab12","Policies":["FullAWSAccess"],
                  "Accounts":[{{"AccountId":"{PRIMARY}"}},{{"AccountId":"{REPLICA}"}}]}}}}"#
        ),
    );
    user_allowing(
        dir,
        PRIMARY,
        "padmin",
        &["secretsmanager:*", "kms:*", "iam:PassRole"],
    );
    // everything AssociateCrossAccountReplica needs but AcceptCrossAccountReplication
    user_allowing(
        dir,
        PRIMARY,
        "noaccept",
        &[
            "secretsmanager:AssociateCrossAccountReplica",
            "secretsmanager:GetSecretValue",
            "secretsmanager:DescribeSecret",
            "kms:*",
            "iam:PassRole",
        ],
    );
    // everything but DisassociateCrossAccountReplica
    user_allowing(
        dir,
        PRIMARY,
        "nodisassoc",
        &[
            "secretsmanager:AssociateCrossAccountReplica",
            "secretsmanager:AcceptCrossAccountReplication",
            "secretsmanager:GetSecretValue",
            "secretsmanager:DescribeSecret",
            "kms:*",
        ],
    );
    // everything but GetSecretValue on the primary
    user_allowing(
        dir,
        PRIMARY,
        "noget",
        &[
            "secretsmanager:AssociateCrossAccountReplica",
            "secretsmanager:AcceptCrossAccountReplication",
            "kms:*",
        ],
    );
    user_allowing(dir, REPLICA, "radmin", &["secretsmanager:*", "kms:*"]);
    // may stop replication, but not delete the replica's resource policy
    user_allowing(
        dir,
        REPLICA,
        "nostop",
        &["secretsmanager:StopReplicationToReplica", "kms:*"],
    );
    user_allowing(dir, OUTSIDER, "oadmin", &["secretsmanager:*", "kms:*"]);
}

/// A user's signed requests.
pub(crate) struct As<'a> {
    s: &'a TestServer,
    akid: String,
    secret: String,
}

impl As<'_> {
    /// `op` with `body` (a value written without a token gets a fresh one, as SDKs do).
    pub(crate) fn call(&self, op: &str, mut body: Value) -> RawResponse {
        if body.get("SecretString").is_some() && body.get("ClientRequestToken").is_none() {
            body["ClientRequestToken"] = json!(uuid::Uuid::new_v4().to_string());
        }
        let target = if op.starts_with("TrentService.") {
            op.to_owned()
        } else {
            format!("secretsmanager.{op}")
        };
        call_as(self.s, &self.akid, &self.secret, &target, &body)
    }

    pub(crate) fn ok(&self, op: &str, body: Value) -> Value {
        let r = self.call(op, body);
        assert_eq!(r.status, 200, "{op}: {}", r.body);
        r.json()
    }

    pub(crate) fn value(&self, id: &str) -> String {
        self.ok("GetSecretValue", json!({"SecretId": id}))["SecretString"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A customer managed key of this user's account whose key policy also lets
    /// `other`'s principals encrypt with it (what a cross-account replica's key needs).
    pub(crate) fn key_shared_with(&self, own: &str, other: &str) -> String {
        let k = self.ok("TrentService.CreateKey", json!({"Description": "replica"}));
        let arn = k["KeyMetadata"]["Arn"].as_str().unwrap().to_owned();
        let policy = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Owner", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{own}:root")},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "Replication", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{other}:root")},
             "Action": "kms:Encrypt", "Resource": "*"}]});
        self.ok(
            "TrentService.PutKeyPolicy",
            json!({"KeyId": arn, "Policy": policy.to_string()}),
        );
        arn
    }
}

pub(crate) fn user<'a>(s: &'a TestServer, dir: &Path, account: &str, name: &str) -> As<'a> {
    let (akid, secret) = key_for(s, dir, account, name);
    As { s, akid, secret }
}

pub(crate) fn assert_error(r: &RawResponse, code: &str, contains: &str) {
    assert_eq!(r.error_type(), code, "{}", r.body);
    let m = r.json()["Message"].as_str().unwrap_or_default().to_owned();
    assert!(m.contains(contains), "{m}");
}

/// The replica's `CrossAccountPrimary` status as its account sees it.
pub(crate) fn replica_status(r: &As<'_>, replica: &str) -> Value {
    r.ok("DescribeSecret", json!({"SecretId": replica}))["CrossAccountPrimary"].clone()
}

#[test]
fn associate_replicate_disassociate_and_promote() {
    let (_t, dir) = example_policies();
    setup(&dir);
    let s = TestServer::start_with_policies(&dir);
    let p = user(&s, &dir, PRIMARY, "padmin");
    let r = user(&s, &dir, REPLICA, "radmin");

    let primary = p.ok(
        "CreateSecret",
        json!({"Name": "app/db", "SecretString": "xacct-value-1", "ClientRequestToken": "v1v1v1v1v1v1v1v1v1v1v1v1v1v1v1v1v1v1",
               "Description": "primary's own"}),
    )["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let rkey = r.key_shared_with(REPLICA, PRIMARY);

    // the replica's account creates the replica: no value, Pending, the managed policy
    let created = r.ok(
        "CreateSecret",
        json!({"Name": "from-primary/db", "CrossAccountPrimaryARN": primary, "KmsKeyId": rkey,
               "Tags": [{"Key": "team", "Value": "replica-side"}]}),
    );
    let replica = created["ARN"].as_str().unwrap().to_owned();
    assert!(created.get("VersionId").is_none(), "{created}");
    assert_eq!(
        replica_status(&r, &replica),
        json!({"PrimarySecretARN": primary, "ReplicationStatus": "Pending"})
    );
    let policy = r.ok("GetResourcePolicy", json!({"SecretId": replica}))["ResourcePolicy"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains("secretsmanager:AcceptCrossAccountReplication")
            && policy.contains(&format!("arn:aws:iam::{PRIMARY}:root")),
        "{policy}"
    );
    assert_error(
        &r.call("GetSecretValue", json!({"SecretId": replica})),
        "ResourceNotFoundException",
        "",
    );

    // attacker: a caller of the primary's account without AcceptCrossAccountReplication on
    // the replica is refused, and neither secret changes
    let noaccept = user(&s, &dir, PRIMARY, "noaccept");
    let denied = noaccept.call(
        "AssociateCrossAccountReplica",
        json!({"SecretId": primary, "CrossAccountReplicaARN": replica}),
    );
    assert_error(
        &denied,
        "AccessDeniedException",
        "secretsmanager:AcceptCrossAccountReplication",
    );
    assert_eq!(replica_status(&r, &replica)["ReplicationStatus"], "Pending");
    assert!(p
        .ok("DescribeSecret", json!({"SecretId": primary}))
        .get("CrossAccountReplicas")
        .is_none());

    // positive control: the primary's administrator associates; the replica is in sync
    let assoc = p.ok(
        "AssociateCrossAccountReplica",
        json!({"SecretId": primary, "CrossAccountReplicaARN": replica,
               "ReplicationRoleARN": format!("arn:aws:iam::{PRIMARY}:role/replicator")}),
    );
    assert_eq!(
        assoc,
        json!({"ARN": primary, "CrossAccountReplicaARN": replica, "ReplicationStatus": "InSync"})
    );
    assert_eq!(r.value(&replica), "xacct-value-1");
    assert_eq!(
        replica_status(&r, &replica),
        json!({"PrimarySecretARN": primary, "ReplicationStatus": "InSync"})
    );
    let described = p.ok("DescribeSecret", json!({"SecretId": primary}));
    assert_eq!(
        described["CrossAccountReplicas"],
        json!([{"ReplicaSecretARN": replica,
                "ReplicationRoleARN": format!("arn:aws:iam::{PRIMARY}:role/replicator"),
                "ReplicationStatus": "InSync"}])
    );
    assert!(described.get("ReplicationStatus").is_none(), "{described}");
    assert!(described.get("PrimaryRegion").is_none(), "{described}");
    // idempotent: again for the same replica repairs it
    p.ok(
        "AssociateCrossAccountReplica",
        json!({"SecretId": "app/db", "CrossAccountReplicaARN": replica}),
    );

    // writes on the primary reach it (values and labels); its own metadata stays its own
    p.ok(
        "PutSecretValue",
        json!({"SecretId": primary, "SecretString": "xacct-value-2"}),
    );
    p.ok(
        "UpdateSecret",
        json!({"SecretId": primary, "Description": "changed on the primary"}),
    );
    assert_eq!(r.value(&replica), "xacct-value-2");
    let rd = r.ok("DescribeSecret", json!({"SecretId": replica}));
    assert!(rd.get("Description").is_none(), "{rd}");
    assert_eq!(
        rd["Tags"],
        json!([{"Key": "team", "Value": "replica-side"}])
    );
    assert_eq!(rd["KmsKeyId"], json!(rkey));
    let pd = p.ok("DescribeSecret", json!({"SecretId": primary}));
    assert_eq!(rd["VersionIdsToStages"], pd["VersionIdsToStages"]);

    // sealed under the replica's own key: disabled, the primary's write stands and the
    // replica is Failed; enabled again, the next write brings it back in sync
    r.ok("TrentService.DisableKey", json!({"KeyId": rkey}));
    p.ok(
        "PutSecretValue",
        json!({"SecretId": primary, "SecretString": "xacct-value-3"}),
    );
    let entry = &p.ok("DescribeSecret", json!({"SecretId": primary}))["CrossAccountReplicas"][0];
    assert_eq!(entry["ReplicationStatus"], "Failed", "{entry}");
    assert!(
        entry["StatusMessage"]
            .as_str()
            .unwrap()
            .starts_with("Replication failed: "),
        "{entry}"
    );
    r.ok("TrentService.EnableKey", json!({"KeyId": rkey}));
    p.ok(
        "PutSecretValue",
        json!({"SecretId": primary, "SecretString": "xacct-value-4"}),
    );
    assert_eq!(r.value(&replica), "xacct-value-4");
    assert_eq!(replica_status(&r, &replica)["ReplicationStatus"], "InSync");

    // writes on the replica are refused (reads work: the positive control above)
    for (op, body) in [
        (
            "PutSecretValue",
            json!({"SecretId": replica, "SecretString": "forged"}),
        ),
        (
            "UpdateSecret",
            json!({"SecretId": replica, "Description": "x"}),
        ),
        (
            "UpdateSecretVersionStage",
            json!({"SecretId": replica, "VersionStage": "X", "MoveToVersionId": "v1v1v1v1v1v1v1v1v1v1v1v1v1v1v1v1v1v1"}),
        ),
        (
            "DeleteSecret",
            json!({"SecretId": replica, "ForceDeleteWithoutRecovery": true}),
        ),
        ("DeleteResourcePolicy", json!({"SecretId": replica})),
        (
            "RotateSecret",
            json!({"SecretId": replica, "ClientRequestToken": "r1r1r1r1r1r1r1r1r1r1r1r1r1r1r1r1r1r1"}),
        ),
    ] {
        assert_error(
            &r.call(op, body),
            "InvalidParameterException",
            "Operation not permitted on a cross-account replica secret",
        );
    }
    assert_eq!(r.value(&replica), "xacct-value-4");
    // except its own key, which stays a customer managed one
    assert_error(
        &r.call(
            "UpdateSecret",
            json!({"SecretId": replica, "KmsKeyId": "alias/aws/secretsmanager"}),
        ),
        "InvalidParameterException",
        "customer managed KMS key",
    );
    let rkey2 = r.key_shared_with(REPLICA, PRIMARY);
    r.ok(
        "UpdateSecret",
        json!({"SecretId": replica, "KmsKeyId": rkey2}),
    );
    assert_eq!(r.value(&replica), "xacct-value-4");
    r.ok("TrentService.DisableKey", json!({"KeyId": rkey}));
    p.ok(
        "PutSecretValue",
        json!({"SecretId": primary, "SecretString": "xacct-value-4b"}),
    );
    assert_eq!(r.value(&replica), "xacct-value-4b");
    r.ok("TrentService.EnableKey", json!({"KeyId": rkey}));
    p.ok(
        "PutSecretValue",
        json!({"SecretId": primary, "SecretString": "xacct-value-4"}),
    );

    // the associated primary can't be deleted
    assert_error(
        &p.call(
            "DeleteSecret",
            json!({"SecretId": primary, "ForceDeleteWithoutRecovery": true}),
        ),
        "InvalidParameterException",
        "DisassociateCrossAccountReplica",
    );

    // attacker: disassociating needs its own action; positive control follows
    let nodisassoc = user(&s, &dir, PRIMARY, "nodisassoc");
    assert_error(
        &nodisassoc.call(
            "DisassociateCrossAccountReplica",
            json!({"SecretId": primary, "CrossAccountReplicaARN": replica}),
        ),
        "AccessDeniedException",
        "secretsmanager:DisassociateCrossAccountReplica",
    );
    // an ARN that is not its replica
    assert_error(
        &p.call(
            "DisassociateCrossAccountReplica",
            json!({"SecretId": primary, "CrossAccountReplicaARN": format!("{replica}x")}),
        ),
        "ResourceNotFoundException",
        "cross-account replica",
    );
    let out = p.ok(
        "DisassociateCrossAccountReplica",
        json!({"SecretId": primary, "CrossAccountReplicaARN": replica}),
    );
    assert_eq!(
        out,
        json!({"ARN": primary, "CrossAccountReplicaARN": replica})
    );
    // Detached: no longer follows, still a replica (read-only) until promoted
    let st = replica_status(&r, &replica);
    assert_eq!(st["ReplicationStatus"], "Detached", "{st}");
    assert!(p
        .ok("DescribeSecret", json!({"SecretId": primary}))
        .get("CrossAccountReplicas")
        .is_none());
    p.ok(
        "PutSecretValue",
        json!({"SecretId": primary, "SecretString": "xacct-value-5"}),
    );
    assert_eq!(r.value(&replica), "xacct-value-4");
    assert_error(
        &r.call(
            "PutSecretValue",
            json!({"SecretId": replica, "SecretString": "forged"}),
        ),
        "InvalidParameterException",
        "cross-account replica",
    );

    // StopReplicationToReplica needs DeleteResourcePolicy too (the managed policy goes)
    let nostop = user(&s, &dir, REPLICA, "nostop");
    assert_error(
        &nostop.call("StopReplicationToReplica", json!({"SecretId": replica})),
        "AccessDeniedException",
        "secretsmanager:DeleteResourcePolicy",
    );
    let stopped = r.ok("StopReplicationToReplica", json!({"SecretId": replica}));
    assert_eq!(stopped["ARN"], json!(replica));
    let rd = r.ok("DescribeSecret", json!({"SecretId": replica}));
    assert!(rd.get("CrossAccountPrimary").is_none(), "{rd}");
    assert!(r
        .ok("GetResourcePolicy", json!({"SecretId": replica}))
        .get("ResourcePolicy")
        .is_none());
    // standalone and writable
    r.ok(
        "PutSecretValue",
        json!({"SecretId": replica, "SecretString": "own-value"}),
    );
    assert_eq!(r.value(&replica), "own-value");
    // and the primary, no longer associated, can be deleted
    p.ok(
        "DeleteSecret",
        json!({"SecretId": primary, "ForceDeleteWithoutRecovery": true}),
    );

    // no value in any file of the server's data directory (store, audit), in clear
    for f in files_under(&s.data_dir()) {
        let bytes = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("xacct-value-"), "{}", f.display());
    }
    // the association and the acceptance on the replica were audited
    for name in [
        "AssociateCrossAccountReplica",
        "AcceptCrossAccountReplication",
    ] {
        let events = s.call(
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
            &json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": name}]})
                .to_string(),
        );
        let n = events.json()["Events"].as_array().map_or(0, Vec::len);
        assert!(n >= 1, "{name}: {}", events.body);
        assert!(!events.body.contains("xacct-value-"), "{}", events.body);
    }
}

#[test]
fn association_refusals_leave_both_secrets_unchanged() {
    let (_t, dir) = example_policies();
    setup(&dir);
    let s = TestServer::start_with_policies(&dir);
    let p = user(&s, &dir, PRIMARY, "padmin");
    let r = user(&s, &dir, REPLICA, "radmin");
    let o = user(&s, &dir, OUTSIDER, "oadmin");
    let new_primary = |name: &str| {
        p.ok(
            "CreateSecret",
            json!({"Name": name, "SecretString": "xacct-primary"}),
        )["ARN"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let primary = new_primary("app/one");
    let other_primary = new_primary("app/two");
    let rkey = r.key_shared_with(REPLICA, PRIMARY);
    let new_replica = |who: &As<'_>, key: &str, name: &str, of: &str| {
        who.ok(
            "CreateSecret",
            json!({"Name": name, "CrossAccountPrimaryARN": of, "KmsKeyId": key}),
        )["ARN"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // CreateSecret's checks for a cross-account replica
    for (body, code, text) in [
        (
            json!({"Name": "x1", "CrossAccountPrimaryARN": primary, "KmsKeyId": rkey, "SecretString": "v", "ClientRequestToken": "t1t1t1t1t1t1t1t1t1t1t1t1t1t1t1t1t1t1"}),
            "InvalidParameterException",
            "SecretString",
        ),
        (
            json!({"Name": "x2", "CrossAccountPrimaryARN": primary, "KmsKeyId": rkey, "Description": "d"}),
            "InvalidParameterException",
            "Description",
        ),
        (
            json!({"Name": "x3", "CrossAccountPrimaryARN": primary}),
            "InvalidParameterException",
            "customer managed KMS key",
        ),
        (
            json!({"Name": "x4", "CrossAccountPrimaryARN": primary, "KmsKeyId": "alias/aws/secretsmanager"}),
            "InvalidParameterException",
            "customer managed KMS key",
        ),
        (
            json!({"Name": "x5", "CrossAccountPrimaryARN": primary.replace("us-east-1", "eu-west-1"), "KmsKeyId": rkey}),
            "InvalidParameterException",
            "same Region and partition",
        ),
        (
            json!({"Name": "x6", "CrossAccountPrimaryARN": primary.replace(PRIMARY, REPLICA), "KmsKeyId": rkey}),
            "InvalidParameterException",
            "different AWS account",
        ),
    ] {
        assert_error(&r.call("CreateSecret", body), code, text);
    }

    // a secret not created as this primary's replica: its account's policy lets the
    // primary's account accept, but it names another primary (or none)
    let for_other = new_replica(&r, &rkey, "for/other", &other_primary);
    let plain = r.ok("CreateSecret", json!({"Name": "plain", "KmsKeyId": rkey}))["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    let accept = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{PRIMARY}:root")},
        "Action": "secretsmanager:AcceptCrossAccountReplication", "Resource": "*"}]});
    r.ok(
        "PutResourcePolicy",
        json!({"SecretId": plain, "ResourcePolicy": accept.to_string()}),
    );
    for not_mine in [&for_other, &plain] {
        assert_error(
            &p.call(
                "AssociateCrossAccountReplica",
                json!({"SecretId": primary, "CrossAccountReplicaARN": not_mine}),
            ),
            "InvalidRequestException",
            "isn't a cross-account replica of secret",
        );
    }
    // a replica ARN in another region; in the primary's own account
    assert_error(
        &p.call(
            "AssociateCrossAccountReplica",
            json!({"SecretId": primary, "CrossAccountReplicaARN": for_other.replace("us-east-1", "eu-west-1")}),
        ),
        "InvalidParameterException",
        "same Region and partition",
    );
    assert_error(
        &p.call(
            "AssociateCrossAccountReplica",
            json!({"SecretId": primary, "CrossAccountReplicaARN": other_primary}),
        ),
        "InvalidParameterException",
        "different AWS account",
    );
    // a secret that does not exist reads as a refusal, as one the caller may not see
    assert_error(
        &p.call(
            "AssociateCrossAccountReplica",
            json!({"SecretId": primary, "CrossAccountReplicaARN": format!("arn:aws:secretsmanager:us-east-1:{REPLICA}:secret:nothing-AbCdEf")}),
        ),
        "AccessDeniedException",
        "secretsmanager:AcceptCrossAccountReplication",
    );
    assert_error(
        &p.call(
            "AssociateCrossAccountReplica",
            json!({"SecretId": primary, "CrossAccountReplicaARN": for_other, "ReplicaRestriction": "Anyone"}),
        ),
        "ValidationException",
        "enum value set: [SameOrg, NoRestriction]",
    );
    // a replication role of another account can't be passed
    let mine = new_replica(&r, &rkey, "for/one", &primary);
    assert_error(
        &p.call(
            "AssociateCrossAccountReplica",
            json!({"SecretId": primary, "CrossAccountReplicaARN": mine,
                   "ReplicationRoleARN": format!("arn:aws:iam::{REPLICA}:role/replicator")}),
        ),
        "AccessDeniedException",
        "iam:PassRole",
    );
    // nothing of the refusals changed either secret
    assert_eq!(replica_status(&r, &mine)["ReplicationStatus"], "Pending");
    assert_eq!(
        replica_status(&r, &for_other)["ReplicationStatus"],
        "Pending"
    );
    assert!(p
        .ok("DescribeSecret", json!({"SecretId": primary}))
        .get("CrossAccountReplicas")
        .is_none());

    // the primary's value must be readable by the caller
    let noget = user(&s, &dir, PRIMARY, "noget");
    assert_error(
        &noget.call(
            "AssociateCrossAccountReplica",
            json!({"SecretId": primary, "CrossAccountReplicaARN": mine}),
        ),
        "AccessDeniedException",
        "secretsmanager:GetSecretValue",
    );
    // the replica's key must let the primary's account encrypt (its key policy decides)
    let private = r.ok("TrentService.CreateKey", json!({"Description": "own only"}))["KeyMetadata"]
        ["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let unshared = new_replica(&r, &private, "for/one-unshared", &primary);
    let e = p.call(
        "AssociateCrossAccountReplica",
        json!({"SecretId": primary, "CrossAccountReplicaARN": unshared}),
    );
    assert_error(&e, "AccessDeniedException", "kms:Encrypt");
    assert_eq!(
        replica_status(&r, &unshared)["ReplicationStatus"],
        "Pending"
    );
    assert!(p
        .ok("DescribeSecret", json!({"SecretId": primary}))
        .get("CrossAccountReplicas")
        .is_none());

    // positive control, then a second replica for the same primary is refused
    p.ok(
        "AssociateCrossAccountReplica",
        json!({"SecretId": primary, "CrossAccountReplicaARN": mine}),
    );
    assert_eq!(r.value(&mine), "xacct-primary");
    let second = new_replica(&r, &rkey, "for/one-again", &primary);
    assert_error(
        &p.call(
            "AssociateCrossAccountReplica",
            json!({"SecretId": primary, "CrossAccountReplicaARN": second}),
        ),
        "LimitExceededException",
        "at most one",
    );
    assert_eq!(replica_status(&r, &second)["ReplicationStatus"], "Pending");
    assert_eq!(
        p.ok("DescribeSecret", json!({"SecretId": primary}))["CrossAccountReplicas"][0]
            ["ReplicaSecretARN"],
        json!(mine)
    );

    // an account outside the organization: refused under SameOrg (the default), allowed
    // with NoRestriction
    let okey = o.key_shared_with(OUTSIDER, PRIMARY);
    let outside = new_replica(&o, &okey, "from-partner/db", &other_primary);
    assert_error(
        &p.call(
            "AssociateCrossAccountReplica",
            json!({"SecretId": other_primary, "CrossAccountReplicaARN": outside}),
        ),
        "InvalidRequestException",
        "same organization",
    );
    assert_eq!(replica_status(&o, &outside)["ReplicationStatus"], "Pending");
    let out = p.ok(
        "AssociateCrossAccountReplica",
        json!({"SecretId": other_primary, "CrossAccountReplicaARN": outside,
               "ReplicaRestriction": "NoRestriction"}),
    );
    assert_eq!(out["ReplicationStatus"], "InSync");
    assert_eq!(o.value(&outside), "xacct-primary");

    // the replica's account stops replication: the primary's entry shows Detached, and the
    // primary can be deleted
    o.ok("StopReplicationToReplica", json!({"SecretId": outside}));
    let entry =
        &p.ok("DescribeSecret", json!({"SecretId": other_primary}))["CrossAccountReplicas"][0];
    assert_eq!(entry["ReplicationStatus"], "Detached", "{entry}");
    p.ok(
        "PutSecretValue",
        json!({"SecretId": other_primary, "SecretString": "after-stop"}),
    );
    assert_eq!(o.value(&outside), "xacct-primary");
    // a detached entry holds neither a new association nor the primary's deletion
    let next = new_replica(&r, &rkey, "for/two", &other_primary);
    let out = p.ok(
        "AssociateCrossAccountReplica",
        json!({"SecretId": other_primary, "CrossAccountReplicaARN": next}),
    );
    assert_eq!(out["ReplicationStatus"], "InSync");
    assert_eq!(r.value(&next), "after-stop");
    p.ok(
        "DisassociateCrossAccountReplica",
        json!({"SecretId": other_primary, "CrossAccountReplicaARN": next}),
    );
    p.ok(
        "DeleteSecret",
        json!({"SecretId": other_primary, "ForceDeleteWithoutRecovery": true}),
    );
    // a promoted replica can no longer be associated
    let third = new_primary("app/three");
    assert_error(
        &p.call(
            "AssociateCrossAccountReplica",
            json!({"SecretId": third, "CrossAccountReplicaARN": outside, "ReplicaRestriction": "NoRestriction"}),
        ),
        "AccessDeniedException",
        "secretsmanager:AcceptCrossAccountReplication",
    );
}
