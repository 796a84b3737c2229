//! Prometheus metrics and health probes, served on their own listener (`--metrics-listen`),
//! never on the API port.
//!
//! The pipeline calls [`Metrics::observe`] once per request: every label is a static string
//! (the operation's name from [`OPERATIONS`], the error's code), so a request costs a few
//! atomic additions and a label lookup, and a caller cannot create new series by sending
//! made-up operation names. Gauges (audit queue, connection pools) are read at scrape time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::audit::Draft;
use crate::error::ApiError;
use crate::pipeline::Pipeline;

/// Every operation name a series may carry; any other name is counted as `other`.
pub const OPERATIONS: &[&str] = &[
    // Secrets Manager
    "GetSecretValue",
    "DescribeSecret",
    "BatchGetSecretValue",
    "ListSecrets",
    "ListSecretVersionIds",
    "CreateSecret",
    "PutSecretValue",
    "UpdateSecret",
    "UpdateSecretVersionStage",
    "DeleteSecret",
    "RestoreSecret",
    "GetRandomPassword",
    "TagResource",
    "UntagResource",
    "PutResourcePolicy",
    "GetResourcePolicy",
    "DeleteResourcePolicy",
    "ValidateResourcePolicy",
    "RotateSecret",
    "CancelRotateSecret",
    "ReplicateSecretToRegions",
    "RemoveRegionsFromReplication",
    "StopReplicationToReplica",
    "ListResourcePolicies",
    "AssociateCrossAccountReplica",
    "DisassociateCrossAccountReplica",
    // KMS
    "CreateKey",
    "DescribeKey",
    "ListKeys",
    "EnableKey",
    "DisableKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "CreateAlias",
    "DeleteAlias",
    "ListAliases",
    "GetKeyPolicy",
    "PutKeyPolicy",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "GetKeyRotationStatus",
    "RotateKeyOnDemand",
    "ListKeyRotations",
    // CloudTrail
    "LookupEvents",
    "GetTrailStatus",
    // STS, IAM
    "AssumeRole",
    "AssumeRoleWithWebIdentity",
    "GetCallerIdentity",
    "SimulatePrincipalPolicy",
    "SimulateCustomPolicy",
    "GetAccountAuthorizationDetails",
    "ListOpenIDConnectProviders",
    "GetOpenIDConnectProvider",
    // Organizations, Strongroom
    "ListAccounts",
    "ListPolicies",
    "DescribePolicy",
    "GetPrincipalsReloadStatus",
];

fn operation_label(name: &str) -> &'static str {
    OPERATIONS
        .iter()
        .find(|o| **o == name)
        .copied()
        .unwrap_or("other")
}

fn service_label(event_source: &str) -> &'static str {
    match event_source {
        "secretsmanager.amazonaws.com" => "secretsmanager",
        "kms.amazonaws.com" => "kms",
        "cloudtrail.amazonaws.com" => "cloudtrail",
        "sts.amazonaws.com" => "sts",
        "iam.amazonaws.com" => "iam",
        "organizations.amazonaws.com" => "organizations",
        "strongroom.local" => "strongroom",
        _ => "unknown",
    }
}

fn effect_label(decision: &str) -> &'static str {
    match decision {
        "Allow" => "Allow",
        "ExplicitDeny" => "ExplicitDeny",
        "ImplicitDeny" => "ImplicitDeny",
        _ => "other",
    }
}

fn policy_type_label(t: Option<&str>) -> &'static str {
    match t {
        None => "none",
        Some("Identity" | "IdentityPolicy") => "Identity",
        Some("Resource") => "Resource",
        Some("Scp") => "Scp",
        Some("Rcp") => "Rcp",
        Some("PermissionsBoundary") => "PermissionsBoundary",
        Some("Session") => "Session",
        Some(_) => "other",
    }
}

