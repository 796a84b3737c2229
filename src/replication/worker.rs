//! The delivery worker: ships the outbox's changes to the peers, retrying with back-off
//! (the outbox is in the store: a restart of either side resumes where delivery stopped).
//!
//! Per (secret, peer region) it delivers the state of the secret as it is at delivery, with
//! the sequence number of the latest change enqueued, then deletes the changes delivered.
//! A peer's refusal of the change itself (a promoted replica, a name collision) leaves the
//! replica `Failed` with the peer's message and drops the changes (the next write, or
//! ReplicateSecretToRegions with ForceOverwriteReplicaSecret, enqueues again); any other
//! failure (unreachable, TLS, authentication, 5xx) is retried with exponential back-off and jitter,
//! and after [`MAX_ATTEMPTS`] the replica is `Failed` with the last error while retries go on.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use super::client::{self, Answer, Pool, Transport};
use super::{PeerConfig, SharedStats};
use crate::error::ApiError;
use crate::ops::apply_replica_change::{Input, Output, ShippedSecret, ShippedVersion};
use crate::ops::{replicas, values, Ctx};
use crate::store::outbox::OutboxRow;
use crate::store::Tx;

/// Failed attempts after which a replica shows `Failed` (delivery goes on).
pub const MAX_ATTEMPTS: i32 = 5;
/// The first retry's delay; doubled each attempt up to [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: i64 = 250;
const MAX_BACKOFF_MS: i64 = 10_000;
/// Changes (secret, region) handled per round.
const BATCH: i64 = 64;
/// Deliveries to one peer at once (each of a different secret).
const IN_FLIGHT: usize = 32;
const IDLE: Duration = Duration::from_millis(100);

/// The error types with which a peer refuses the change itself (not retried).
const REFUSALS: &[&str] = &[
    "InvalidRequestException",
    "ResourceExistsException",
    "InvalidParameterException",
];

/// The delay before attempt `attempts + 1`.
pub fn backoff_ms(attempts: i32) -> i64 {
    let shift = u32::try_from(attempts.clamp(1, 16).saturating_sub(1)).unwrap_or(0);
    FIRST_BACKOFF_MS
        .saturating_mul(1_i64 << shift)
        .min(MAX_BACKOFF_MS)
}

/// The delay actually waited: [`backoff_ms`]'s upper half, drawn uniformly ("equal jitter").
/// Groups that failed in the same round (every secret written while a peer was down) would
/// otherwise come due in the same round again at every attempt, and their failures would
/// reach the store writer as one burst, stalling the writes queued behind it.
fn jittered(backoff: i64) -> i64 {
    let half = backoff / 2;
    half.saturating_add(rand::Rng::gen_range(
        &mut rand::thread_rng(),
        0..=backoff - half,
    ))
}

enum Outcome {
    /// The replica's key as the peer shows it.
    Delivered(Option<String>),
    Refused(String),
    Retry(String),
    /// The primary or its peer entry is gone: nothing to deliver, the changes are dropped.
    Gone,
}

/// Per (secret, peer region), the versions the peer holds with their values, as of the last
/// delivery it applied and that said it accepts omitted values. The next delivery of that
/// secret leaves those values out (a version's value never changes), so that a delivery's
/// cost follows what changed instead of every version the secret has. The peer checks
/// every omitted value against what it holds, so a stale entry costs one retry with every
/// value, never a replica without one. In memory only: after a restart, each secret's
/// first delivery sends every value.
#[derive(Debug, Default)]
pub(super) struct Delivered(std::sync::Mutex<HashMap<(String, String), HashSet<String>>>);

/// Entries kept at most (each a secret's version ids): past it the map starts over.
const DELIVERED_CAP: usize = 20_000;

impl Delivered {
    fn get(&self, key: &(String, String)) -> HashSet<String> {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(key).cloned())
            .unwrap_or_default()
    }

    fn set(&self, key: (String, String), versions: HashSet<String>) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= DELIVERED_CAP && !m.contains_key(&key) {
                m.clear();
            }
            m.insert(key, versions);
        }
    }

    fn forget(&self, key: &(String, String)) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(key);
        }
    }
}

