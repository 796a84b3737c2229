//! Audit events in CloudTrail's shape, appended to a hash chain before the response leaves.
//!
//! Every request gets one event, allowed, denied or failed. If the event cannot be written
//! the request fails with `InternalServiceError` (fail closed). Events never hold secret
//! values, keys or credentials: request parameters are an allow-list of safe fields.
//!
//! May depend on: `store`, `error`, `auth::Principal`.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::auth::{Principal, PrincipalKind};
use crate::error::ApiError;
use crate::store::rows::AuditRow;
use crate::store::Store;

/// The hash a chain starts from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Request fields that may be recorded as given. Everything else is left out.
const SAFE_FIELDS: &[&str] = &[
    "SecretId",
    "Name",
    "Description",
    "KmsKeyId",
    "VersionId",
    "VersionStage",
    "VersionStages",
    "ClientRequestToken",
    "RecoveryWindowInDays",
    "ForceDeleteWithoutRecovery",
    "MoveToVersionId",
    "RemoveFromVersionId",
    "IncludeDeprecated",
    "IncludePlannedDeletion",
    "MaxResults",
    "SortOrder",
    "Filters",
    "SecretIdList",
    "TagKeys",
    "Tags",
    "KeyId",
    "AliasName",
    "TargetKeyId",
    "PendingWindowInDays",
    "RotationPeriodInDays",
    "PasswordLength",
    "ExcludeCharacters",
    "ExcludeNumbers",
    "ExcludePunctuation",
    "ExcludeUppercase",
    "ExcludeLowercase",
    "IncludeSpace",
    "RequireEachIncludedType",
    "KeyUsage",
    "KeySpec",
    "Limit",
];

/// Keep only the safe top-level fields of a request body.
pub fn safe_request_parameters(body: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| SAFE_FIELDS.contains(&k.as_str()))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// What the pipeline knows about a request, filled in as it goes.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub request_id: String,
    pub event_time_ms: i64,
    pub event_source: String,
    pub event_name: String,
    pub region: String,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub principal: Option<Principal>,
    pub read_only: Option<bool>,
    pub resource_arn: Option<String>,
    pub request_parameters: Value,
    pub decision: Option<String>,
    pub decision_reason: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

impl Draft {
    /// The CloudTrail-shaped record.
    pub fn to_record(&self, event_id: &str) -> Value {
        let time = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(self.event_time_ms) * 1_000_000,
        )
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
        let identity = match &self.principal {
            Some(p) => json!({
                "type": match p.kind {
                    PrincipalKind::Root => "Root",
                    PrincipalKind::User => "IAMUser",
                    PrincipalKind::AssumedRole => "AssumedRole",
                },
                "principalId": p.user_id,
                "arn": p.arn,
                "accountId": p.account_id,
                "accessKeyId": p.access_key_id,
            }),
            None => Value::Null,
        };
        let resources = match (&self.resource_arn, &self.principal) {
            (Some(arn), _) if arn != "*" => json!([{
                "ARN": arn,
                "accountId": arn.split(':').nth(4).unwrap_or_default(),
                "type": if arn.starts_with("arn:aws:kms") { "AWS::KMS::Key" } else { "AWS::SecretsManager::Secret" },
            }]),
            _ => json!([]),
        };
        json!({
            "eventVersion": "1.08",
            "eventTime": time,
            "eventSource": self.event_source,
            "eventName": self.event_name,
            "awsRegion": self.region,
            "sourceIPAddress": self.source_ip,
            "userAgent": self.user_agent,
            "userIdentity": identity,
            "requestParameters": self.request_parameters,
            "errorCode": self.error_code,
            "errorMessage": self.error_message,
            "requestID": self.request_id,
            "eventID": event_id,
            "readOnly": self.read_only,
            "resources": resources,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": self.principal.as_ref().map(|p| p.account_id.clone()),
            "eventCategory": "Management",
            "authorization": {
                "decision": self.decision,
                "reason": self.decision_reason,
            },
        })
    }
}