/// Latency buckets (seconds): 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The server's metrics (one registry per server).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    latency: HistogramVec,
    user_errors: IntCounterVec,
    system_errors: IntCounterVec,
    throttled: IntCounterVec,
    decisions: IntCounterVec,
    reloads: IntCounterVec,
    rotation_events: IntCounterVec,
    rotations_failed: prometheus::IntCounter,
    unauthenticated_counted: prometheus::IntCounter,
    rotation_oldest_overdue: prometheus::Gauge,
    audit_queue: IntGauge,
    audit_in_flight: IntGauge,
    audit_commit: Histogram,
    pool_open: IntGaugeVec,
    pool_idle: IntGaugeVec,
    outbox_depth: IntGaugeVec,
    replication_lag: prometheus::GaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Self, String> {
        let r = Registry::new();
        let e = |e: prometheus::Error| e.to_string();
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "strongroom_request_duration_seconds",
                "Time from a request's arrival to its response, by operation and outcome (success, user_error, system_error, throttled).",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["service", "operation", "outcome"],
        )
        .map_err(e)?;
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).map_err(e)
        };
        let user_errors = counter(
            "strongroom_user_errors_total",
            "Requests refused for the caller's fault (4xx other than throttling), by operation and error code.",
            &["service", "operation", "code"],
        )?;
        let system_errors = counter(
            "strongroom_system_errors_total",
            "Requests that failed on the server's side (InternalServiceError), by operation and error code.",
            &["service", "operation", "code"],
        )?;
        let throttled = counter(
            "strongroom_throttled_requests_total",
            "Requests refused with ThrottlingException (over the account's quota), by operation.",
            &["operation"],
        )?;
        let decisions = counter(
            "strongroom_policy_decisions_total",
            "Authorization decisions, by effect and the type of the deciding policy.",
            &["effect", "policy_type"],
        )?;
        let reloads = counter(
            "strongroom_policy_reloads_total",
            "Reloads of the policies directory, by result (accepted, refused).",
            &["result"],
        )?;
        let rotation_events = counter(
            "strongroom_rotation_events_total",
            "Rotation service events (RotationStarted, RotationSucceeded, RotationFailed, RotationAbandoned, TestRotation*), by event.",
            &["event"],
        )?;
        let rotations_failed = prometheus::IntCounter::new(
            "strongroom_rotations_failed_total",
            "Rotations marked failed after their last attempt (AWSPENDING left in place; DescribeSecret shows why).",
        )
        .map_err(e)?;
        let unauthenticated_counted = prometheus::IntCounter::new(
            "strongroom_audit_unauthenticated_counted_total",
            "Refusals of unknown callers counted into a source's UnauthenticatedRequestsSummarized record instead of recorded one by one (over --audit-unauthenticated-per-minute).",
        )
        .map_err(e)?;
        let rotation_oldest_overdue = prometheus::Gauge::new(
            "strongroom_rotation_oldest_overdue_seconds",
            "Age of the oldest rotation started and not completed (running, waiting for a retry, or failed), 0 when none.",
        )
        .map_err(e)?;
        let audit_queue = IntGauge::new(
            "strongroom_audit_queue_depth",
            "Audit records handed to the writer and not yet committed.",
        )
        .map_err(e)?;
        let audit_in_flight = IntGauge::new(
            "strongroom_audit_requests_in_flight",
            "Requests under way whose audit record the writer expects.",
        )
        .map_err(e)?;
        let audit_commit = Histogram::with_opts(
            HistogramOpts::new(
                "strongroom_audit_group_commit_duration_seconds",
                "Duration of each audit group commit (gathering, inserting and committing a batch of records).",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .map_err(e)?;
        let pool_open = IntGaugeVec::new(
            Opts::new(
                "strongroom_store_pool_connections",
                "Database connections open, by pool (main, read, write).",
            ),
            &["pool"],
        )
        .map_err(e)?;
        let pool_idle = IntGaugeVec::new(
            Opts::new(
                "strongroom_store_pool_idle_connections",
                "Database connections open and idle, by pool (main, read, write).",
            ),
            &["pool"],
        )
        .map_err(e)?;
        let outbox_depth = IntGaugeVec::new(
            Opts::new(
                "strongroom_replication_outbox_depth",
                "Changes of replicated secrets not yet delivered, by peer region.",
            ),
            &["peer"],
        )
        .map_err(e)?;
        let replication_lag = prometheus::GaugeVec::new(
            Opts::new(
                "strongroom_replication_lag_seconds",
                "Age of the oldest undelivered change, by peer region (0: none waiting).",
            ),
            &["peer"],
        )
        .map_err(e)?;
        r.register(Box::new(outbox_depth.clone())).map_err(e)?;
        r.register(Box::new(replication_lag.clone())).map_err(e)?;
        r.register(Box::new(latency.clone())).map_err(e)?;
        r.register(Box::new(user_errors.clone())).map_err(e)?;
        r.register(Box::new(system_errors.clone())).map_err(e)?;
        r.register(Box::new(throttled.clone())).map_err(e)?;
        r.register(Box::new(decisions.clone())).map_err(e)?;
        r.register(Box::new(reloads.clone())).map_err(e)?;
        r.register(Box::new(rotation_events.clone())).map_err(e)?;
        r.register(Box::new(rotations_failed.clone())).map_err(e)?;
        r.register(Box::new(unauthenticated_counted.clone()))
            .map_err(e)?;
        r.register(Box::new(rotation_oldest_overdue.clone()))
            .map_err(e)?;
        r.register(Box::new(audit_queue.clone())).map_err(e)?;
        r.register(Box::new(audit_in_flight.clone())).map_err(e)?;
        r.register(Box::new(audit_commit.clone())).map_err(e)?;
        r.register(Box::new(pool_open.clone())).map_err(e)?;
        r.register(Box::new(pool_idle.clone())).map_err(e)?;
        Ok(Self {
            registry: r,
            latency,
            user_errors,
            system_errors,
            throttled,
            decisions,
            reloads,
            rotation_events,
            rotations_failed,
            unauthenticated_counted,
            rotation_oldest_overdue,
            audit_queue,
            audit_in_flight,
            audit_commit,
            pool_open,
            pool_idle,
            outbox_depth,
            replication_lag,
        })
    }

    /// Count one finished request (called by the pipeline once, before the response).
    pub fn observe(&self, started: Instant, draft: &Draft, result: &Result<Vec<u8>, ApiError>) {
        let service = service_label(&draft.event_source);
        let operation = operation_label(&draft.event_name);
        let outcome = match result {
            Ok(_) => "success",
            Err(ApiError::Throttling(_)) => {
                self.throttled.with_label_values(&[operation]).inc();
                "throttled"
            }
            Err(e @ ApiError::Internal(_)) => {
                self.system_errors
                    .with_label_values(&[service, operation, e.code()])
                    .inc();
                "system_error"
            }
            Err(e) => {
                self.user_errors
                    .with_label_values(&[service, operation, e.code()])
                    .inc();
                "user_error"
            }
        };
        self.latency
            .with_label_values(&[service, operation, outcome])
            .observe(started.elapsed().as_secs_f64());
        if let Some(d) = &draft.decision {
            let effect = effect_label(d);
            if effect != "other" {
                self.decisions
                    .with_label_values(&[
                        effect,
                        policy_type_label(draft.deciding_policy_type.as_deref()),
                    ])
                    .inc();
            }
        }
    }

    /// Count a policies-directory reload.
    pub fn reload(&self, accepted: bool) {
        let result = if accepted { "accepted" } else { "refused" };
        self.reloads.with_label_values(&[result]).inc();
    }

    /// Count a rotation service event (`event` is one of the engine's static names); `final`
    /// when a rotation was marked failed after its last attempt.
    pub fn rotation(&self, event: &'static str, final_failure: bool) {
        self.rotation_events.with_label_values(&[event]).inc();
        if final_failure {
            self.rotations_failed.inc();
        }
    }

    /// The age (seconds) of the oldest rotation started and not completed; 0 when none.
    pub fn rotation_oldest_overdue(&self, seconds: f64) {
        self.rotation_oldest_overdue.set(seconds);
    }

    /// The group-commit histogram, for the audit writer to observe into.
    pub fn audit_commit_histogram(&self) -> Histogram {
        self.audit_commit.clone()
    }

    /// The text exposition, with the gauges read now.
    pub fn render(&self, pipeline: &Pipeline) -> Result<String, String> {
        let (in_flight, queued) = pipeline.auditor.load_counts();
        let counted = pipeline.unauthenticated.counted_total();
        self.unauthenticated_counted
            .inc_by(counted.saturating_sub(self.unauthenticated_counted.get()));
        self.audit_queue
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
        self.audit_in_flight
            .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
        for (pool, open, idle) in pipeline.ctx.store.pool_use() {
            self.pool_open
                .with_label_values(&[pool])
                .set(i64::from(open));
            self.pool_idle
                .with_label_values(&[pool])
                .set(i64::from(idle));
        }
        let now = crate::ops::system_now_ms();
        for (region, depth, oldest) in pipeline.replication.get() {
            self.outbox_depth.with_label_values(&[&region]).set(depth);
            #[expect(clippy::cast_precision_loss, reason = "milliseconds of lag")]
            let lag = oldest.map_or(0.0, |t| now.saturating_sub(t).max(0) as f64 / 1000.0);
            self.replication_lag.with_label_values(&[&region]).set(lag);
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .map_err(|e| e.to_string())?;
        String::from_utf8(out).map_err(|e| e.to_string())
    }
}

async fn metrics(pipeline: web::Data<Pipeline>) -> HttpResponse {
    let Some(m) = &pipeline.metrics else {
        return HttpResponse::NotFound().finish();
    };
    match m.render(&pipeline) {
        Ok(text) => HttpResponse::Ok()
            .insert_header(("content-type", "text/plain; version=0.0.4; charset=utf-8"))
            .body(text),
        Err(e) => {
            tracing::error!("metrics: cannot encode: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("content-type", "text/plain; charset=utf-8"))
        .body("ok\n")
}

/// Ready when the store answers a trivial read (within 2 s), the audit writer accepts
/// records, and the principals are loaded. 503 otherwise, naming what is not ready.
async fn readyz(pipeline: web::Data<Pipeline>) -> HttpResponse {
    let store = tokio::time::timeout(
        Duration::from_secs(2),
        pipeline.ctx.store.read(|tx| Ok(tx.count_access_keys()?)),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let mut audit = pipeline.auditor.accepting();
    if !audit {
        // After a failed group commit the writer commits again only when records come, and
        // a server out of the load balancer gets none: a flush retries, so that a recovered
        // store makes the server ready again.
        let _ = tokio::time::timeout(Duration::from_secs(2), pipeline.auditor.flush()).await;
        audit = pipeline.auditor.accepting();
    }
    let directory = pipeline.identities.get();
    // With a policies directory, loading it yields at least one account; without one, only
    // the root credentials in the store are served.
    let principals = pipeline.identities.root().is_none() || !directory.accounts.is_empty();
    let word = |ok: bool| if ok { "ok" } else { "failing" };
    let body = serde_json::json!({
        "status": if store && audit && principals { "ready" } else { "not ready" },
        "checks": {
            "store": word(store),
            "audit": word(audit),
            "principals": word(principals),
        },
    })
    .to_string();
    let mut reply = if store && audit && principals {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    reply
        .insert_header(("content-type", "application/json"))
        .body(body)
}

/// Bind the metrics listener (`/metrics`, `/healthz`, `/readyz`) on `addr`.
pub fn bind(addr: &str, pipeline: Pipeline) -> Result<actix_web::dev::Server, String> {
    let data = web::Data::new(pipeline);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
    })
    .workers(1)
    .client_request_timeout(Duration::from_secs(10))
    .bind(addr)
    .map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?;
    if let Some(a) = server.addrs().first() {
        tracing::info!(address = %a, "metrics and health listening");
    }
    Ok(server.run())
}

/// The metrics of a server, shared by its pipeline and its background jobs.
pub type Shared = Option<Arc<Metrics>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_share_one_series() {
        assert_eq!(operation_label("GetSecretValue"), "GetSecretValue");
        assert_eq!(operation_label("MadeUp123"), "other");
        assert_eq!(policy_type_label(Some("Scp")), "Scp");
        assert_eq!(policy_type_label(Some("whatever")), "other");
        assert_eq!(operation_label("ListAccounts"), "ListAccounts");
        assert_eq!(
            service_label("organizations.amazonaws.com"),
            "organizations"
        );
        assert_eq!(service_label("strongroom.local"), "strongroom");
    }
}