/// A delivery's result, for the round to record: the group's change, its failed attempts
/// before this one, and what happened.
type Ended = (OutboxRow, i32, Outcome);

/// Run the worker until the server stops.
pub async fn run(
    ctx: Ctx,
    cfg: Arc<PeerConfig>,
    tls: Arc<rustls::ClientConfig>,
    stats: SharedStats,
) {
    // Kept-alive connections to the peers, shared by every delivery.
    let pool = Arc::new(Pool::default());
    let delivered = Arc::new(Delivered::default());
    for peer in &cfg.peers {
        actix_web::rt::spawn(deliver_loop(
            ctx.clone(),
            Arc::clone(&cfg),
            Arc::clone(&tls),
            Arc::clone(&pool),
            Arc::clone(&delivered),
            peer.region.clone(),
        ));
    }
    // The depth is a count over every waiting change, whose cost grows with the backlog (with
    // a dead peer, every write since it died): it is counted again only after 50 times as
    // long as the last count took, so it costs at most 2 % of a thread whatever the backlog.
    // The oldest change, which the lag gauge shows, is an index lookup per region, read
    // every round.
    let mut depths: Vec<(String, i64)> = Vec::new();
    let mut next_count = std::time::Instant::now();
    loop {
        if std::time::Instant::now() >= next_count {
            let started = std::time::Instant::now();
            if let Ok(d) = ctx.store.read(|tx| Ok(tx.outbox_depths()?)).await {
                depths = d;
            }
            next_count = std::time::Instant::now() + (started.elapsed() * 50).max(IDLE);
        }
        let mut regions: Vec<String> = cfg.peers.iter().map(|p| p.region.clone()).collect();
        for (region, _) in &depths {
            if !regions.contains(region) {
                // Changes for a region no peer serves any more (the configuration changed):
                // their replicas show why they wait.
                deliver_round(&ctx, &cfg, &tls, &pool, &delivered, region).await;
                regions.push(region.clone());
            }
        }
        let asked = regions.clone();
        let oldest = ctx
            .store
            .read(move |tx| {
                asked
                    .iter()
                    .map(|r| Ok(tx.outbox_oldest_in_region(r)?))
                    .collect::<Result<Vec<Option<i64>>, ApiError>>()
            })
            .await;
        if let Ok(oldest) = oldest {
            let all = regions
                .into_iter()
                .zip(oldest)
                .map(|(region, oldest)| {
                    // Drained since the last count: nothing waits.
                    let depth = oldest.map_or(0, |_| {
                        depths
                            .iter()
                            .find(|(r, _)| *r == region)
                            .map_or(1, |(_, d)| (*d).max(1))
                    });
                    (region, depth, oldest)
                })
                .collect();
            stats.set(all);
        }
        tokio::time::sleep(IDLE).await;
    }
}

/// Tells the round that one delivery ended, with its result (when dropped: also if it
/// panicked, then with none, and the group is taken again in a later round).
struct Done(
    tokio::sync::mpsc::UnboundedSender<Option<Ended>>,
    Option<Ended>,
);

impl Drop for Done {
    fn drop(&mut self) {
        let _ = self.0.send(self.1.take());
    }
}

/// Deliver the changes for one peer region, the longest due first, until the server stops.
async fn deliver_loop(
    ctx: Ctx,
    cfg: Arc<PeerConfig>,
    tls: Arc<rustls::ClientConfig>,
    pool: Arc<Pool>,
    delivered: Arc<Delivered>,
    region: String,
) {
    loop {
        if !deliver_round(&ctx, &cfg, &tls, &pool, &delivered, &region).await {
            tokio::time::sleep(IDLE).await;
        }
    }
}