/// `SHA-256(prev_hash || record)` as lowercase hex.
pub fn chain_hash(prev_hash: &str, record: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(record.as_bytes());
    hex::encode(h.finalize())
}

/// Appends events to this server's chain.
#[derive(Debug, Clone)]
pub struct Auditor {
    store: Store,
    chain_id: String,
    lock: Arc<Mutex<()>>,
}

impl Auditor {
    pub fn new(store: Store, chain_id: String) -> Self {
        Self {
            store,
            chain_id,
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// Write the event durably. An error means the request must fail closed.
    pub async fn record(&self, draft: &Draft) -> Result<(), ApiError> {
        let event_id = uuid::Uuid::new_v4().to_string();
        let record = draft.to_record(&event_id).to_string();
        let chain_id = self.chain_id.clone();
        let lock = Arc::clone(&self.lock);
        let d = draft.clone();
        self.store
            .write(move |tx| {
                let _g = lock
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let (seq, prev) = match tx.last_audit(&chain_id)? {
                    Some(last) => (last.seq + 1, last.hash),
                    None => (1, GENESIS.to_owned()),
                };
                let hash = chain_hash(&prev, &record);
                tx.insert_audit(&AuditRow {
                    chain_id: chain_id.clone(),
                    seq,
                    event_id: event_id.clone(),
                    event_time: d.event_time_ms,
                    event_name: d.event_name.clone(),
                    principal_arn: d.principal.as_ref().map(|p| p.arn.clone()),
                    access_key_id: d.principal.as_ref().map(|p| p.access_key_id.clone()),
                    source_ip: d.source_ip.clone(),
                    resource_arn: d.resource_arn.clone(),
                    error_code: d.error_code.clone(),
                    decision: d.decision.clone().unwrap_or_else(|| "None".into()),
                    record: record.clone(),
                    prev_hash: prev,
                    hash,
                })?;
                Ok(())
            })
            .await
    }
}

/// Verify every chain in the store: each record's hash and link. Returns the number of
/// records checked, or the first broken record.
pub fn verify(store: &Store) -> Result<u64, String> {
    let chains = store
        .read_blocking(|tx| Ok(tx.audit_chains()?))
        .map_err(|e| e.to_string())?;
    let mut n = 0u64;
    for chain in chains {
        let mut prev = GENESIS.to_owned();
        let mut expect_seq = 1i64;
        loop {
            let c = chain.clone();
            let after = expect_seq - 1;
            let rows = store
                .read_blocking(move |tx| Ok(tx.audit_range(&c, after, 1000)?))
                .map_err(|e| e.to_string())?;
            if rows.is_empty() {
                break;
            }
            for r in rows {
                if r.seq != expect_seq {
                    return Err(format!(
                        "chain `{chain}`: record {expect_seq} is missing (next is {})",
                        r.seq
                    ));
                }
                if r.prev_hash != prev {
                    return Err(format!(
                        "chain `{chain}`: record {} does not link to its predecessor",
                        r.seq
                    ));
                }
                if chain_hash(&r.prev_hash, &r.record) != r.hash {
                    return Err(format!("chain `{chain}`: record {} was modified", r.seq));
                }
                prev = r.hash;
                expect_seq += 1;
                n += 1;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_fields_are_dropped() {
        let v = safe_request_parameters(
            br#"{"SecretId":"a","SecretString":"MARK","SecretBinary":"TUFSSw==","RotationToken":"x"}"#,
        );
        let s = v.to_string();
        assert!(s.contains("\"SecretId\""));
        assert!(!s.contains("MARK"));
        assert!(!s.contains("TUFSSw"));
        assert!(!s.contains("RotationToken"));
    }

    #[test]
    fn hash_changes_with_record_and_link() {
        let a = chain_hash(GENESIS, "{}");
        assert_ne!(a, chain_hash(GENESIS, "{ }"));
        assert_ne!(a, chain_hash(&a, "{}"));
        assert_eq!(a.len(), 64);
    }
}
