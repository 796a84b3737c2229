//! The rotation engine: a scheduler that starts the rotations whose time has come (found by
//! the `secrets_next_rotation` index) and workers that run due jobs (by `rotation_jobs_due`),
//! at most [`Settings::concurrency`] at once. A job is claimed with a lease (its `next_attempt_at`
//! while `running`), renewed at each step: a job whose server stopped is taken up again once
//! its lease ends, and its whole sequence is retried. Every start, success, failure and
//! abandonment is a service event in the audit trail (no value, no output of the function).

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{Auditor, Draft};
use crate::error::ApiError;
use crate::identity::RotationFunction;
use crate::ops::Ctx;
use crate::secrets::{AWSCURRENT, AWSPENDING};
use crate::store::rows::SecretRow;
use crate::store::RotationJobRow;

use super::{command, webhook, Wiring, STEPS};

/// Rotations run at once by one server, by default.
pub const CONCURRENCY: usize = 4;
/// How often the engine looks for due work when nothing wakes it, by default.
const TICK: Duration = Duration::from_secs(1);
/// How long a step's lease outlasts the function's timeout, by default.
const LEASE_GRACE: Duration = Duration::from_secs(10);

/// The engine's settings (`serve --rotation-concurrency`, `--rotation-tick-ms`,
/// `--rotation-lease-grace-ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Rotations run at once by this server (each holds at most one connection to the
    /// rotated database).
    pub concurrency: usize,
    /// How often the engine looks for due work when nothing wakes it.
    pub tick: Duration,
    /// How long a step's lease outlasts the function's timeout: a job whose server died
    /// inside a step is taken up again (by any server) once the timeout plus this has passed.
    pub lease_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            concurrency: CONCURRENCY,
            tick: TICK,
            lease_grace: LEASE_GRACE,
        }
    }
}

impl Settings {
    /// The settings from their configured values (flag or file), checked.
    pub fn resolve(
        concurrency: Option<u64>,
        tick_ms: Option<u64>,
        lease_grace_ms: Option<u64>,
    ) -> Result<Self, String> {
        let mut s = Self::default();
        if let Some(n) = concurrency {
            if !(1..=256).contains(&n) {
                return Err(format!(
                    "--rotation-concurrency (rotation_concurrency) must be between 1 and 256, not {n}"
                ));
            }
            s.concurrency = usize::try_from(n).unwrap_or(CONCURRENCY);
        }
        if let Some(ms) = tick_ms {
            if !(100..=600_000).contains(&ms) {
                return Err(format!(
                    "--rotation-tick-ms (rotation_tick_ms) must be between 100 and 600000 milliseconds, not {ms}"
                ));
            }
            s.tick = Duration::from_millis(ms);
        }
        if let Some(ms) = lease_grace_ms {
            if !(1_000..=3_600_000).contains(&ms) {
                return Err(format!(
                    "--rotation-lease-grace-ms (rotation_lease_grace_ms) must be between 1000 and 3600000 milliseconds, not {ms}"
                ));
            }
            s.lease_grace = Duration::from_millis(ms);
        }
        Ok(s)
    }
}

/// A claimed job's lease before its first step sets one from the function's timeout.
const CLAIM_LEASE_MS: i64 = 60_000;
/// The longest delay between attempts.
const MAX_DELAY_MS: i64 = 6 * 3_600_000;
/// How much of a function's output a failure message keeps.
const OUTPUT_TAIL: usize = 600;

/// The engine's state: the operations' context, the auditor, and the endpoint the functions
/// call back.
#[derive(Clone)]
pub struct Engine {
    ctx: Ctx,
    auditor: Auditor,
    endpoint: String,
    slots: Arc<tokio::sync::Semaphore>,
    tick: Duration,
    lease_grace: Duration,
    metrics: crate::metrics::Shared,
    /// The request pipeline, through which the built-in rotators call the API as their
    /// execution role.
    pipeline: Option<crate::pipeline::Pipeline>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// What the check before a step found.
enum Began {
    /// The step runs.
    Go,
    /// The job is gone or no longer this attempt's (cancelled, replaced, abandoned).
    Stop,
    /// The rotation's version no longer holds AWSPENDING.
    PendingMoved,
}

/// How an attempt ended.
enum Ended {
    Succeeded,
    /// The job is gone or no longer this attempt's (cancelled, replaced, abandoned).
    Stopped,
    Failed {
        step: String,
        reason: String,
    },
}

impl Engine {
    pub fn new(ctx: Ctx, auditor: Auditor, endpoint: String) -> Self {
        Self {
            ctx,
            auditor,
            endpoint,
            slots: Arc::new(tokio::sync::Semaphore::new(CONCURRENCY)),
            tick: TICK,
            lease_grace: LEASE_GRACE,
            metrics: None,
            pipeline: None,
        }
    }

