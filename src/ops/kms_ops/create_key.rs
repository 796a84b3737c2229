//! CreateKey: a customer managed symmetric encryption key.

use serde::{Deserialize, Serialize};

use super::common::{KeyMetadata, CUSTOMER_MANAGED};
use super::paging::validation_value;
use crate::error::ApiError;
use crate::ops::{Authorized, Ctx, Operation, Target, Targeted};
use crate::secrets::check_len;

/// The longest key description KMS accepts.
const MAX_DESCRIPTION_LEN: usize = 8192;
/// The largest key policy document KMS accepts.
const MAX_POLICY_LEN: usize = 32_768;

const KEY_USAGES: &[&str] = &[
    "SIGN_VERIFY",
    "ENCRYPT_DECRYPT",
    "GENERATE_VERIFY_MAC",
    "KEY_AGREEMENT",
];
const CUSTOMER_MASTER_KEY_SPECS: &[&str] = &[
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "SYMMETRIC_DEFAULT",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SM2",
];
const KEY_SPECS: &[&str] = &[
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "SYMMETRIC_DEFAULT",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SM2",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
    "ECC_NIST_EDWARDS25519",
];
const ORIGINS: &[&str] = &["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub policy: Option<String>,
    pub description: Option<String>,
    pub key_usage: Option<String>,
    pub customer_master_key_spec: Option<String>,
    pub key_spec: Option<String>,
    pub origin: Option<String>,
    pub custom_key_store_id: Option<String>,
    pub bypass_policy_lockout_safety_check: Option<bool>,
    pub tags: Option<Vec<serde_json::Value>>,
    pub multi_region: Option<bool>,
    pub xks_key_id: Option<String>,
}

impl Targeted for Input {
    fn target(&self) -> Target {
        Target::Any
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub key_metadata: KeyMetadata,
}

#[derive(Debug)]
pub struct CreateKey;

/// Check an enum member: a value outside the model's set is a ValidationException; a value
/// of the set other than `supported` is refused as unsupported by this server.
fn check_enum(
    field: &str,
    member: &str,
    value: Option<&str>,
    all: &[&str],
    supported: &str,
) -> Result<(), ApiError> {
    let Some(v) = value else {
        return Ok(());
    };
    if !all.contains(&v) {
        return Err(validation_value(
            v,
            field,
            &format!("Member must satisfy enum value set: [{}]", all.join(", ")),
        ));
    }
    if v != supported {
        return Err(ApiError::KmsUnsupportedOperation(format!(
            "{member} {v} is not supported by this server: it only creates symmetric encryption keys ({member} {supported})."
        )));
    }
    Ok(())
}

/// A key policy must be a JSON object of at most 32768 characters, in IAM's policy grammar
/// with a `Principal` in every statement.
pub fn check_policy(policy: &str) -> Result<(), ApiError> {
    check_len("policy", policy.chars().count(), 1, usize::MAX)?;
    if policy.chars().count() > MAX_POLICY_LEN {
        return Err(ApiError::MalformedPolicyDocument(format!(
            "The key policy is larger than {MAX_POLICY_LEN} characters, the limit for a key policy document."
        )));
    }
    let allowed = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FF}');
    if !policy.chars().all(allowed) {
        return Err(crate::secrets::validation(
            "policy",
            "Member must satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+",
        ));
    }
    match serde_json::from_str::<serde_json::Value>(policy) {
        Ok(serde_json::Value::Object(_)) => {}
        _ => {
            return Err(ApiError::MalformedPolicyDocument(
                "The key policy is not a valid JSON policy document.".into(),
            ))
        }
    }
    crate::policy::Policy::parse(policy, crate::policy::PolicyType::Resource)
        .map(|_| ())
        .map_err(|e| ApiError::MalformedPolicyDocument(e.aws_message()))
}

/// `kms:BypassPolicyLockoutSafetyCheck`: the request's flag, false when omitted.
pub fn bypass_key(bypass: Option<bool>) -> (String, Vec<String>) {
    (
        "kms:BypassPolicyLockoutSafetyCheck".to_owned(),
        vec![bypass.unwrap_or(false).to_string()],
    )
}

/// KMS's lockout safety check: the new policy must let the caller change it again.
pub fn check_lockout(
    auth: &Authorized,
    key: &crate::store::rows::KmsKeyRow,
    policy: &str,
    bypass: Option<bool>,
) -> Result<(), ApiError> {
    if bypass != Some(true) && !auth.would_allow_on_key("kms:PutKeyPolicy", key, policy) {
        return Err(ApiError::MalformedPolicyDocument(
            "The new key policy will not allow you to update the key policy in the future.".into(),
        ));
    }
    Ok(())
}

impl Operation for CreateKey {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "CreateKey";
    const ACTION: &'static str = "kms:CreateKey";
    const READ_ONLY: bool = false;

