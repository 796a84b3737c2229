//! Secret rotation: schedules ([`schedule`]), the rotation functions' runners ([`command`],
//! [`webhook`]) and the engine that runs rotations to the end or says why not ([`engine`]).
//!
//! A rotation is a durable job (`store::RotationJobRow`) committed with the secret's empty
//! AWSPENDING version. The engine calls the function's four steps in order (createSecret,
//! setSecret, testSecret, finishSecret); the function's own calls go through the normal
//! request pipeline with a session of its execution role. After finishSecret the service
//! removes AWSPENDING, as AWS does. A failed attempt is retried (the whole sequence) with
//! back-off a bounded number of times, then the job is marked failed.
//!
//! May depend on: `store` (through `Tx` closures), `ops` (values, STS sessions), `audit`,
//! `identity`, `secrets`, `pipeline` (the built-ins call the API in process, as their role).
//! Never on actix or diesel (the built-ins reach the rotated database through
//! `store::rotated_pg` and `store::rotated_mysql`).

pub mod command;
pub mod engine;
pub mod postgres;
pub mod schedule;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crate::error::ApiError;
use crate::identity::live::Live;
use crate::identity::RotationFunction;
use crate::kms::Keyring;
use crate::secrets::{AWSCURRENT, AWSPENDING};
use crate::store::rows::{SecretRow, VersionRow};
use crate::store::{RotationJobRow, Tx};

/// The steps of a rotation, in order.
pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

/// AWS's refusal to start a rotation while an earlier one left AWSPENDING on a version that
/// is not AWSCURRENT.
pub fn previous_rotation_incomplete() -> ApiError {
    ApiError::InvalidRequest(
        "A previous rotation isn't complete. That rotation will be reattempted.".into(),
    )
}

/// AWS's answer for a function it cannot invoke (missing, or its policy does not allow
/// Secrets Manager); nothing is stored.
pub fn cannot_invoke() -> ApiError {
    ApiError::AccessDenied(
        "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com.".into(),
    )
}

/// The execution role of a built-in named by its bare template name (no function file):
/// the role of the same name in the secret's account, which the operator declares with the
/// permissions the built-in needs on the secrets it may rotate (least privilege: no role,
/// no rotation).
pub fn builtin_default_role(account: &str, template: &str) -> String {
    format!("arn:aws:iam::{account}:role/{template}")
}

/// What the operations and the engine share: the principals directory (where rotation
/// functions are declared), a wake-up for the engine, and the pending rotations' count.
#[derive(Clone, Default)]
pub struct Wiring {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    identities: OnceLock<Arc<Live>>,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Wiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wiring")
    }
}

impl Wiring {
    /// Attach the live principals directory (once, at start-up).
    pub fn set_identities(&self, identities: Arc<Live>) {
        let _ = self.inner.identities.set(identities);
    }

    /// The declared function a Lambda ARN names for a secret of `account` in `region`: the
    /// function must be of the secret's account and serve its region.
    pub fn function(
        &self,
        arn: &str,
        region: &str,
        account: &str,
    ) -> Result<Arc<RotationFunction>, ApiError> {
        let mut parts = arn
            .strip_prefix("arn:aws:lambda:")
            .unwrap_or_default()
            .split(':');
        let in_region = parts.next() == Some(region) && parts.next() == Some(account);
        let found = self
            .inner
            .identities
            .get()
            .and_then(|l| l.get().rotation_function(arn).cloned())
            .filter(|_| in_region);
        // `arn:aws:lambda:REGION:ACCOUNT:function:NAME`, nothing after the name: a built-in
        // is named by the function field itself, never by a qualifier after it (a
        // `function:team-a-x:TEMPLATE` ARN, which a policy on `function:team-a-*` allows,
        // must not reach the template's built-in).
        let name = match (parts.next(), parts.next(), parts.next()) {
            (Some("function"), Some(name), None) => name,
            _ => "",
        };
        match found {
            Some(f) => Ok(f),
            None if in_region && crate::identity::Builtin::from_template(name).is_some() => {
                self.builtin_by_template(arn, name, account)
            }
            None => Err(cannot_invoke()),
        }
    }