    /// Run at most `settings.concurrency` rotations at once, looking for work every
    /// `settings.tick`, with step leases of the function's timeout plus `settings.lease_grace`.
    #[must_use]
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.slots = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
        self.tick = settings.tick;
        self.lease_grace = settings.lease_grace;
        self
    }

    /// Let built-in rotators call the API through `pipeline`.
    #[must_use]
    pub fn with_pipeline(mut self, pipeline: crate::pipeline::Pipeline) -> Self {
        self.pipeline = Some(pipeline);
        self
    }

    /// Count rotation events in `metrics` too.
    #[must_use]
    pub fn with_metrics(mut self, metrics: crate::metrics::Shared) -> Self {
        self.metrics = metrics;
        self
    }

    fn wiring(&self) -> &Wiring {
        &self.ctx.rotation
    }

    /// Run forever (on the server's local task set).
    pub async fn run(self) {
        loop {
            if let Err(e) = self.schedule_due().await {
                tracing::error!("rotation scheduler failed: {e:?}");
            }
            if let Err(e) = self.start_due_jobs().await {
                tracing::error!("rotation worker failed: {e:?}");
            }
            self.gauge_overdue().await;
            tokio::select! {
                () = tokio::time::sleep(self.tick) => {}
                () = self.wiring().woken() => {}
            }
        }
    }

    /// Set the oldest-overdue-rotation gauge (with metrics only). A failed read leaves the
    /// gauge as it was: the gauge is a report, never a decision.
    async fn gauge_overdue(&self) {
        let Some(m) = &self.metrics else {
            return;
        };
        let now = self.ctx.now_ms();
        match self
            .ctx
            .store
            .read(move |tx| Ok(tx.oldest_unfinished_rotation()?))
            .await
        {
            Ok(oldest) => {
                let age_ms = oldest.map_or(0, |t| now.saturating_sub(t).max(0));
                #[expect(clippy::cast_precision_loss, reason = "an age in seconds")]
                m.rotation_oldest_overdue(age_ms as f64 / 1000.0);
            }
            Err(e) => tracing::debug!("rotation gauge not updated: {e:?}"),
        }
    }

    /// Start the scheduled rotations whose window has come.
    async fn schedule_due(&self) -> Result<(), ApiError> {
        let now = self.ctx.now_ms();
        let due = self
            .ctx
            .store
            .read(move |tx| Ok(tx.secrets_due_for_rotation(now, 100)?))
            .await?;
        for s in due {
            let keyring = self.ctx.keyring.clone();
            let sid = s.secret_id.clone();
            let refused = self
                .ctx
                .store
                .write(move |tx| {
                    let Some(mut secret) = tx.secret_by_id(&sid)? else {
                        return Ok(None);
                    };
                    if secret.next_rotation_at.is_none_or(|t| t > now) {
                        return Ok(None);
                    }
                    let schedule = super::stored_schedule(&secret);
                    let active = secret.rotation_enabled == Some(true)
                        && secret.deleted_at.is_none()
                        && schedule.is_some();
                    secret.next_rotation_at = match (&schedule, active) {
                        (Some(s), true) => Some(s.next_start(now)),
                        _ => None,
                    };
                    tx.update_secret(&secret)?;
                    if !active {
                        return Ok(None);
                    }
                    let Some(arn) = secret.rotation_lambda_arn.clone() else {
                        return Ok(None);
                    };
                    if let Some(mut job) = tx.rotation_job(&secret.secret_id)? {
                        // A failed rotation is tried again at the next window.
                        if job.state == "failed" {
                            job.state = "pending".into();
                            job.attempt = 0;
                            job.next_attempt_at = now;
                            job.updated_at = now;
                            tx.update_rotation_job(&job)?;
                        }
                        return Ok(None);
                    }
                    let stages = tx.stages(&secret.secret_id)?;
                    if super::stuck(&stages) {
                        return Ok(Some(secret));
                    }
                    let token = uuid::Uuid::new_v4().to_string();
                    super::start(tx, &keyring, &secret, &token, &arn, false, now)?;
                    crate::ops::replicas::sync(tx, &keyring, &secret, now)?;
                    Ok(None)
                })
                .await?;
            if let Some(secret) = refused {
                let msg = "A previous rotation isn't complete. That rotation will be reattempted.";
                self.event(&secret, "RotationFailed", Some(msg), false)
                    .await;
            }
        }
        Ok(())
    }

