//! Retention at serve time (`--audit-retention-days`): every run exports this server's chain
//! (incremental gzip CloudTrail JSON files, as `strongroom audit export`) and deletes its
//! records older than the retention age under a signed anchor (as `strongroom audit prune`),
//! so `strongroom audit verify` still passes on what remains: it starts from the anchor.
//!
//! Each run is recorded as one background event (`PruneAuditRecords`, event source
//! `strongroom.local`): in the transaction that deletes the records when it deletes any,
//! else (nothing old enough, or the run failed) through the group-commit writer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::export::{prune_chains, PruneSummary, Pruned};
use super::record::Draft;
use super::writer::Auditor;
use crate::error::ApiError;
use crate::store::Store;

/// The name of a retention run's event.
pub const EVENT_NAME: &str = "PruneAuditRecords";

/// One retention run at `now_ms`: export this server's chain to `out`, delete its records
/// older than `max_age_ms`, record the run. The summary, or why the run failed (also
/// recorded).
pub async fn run_once(
    store: &Store,
    auditor: &Auditor,
    out: &Path,
    max_age_ms: i64,
    now_ms: i64,
) -> Result<PruneSummary, ApiError> {
    let cutoff = now_ms.saturating_sub(max_age_ms);
    let mut draft = Draft {
        request_id: uuid::Uuid::new_v4().to_string(),
        event_time_ms: now_ms,
        event_source: "strongroom.local".into(),
        event_name: EVENT_NAME.into(),
        read_only: Some(false),
        decision: Some("Service".into()),
        event_type: Some("AwsServiceEvent".into()),
        request_parameters: serde_json::json!({ "EndTime": super::record::rfc3339_ms(cutoff) }),
        ..Draft::default()
    };
    let outcome = match auditor.signing_keys() {
        None => Err("retention needs the audit signing key (for the prune anchor)".to_owned()),
        Some(keys) => {
            let record = auditor.in_transaction(
                draft.clone(),
                Box::new(|result, d| match result.downcast_ref::<Option<Pruned>>() {
                    Some(Some(p)) => {
                        d.decision_reason = Some(describe(0, p.records, p.through));
                        true
                    }
                    _ => false,
                }),
            );
            let hooked = match &record {
                Some(r) => store.with_hook(r.clone()),
                None => store.clone(),
            };
            let chain = auditor.chain_id().to_owned();
            let out: PathBuf = out.to_path_buf();
            let digest_dir = auditor.digest_dir().map(Path::to_path_buf);
            let run = tokio::task::spawn_blocking(move || {
                // The digest directory's copies are checked too (see `prune_chains`).
                let anchors = match digest_dir.filter(|d| d.exists()) {
                    Some(d) => super::verify::load_anchors(&d, &[keys.public_hex().to_owned()])?,
                    None => Vec::new(),
                };
                prune_chains(&hooked, &keys, &out, cutoff, now_ms, Some(&chain), &anchors)
            })
            .await
            .map_err(|e| format!("retention task failed: {e}"))
            .and_then(|r| r);
            if record.as_ref().is_some_and(|r| r.written()) {
                // Recorded with the deletion.
                return run.map_err(ApiError::internal);
            }
            run
        }
    };
    match &outcome {
        Ok(s) => {
            let (records, through) = s
                .pruned
                .first()
                .map_or((0, 0), |(_, through, n)| (*n, *through));
            draft.decision_reason = Some(describe(s.export.records, records, through));
            if !s.skipped.is_empty() {
                draft.error_code = Some("AuditRetentionSkipped".into());
                draft.error_message = Some(s.skipped.join("; "));
            }
        }
        Err(e) => {
            draft.error_code = Some("AuditRetentionFailed".into());
            draft.error_message = Some(e.clone());
        }
    }
    auditor.record(&draft).await?;
    outcome.map_err(ApiError::internal)
}

fn describe(exported: u64, pruned: usize, through: i64) -> String {
    let mut s = String::new();
    if exported > 0 {
        s.push_str(&format!("exported {exported} records; "));
    }
    if pruned > 0 {
        s.push_str(&format!(
            "pruned {pruned} records through seq {through} under a signed anchor"
        ));
    } else {
        s.push_str("no records old enough to prune");
    }
    s
}

/// Run [`run_once`] every `every` (the first run at once) until the process ends.
pub async fn run_forever(
    store: Store,
    auditor: Auditor,
    out: PathBuf,
    max_age: std::time::Duration,
    every: std::time::Duration,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
) {
    let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match run_once(&store, &auditor, &out, max_age_ms, clock()).await {
            Ok(s) => {
                for (chain, through, n) in &s.pruned {
                    tracing::info!(chain = %chain, through, records = n, exported = s.export.records, "audit retention: pruned");
                }
                for w in s.export.warnings.iter().chain(&s.skipped) {
                    tracing::warn!("audit retention: {w}");
                }
            }
            Err(e) => tracing::error!("audit retention run failed: {e:?}"),
        }
    }
}
