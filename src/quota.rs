//! Request-rate quotas per account and region, in the shape of AWS's published Secrets Manager
//! quotas: each operation belongs to a group, each (account, region, group) has a token bucket
//! refilled at the group's rate (requests per second) and holding at most one second's worth.
//! A call that finds its bucket empty is refused with `ThrottlingException` ("Rate exceeded",
//! HTTP 400), after authentication, so its audit record names the caller.
//!
//! The buckets live in [`SHARDS`] mutex-guarded maps chosen by a hash of (account, region):
//! no lock is shared by every request, and a call allocates only the first time its account
//! and region are seen.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Instant;

use crate::error::ApiError;

/// The groups, with AWS's published rate (requests per second, per account and region) and
/// the Secrets Manager operations each one counts.
pub const GROUPS: &[(&str, f64, &[&str])] = &[
    ("read", 10_000.0, &["GetSecretValue", "DescribeSecret"]),
    ("batch_get", 100.0, &["BatchGetSecretValue"]),
    // ListResourcePolicies is not in AWS's published list: counted with the listings it
    // resembles (a page over the account's secrets), so that no Secrets Manager operation
    // escapes the quotas.
    (
        "list",
        100.0,
        &[
            "ListSecrets",
            "ListSecretVersionIds",
            "ListResourcePolicies",
        ],
    ),
    (
        "write",
        50.0,
        &[
            "PutSecretValue",
            "UpdateSecret",
            "UpdateSecretVersionStage",
            "RemoveRegionsFromReplication",
            "ReplicateSecretToRegions",
            "StopReplicationToReplica",
            "AssociateCrossAccountReplica",
            "DisassociateCrossAccountReplica",
        ],
    ),
    (
        "resource_policy",
        50.0,
        &[
            "DeleteResourcePolicy",
            "GetResourcePolicy",
            "PutResourcePolicy",
            "ValidateResourcePolicy",
        ],
    ),
    ("create", 50.0, &["CreateSecret"]),
    ("delete", 50.0, &["DeleteSecret"]),
    ("restore", 50.0, &["RestoreSecret"]),
    ("rotate", 50.0, &["RotateSecret", "CancelRotateSecret"]),
    ("tag", 50.0, &["TagResource", "UntagResource"]),
    ("random_password", 50.0, &["GetRandomPassword"]),
];

const N: usize = GROUPS.len();
const SHARDS: usize = 16;

/// The group of a Secrets Manager operation, if it has one.
pub fn group_of(operation: &str) -> Option<usize> {
    GROUPS
        .iter()
        .position(|(_, _, ops)| ops.contains(&operation))
}

fn group_index(name: &str) -> Result<usize, String> {
    GROUPS
        .iter()
        .position(|(g, _, _)| *g == name)
        .ok_or_else(|| {
            let names: Vec<&str> = GROUPS.iter().map(|(g, _, _)| *g).collect();
            format!(
                "unknown quota group `{name}` (groups: {})",
                names.join(", ")
            )
        })
}

/// Rates per group (`None`: unlimited).
pub type Rates = [Option<f64>; N];

/// What the configuration asks for: a base (`aws` or nothing), per-group rates over it, and
/// per-account rates over those.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuotaConfig {
    pub rates: Rates,
    pub accounts: HashMap<String, Rates>,
}