    /// A bare template name (AWS's PostgreSQL, MySQL and MariaDB ones): the built-in, run as
    /// the role of the same name in the secret's account (which must be declared).
    fn builtin_by_template(
        &self,
        arn: &str,
        name: &str,
        account: &str,
    ) -> Result<Arc<RotationFunction>, ApiError> {
        let role = builtin_default_role(account, name);
        let declared = self
            .inner
            .identities
            .get()
            .is_some_and(|l| l.get().role_by_arn(&role).is_some());
        if !declared {
            return Err(ApiError::InvalidRequest(format!(
                "{arn} names a built-in rotator, which runs with the execution role {role}: that role is not declared. Declare it, or a function file of kind builtin naming another role."
            )));
        }
        Ok(Arc::new(RotationFunction {
            account: account.to_owned(),
            name: name.to_owned(),
            region: None,
            role_arn: role,
            command: Vec::new(),
            timeout: std::time::Duration::from_secs(30),
            environment: BTreeMap::new(),
            max_attempts: 5,
            retry_delay: std::time::Duration::from_secs(60),
            builtin: crate::identity::Builtin::from_template(name),
            tls_ca_file: None,
            allow_plaintext: false,
            webhook: None,
        }))
    }

    /// The live principals directory, once attached.
    pub fn identities(&self) -> Option<&Arc<Live>> {
        self.inner.identities.get()
    }

    /// Have the engine look for work now.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    async fn woken(&self) {
        self.inner.wake.notified().await;
    }
}

/// Whether a stage map holds AWSPENDING on a version other than AWSCURRENT's.
pub fn stuck(stages: &BTreeMap<String, String>) -> bool {
    match stages.get(AWSPENDING) {
        Some(p) => stages.get(AWSCURRENT) != Some(p),
        None => false,
    }
}

/// Start a rotation inside a write transaction: the AWSPENDING version `token` (empty, or
/// for a test-only rotation a copy of the current value) and its job, committed together.
pub fn start(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    secret: &SecretRow,
    token: &str,
    function_arn: &str,
    test_only: bool,
    now: i64,
) -> Result<(), ApiError> {
    // The token becomes the rotation's new version: a version the secret already has (of
    // the same value or not) is never taken over as the rotation's own, whatever kind of
    // rotation this is.
    if tx.version(&secret.secret_id, token)?.is_some() {
        return Err(version_exists());
    }
    if test_only {
        let current = tx
            .stage_version(&secret.secret_id, AWSCURRENT)?
            .and_then(|v| Some(v).filter(|v| v != token));
        let version = match current {
            Some(v) => tx.version(&secret.secret_id, &v)?,
            None => None,
        };
        let value = match version {
            Some(v) if v.value_kind.is_some() => {
                let kind = v
                    .value_kind
                    .as_deref()
                    .and_then(crate::secrets::ValueKind::from_code)
                    .ok_or_else(|| ApiError::internal("unknown value kind"))?;
                let bytes = crate::ops::values::open_version(tx, keyring, secret, &v)?;
                Some(crate::ops::values::NewValue { kind, bytes })
            }
            _ => None,
        };
        if let Some(value) = value {
            crate::ops::values::write_version(
                tx,
                keyring,
                secret,
                token,
                Some(&value),
                &[AWSPENDING.to_owned()],
                now,
            )?;
        } else {
            insert_placeholder(tx, secret, token, now)?;
        }
    } else {
        insert_placeholder(tx, secret, token, now)?;
    }
    tx.insert_rotation_job(&RotationJobRow {
        secret_id: secret.secret_id.clone(),
        token: token.to_owned(),
        function_arn: function_arn.to_owned(),
        test_only,
        step: if test_only {
            "testSecret"
        } else {
            "createSecret"
        }
        .to_owned(),
        attempt: 0,
        next_attempt_at: now,
        state: "pending".into(),
        last_error: None,
        created_at: now,
        updated_at: now,
        rotation_token_hash: None,
    })?;
    Ok(())
}

/// A new RotationToken for an attempt, and the hash the job keeps of it.
pub fn new_rotation_token() -> (String, String) {
    let token = uuid::Uuid::new_v4().to_string();
    let hash = rotation_token_hash(&token);
    (token, hash)
}

fn rotation_token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The refusal of a RotationToken that is not the running rotation's own. AWS validates the
/// caller's identity with the token: a token it cannot match denies access.
pub fn invalid_rotation_token() -> ApiError {
    ApiError::AccessDenied(
        "The RotationToken isn't valid for a rotation in progress of this secret and version."
            .into(),
    )
}