    /// The request's key properties as KMS's condition keys (their defaults when omitted:
    /// a condition on them holds for a request that relies on the default), and
    /// `kms:BypassPolicyLockoutSafetyCheck` (false when omitted).
    fn context_keys(input: &Input) -> Vec<(String, Vec<String>)> {
        let one = |k: &str, v: &str| (k.to_owned(), vec![v.to_owned()]);
        let spec = input
            .key_spec
            .as_deref()
            .or(input.customer_master_key_spec.as_deref())
            .unwrap_or("SYMMETRIC_DEFAULT");
        let usage = input.key_usage.as_deref().unwrap_or("ENCRYPT_DECRYPT");
        vec![
            one("kms:KeySpec", spec),
            one("kms:CustomerMasterKeySpec", spec),
            one("kms:KeyUsage", usage),
            one("kms:CustomerMasterKeyUsage", usage),
            one(
                "kms:KeyOrigin",
                input.origin.as_deref().unwrap_or("AWS_KMS"),
            ),
            one(
                "kms:MultiRegion",
                if input.multi_region == Some(true) {
                    "true"
                } else {
                    "false"
                },
            ),
            bypass_key(input.bypass_policy_lockout_safety_check),
        ]
    }

    fn validate(input: &Input) -> Result<(), ApiError> {
        if let Some(d) = &input.description {
            check_len("description", d.chars().count(), 0, MAX_DESCRIPTION_LEN)?;
        }
        check_enum(
            "keyUsage",
            "KeyUsage",
            input.key_usage.as_deref(),
            KEY_USAGES,
            "ENCRYPT_DECRYPT",
        )?;
        check_enum(
            "customerMasterKeySpec",
            "CustomerMasterKeySpec",
            input.customer_master_key_spec.as_deref(),
            CUSTOMER_MASTER_KEY_SPECS,
            "SYMMETRIC_DEFAULT",
        )?;
        check_enum(
            "keySpec",
            "KeySpec",
            input.key_spec.as_deref(),
            KEY_SPECS,
            "SYMMETRIC_DEFAULT",
        )?;
        if input.key_spec.is_some() && input.customer_master_key_spec.is_some() {
            return Err(ApiError::Validation(
                "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated: use KeySpec.".into(),
            ));
        }
        check_enum(
            "origin",
            "Origin",
            input.origin.as_deref(),
            ORIGINS,
            "AWS_KMS",
        )?;
        if let Some(p) = &input.policy {
            check_policy(p)?;
        }
        if input.custom_key_store_id.is_some() || input.xks_key_id.is_some() {
            return Err(ApiError::KmsUnsupportedOperation(
                "Custom key stores are not supported by this server.".into(),
            ));
        }
        if input.multi_region == Some(true) {
            return Err(ApiError::KmsUnsupportedOperation(
                "Multi-Region keys are not supported by this server.".into(),
            ));
        }
        if input.tags.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(ApiError::KmsUnsupportedOperation(
                "Tags on KMS keys are not supported by this server yet.".into(),
            ));
        }
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        let description = input.description.unwrap_or_default();
        let policy = input.policy;
        let bypass = input.bypass_policy_lockout_safety_check;
        let auth = auth.clone();
        let scope = auth.scope.clone();
        let keyring = ctx.keyring.clone();
        let now = ctx.now_ms();
        ctx.store
            .write(move |tx| {
                let mut key = keyring.create_key(
                    tx,
                    &scope.account,
                    &scope.region,
                    &description,
                    CUSTOMER_MANAGED,
                    now,
                )?;
                if let Some(p) = &policy {
                    check_lockout(&auth, &key, p, bypass)?;
                    key.policy = Some(p.clone());
                    tx.update_kms_key(&key)?;
                }
                Ok(Output {
                    key_metadata: KeyMetadata::from_row(&key),
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> Input {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn only_symmetric_encryption_keys() {
        assert!(CreateKey::validate(&input("{}")).is_ok());
        assert!(CreateKey::validate(&input(
            r#"{"KeyUsage":"ENCRYPT_DECRYPT","KeySpec":"SYMMETRIC_DEFAULT","Origin":"AWS_KMS","Tags":[],"MultiRegion":false}"#
        ))
        .is_ok());
        for (body, code) in [
            (
                r#"{"KeyUsage":"SIGN_VERIFY"}"#,
                "UnsupportedOperationException",
            ),
            (r#"{"KeyUsage":"NOPE"}"#, "ValidationException"),
            (r#"{"KeySpec":"RSA_2048"}"#, "UnsupportedOperationException"),
            (
                r#"{"CustomerMasterKeySpec":"HMAC_256"}"#,
                "UnsupportedOperationException",
            ),
            (r#"{"Origin":"EXTERNAL"}"#, "UnsupportedOperationException"),
            (r#"{"MultiRegion":true}"#, "UnsupportedOperationException"),
            (
                r#"{"Tags":[{"TagKey":"a","TagValue":"b"}]}"#,
                "UnsupportedOperationException",
            ),
            (
                r#"{"Policy":"not json"}"#,
                "MalformedPolicyDocumentException",
            ),
            (r#"{"Policy":"[1]"}"#, "MalformedPolicyDocumentException"),
            (r#"{"Policy":""}"#, "ValidationException"),
        ] {
            assert_eq!(
                CreateKey::validate(&input(body)).unwrap_err().code(),
                code,
                "{body}"
            );
        }
        let long = format!(r#"{{"Description":"{}"}}"#, "d".repeat(8193));
        assert_eq!(
            CreateKey::validate(&input(&long)).unwrap_err().code(),
            "ValidationException"
        );
        let big = format!(r#"{{"Policy":"{{\"a\":\"{}\"}}"}}"#, "x".repeat(32_768));
        assert_eq!(
            CreateKey::validate(&input(&big)).unwrap_err().code(),
            "MalformedPolicyDocumentException"
        );
    }
}
