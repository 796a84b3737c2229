//! The audit trail's integrity page: the chain's verification status and the latest signed
//! digest, shown to a principal allowed `cloudtrail:GetTrailStatus` (called as them through
//! the pipeline, so the decision and the audit record are the API's).
//!
//! Verification walks the whole chain, so its result is cached: a page view re-verifies only
//! when the cached result is older than [`MAX_AGE_MS`], one verification at a time. The page
//! says when the result was computed and which seqs it covers; records written after it are
//! shown as not yet checked, never as verified.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::json;

use super::{message, page, short_time, Console, Nav};
use crate::audit::verify::{latest_digests, verify_store, VerifyOptions};
use crate::protocol::Service;

/// How old a cached verification may be before a page view verifies again.
pub const MAX_AGE_MS: i64 = 60_000;

/// One chain's verification, as the page shows it.
#[derive(Debug, Clone)]
pub(crate) struct ChainStatus {
    pub chain_id: String,
    pub records: u64,
    pub seqs: String,
    pub signed_through: String,
    pub unsigned: u64,
    pub finding: Option<String>,
}

/// A verification's result and when it was computed.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub at_ms: i64,
    pub chains: Vec<ChainStatus>,
    pub error: Option<String>,
}

/// The cached verification.
pub(crate) type Cache = Arc<tokio::sync::Mutex<Option<Checked>>>;

#[derive(Debug, Clone)]
pub(crate) struct DigestView {
    pub chain_id: String,
    pub seqs: String,
    pub records: i64,
    pub created: String,
    pub key_id: String,
    pub last_hash: String,
    pub signature: String,
}

#[derive(Template)]
#[template(path = "integrity.html")]
struct IntegrityPage {
    nav: Option<Nav>,
    section: &'static str,
    checked_at: String,
    age_s: i64,
    chains: Vec<ChainStatus>,
    error: Option<String>,
    digests: Vec<DigestView>,
    intact: bool,
}

async fn verified(c: &Console, now: i64) -> Checked {
    let mut cache = c.integrity.lock().await;
    if let Some(k) = cache.as_ref().filter(|k| now - k.at_ms < MAX_AGE_MS) {
        return k.clone();
    }
    let store = c.pipeline.ctx.store.clone();
    let trusted_keys: Vec<String> = c
        .pipeline
        .auditor
        .keys()
        .map(|k| vec![k.public_hex().to_owned()])
        .unwrap_or_default();
    // The digests the server also keeps outside the database (`--audit-digest-dir`), as
    // `audit verify --anchor` reads them: a tail cut with its digests is seen here too.
    let digest_dir = c
        .pipeline
        .auditor
        .digest_dir()
        .map(std::path::Path::to_path_buf);
    let report = tokio::task::spawn_blocking(move || {
        let anchors = match &digest_dir {
            Some(dir) if dir.exists() => crate::audit::verify::load_anchors(dir, &trusted_keys)?,
            _ => Vec::new(),
        };
        let opts = VerifyOptions {
            trusted_keys,
            anchors,
            ..VerifyOptions::default()
        };
        verify_store(&store, &opts)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let checked = match report {
        Ok(r) => Checked {
            at_ms: now,
            chains: r
                .chains
                .iter()
                .map(|ch| ChainStatus {
                    chain_id: ch.chain_id.clone(),
                    records: ch.records,
                    seqs: match (ch.first_seq, ch.last_seq) {
                        (Some(a), Some(b)) => format!("{a}–{b}"),
                        _ => "none".into(),
                    },
                    signed_through: ch
                        .signed_through
                        .map_or_else(|| "no digest yet".into(), |s| s.to_string()),
                    unsigned: ch.unsigned,
                    finding: ch.finding.as_ref().map(ToString::to_string),
                })
                .collect(),
            error: None,
        },
        Err(e) => {
            tracing::error!("console audit verification failed: {e}");
            Checked {
                at_ms: now,
                chains: vec![],
                error: Some("The chain could not be read for verification.".into()),
            }
        }
    };
    *cache = Some(checked.clone());
    checked
}

pub(crate) async fn show(req: HttpRequest, c: web::Data<Console>) -> HttpResponse {
    let s = match c.signed_in(&req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(e) = c
        .call(&s, Service::CloudTrail, "GetTrailStatus", &json!({}))
        .await
    {
        return message(e.status, s.nav(), "Audit trail integrity", &e.text);
    }
    let now = c.pipeline.ctx.now_ms();
    let checked = verified(&c, now).await;
    let store = c.pipeline.ctx.store.clone();
    let digests = tokio::task::spawn_blocking(move || latest_digests(&store))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .unwrap_or_else(|e| {
            tracing::error!("console digest read failed: {e}");
            vec![]
        });
    let intact = checked.error.is_none() && checked.chains.iter().all(|c| c.finding.is_none());
    page(
        200,
        &IntegrityPage {
            nav: s.nav(),
            section: "audit",
            checked_at: format!("{} UTC", short_time(checked.at_ms)),
            age_s: (now - checked.at_ms) / 1000,
            chains: checked.chains,
            error: checked.error,
            digests: digests
                .into_iter()
                .map(|d| DigestView {
                    chain_id: d.chain_id,
                    seqs: format!("{}–{}", d.seq_from, d.seq_to),
                    records: d.record_count,
                    created: format!("{} UTC", short_time(d.created_at)),
                    key_id: d.key_id,
                    last_hash: d.last_hash,
                    signature: d.signature,
                })
                .collect(),
            intact,
        },
    )
}
