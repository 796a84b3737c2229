//! Key policies: the documents that decide who may use a KMS key.
//!
//! A KMS key's policy is required: without an applicable Allow in it, identity policies grant
//! nothing on the key, even in its own account (`PolicySet::resource_required`). A statement
//! naming the account (`arn:aws:iam::A:root`) only delegates to the account's identity
//! policies, so the default policy of a new key makes the key behave like any other resource
//! of the account, and sharing with another account needs both its key policy and the other
//! account's identity policies, as on AWS.

use crate::store::rows::KmsKeyRow;

/// The name of the one policy a key has.
pub const POLICY_NAME: &str = "default";

/// The policy KMS gives a customer managed key created without one: the account's identity
/// policies decide (AWS's "Enable IAM User Permissions" statement).
pub fn default_policy(account: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string()
}

/// The policy of the AWS managed key `aws/secretsmanager`: any principal of the account may
/// use it through Secrets Manager; the account may read its metadata. It cannot be changed,
/// and it never allows another account.
pub fn managed_policy(account: &str, region: &str) -> String {
    let sid = "Allow access through AWS Secrets Manager for all principals in the account that are authorized to use AWS Secrets Manager";
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": "auto-secretsmanager-2",
        "Statement": [
            {
                "Sid": sid,
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:CreateGrant", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {
                    "kms:CallerAccount": account,
                    "kms:ViaService": via_service(region)
                }}
            },
            {
                // AWS repeats the first Sid here; IAM's grammar (ours) wants Sids unique.
                "Sid": format!("{sid} (data keys)"),
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": "kms:GenerateDataKey*",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"kms:CallerAccount": account},
                    "StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}
                }
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"],
                "Resource": "*"
            }
        ]
    })
    .to_string()
}

/// `kms:ViaService` for requests Secrets Manager makes on a caller's behalf.
pub fn via_service(region: &str) -> String {
    format!("secretsmanager.{region}.amazonaws.com")
}

/// The condition keys an operation on `key` carries about the key itself, as KMS sets them on
/// every operation authorized on a KMS key: its origin, spec, usage and Region scope (every
/// key here is a single-Region symmetric encryption key with KMS-made material), and
/// `kms:ResourceAliases`, the aliases that name it (`aliases`; the key is absent when there
/// are none, which `ForAnyValue`/`ForAllValues` treat as the empty set).
pub fn key_condition_keys(aliases: Vec<String>) -> Vec<(String, Vec<String>)> {
    let one = |k: &str, v: &str| (k.to_owned(), vec![v.to_owned()]);
    let mut keys = vec![
        one("kms:KeyOrigin", "AWS_KMS"),
        one("kms:KeySpec", "SYMMETRIC_DEFAULT"),
        one("kms:CustomerMasterKeySpec", "SYMMETRIC_DEFAULT"),
        one("kms:KeyUsage", "ENCRYPT_DECRYPT"),
        one("kms:CustomerMasterKeyUsage", "ENCRYPT_DECRYPT"),
        one("kms:MultiRegion", "false"),
    ];
    if !aliases.is_empty() {
        keys.push(("kms:ResourceAliases".to_owned(), aliases));
    }
    keys
}

/// The policy in force on `key`: its own, or the default for its kind (keys created before
/// key policies were stored have none).
pub fn effective(key: &KmsKeyRow) -> String {
    match &key.policy {
        Some(p) => p.clone(),
        None if key.key_manager == "AWS" => managed_policy(&key.account_id, &key.region),
        None => default_policy(&key.account_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Policy, PolicyType};

    #[test]
    fn shipped_policies_parse_as_resource_policies() {
        for text in [
            default_policy("111122223333"),
            managed_policy("111122223333", "us-east-1"),
        ] {
            Policy::parse(&text, PolicyType::Resource).unwrap();
        }
    }
}