    /// Claim due jobs while slots are free and run each on its own task.
    async fn start_due_jobs(&self) -> Result<(), ApiError> {
        let free = self.slots.available_permits();
        if free == 0 {
            return Ok(());
        }
        let now = self.ctx.now_ms();
        let limit = i64::try_from(free).unwrap_or(1);
        let due = self
            .ctx
            .store
            .read(move |tx| Ok(tx.due_rotation_jobs(now, limit)?))
            .await?;
        for job in due {
            let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
                break;
            };
            let sid = job.secret_id.clone();
            let (rotation_token, token_hash) = super::new_rotation_token();
            let claimed = self
                .ctx
                .store
                .write(move |tx| {
                    let Some(mut job) = tx.rotation_job(&sid)? else {
                        return Ok(None);
                    };
                    if job.next_attempt_at > now || job.state == "failed" {
                        return Ok(None);
                    }
                    if job.state == "abandoned" {
                        tx.delete_rotation_job(&sid)?;
                        return Ok(Some(job));
                    }
                    job.state = "running".into();
                    job.attempt += 1;
                    job.next_attempt_at = now + CLAIM_LEASE_MS;
                    job.updated_at = now;
                    job.rotation_token_hash = Some(token_hash.clone());
                    tx.update_rotation_job(&job)?;
                    Ok(Some(job))
                })
                .await?;
            let Some(job) = claimed else { continue };
            let engine = self.clone();
            tokio::task::spawn_local(async move {
                engine.run_job(job, rotation_token).await;
                // A slot is free: start the next due rotation now, not at the next tick.
                drop(permit);
                engine.wiring().wake();
            });
        }
        Ok(())
    }

    async fn secret(&self, secret_id: &str) -> Option<SecretRow> {
        let sid = secret_id.to_owned();
        self.ctx
            .store
            .read(move |tx| Ok(tx.secret_by_id(&sid)?))
            .await
            .ok()
            .flatten()
    }

    /// Run one claimed attempt; `rotation_token` is the attempt's RotationToken (the job
    /// holds its hash).
    async fn run_job(&self, job: RotationJobRow, rotation_token: String) {
        let Some(secret) = self.secret(&job.secret_id).await else {
            return;
        };
        if job.state == "abandoned" {
            self.event(&secret, "RotationAbandoned", None, false).await;
            return;
        }
        let (started, succeeded) = if job.test_only {
            ("TestRotationStarted", "TestRotationSucceeded")
        } else {
            ("RotationStarted", "RotationSucceeded")
        };
        self.event(&secret, started, None, false).await;
        let function =
            self.wiring()
                .function(&job.function_arn, &secret.region, &secret.account_id);
        let ended = match &function {
            Ok(f) => self.attempt(&secret, &job, f, &rotation_token).await,
            Err(_) => Ended::Failed {
                step: job.step.clone(),
                reason: "the function is not declared (or not for this region)".into(),
            },
        };
        match ended {
            Ended::Succeeded => match self.finish(&secret, &job).await {
                Ok(true) => {
                    self.event(&secret, succeeded, None, false).await;
                }
                Ok(false) => {}
                Err(reason) => {
                    self.fail(
                        &secret,
                        &job,
                        function.ok().as_deref(),
                        "finishSecret",
                        &reason,
                    )
                    .await;
                }
            },
            Ended::Stopped => {}
            Ended::Failed { step, reason } => {
                self.fail(&secret, &job, function.ok().as_deref(), &step, &reason)
                    .await;
            }
        }
    }

    /// Call the steps in order with a fresh session of the execution role.
    async fn attempt(
        &self,
        secret: &SecretRow,
        job: &RotationJobRow,
        function: &RotationFunction,
        rotation_token: &str,
    ) -> Ended {
        let creds = match self.session(function) {
            Ok(c) => c,
            Err(reason) => {
                return Ended::Failed {
                    step: job.step.clone(),
                    reason,
                }
            }
        };
        let steps: &[&str] = if job.test_only {
            &["testSecret"]
        } else {
            &STEPS
        };
        for step in steps {
            match self.begin_step(job, step, function).await {
                Ok(Began::Go) => {}
                Ok(Began::Stop) => return Ended::Stopped,
                Ok(Began::PendingMoved) => {
                    return Ended::Failed {
                        step: (*step).to_owned(),
                        reason: format!(
                            "AWSPENDING is no longer on the rotation's version {}",
                            job.token
                        ),
                    }
                }
                Err(e) => {
                    return Ended::Failed {
                        step: (*step).to_owned(),
                        reason: format!("the job could not be updated: {}", e.message()),
                    }
                }
            }
            let event = serde_json::json!({
                "SecretId": secret.arn,
                "ClientRequestToken": job.token,
                "Step": step,
                "RotationToken": rotation_token,
            })
            .to_string();
            let env = vec![
                ("AWS_ACCESS_KEY_ID".to_owned(), creds.access_key_id.clone()),
                (
                    "AWS_SECRET_ACCESS_KEY".to_owned(),
                    creds.secret_access_key.clone(),
                ),
                ("AWS_SESSION_TOKEN".to_owned(), creds.session_token.clone()),
                ("AWS_REGION".to_owned(), secret.region.clone()),
                ("AWS_DEFAULT_REGION".to_owned(), secret.region.clone()),
                ("AWS_ENDPOINT_URL".to_owned(), self.endpoint.clone()),
                ("SECRETS_MANAGER_ENDPOINT".to_owned(), self.endpoint.clone()),
                ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), function.name.clone()),
                ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
            ];
            let outcome = match function.builtin {
                Some(builtin) => {
                    self.builtin_step(secret, job, function, builtin, &creds, rotation_token, step)
                        .await
                }
                None => match &function.webhook {
                    Some(hook) => {
                        let call = webhook::Call {
                            event: serde_json::json!({
                                "SecretId": secret.arn,
                                "ClientRequestToken": job.token,
                                "Step": step,
                                "RotationToken": rotation_token,
                            }),
                            creds: &creds,
                            region: &secret.region,
                            endpoint: &self.endpoint,
                        };
                        webhook::invoke(function, hook, call).await
                    }
                    None => command::invoke(function, event, env).await,
                },
            };
            if let Some(why) = outcome.failure {
                let mut known = vec![
                    creds.secret_access_key.clone(),
                    creds.session_token.clone(),
                    rotation_token.to_owned(),
                ];
                // A built-in's reasons name hosts and users: only passwords are hidden.
                known.extend(self.values_of(secret, function.builtin.is_some()).await);
                let output = redact(&outcome.output, &known);
                let why = if function.builtin.is_some() {
                    redact(&why, &known)
                } else {
                    why
                };
                let reason = if output.is_empty() {
                    why
                } else {
                    format!("{why}; output (last lines, redacted): {output}")
                };
                return Ended::Failed {
                    step: (*step).to_owned(),
                    reason,
                };
            }
        }
        Ended::Succeeded
    }

    /// One step of a built-in rotator; its failure is the reason (no output to add).
    #[expect(
        clippy::too_many_arguments,
        reason = "one step's inputs, passed through"
    )]
    async fn builtin_step(
        &self,
        secret: &SecretRow,
        job: &RotationJobRow,
        function: &RotationFunction,
        builtin: crate::identity::Builtin,
        creds: &crate::ops::sts::Credentials,
        rotation_token: &str,
        step: &str,
    ) -> command::Outcome {
        let Some(pipeline) = &self.pipeline else {
            return command::Outcome {
                failure: Some("built-in rotators are not available in this server".into()),
                output: String::new(),
            };
        };
        let inv = super::postgres::Invocation {
            pipeline,
            creds,
            region: &secret.region,
            function,
            builtin,
            secret_arn: &secret.arn,
            token: &job.token,
            rotation_token,
            step,
        };
        let run = super::postgres::step(&inv);
        let limit = function.timeout;
        let failure = match tokio::time::timeout(limit, run).await {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some(reason),
            Err(_) => Some(format!("timed out after {} seconds", limit.as_secs())),
        };
        command::Outcome {
            failure,
            output: String::new(),
        }
    }

    /// A session of the function's execution role for one attempt.
    fn session(&self, function: &RotationFunction) -> Result<crate::ops::sts::Credentials, String> {
        let dir = self
            .wiring()
            .identities()
            .map(|l| l.get())
            .ok_or("no principals directory")?;
        let role = dir
            .role_by_arn(&function.role_arn)
            .cloned()
            .ok_or_else(|| format!("the execution role {} is not declared", function.role_arn))?;
        let now = self.ctx.now_ms();
        let lasting = i64::try_from(function.timeout.as_millis())
            .unwrap_or(i64::MAX / 8)
            .saturating_mul(4)
            .max(900_000);
        let claims = crate::ops::sts::new_session(crate::ops::sts::NewSession {
            role: &role,
            session_name: &function.name,
            issued_ms: now,
            expires_ms: now.saturating_add(lasting),
            issuer: "sts.amazonaws.com".into(),
            tags: std::collections::BTreeMap::new(),
            session_policy: None,
            source: "secretsmanager.amazonaws.com".into(),
        });
        crate::ops::sts::answer(&self.ctx.keyring, &claims, &role)
            .map(|(c, _)| c)
            .map_err(|e| format!("no session for the execution role: {}", e.message()))
    }

    /// Before a step: the job must still be this attempt's and its version still pending;
    /// records the step and renews the lease. A job no longer this attempt's (cancelled,
    /// abandoned, replaced) stops; a job whose version lost AWSPENDING (moved elsewhere with
    /// UpdateSecretVersionStage) fails the attempt, as the function's own check would, so
    /// that it is retried and then marked failed rather than taken up again forever.
    async fn begin_step(
        &self,
        job: &RotationJobRow,
        step: &str,
        function: &RotationFunction,
    ) -> Result<Began, ApiError> {
        let now = self.ctx.now_ms();
        let lease = i64::try_from(function.timeout.as_millis())
            .unwrap_or(CLAIM_LEASE_MS)
            .saturating_add(i64::try_from(self.lease_grace.as_millis()).unwrap_or(CLAIM_LEASE_MS));
        let (sid, token, attempt, step) = (
            job.secret_id.clone(),
            job.token.clone(),
            job.attempt,
            step.to_owned(),
        );
        self.ctx
            .store
            .write(move |tx| {
                let Some(mut cur) = tx.rotation_job(&sid)? else {
                    return Ok(Began::Stop);
                };
                if cur.token != token || cur.state != "running" || cur.attempt != attempt {
                    return Ok(Began::Stop);
                }
                let pending = tx.stage_version(&sid, AWSPENDING)?;
                if pending.as_deref() != Some(token.as_str()) {
                    return Ok(Began::PendingMoved);
                }
                cur.step.clone_from(&step);
                cur.next_attempt_at = now + lease;
                cur.updated_at = now;
                tx.update_rotation_job(&cur)?;
                Ok(Began::Go)
            })
            .await
    }

    /// After the last step: the service removes AWSPENDING and records the rotation.
    /// `Ok(false)`: the job was no longer this attempt's.
    async fn finish(&self, secret: &SecretRow, job: &RotationJobRow) -> Result<bool, String> {
        let now = self.ctx.now_ms();
        let (sid, token, attempt, test_only) = (
            secret.secret_id.clone(),
            job.token.clone(),
            job.attempt,
            job.test_only,
        );
        let keyring = self.ctx.keyring.clone();
        let r = self
            .ctx
            .store
            .write(move |tx| {
                let Some(cur) = tx.rotation_job(&sid)? else {
                    return Ok(Ok(false));
                };
                if cur.token != token || cur.attempt != attempt || cur.state != "running" {
                    return Ok(Ok(false));
                }
                let Some(mut secret) = tx.secret_by_id(&sid)? else {
                    return Ok(Ok(false));
                };
                let mut stages = tx.stages(&sid)?;
                if !test_only && stages.get(AWSCURRENT) != Some(&token) {
                    return Ok(Err(
                        "the finishSecret step returned without moving AWSCURRENT to the new version"
                            .to_owned(),
                    ));
                }
                if stages.get(AWSPENDING) == Some(&token) {
                    stages.remove(AWSPENDING);
                    tx.replace_stages(&sid, &stages)?;
                }
                if !test_only {
                    secret.last_rotated_at = Some(now);
                    if secret.rotation_enabled == Some(true) {
                        secret.next_rotation_at =
                            super::stored_schedule(&secret).map(|s| s.next_start(now));
                    }
                    tx.update_secret(&secret)?;
                }
                crate::ops::replicas::sync(tx, &keyring, &secret, now)?;
                tx.delete_rotation_job(&sid)?;
                Ok(Ok(true))
            })
            .await;
        match r {
            Ok(inner) => inner,
            Err(e) => Err(format!(
                "the rotation could not be recorded: {}",
                e.message()
            )),
        }
    }

    /// Record a failed attempt: retried after a back-off, or marked failed after the last.
    async fn fail(
        &self,
        secret: &SecretRow,
        job: &RotationJobRow,
        function: Option<&RotationFunction>,
        step: &str,
        reason: &str,
    ) {
        let now = self.ctx.now_ms();
        let max = function.map_or(1, |f| f.max_attempts);
        let base = function.map_or(60_000, |f| {
            i64::try_from(f.retry_delay.as_millis()).unwrap_or(60_000)
        });
        let final_attempt = job.test_only || u32::try_from(job.attempt).unwrap_or(u32::MAX) >= max;
        let aws = format!(
            "Error when executing lambda {} during {step} step",
            job.function_arn
        );
        let detail = format!("{aws}: {reason}");
        tracing::warn!(secret = %secret.arn, attempt = job.attempt, "rotation attempt failed: {detail}");
        let (sid, token, attempt, test_only, stored) = (
            job.secret_id.clone(),
            job.token.clone(),
            job.attempt,
            job.test_only,
            detail.clone(),
        );
        let step_owned = step.to_owned();
        let keyring = self.ctx.keyring.clone();
        let recorded = self
            .ctx
            .store
            .write(move |tx| {
                let Some(mut cur) = tx.rotation_job(&sid)? else {
                    return Ok(false);
                };
                if cur.token != token || cur.attempt != attempt {
                    return Ok(false);
                }
                if test_only {
                    let mut stages = tx.stages(&sid)?;
                    if stages.get(AWSPENDING) == Some(&token) {
                        stages.remove(AWSPENDING);
                        tx.replace_stages(&sid, &stages)?;
                    }
                    if let Some(secret) = tx.secret_by_id(&sid)? {
                        crate::ops::replicas::sync(tx, &keyring, &secret, now)?;
                    }
                    tx.delete_rotation_job(&sid)?;
                    return Ok(true);
                }
                cur.step.clone_from(&step_owned);
                cur.last_error = Some(stored.clone());
                cur.updated_at = now;
                cur.rotation_token_hash = None;
                if final_attempt {
                    cur.state = "failed".into();
                } else {
                    let factor = 1_i64 << (attempt - 1).clamp(0, 20);
                    cur.state = "pending".into();
                    cur.next_attempt_at = now + base.saturating_mul(factor).min(MAX_DELAY_MS);
                }
                tx.update_rotation_job(&cur)?;
                Ok(true)
            })
            .await;
        if !matches!(recorded, Ok(true)) {
            return;
        }
        let name = if job.test_only {
            "TestRotationFailed"
        } else {
            "RotationFailed"
        };
        let message = if final_attempt {
            format!(
                "{aws} (attempt {} of {max}; no further attempts)",
                job.attempt
            )
        } else {
            format!("{aws} (attempt {} of {max}; retrying)", job.attempt)
        };
        self.event(
            secret,
            name,
            Some(&message),
            final_attempt && !job.test_only,
        )
        .await;
    }

    /// The values a failure message must never show: every labelled version's value, in
    /// the forms a program prints it in, and, for JSON values, every string and number in
    /// them at any depth (or, `passwords_only`, the `password` members'); see
    /// [`sensitive_parts`].
    async fn values_of(&self, secret: &SecretRow, passwords_only: bool) -> Vec<String> {
        let keyring = self.ctx.keyring.clone();
        let secret = secret.clone();
        self.ctx
            .store
            .read(move |tx| {
                let mut out = Vec::new();
                let stages = tx.stages(&secret.secret_id)?;
                let versions: std::collections::BTreeSet<String> = stages.into_values().collect();
                for vid in versions {
                    let Some(v) = tx.version(&secret.secret_id, &vid)? else {
                        continue;
                    };
                    if v.value_kind.is_none() {
                        continue;
                    }
                    let Ok(plain) = crate::ops::values::open_version(tx, &keyring, &secret, &v)
                    else {
                        continue;
                    };
                    out.extend(sensitive_parts(plain.expose(), passwords_only));
                }
                Ok(out)
            })
            .await
            .unwrap_or_default()
    }

    /// A service event of `secret`'s rotation (CloudTrail's `AwsServiceEvent`).
    async fn event(
        &self,
        secret: &SecretRow,
        name: &'static str,
        error: Option<&str>,
        final_failure: bool,
    ) {
        if let Some(m) = &self.metrics {
            m.rotation(name, final_failure);
        }
        let draft = Draft {
            request_id: format!("Rotation-{}-{}", secret.arn, uuid::Uuid::new_v4()),
            event_time_ms: self.ctx.now_ms(),
            event_source: "secretsmanager.amazonaws.com".into(),
            event_name: name.to_owned(),
            region: secret.region.clone(),
            source_ip: Some("secretsmanager.amazonaws.com".into()),
            user_agent: Some("secretsmanager.amazonaws.com".into()),
            read_only: Some(false),
            resource_arn: Some(secret.arn.clone()),
            decision: Some("Service".into()),
            error_message: error.map(str::to_owned),
            event_type: Some("AwsServiceEvent".into()),
            ..Draft::default()
        };
        if let Err(e) = self.auditor.record(&draft).await {
            tracing::error!(secret = %secret.arn, "could not audit {name}: {e:?}");
        }
    }
}