/// One round of deliveries for `region`; whether it made progress: something was due and
/// at least one delivery ended other than in a retry. A round of failures only (a peer that
/// is down) is followed by a pause like an empty one: without it, with the groups' retries
/// spread out by their jitter, rounds would follow each other with a group or two each, one
/// write transaction apiece.
async fn deliver_round(
    ctx: &Ctx,
    cfg: &Arc<PeerConfig>,
    tls: &Arc<rustls::ClientConfig>,
    pool: &Arc<Pool>,
    delivered: &Arc<Delivered>,
    region: &str,
) -> bool {
    let now = ctx.now_ms();
    let r = region.to_owned();
    let due = ctx
        .store
        .read(move |tx| Ok(tx.outbox_due(&r, now, BATCH)?))
        .await;
    match due {
        Ok(rows) => {
            // Each row is a different secret: up to IN_FLIGHT of them are delivered at
            // once (the next starts as soon as one ends), while each secret's changes stay
            // in order (one delivery per secret per round; the round ends when all ended).
            let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Option<Ended>>();
            let mut in_flight = 0_usize;
            let mut ended = Vec::with_capacity(rows.len());
            for (row, attempts) in rows {
                if in_flight >= IN_FLIGHT {
                    if let Some(e) = done_rx.recv().await {
                        in_flight = in_flight.saturating_sub(1);
                        ended.extend(e);
                    }
                }
                let (ctx, cfg, tls, pool, delivered) = (
                    ctx.clone(),
                    Arc::clone(cfg),
                    Arc::clone(tls),
                    Arc::clone(pool),
                    Arc::clone(delivered),
                );
                let mut done = Done(done_tx.clone(), None);
                actix_web::rt::spawn(async move {
                    let outcome = deliver(&ctx, &cfg, &tls, &pool, &delivered, &row).await;
                    done.1 = Some((row, attempts, outcome));
                    drop(done);
                });
                in_flight = in_flight.saturating_add(1);
            }
            drop(done_tx);
            while in_flight > 0 {
                match done_rx.recv().await {
                    Some(e) => {
                        in_flight = in_flight.saturating_sub(1);
                        ended.extend(e);
                    }
                    None => break,
                }
            }
            let progress = ended
                .iter()
                .any(|(_, _, outcome)| !matches!(outcome, Outcome::Retry(_)));
            record_all(ctx, region, ended).await;
            progress
        }
        Err(e) => {
            tracing::warn!(%region, "replication outbox: cannot read: {}", e.message());
            false
        }
    }
}

/// Deliver `row`'s group: what happened (recorded by the round).
async fn deliver(
    ctx: &Ctx,
    cfg: &PeerConfig,
    tls: &Arc<rustls::ClientConfig>,
    pool: &Arc<Pool>,
    delivered: &Arc<Delivered>,
    row: &OutboxRow,
) -> Outcome {
    match (cfg.peer(&row.region).cloned(), cfg.credentials.clone()) {
        (None, _) => Outcome::Retry(format!(
            "no peer server is configured for region {} (--peer {}=URL)",
            row.region, row.region
        )),
        (Some(_), None) => Outcome::Retry(
            "no replication access key is configured (STRONGROOM_PEER_ACCESS_KEY_ID)".into(),
        ),
        (Some(peer), Some(creds)) => send(ctx, tls, pool, peer, creds, row, delivered)
            .await
            .unwrap_or(Outcome::Gone),
    }
}