/// PutSecretValue with a RotationToken: accepted only when a rotation of the secret is
/// running, the token is its attempt's, and the version written is that rotation's
/// (ClientRequestToken = the job's token).
pub fn check_rotation_token(
    tx: &mut Tx<'_>,
    secret_id: &str,
    version_id: &str,
    rotation_token: &str,
) -> Result<(), ApiError> {
    let presented = rotation_token_hash(rotation_token);
    let matches = tx.rotation_job(secret_id)?.is_some_and(|job| {
        job.state == "running"
            && job.token == version_id
            && job.rotation_token_hash.as_deref().is_some_and(|h| {
                subtle::ConstantTimeEq::ct_eq(h.as_bytes(), presented.as_bytes()).into()
            })
    });
    if matches {
        Ok(())
    } else {
        Err(invalid_rotation_token())
    }
}

/// AWS's refusal of a ClientRequestToken that names a version the secret already has.
fn version_exists() -> ApiError {
    ApiError::ResourceExists("A resource with the ID you requested already exists.".into())
}

/// The empty AWSPENDING version (AWSPENDING only, even on a secret without AWSCURRENT).
fn insert_placeholder(
    tx: &mut Tx<'_>,
    secret: &SecretRow,
    token: &str,
    now: i64,
) -> Result<(), ApiError> {
    if tx.version(&secret.secret_id, token)?.is_some() {
        return Err(version_exists());
    }
    tx.insert_version(&VersionRow {
        secret_id: secret.secret_id.clone(),
        version_id: token.to_owned(),
        created_at: now,
        last_accessed_at: None,
        value_kind: None,
        ciphertext: None,
        wrapped_dek: None,
        kms_key_id: None,
        kms_term: None,
    })?;
    let mut stages = tx.stages(&secret.secret_id)?;
    stages.insert(AWSPENDING.to_owned(), token.to_owned());
    tx.replace_stages(&secret.secret_id, &stages)?;
    Ok(())
}

/// A secret's stored rules, parsed.
pub fn stored_schedule(secret: &SecretRow) -> Option<schedule::Schedule> {
    let rules: schedule::RotationRules =
        serde_json::from_str(secret.rotation_rules.as_deref()?).ok()?;
    schedule::Schedule::parse(&rules).ok().flatten()
}

/// A new AWSCURRENT version `version` written by PutSecretValue or UpdateSecret. It counts
/// as a rotation for `AutomaticallyAfterDays` (the next one is that many days after it, as
/// AWS's RotationRulesType says). Written while a rotation is in progress (or failed), it
/// abandons that rotation, as on AWS: AWSPENDING leaves the rotation's version and the
/// engine records `RotationAbandoned`. The rotation's own version (its token) abandons
/// nothing. `secret` is the secret as this transaction has it (its row is written from it,
/// and it is kept up to date). Returns whether the secret's stage map changed.
pub fn abandon_for_new_current(
    tx: &mut Tx<'_>,
    secret: &mut SecretRow,
    version: &str,
    now: i64,
) -> Result<bool, ApiError> {
    let by_days = secret
        .rotation_rules
        .as_deref()
        .and_then(|r| serde_json::from_str::<schedule::RotationRules>(r).ok())
        .is_some_and(|r| r.automatically_after_days.is_some());
    if secret.rotation_enabled == Some(true) && by_days {
        let next = stored_schedule(secret).map(|s| s.next_start(now));
        if next != secret.next_rotation_at {
            secret.next_rotation_at = next;
            tx.update_secret(secret)?;
        }
    }
    let secret_id = secret.secret_id.as_str();
    let Some(mut job) = tx.rotation_job(secret_id)? else {
        return Ok(false);
    };
    if job.token == version || job.state == "abandoned" {
        return Ok(false);
    }
    let mut stages = tx.stages(secret_id)?;
    let moved = stages.get(AWSPENDING) == Some(&job.token);
    if moved {
        stages.remove(AWSPENDING);
        tx.replace_stages(secret_id, &stages)?;
    }
    job.state = "abandoned".into();
    job.next_attempt_at = now;
    job.updated_at = now;
    tx.update_rotation_job(&job)?;
    Ok(moved)
}