/// What of one secret value a failure message must not show: the value itself and, for a
/// JSON value, every string and number inside it at any depth (with `passwords_only`, of a
/// JSON value only what sits under a `password` member), each in the forms a program prints
/// it in ([`printed_forms`]), and the value's base64 (how GetSecretValue answers a binary
/// value, and how a program may print any value).
pub fn sensitive_parts(plain: &[u8], passwords_only: bool) -> Vec<String> {
    fn leaves(v: &serde_json::Value, take: bool, passwords_only: bool, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if take => printed_forms(s, true, out),
            serde_json::Value::Number(n) if take => out.push(n.to_string()),
            serde_json::Value::Array(items) => {
                for i in items {
                    leaves(i, take, passwords_only, out);
                }
            }
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let take = take || (passwords_only && k == "password");
                    leaves(v, take, passwords_only, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    let text = String::from_utf8_lossy(plain).into_owned();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        leaves(&v, !passwords_only, passwords_only, &mut out);
    }
    out.push(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        plain,
    ));
    // A built-in's reasons keep hosts and users: the lines of a JSON value, which name
    // them, are not hidden on their own.
    printed_forms(&text, !passwords_only, &mut out);
    out.sort_unstable();
    out.dedup();
    out
}

/// The forms in which a program's output shows the string `s`: as written; without its
/// leading and trailing white space (the captured output is trimmed); inside a JSON string
/// (a printed GetSecretValue answer), as serde_json escapes it and with every non-ASCII
/// character as `\uXXXX` too (Python's `json.dumps`); and, with `lines`, each of its lines
/// (a multi-line value such as a PEM key printed line by line, or with other line ends).
fn printed_forms(s: &str, lines: bool, out: &mut Vec<String>) {
    out.push(s.to_owned());
    out.push(s.trim().to_owned());
    let quoted = serde_json::to_string(s).unwrap_or_default();
    let escaped = quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or("");
    out.push(escaped.to_owned());
    if !escaped.is_ascii() {
        let mut ascii = String::with_capacity(escaped.len());
        for c in escaped.chars() {
            if c.is_ascii() {
                ascii.push(c);
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    ascii.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
        out.push(ascii);
    }
    if lines && s.contains(['\n', '\r']) {
        out.extend(s.lines().map(|l| l.trim().to_owned()));
    }
}

/// `output` with every known sensitive string (4 characters or more) replaced, and only its
/// last [`OUTPUT_TAIL`] characters kept.
pub fn redact(output: &str, known: &[String]) -> String {
    let mut text = output.to_owned();
    let mut known: Vec<&String> = known.iter().filter(|k| k.chars().count() >= 4).collect();
    known.sort_by_key(|k| std::cmp::Reverse(k.len()));
    for k in known {
        text = text.replace(k.as_str(), "[REDACTED]");
    }
    let n = text.chars().count();
    let tail: String = text.chars().skip(n.saturating_sub(OUTPUT_TAIL)).collect();
    tail.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::{redact, sensitive_parts};

    #[test]
    fn every_string_and_number_of_a_json_value_is_sensitive() {
        let value = br#"{"password":"top-level-pass-1717","db":{"password":"nested-db-pass-4242","hosts":["h\"q-9999"]},"pin":98765432,"ok":true}"#;
        let known = sensitive_parts(value, false);
        let out = redact(
            "login failed: top-level-pass-1717 nested-db-pass-4242 pin 98765432 h\\\"q-9999 h\"q-9999",
            &known,
        );
        for leaked in [
            "top-level-pass-1717",
            "nested-db-pass-4242",
            "98765432",
            "q-9999",
        ] {
            assert!(!out.contains(leaked), "{leaked} in {out}");
        }
        // A built-in's reasons keep hosts and users: only what sits under `password` goes.
        let known = sensitive_parts(value, true);
        assert!(known.contains(&"nested-db-pass-4242".to_owned()));
        assert!(!known.contains(&"98765432".to_owned()));
        // A binary value: its base64 too.
        let known = sensitive_parts(&[0xff, 0xfe, 0x01, 0x02, 0x03], false);
        assert!(known.contains(&"//4BAgM=".to_owned()), "{known:?}");
    }

    #[test]
    fn a_value_is_hidden_in_the_forms_a_program_prints_it_in() {
        let pem =
            "-----BEGIN KEY-----\nline-one-abcdef\r\nline-two-\u{e9}\u{1f511}\n-----END KEY-----\n";
        let known = sensitive_parts(pem.as_bytes(), false);
        let printed = [
            // GetSecretValue's answer, printed by serde_json and by Python's json.dumps.
            serde_json::json!({ "SecretString": pem }).to_string(),
            r#"{"SecretString": "-----BEGIN KEY-----\nline-one-abcdef\r\nline-two-\u00e9\ud83d\udd11\n-----END KEY-----\n"}"#.to_owned(),
            // The value itself, trimmed as captured output is.
            pem.trim().to_owned(),
            // Line by line, with other line ends.
            pem.replace("\r\n", "\n").replace('\n', "\r\n"),
            // Its base64.
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pem),
        ];
        for p in printed {
            let out = redact(&p, &known);
            for leaked in ["line-one-abcdef", "line-two-", "00e9", "\u{e9}"] {
                assert!(!out.contains(leaked), "{leaked} in {out}");
            }
            assert!(out.contains("[REDACTED]"), "{out}");
        }
        // A built-in's value: its lines, naming hosts and users, stay readable.
        let value = b"{\n  \"host\": \"db.internal\",\n  \"password\": \"pw-line-1234\"\n}";
        let known = sensitive_parts(value, true);
        let out = redact(
            "cannot reach \"host\": \"db.internal\", as pw-line-1234",
            &known,
        );
        assert!(
            out.contains("db.internal") && !out.contains("pw-line-1234"),
            "{out}"
        );
    }

    #[test]
    fn known_values_never_survive_redaction() {
        let out = redact(
            "Traceback: password hunter22 rejected for {\"password\":\"hunter22\"} key AKIA",
            &["hunter22".into(), "ab".into()],
        );
        assert!(!out.contains("hunter22"), "{out}");
        assert!(out.contains("[REDACTED]"));
        let long = "x".repeat(5000);
        assert!(redact(&long, &[]).len() <= 600);
    }
}