/// Record the outcomes of a round's deliveries in one write transaction. A peer that is
/// down fails every due group of every round; one transaction per round, instead of one per
/// group, keeps that from growing into a write load with the number of secrets written
/// while it is down. If the transaction fails, nothing of the round is recorded: the
/// delivered changes are sent again (the peer ignores a change not newer than the last it
/// applied) and the failures are tried again without their back-off.
async fn record_all(ctx: &Ctx, region: &str, ended: Vec<Ended>) {
    if ended.is_empty() {
        return;
    }
    let now = ctx.now_ms();
    let result = ctx
        .store
        .write(move |tx| {
            for (row, attempts, outcome) in ended.iter() {
                record(tx, row, *attempts, outcome, now)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(
            %region,
            "replication outbox: cannot record the round's deliveries: {}",
            e.message()
        );
    }
}

/// Ship the state of `row`'s secret to `peer`: the outcome, or None when there is nothing
/// to deliver (the primary or its peer entry is gone). A peer known to be unreachable is
/// not asked, and the secret is then neither read nor decrypted.
async fn send(
    ctx: &Ctx,
    tls: &Arc<rustls::ClientConfig>,
    pool: &Arc<Pool>,
    peer: super::Peer,
    creds: super::PeerCredentials,
    row: &OutboxRow,
    delivered: &Arc<Delivered>,
) -> Option<Outcome> {
    if let Some(m) = pool.unreachable(&peer.url()) {
        return Some(Outcome::Retry(m));
    }
    let keyring = ctx.keyring.clone();
    let r = row.clone();
    let key = (row.primary_secret_id.clone(), row.region.clone());
    let known = delivered.get(&key);
    let (body, with_values) = match ctx
        .store
        .read(move |tx| build(tx, &keyring, &r, &known))
        .await
    {
        Ok(None) => {
            delivered.forget(&key);
            return None;
        }
        Err(e) => {
            return Some(Outcome::Retry(format!(
                "cannot read the primary: {}",
                e.message()
            )))
        }
        Ok(Some(built)) => built,
    };
    let tls = Arc::clone(tls);
    let pool = Arc::clone(pool);
    let url = peer.url();
    let sent = tokio::task::spawn_blocking(move || {
        client::post(
            &pool,
            &peer,
            &tls,
            &creds,
            &body,
            time::OffsetDateTime::now_utc(),
        )
    })
    .await;
    let (outcome, omit_next) = match sent {
        Ok(Ok(answer)) => classify(
            &answer,
            &replicas::replica_arn(&row.primary_arn, &row.region),
        ),
        Ok(Err(Transport(m))) => (Outcome::Retry(m), false),
        Err(_) => (
            Outcome::Retry(format!("delivery to {url} was interrupted")),
            false,
        ),
    };
    if omit_next && !with_values.is_empty() {
        delivered.set(key, with_values);
    } else {
        delivered.forget(&key);
    }
    Some(outcome)
}

/// The peer's answer as an outcome, and whether the next delivery of the secret may leave
/// out the values this one carried (the peer applied it, and accepts omitted values).
/// A 200 counts as delivered only when it is the apply operation's answer for the replica
/// (`replica_arn`): anything else answering 200 at the peer's address (another service, a
/// proxy's page) has applied nothing, and the change is retried.
fn classify(answer: &Answer, replica_arn: &str) -> (Outcome, bool) {
    let v: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
    if answer.status == 200 {
        return match serde_json::from_value::<Output>(v) {
            Ok(out) if out.arn == replica_arn => {
                let omit_next = out.applied && out.omitted_values_accepted == Some(true);
                // The replica's key as the peer names it is shown to callers of the primary
                // (ReplicationStatus): only a key identifier's length of it (2048, as AWS's
                // KmsKeyId) is kept.
                let key = out.kms_key_id.filter(|k| k.chars().count() <= 2048);
                (Outcome::Delivered(key), omit_next)
            }
            _ => (
                Outcome::Retry(format!(
                    "HTTP 200 that is not the peer's apply answer for {replica_arn}"
                )),
                false,
            ),
        };
    }
    let kind = v["__type"].as_str().unwrap_or("").to_owned();
    let kind = kind.rsplit('#').next().unwrap_or("").to_owned();
    let message = v["message"]
        .as_str()
        .or_else(|| v["Message"].as_str())
        .unwrap_or("")
        .chars()
        .take(1024)
        .collect::<String>();
    let text = format!("HTTP {} {kind}: {message}", answer.status);
    let outcome = if REFUSALS.contains(&kind.as_str()) {
        Outcome::Refused(format!("{kind}: {message}"))
    } else {
        Outcome::Retry(text)
    };
    (outcome, false)
}

/// Record a delivery's outcome: `attempts` is the group's failed attempts before it.
fn record(
    tx: &mut Tx<'_>,
    row: &OutboxRow,
    attempts: i32,
    outcome: &Outcome,
    now: i64,
) -> Result<(), ApiError> {
    if let Outcome::Gone = outcome {
        tx.outbox_delivered(&row.primary_secret_id, &row.region, row.seq)?;
        return Ok(());
    }
    let entry = tx
        .replicas_of(&row.primary_secret_id)?
        .into_iter()
        .find(|e| e.region == row.region && e.peer);
    match outcome {
        Outcome::Gone => {}
        Outcome::Delivered(key) => {
            tx.outbox_delivered(&row.primary_secret_id, &row.region, row.seq)?;
            if let Some(mut e) = entry {
                let pending = tx.outbox_pending(&row.primary_secret_id, &row.region)?;
                e.status = if pending.is_some() {
                    replicas::IN_PROGRESS
                } else {
                    replicas::IN_SYNC
                }
                .to_owned();
                e.status_message = None;
                if let Some(k) = key {
                    e.kms_key_id = k.clone();
                }
                tx.put_replica(&e)?;
            }
        }
        Outcome::Refused(m) => {
            tx.outbox_delivered(&row.primary_secret_id, &row.region, row.seq)?;
            if let Some(mut e) = entry {
                e.status = replicas::FAILED.to_owned();
                e.status_message = Some(cap(format!(
                    "Replication failed: the peer server of region {} refused the change: {m}",
                    row.region
                )));
                tx.put_replica(&e)?;
            }
        }
        Outcome::Retry(m) => {
            let attempts = attempts.saturating_add(1);
            tx.outbox_failed(
                &row.primary_secret_id,
                &row.region,
                attempts,
                now.saturating_add(jittered(backoff_ms(attempts))),
                &cap(m.clone()),
            )?;
            if let Some(mut e) = entry {
                if attempts >= MAX_ATTEMPTS {
                    e.status = replicas::FAILED.to_owned();
                    e.status_message = Some(cap(format!(
                        "Replication failed: delivery to the peer server of region {} failed {attempts} times (last error: {m}); retrying.",
                        row.region
                    )));
                } else {
                    e.status = replicas::IN_PROGRESS.to_owned();
                    e.status_message = Some(cap(format!(
                        "Delivery to the peer server of region {} failed {attempts} time(s) (last error: {m}); retrying.",
                        row.region
                    )));
                }
                tx.put_replica(&e)?;
            }
        }
    }
    Ok(())
}

fn cap(s: String) -> String {
    if s.chars().count() <= 2048 {
        s
    } else {
        s.chars().take(2048).collect()
    }
}

/// The request body delivering `row` (with the secret's current state, values decrypted),
/// or `None` when there is nothing to deliver any more.
/// A delivery's body, and the versions it covers that have a value (held by the peer once
/// it applied the delivery).
type Built = (Zeroizing<Vec<u8>>, HashSet<String>);

/// Build the delivery of `row`, leaving out the values of the versions in `known`.
fn build(
    tx: &mut Tx<'_>,
    keyring: &crate::kms::Keyring,
    row: &OutboxRow,
    known: &HashSet<String>,
) -> Result<Option<Built>, ApiError> {
    let mut with_values = HashSet::new();
    let mut input = Input {
        primary_arn: Some(row.primary_arn.clone()),
        seq: Some(row.seq),
        force_overwrite: Some(row.force_overwrite),
        ..Input::default()
    };
    if row.kind == "delete" {
        input.delete = Some(true);
    } else {
        let Some(primary) = tx.secret_by_id(&row.primary_secret_id)? else {
            return Ok(None);
        };
        let Some(entry) = tx
            .replicas_of(&primary.secret_id)?
            .into_iter()
            .find(|e| e.region == row.region && e.peer)
        else {
            return Ok(None);
        };
        input.kms_key_id =
            (entry.kms_key_id != replicas::DEFAULT_KEY_ALIAS).then_some(entry.kms_key_id);
        let mut versions = Vec::new();
        for v in tx.versions(&primary.secret_id)? {
            let (value, value_omitted) = match &v.value_kind {
                Some(_) if known.contains(&v.version_id) => (None, Some(true)),
                Some(_) => {
                    let plain = values::open_version(tx, keyring, &primary, &v)?;
                    let b64 = base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        plain.expose(),
                    );
                    (Some(b64), None)
                }
                None => (None, None),
            };
            if v.value_kind.is_some() {
                with_values.insert(v.version_id.clone());
            }
            versions.push(ShippedVersion {
                version_id: v.version_id.clone(),
                created_at: v.created_at,
                value_kind: v.value_kind.clone(),
                value,
                value_omitted,
            });
        }
        input.secret = Some(ShippedSecret {
            name: primary.name.clone(),
            description: primary.description.clone(),
            last_changed_at: primary.last_changed_at,
            owning_service: primary.owning_service.clone(),
            resource_policy: primary.resource_policy.clone(),
            tag_list: primary.tag_list,
            secret_type: primary.secret_type.clone(),
            external_rotation_metadata: primary.external_rotation_metadata.clone(),
            external_rotation_role_arn: primary.external_rotation_role_arn.clone(),
            rotation_enabled: primary.rotation_enabled,
            rotation_lambda_arn: primary.rotation_lambda_arn.clone(),
            rotation_rules: primary.rotation_rules.clone(),
            last_rotated_at: primary.last_rotated_at,
            tags: tx.tags(&primary.secret_id)?,
            stages: tx.stages(&primary.secret_id)?,
            versions,
        });
    }
    serde_json::to_vec(&input)
        .map(|v| Some((Zeroizing::new(v), with_values)))
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jitter_keeps_the_upper_half_and_spreads() {
        for attempts in [1, 3, 7] {
            let b = backoff_ms(attempts);
            let draws: Vec<i64> = (0..200).map(|_| jittered(b)).collect();
            assert!(
                draws.iter().all(|d| (b / 2..=b).contains(d)),
                "{b}: {draws:?}"
            );
            let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
            assert!(
                distinct.len() > 20,
                "{b}: {} distinct delays",
                distinct.len()
            );
        }
    }

    #[test]
    fn only_the_replicas_apply_answer_counts_as_delivered() {
        let arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app/db-AbCdEf";
        let answer = |status: u16, body: &str| Answer {
            status,
            body: body.to_owned(),
        };
        let ok = format!(
            r#"{{"ARN":"{arn}","Applied":true,"KmsKeyId":"k","OmittedValuesAccepted":true}}"#
        );
        assert!(matches!(
            classify(&answer(200, &ok), arn),
            (Outcome::Delivered(Some(k)), true) if k == "k"
        ));
        let long = ok.replace(
            r#""KmsKeyId":"k""#,
            &format!(r#""KmsKeyId":"{}""#, "k".repeat(2049)),
        );
        assert!(matches!(
            classify(&answer(200, &long), arn),
            (Outcome::Delivered(None), true)
        ));
        let other = ok.replace("app/db-AbCdEf", "other-AbCdEf");
        for body in [
            "",
            "{}",
            "<html>It works!</html>",
            r#"{"Applied":true}"#,
            other.as_str(),
        ] {
            assert!(
                matches!(
                    classify(&answer(200, body), arn),
                    (Outcome::Retry(_), false)
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff_ms(1), 250);
        assert_eq!(backoff_ms(2), 500);
        assert_eq!(backoff_ms(5), 4000);
        assert_eq!(backoff_ms(6), 8000);
        assert_eq!(backoff_ms(7), 10_000);
        assert_eq!(backoff_ms(1000), 10_000);
    }
}