impl QuotaConfig {
    /// From `--quotas` (`aws` or `off`), the `[quota_groups]` table and the
    /// `[quota_accounts.ID]` tables; `None` when nothing is limited.
    pub fn resolve(
        preset: Option<&str>,
        groups: &HashMap<String, f64>,
        accounts: &HashMap<String, HashMap<String, f64>>,
    ) -> Result<Option<Self>, String> {
        let mut rates: Rates = [None; N];
        match preset.unwrap_or("off") {
            "off" => {}
            "aws" => {
                for (i, (_, rate, _)) in GROUPS.iter().enumerate() {
                    rates[i] = Some(*rate);
                }
            }
            other => return Err(format!("--quotas `{other}`: expected `aws` or `off`")),
        }
        let set = |rates: &mut Rates, table: &HashMap<String, f64>| -> Result<(), String> {
            for (name, rate) in table {
                if !(rate.is_finite() && *rate > 0.0) {
                    return Err(format!(
                        "quota `{name}`: the rate must be a positive number of requests per second"
                    ));
                }
                rates[group_index(name)?] = Some(*rate);
            }
            Ok(())
        };
        set(&mut rates, groups)?;
        let mut per_account = HashMap::new();
        for (account, table) in accounts {
            if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
                return Err(format!(
                    "quota_accounts: `{account}` is not a 12-digit account id"
                ));
            }
            let mut r = rates;
            set(&mut r, table)?;
            per_account.insert(account.clone(), r);
        }
        let limited = rates.iter().any(Option::is_some)
            || per_account.values().any(|r| r.iter().any(Option::is_some));
        Ok(limited.then_some(Self {
            rates,
            accounts: per_account,
        }))
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

type Shard = HashMap<String, HashMap<String, [Option<Bucket>; N]>>;

/// The buckets (see the module docs).
#[derive(Debug)]
pub struct Quotas {
    config: QuotaConfig,
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Quotas {
    pub fn new(config: QuotaConfig) -> Self {
        Self {
            config,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Take one token for `operation` (a Secrets Manager operation name) in `account`'s
    /// `region`: `ThrottlingException` when its group's bucket is empty.
    pub fn check(&self, account: &str, region: &str, operation: &str) -> Result<(), ApiError> {
        self.check_at(account, region, operation, Instant::now())
    }

    fn check_at(
        &self,
        account: &str,
        region: &str,
        operation: &str,
        now: Instant,
    ) -> Result<(), ApiError> {
        let Some(group) = group_of(operation) else {
            return Ok(());
        };
        let rates = self
            .config
            .accounts
            .get(account)
            .unwrap_or(&self.config.rates);
        let Some(rate) = rates[group] else {
            return Ok(());
        };
        let mut h = self.hasher.build_hasher();
        account.hash(&mut h);
        region.hash(&mut h);
        let shard = &self.shards[(h.finish() as usize) % SHARDS];
        // A poisoned shard only means another request panicked mid-update: the buckets
        // are still numbers.
        let mut map = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let buckets = match map.get_mut(account) {
            Some(regions) => regions,
            None => map.entry(account.to_owned()).or_default(),
        };
        let slots = match buckets.get_mut(region) {
            Some(s) => s,
            None => buckets.entry(region.to_owned()).or_insert([None; N]),
        };
        let burst = rate.max(1.0);
        let b = slots[group].get_or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(throttled())
        }
    }
}

/// AWS's answer to an over-quota call.
pub fn throttled() -> ApiError {
    ApiError::Throttling("Rate exceeded".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn table(pairs: &[(&str, f64)]) -> HashMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn off_by_default_and_aws_gives_the_published_numbers() {
        let none = HashMap::new();
        assert_eq!(QuotaConfig::resolve(None, &none, &HashMap::new()), Ok(None));
        let aws = QuotaConfig::resolve(Some("aws"), &none, &HashMap::new())
            .unwrap()
            .unwrap();
        assert_eq!(
            aws.rates[group_of("GetSecretValue").unwrap()],
            Some(10_000.0)
        );
        assert_eq!(
            aws.rates[group_of("DescribeSecret").unwrap()],
            Some(10_000.0)
        );
        assert_eq!(aws.rates[group_of("PutSecretValue").unwrap()], Some(50.0));
        assert_eq!(aws.rates[group_of("ListSecrets").unwrap()], Some(100.0));
        assert_eq!(group_of("ListResourcePolicies"), group_of("ListSecrets"));
        assert_eq!(
            aws.rates[group_of("BatchGetSecretValue").unwrap()],
            Some(100.0)
        );
        assert!(QuotaConfig::resolve(Some("lots"), &none, &HashMap::new()).is_err());
        assert!(QuotaConfig::resolve(None, &table(&[("nope", 1.0)]), &HashMap::new()).is_err());
        assert!(QuotaConfig::resolve(None, &table(&[("write", 0.0)]), &HashMap::new()).is_err());
    }

    #[test]
    fn a_bucket_refuses_past_its_rate_and_refills() {
        let accounts: HashMap<String, HashMap<String, f64>> =
            [("111122223333".to_owned(), table(&[("write", 1.0)]))].into();
        let cfg = QuotaConfig::resolve(None, &table(&[("write", 2.0)]), &accounts)
            .unwrap()
            .unwrap();
        let q = Quotas::new(cfg);
        let t0 = Instant::now();
        let a = "000000000000";
        assert!(q.check_at(a, "us-east-1", "PutSecretValue", t0).is_ok());
        assert!(q.check_at(a, "us-east-1", "UpdateSecret", t0).is_ok());
        let e = q
            .check_at(a, "us-east-1", "PutSecretValue", t0)
            .unwrap_err();
        assert_eq!(e.code(), "ThrottlingException");
        assert_eq!(e.message(), "Rate exceeded");
        assert_eq!(e.status(), 400);
        // Other groups, regions and unlimited operations are not affected.
        assert!(q.check_at(a, "us-east-1", "GetSecretValue", t0).is_ok());
        assert!(q.check_at(a, "eu-west-1", "PutSecretValue", t0).is_ok());
        // Half a second refills one token at 2/s.
        let t1 = t0 + Duration::from_millis(500);
        assert!(q.check_at(a, "us-east-1", "PutSecretValue", t1).is_ok());
        assert!(q.check_at(a, "us-east-1", "PutSecretValue", t1).is_err());
        // The account with its own number: 1/s.
        let b = "111122223333";
        assert!(q.check_at(b, "us-east-1", "PutSecretValue", t0).is_ok());
        assert!(q.check_at(b, "us-east-1", "PutSecretValue", t0).is_err());
    }
}
