//! The [`Auditor`]: requests hand it their record and wait; one background writer thread per
//! server collects whatever is pending and appends it to the chain in one transaction
//! (group commit), writes a signed digest every N records or T seconds, then acknowledges
//! every waiting request. A record not committed within the timeout fails its request.
//!
//! The writer opens its transaction when the first record of a batch arrives and inserts
//! records as they come while it gathers the rest (see [`AuditOptions::gather`]): every
//! request of the batch waits for its COMMIT, and inserting a batch's records only after the
//! last one arrived would leave the machine idle for that long (one thread working, everyone
//! waiting).
//!
//! A dedicated OS thread (not a tokio task) so the writer does not depend on which runtime,
//! or how many, the server runs (actix runs one per worker).
//!
//! Write requests do not go through the writer: [`Auditor::in_transaction`] gives them a
//! record that their own write transaction appends (`in_tx`). Both append under the chain's
//! [`Tail`] lock, so the chain stays one sequence in commit order.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::chain::{chain_hash, new_row, signed_statement, DIGEST};
use super::in_tx::{Complete, TxRecord};
use super::keys::AuditKeys;
use super::record::{Draft, Index};
use super::tail::Tail;
use crate::error::ApiError;
use crate::store::rows::NewAuditRow;
use crate::store::Store;

/// Tunables of the writer.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// How long a request waits for its record's commit before failing.
    pub commit_timeout: Duration,
    /// Write a digest after this many records...
    pub digest_every_records: u64,
    /// ...or when the oldest undigested record is this old.
    pub digest_every: Duration,
    /// Most records per transaction (a request's records are never split: the transaction
    /// that takes the last of them may hold a few more).
    pub max_batch: usize,
    /// Most records waiting for the writer.
    pub queue: usize,
    /// How often the chain's new records are added to the lookup index.
    pub index_every: Duration,
    /// How long, at most, the writer gathers records after the first one before it commits,
    /// while some request under way has yet to send its record: fewer, larger commits (each
    /// costs an fsync, WAL frames, and every reader's page cache, which SQLite drops when the
    /// database changed). A lone client never waits: its record is the only one expected.
    pub gather: Duration,
    /// A directory outside the database where each signed digest is also written, once
    /// committed (`anchor::write_digest_file`), for `audit verify --anchor`.
    pub digest_dir: Option<std::path::PathBuf>,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            commit_timeout: Duration::from_secs(2),
            digest_every_records: 1000,
            digest_every: Duration::from_secs(60),
            max_batch: 512,
            queue: 8192,
            index_every: Duration::from_millis(200),
            gather: Duration::from_millis(2),
            digest_dir: None,
        }
    }
}

type Ack = oneshot::Sender<Result<(), String>>;

/// While gathering, the writer takes waiting records into its open transaction whenever this
/// many are waiting, so that inserting them overlaps with the requests still under way, and
/// what is left once the set is complete is the last few inserts and the COMMIT.
const GATHER_STEP: usize = 8;

/// How often, at most, the writer checkpoints the chain file after a group commit
/// (`Store::checkpoint_chain_blocking`).
const CHAIN_CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

enum Msg {
    Record {
        text: String,
        index: Box<Index>,
        ack: Ack,
    },
    /// The records of one request's further events (BatchGetSecretValue's per secret): taken
    /// into one transaction together and acknowledged once.
    Records {
        records: Vec<(String, Box<Index>)>,
        ack: Ack,
    },
    Flush {
        ack: Ack,
    },
}

/// Appends events to this server's chain (see the module docs).
#[derive(Clone)]
pub struct Auditor {
    inner: Arc<Inner>,
}

struct Inner {
    chain_id: String,
    tail: Arc<Tail>,
    tx: SyncSender<Msg>,
    /// Audit writing switched off: only in a build with the `bench-audit-off` feature (the
    /// load benchmark's audit-off binary); the default build has no such state.
    #[cfg(feature = "bench-audit-off")]
    off: bool,
    /// HMAC key for tokens (and, when `signing`, the digest signing key).
    keys: Option<Arc<AuditKeys>>,
    signing: bool,
    timeout: Duration,
    /// The writer's queue length (records waiting beyond it make senders wait).
    queue_capacity: usize,
    /// Dropped with the last handle: tells the lookup indexer to stop.
    _indexer: Option<SyncSender<()>>,
    /// Where each signed digest is also written (`AuditOptions::digest_dir`).
    digest_dir: Option<std::path::PathBuf>,
    /// Requests under way and records handed to the writer but not yet taken: the writer
    /// stops gathering once every request under way has a record waiting.
    load: Arc<Load>,
}

/// See [`Inner::load`].
#[derive(Debug, Default)]
pub(super) struct Load {
    /// Requests under way whose record goes through the writer.
    in_flight: AtomicUsize,
    queued: AtomicUsize,
    /// Records of the batch being gathered that the writer has already taken (and inserted
    /// into its open transaction); still counted in `queued` until the gathering ends.
    taken: AtomicUsize,
    /// The gathering writer waits on `complete`; the sender whose record completes the set
    /// (every request under way has one waiting), or brings [`GATHER_STEP`] records to take,
    /// wakes it, so that the commit does not wait for the writer's next look.
    complete: Condvar,
    waiting: Mutex<()>,
    /// Set while the writer gathers (senders wake it only then).
    gathering: AtomicBool,
    /// Set when the writer thread has ended (or never started): nothing is recorded any more.
    stopped: AtomicBool,
    /// Whether the writer's last group commit failed.
    last_failed: AtomicBool,
    /// Each group commit's duration, observed when the operator turned metrics on.
    commit_seconds: std::sync::OnceLock<prometheus::Histogram>,
}

// The counters and `gathering` are sequentially consistent: a sender that completes the set
// either sees `gathering` (and wakes the writer under its lock) or completed it before the
// writer set `gathering`, and then the writer's own check sees the set complete.
impl Load {
    /// Whether every request under way has its record waiting.
    fn all_in(&self) -> bool {
        self.queued.load(SeqCst) >= self.in_flight.load(SeqCst)
    }

    /// Whether the gathering writer has work: the set is complete, or [`GATHER_STEP`]
    /// records wait to be taken.
    fn writer_has_work(&self) -> bool {
        let queued = self.queued.load(SeqCst);
        queued >= self.in_flight.load(SeqCst)
            || queued.saturating_sub(self.taken.load(SeqCst)) >= GATHER_STEP
    }

    /// Wake a gathering writer when it has work (see [`Load::writer_has_work`]).
    fn notify_if_complete(&self) {
        if self.gathering.load(SeqCst) && self.writer_has_work() {
            // Under the lock: a writer between its check and its wait cannot miss it.
            let _g = self
                .waiting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.complete.notify_one();
        }
    }
}

/// A request under way (see [`Auditor::begin`]); ends when dropped.
#[must_use]
#[derive(Debug)]
pub struct InFlight(Option<Arc<Load>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(load) = &self.0 {
            load.in_flight.fetch_sub(1, SeqCst);
            // Its record went in, or it has none: the others may be all in now.
            load.notify_if_complete();
        }
    }
}

/// A request whose record goes into its own write transaction, not through the writer:
/// while this lives it does not count as under way for the writer's gathering (a write in
/// progress would otherwise keep concurrent reads waiting out the whole window).
#[derive(Debug)]
pub(super) struct NotExpected(Arc<Load>);

impl NotExpected {
    fn new(load: &Arc<Load>) -> Self {
        load.in_flight.fetch_sub(1, SeqCst);
        load.notify_if_complete();
        Self(Arc::clone(load))
    }
}

impl Drop for NotExpected {
    fn drop(&mut self) {
        // Under way again until its `InFlight` ends: a write that failed is recorded
        // through the writer.
        self.0.in_flight.fetch_add(1, SeqCst);
    }
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("chain_id", &self.inner.chain_id)
            .field("enabled", &self.enabled())
            .field("signing", &self.inner.signing)
            .finish_non_exhaustive()
    }
}

impl Auditor {
    /// An auditor without a signing key: records are chained but no digests are written,
    /// and tokens are HMAC'd with a key that lives only as long as the process.
    pub fn new(store: Store, chain_id: String) -> Self {
        let keys = match AuditKeys::ephemeral() {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::error!("audit: no HMAC key ({e}); tokens will be left out of records");
                None
            }
        };
        Self::start(store, chain_id, keys, false, AuditOptions::default())
    }

    /// An auditor that signs digests with the key at `key_path` (created with its `.pub` on
    /// first use; see [`super::keys::key_path_beside`]).
    pub fn with_signing_key(
        store: Store,
        chain_id: String,
        key_path: &std::path::Path,
    ) -> Result<Self, String> {
        Self::with_options(store, chain_id, key_path, AuditOptions::default())
    }

    /// [`Auditor::with_signing_key`] with explicit tunables.
    pub fn with_options(
        store: Store,
        chain_id: String,
        key_path: &std::path::Path,
        opts: AuditOptions,
    ) -> Result<Self, String> {
        let keys = AuditKeys::load_or_create(key_path)?;
        Ok(Self::start(store, chain_id, Some(keys), true, opts))
    }

    /// An auditor with given keys (tests; embedding).
    pub fn with_keys(store: Store, chain_id: String, keys: AuditKeys, opts: AuditOptions) -> Self {
        Self::start(store, chain_id, Some(keys), true, opts)
    }

    /// Audit writing switched off: requests are not recorded. Exists only in a build with
    /// the `bench-audit-off` feature (off by default), which the load benchmark builds
    /// separately for its audit-off runs; `cargo build --release` has no off switch.
    #[cfg(feature = "bench-audit-off")]
    pub fn disabled(chain_id: String) -> Self {
        // A sender nobody reads: every path returns before it would use it.
        let (tx, _) = mpsc::sync_channel(1);
        Self {
            inner: Arc::new(Inner {
                tail: Tail::new(chain_id.clone()),
                chain_id,
                tx,
                off: true,
                keys: None,
                signing: false,
                timeout: Duration::ZERO,
                queue_capacity: 0,
                _indexer: None,
                digest_dir: None,
                load: Arc::default(),
            }),
        }
    }

    fn start(
        store: Store,
        chain_id: String,
        keys: Option<AuditKeys>,
        signing: bool,
        opts: AuditOptions,
    ) -> Self {
        let (tx, rx) = mpsc::sync_channel(opts.queue.max(1));
        let indexer = start_indexer(store.clone(), chain_id.clone(), opts.index_every);
        let keys = keys.map(Arc::new);
        let tail = Tail::new(chain_id.clone());
        let load = Arc::<Load>::default();
        let writer = Writer {
            // Its transactions write the audit chain only: the read cache stays.
            store: store.audit_writer(),
            tail: Arc::clone(&tail),
            keys: keys.clone().filter(|_| signing),
            opts: opts.clone(),
            load: Arc::clone(&load),
        };
        let spawned = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                set_this_threads_nice(WRITER_NICE, "writer");
                // Marks the writer stopped however it ends (returning or unwinding).
                let _stopped = Stopped(Arc::clone(&writer.load));
                writer.run(&rx);
            });
        if let Err(e) = spawned {
            load.stopped.store(true, SeqCst);
            tracing::error!("audit: cannot start the writer thread ({e}); every request will fail");
        }
        Self {
            inner: Arc::new(Inner {
                chain_id,
                tail,
                tx,
                #[cfg(feature = "bench-audit-off")]
                off: false,
                keys,
                signing,
                timeout: opts.commit_timeout,
                queue_capacity: opts.queue.max(1),
                _indexer: indexer,
                digest_dir: opts.digest_dir.clone(),
                load,
            }),
        }
    }

    /// Mark a request as under way until the returned guard is dropped (after its record was
    /// written). The writer uses the count to stop gathering records early.
    pub fn begin(&self) -> InFlight {
        #[cfg(feature = "bench-audit-off")]
        if self.inner.off {
            return InFlight(None);
        }
        self.inner.load.in_flight.fetch_add(1, SeqCst);
        InFlight(Some(Arc::clone(&self.inner.load)))
    }

    /// Whether records are written: always, except in the `bench-audit-off` build's
    /// [`Auditor::disabled`].
    pub fn enabled(&self) -> bool {
        #[cfg(feature = "bench-audit-off")]
        if self.inner.off {
            return false;
        }
        true
    }

    /// Where the signed digests are also written, outside the database, if anywhere.
    pub fn digest_dir(&self) -> Option<&std::path::Path> {
        self.inner.digest_dir.as_deref()
    }

    /// This server's chain.
    pub fn chain_id(&self) -> &str {
        &self.inner.chain_id
    }

    /// The audit keys (HMAC of tokens; the signing key when digests are signed).
    pub fn keys(&self) -> Option<&AuditKeys> {
        self.inner.keys.as_deref()
    }

    /// The signing key, when digests are signed (retention signs its prune anchors).
    pub fn signing_keys(&self) -> Option<Arc<AuditKeys>> {
        self.inner.keys.clone().filter(|_| self.inner.signing)
    }

    /// Whether digests are signed.
    pub fn signs_digests(&self) -> bool {
        self.inner.signing
    }

    /// A record for `draft` that the next successful write transaction made through a store
    /// handle carrying it (`Store::with_hook`) appends before it commits. `complete` fills in
    /// what the transaction's result tells (response elements), or says not to record.
    /// `None` only from the `bench-audit-off` build's [`Auditor::disabled`]. For background events; a request uses
    /// [`Auditor::in_request_transaction`].
    pub fn in_transaction(&self, draft: Draft, complete: Complete) -> Option<Arc<TxRecord>> {
        self.tx_record(draft, complete, None)
    }

    /// [`Auditor::in_transaction`] for a request under way (between its [`Auditor::begin`]
    /// and the end of its guard): while the record lives, the request does not count as one
    /// whose record the group-commit writer waits for.
    pub fn in_request_transaction(
        &self,
        draft: Draft,
        complete: Complete,
    ) -> Option<Arc<TxRecord>> {
        if !self.enabled() {
            return None;
        }
        let not_expected = NotExpected::new(&self.inner.load);
        self.tx_record(draft, complete, Some(not_expected))
    }

    fn tx_record(
        &self,
        draft: Draft,
        complete: Complete,
        not_expected: Option<NotExpected>,
    ) -> Option<Arc<TxRecord>> {
        if !self.enabled() {
            return None;
        }
        Some(Arc::new(TxRecord::new(
            Arc::clone(&self.inner.tail),
            self.inner.keys.clone(),
            self.inner.timeout,
            draft,
            complete,
            not_expected,
        )))
    }

    /// Requests under way whose record the writer expects, and records waiting for it.
    #[doc(hidden)]
    pub fn load_counts(&self) -> (usize, usize) {
        let l = &self.inner.load;
        (l.in_flight.load(SeqCst), l.queued.load(SeqCst))
    }

    /// Whether the writer takes records: its thread runs, its last group commit succeeded
    /// and its queue has room (the readiness probe's "audit writable").
    pub fn accepting(&self) -> bool {
        if !self.enabled() {
            return true;
        }
        let l = &self.inner.load;
        !l.stopped.load(SeqCst)
            && !l.last_failed.load(SeqCst)
            && l.queued.load(SeqCst) < self.inner.queue_capacity
    }

    /// Observe each group commit's duration (seconds) into `h` (metrics; set once).
    pub fn observe_commits(&self, h: prometheus::Histogram) {
        let _ = self.inner.load.commit_seconds.set(h);
    }

    /// Write the event durably. An error means the request must fail closed.
    pub async fn record(&self, draft: &Draft) -> Result<(), ApiError> {
        if !self.enabled() {
            return Ok(());
        }
        let tx = &self.inner.tx;
        // The id's text on the stack: the record's index keeps its own copy.
        let mut id = uuid::Uuid::encode_buffer();
        let event_id = super::new_event_uuid().hyphenated().encode_lower(&mut id);
        let (text, index) = draft.to_text(event_id, self.keys());
        let (ack, done) = oneshot::channel();
        let msg = Msg::Record {
            text,
            index: Box::new(index),
            ack,
        };
        self.send(tx, msg, event_id, done).await
    }

    /// Write several events (BatchGetSecretValue's one per secret) and wait once: they go
    /// to the writer in one message, commit in the same transaction and are acknowledged
    /// together. All or error.
    pub async fn record_all(&self, drafts: &[Draft]) -> Result<(), ApiError> {
        if !self.enabled() || drafts.is_empty() {
            return Ok(());
        }
        let tx = &self.inner.tx;
        // The first record's id names the group in the log.
        let mut first = uuid::Uuid::encode_buffer();
        let mut first_id: &str = "";
        let mut records = Vec::with_capacity(drafts.len());
        for (i, draft) in drafts.iter().enumerate() {
            let uuid = super::new_event_uuid();
            let mut id = uuid::Uuid::encode_buffer();
            let event_id = uuid.hyphenated().encode_lower(&mut id);
            let (text, index) = draft.to_text(event_id, self.keys());
            records.push((text, Box::new(index)));
            if i == 0 {
                first_id = uuid.hyphenated().encode_lower(&mut first);
            }
        }
        let (ack, done) = oneshot::channel();
        self.send(tx, Msg::Records { records, ack }, first_id, done)
            .await
    }

    /// Wait until everything recorded so far is committed, and sign a digest of it.
    /// Call at shutdown (after the HTTP server stopped) so the tail is covered.
    pub async fn flush(&self) -> Result<(), ApiError> {
        if !self.enabled() {
            return Ok(());
        }
        let tx = &self.inner.tx;
        let (ack, done) = oneshot::channel();
        self.send(tx, Msg::Flush { ack }, "flush", done).await
    }

    async fn send(
        &self,
        tx: &SyncSender<Msg>,
        msg: Msg,
        what: &str,
        done: oneshot::Receiver<Result<(), String>>,
    ) -> Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + self.inner.timeout;
        self.enqueue(tx, msg, what, deadline).await?;
        self.await_ack(done, what, deadline).await
    }

    /// Hand a message to the writer, waiting (up to the deadline) while its queue is full.
    async fn enqueue(
        &self,
        tx: &SyncSender<Msg>,
        msg: Msg,
        what: &str,
        deadline: tokio::time::Instant,
    ) -> Result<(), ApiError> {
        match crate::queue::send(tx, msg, deadline).await {
            Ok(()) => {
                self.inner.load.queued.fetch_add(1, SeqCst);
                self.inner.load.notify_if_complete();
                Ok(())
            }
            Err(crate::queue::SendError::Full) => {
                let timeout = self.inner.timeout;
                tracing::error!(event_id = %what, "audit queue full for {timeout:?}; failing the request");
                Err(ApiError::internal("audit queue full"))
            }
            Err(crate::queue::SendError::Disconnected) => {
                tracing::error!(event_id = %what, "audit writer is not running; failing the request");
                Err(ApiError::internal("audit writer not running"))
            }
        }
    }

    /// Wait (up to the timeout) for the writer to say the record is committed.
    async fn await_ack(
        &self,
        done: oneshot::Receiver<Result<(), String>>,
        what: &str,
        deadline: tokio::time::Instant,
    ) -> Result<(), ApiError> {
        let timeout = self.inner.timeout;
        match tokio::time::timeout_at(deadline, done).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => {
                tracing::error!(event_id = %what, "audit record not written: {e}");
                Err(ApiError::internal(format!("audit write failed: {e}")))
            }
            Ok(Err(_)) => {
                tracing::error!(event_id = %what, "audit writer stopped before acknowledging");
                Err(ApiError::internal("audit writer stopped"))
            }
            Err(_) => {
                tracing::error!(event_id = %what, "audit record not committed within {timeout:?}; failing the request");
                Err(ApiError::internal("audit commit timed out"))
            }
        }
    }
}

/// The lookup indexer: every `every` (sooner while it has a backlog, see [`indexer_loop`]),
/// add the chain's new records to the audit lookup index
/// (`Store::index_audit_blocking`), in one transaction per batch, off the request path. The
/// group commits then only append to the chain table (whose indexes grow at their right
/// edge), and the query indexes are written once per batch instead of once per commit.
/// Queries bring the index up to date themselves, so what this thread has not done yet is
/// never missing from an answer. Stops (after a last pass) when the sender is dropped.
fn start_indexer(store: Store, chain_id: String, every: Duration) -> Option<SyncSender<()>> {
    let (stop, rx) = mpsc::sync_channel::<()>(1);
    let spawned = std::thread::Builder::new()
        .name("audit-indexer".into())
        .spawn(move || indexer_loop(&store, &chain_id, every, &rx));
    match spawned {
        Ok(_) => Some(stop),
        Err(e) => {
            tracing::warn!("audit: no lookup indexer thread ({e}); queries will index");
            None
        }
    }
}

/// The audit writer's nice value, when the process may raise a priority (root or
/// CAP_SYS_NICE): every request under way waits for the writer's next COMMIT, so a writer
/// that waits for a CPU behind request threads holds all of them up. Measured in
/// docs/performance.md (as is why the lookup indexer keeps the default priority: lowered,
/// it falls behind whenever the machine is saturated).
const WRITER_NICE: i32 = -10;

/// Set the calling thread's nice value: Linux keeps one per thread, and
/// `setpriority(PRIO_PROCESS, 0)` sets the caller's. Raising a priority needs CAP_SYS_NICE
/// (or an RLIMIT_NICE allowing it); without, the thread keeps the default priority.
fn set_this_threads_nice(nice: i32, thread: &str) {
    if let Err(e) = rustix::process::setpriority_process(None, nice) {
        tracing::debug!("audit: {thread} left at the default priority (nice {nice}: {e})");
    }
}

/// How long the indexer pauses after a full batch before it takes the next one.
const INDEX_CATCH_UP_PAUSE: Duration = Duration::from_millis(20);

/// The indexer thread's loop (see [`start_indexer`]).
fn indexer_loop(store: &Store, chain_id: &str, every: Duration, rx: &mpsc::Receiver<()>) {
    let mut wait = every;
    loop {
        let last = match rx.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) | Ok(()) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        // One batch at a time. A full batch means the chain may hold more: the next one
        // follows after a short pause rather than a whole tick, so that a chain growing
        // faster than one batch a tick (a busy server's steady state, not only a backlog
        // after an upgrade) is indexed as fast as it grows, and queries do not find a
        // backlog to index themselves; the pause leaves requests the CPU between batches.
        wait = match store.index_audit_blocking(Some(chain_id), 1) {
            Ok(true) => INDEX_CATCH_UP_PAUSE.min(every),
            Ok(false) => every,
            Err(e) => {
                // Queries index what is missing themselves; nothing is lost.
                tracing::warn!(chain = %chain_id, "audit lookup index not updated: {e:?}");
                every
            }
        };
        if last {
            return;
        }
    }
}

/// The writer thread's state.
struct Writer {
    store: Store,
    tail: Arc<Tail>,
    /// Set when digests are signed.
    keys: Option<Arc<AuditKeys>>,
    opts: AuditOptions,
    load: Arc<Load>,
}

/// What one group commit carries: records, the requests to acknowledge, and whether a
/// digest is forced (a flush).
#[derive(Default)]
struct Batch {
    records: Vec<(String, Box<Index>)>,
    acks: Vec<Ack>,
    force: bool,
    /// Messages taken from the queue (records and flushes).
    messages: usize,
}

impl Batch {
    fn push(&mut self, m: Msg) {
        self.messages += 1;
        match m {
            Msg::Record { text, index, ack } => {
                self.records.push((text, index));
                self.acks.push(ack);
            }
            Msg::Records { records, ack } => {
                self.records.extend(records);
                self.acks.push(ack);
            }
            Msg::Flush { ack } => {
                self.force = true;
                self.acks.push(ack);
            }
        }
    }
}

/// The gathering of one batch: until every request under way has its record in, or the
/// window closes, or the batch is full.
struct Gathering<'a> {
    load: &'a Load,
    rx: &'a mpsc::Receiver<Msg>,
    deadline: std::time::Instant,
    max_batch: usize,
    done: bool,
}

impl Gathering<'_> {
    /// Wait until the writer has work (see [`Load::writer_has_work`]) or the window closes,
    /// then take what is waiting into `batch`. Waits on `Load::complete`, not on the queue:
    /// only a sender that completes the set or brings a step's worth of records wakes this
    /// thread, never each record.
    fn step(&mut self, batch: &mut Batch) {
        if self.done {
            return;
        }
        {
            let mut guard = self
                .load
                .waiting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.load.gathering.store(true, SeqCst);
            while !self.load.writer_has_work() {
                let Some(left) = self
                    .deadline
                    .checked_duration_since(std::time::Instant::now())
                    .filter(|d| !d.is_zero())
                else {
                    break;
                };
                guard = match self.load.complete.wait_timeout(guard, left) {
                    Ok((g, _)) => g,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
            self.load.gathering.store(false, SeqCst);
        }
        // Checked before taking: records sent after this are for the next batch.
        let complete = self.load.all_in() || std::time::Instant::now() >= self.deadline;
        self.take(batch);
        self.done |= complete;
    }

    /// Take what is waiting, up to the batch's limit.
    fn take(&mut self, batch: &mut Batch) {
        let before = batch.messages;
        let full = |b: &Batch| b.messages >= self.max_batch || b.records.len() >= self.max_batch;
        while !full(batch) {
            match self.rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        self.load.taken.fetch_add(batch.messages - before, SeqCst);
        if full(batch) {
            self.done = true;
        }
    }
}

/// Marks the writer stopped when dropped (see [`Load::stopped`]).
struct Stopped(Arc<Load>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.stopped.store(true, SeqCst);
    }
}

impl Drop for Gathering<'_> {
    /// The batch's records no longer count as waiting.
    fn drop(&mut self) {
        let taken = self.load.taken.swap(0, SeqCst);
        // Saturating: a message sent just now may be taken before it was counted.
        let _ = self
            .load
            .queued
            .fetch_update(SeqCst, SeqCst, |q| Some(q.saturating_sub(taken)));
    }
}

impl Writer {
    fn run(self, rx: &mpsc::Receiver<Msg>) {
        let mut last_checkpoint = std::time::Instant::now();
        loop {
            // Records may also be committed by write requests (in their transactions): wake
            // up at least every `digest_every` to sign what is pending.
            let wait = if self.keys.is_some() {
                let (n, age) = self.tail.undigested();
                if n > 0 {
                    self.opts.digest_every.saturating_sub(age)
                } else {
                    self.opts.digest_every
                }
            } else {
                Duration::from_secs(3600)
            };
            let mut batch = Batch::default();
            match rx.recv_timeout(wait) {
                Ok(m) => batch.push(m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Every Auditor is gone: sign what is left, then stop.
                    let mut last = Batch {
                        force: true,
                        ..Batch::default()
                    };
                    if let Err(e) = self.commit(&mut last, None) {
                        tracing::error!("audit: final digest not written: {e}");
                    }
                    return;
                }
            }
            let gathering = (batch.messages > 0).then(|| {
                let mut g = Gathering {
                    load: &self.load,
                    rx,
                    deadline: std::time::Instant::now() + self.opts.gather,
                    max_batch: self.opts.max_batch,
                    done: false,
                };
                // The first message counts as taken; what arrived with it goes into the first
                // insert.
                self.load.taken.fetch_add(batch.messages, SeqCst);
                g.take(&mut batch);
                g
            });
            let started = std::time::Instant::now();
            let result = self.commit(&mut batch, gathering);
            if let Some(h) = self.load.commit_seconds.get() {
                h.observe(started.elapsed().as_secs_f64());
            }
            self.load.last_failed.store(result.is_err(), SeqCst);
            if let Err(e) = &result {
                tracing::error!(
                    chain = %self.tail.chain_id(),
                    records = batch.records.len(),
                    "audit: writing a batch failed: {e}"
                );
            }
            for ack in batch.acks {
                // A request that timed out has dropped its receiver; nothing to tell it.
                let _ = ack.send(result.clone());
            }
            if last_checkpoint.elapsed() >= CHAIN_CHECKPOINT_EVERY {
                // After the acknowledgements: the requests of the next group are under way
                // meanwhile, instead of waiting for a checkpoint inside a COMMIT.
                last_checkpoint = std::time::Instant::now();
                if let Err(e) = self.store.checkpoint_chain_blocking() {
                    tracing::warn!("audit: chain checkpoint failed: {e:?}");
                }
            }
        }
    }

    /// Append `batch`'s records (and a digest when due or forced) in one transaction, under
    /// the chain's tail lock (held until the transaction ended). With a `gathering`, the
    /// transaction is opened at once: the records waiting are inserted, then more are
    /// gathered into the batch and inserted as they come, and it commits once the gathering
    /// is done.
    fn commit(
        &self,
        batch: &mut Batch,
        mut gathering: Option<Gathering<'_>>,
    ) -> Result<(), String> {
        {
            let (undigested, age) = self.tail.undigested();
            if batch.records.is_empty()
                && gathering.is_none()
                && self.due(batch, undigested, age).is_none()
            {
                return Ok(());
            }
        }
        let tail = Arc::clone(&self.tail);
        let timeout = self.opts.commit_timeout;
        let mut last_err = String::new();
        // The digest this transaction writes, if any (for the digest directory, after COMMIT).
        let mut signed: Option<crate::store::rows::AuditDigestRow> = None;
        // The store retries conflicts itself; a few more tries cover a lock timeout or a
        // transient failure. A retry inserts again what the batch holds; the gathering goes
        // on where it was.
        for _ in 0..3 {
            let r = self.store.write_blocking(|tx| {
                signed = None;
                let mut append = tail.lock(timeout)?;
                let chain = append.chain_id().to_owned();
                let (mut seq, mut prev) = append.head(tx)?;
                let mut inserted = 0;
                loop {
                    if let Some(new) = batch.records.get(inserted..).filter(|n| !n.is_empty()) {
                        // The hashes first, then rows that borrow them and the records.
                        let mut hashes: Vec<String> = Vec::with_capacity(new.len());
                        for (text, _) in new {
                            let before = hashes.last().map_or(prev.as_str(), String::as_str);
                            hashes.push(chain_hash(before, text));
                        }
                        let mut rows: Vec<NewAuditRow<'_>> = Vec::with_capacity(new.len());
                        let mut before = prev.as_str();
                        for ((text, ix), hash) in new.iter().zip(&hashes) {
                            seq += 1;
                            rows.push(new_row(&chain, seq, before, hash, text, ix));
                            before = hash;
                        }
                        append.insert(tx, &rows)?;
                        drop(rows);
                        if let Some(last) = hashes.pop() {
                            prev = last;
                        }
                        inserted = batch.records.len();
                    }
                    match gathering.as_mut() {
                        Some(g) if !g.done => g.step(batch),
                        _ => break,
                    }
                }
                let (undigested, age) = tail.undigested();
                if let Some(keys) = self.due(batch, undigested, age) {
                    let from = tx
                        .last_audit_digest(&chain, DIGEST)?
                        .map_or(1, |d| d.seq_to + 1);
                    if seq >= from {
                        let d = signed_statement(
                            &keys,
                            &chain,
                            DIGEST,
                            from,
                            seq,
                            &prev,
                            crate::ops::system_now_ms(),
                        );
                        tx.insert_audit_digest(&d)?;
                        signed = Some(d);
                    }
                    append.mark_digested();
                }
                // Returned so that the lock is held through COMMIT (dropped unused, it
                // releases the lock as rolled back).
                Ok(append)
            });
            match r {
                Ok(append) => {
                    append.finish(crate::store::Outcome::Committed);
                    if let (Some(dir), Some(d)) = (&self.opts.digest_dir, &signed) {
                        // The digest is committed: the request's record is durable whatever
                        // happens here. A digest missing from the directory is found by
                        // `audit verify --anchor` only as less coverage, never as tampering.
                        if let Err(e) = super::anchor::write_digest_file(dir, d) {
                            tracing::error!(chain = %d.chain_id, seq_to = d.seq_to, "audit: digest not written to the digest directory: {e}");
                        }
                    }
                    return Ok(());
                }
                Err(e) => last_err = format!("{e:?}"),
            }
        }
        Err(last_err)
    }

    /// The signing keys when a digest is due with `batch`: forced, or enough records (the
    /// chain's undigested ones plus the batch's), or the oldest undigested is old enough.
    fn due(&self, batch: &Batch, undigested: u64, age: Duration) -> Option<Arc<AuditKeys>> {
        let n = u64::try_from(batch.records.len()).unwrap_or(u64::MAX);
        let pending = undigested.saturating_add(n);
        self.keys.clone().filter(|_| {
            pending > 0
                && (batch.force
                    || pending >= self.opts.digest_every_records
                    || age >= self.opts.digest_every)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice values of this process's threads named `name`.
    fn nice_of_threads(name: &str) -> Vec<i32> {
        let mut out = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            // A thread of another test may end meanwhile: skip what cannot be read.
            let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
                continue;
            };
            // After the ")" that closes the name: state is field 3, nice field 19.
            let nice = stat
                .rfind(')')
                .and_then(|i| stat.get(i + 2..))
                .and_then(|rest| rest.split(' ').nth(16))
                .and_then(|n| n.parse::<i32>().ok());
            out.extend(nice);
        }
        out
    }

    /// Why this process may raise a thread's priority to [`WRITER_NICE`], if it may:
    /// CAP_SYS_NICE (bit 23 of CapEff), or an RLIMIT_NICE whose soft limit allows it (a limit
    /// of `n` allows nice values down to `20 - n`).
    fn may_raise_priority() -> Option<String> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let caps = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .unwrap()
            .trim();
        if u64::from_str_radix(caps, 16).unwrap() & (1 << 23) != 0 {
            return Some("CAP_SYS_NICE".into());
        }
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let soft = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max nice priority"))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap();
        match soft.parse::<i32>() {
            Ok(n) if 20 - n <= WRITER_NICE => Some(format!("RLIMIT_NICE {n}")),
            Err(_) if soft == "unlimited" => Some("RLIMIT_NICE unlimited".into()),
            _ => None,
        }
    }

    /// The mechanism, whatever the privileges: lowering a priority is always allowed, and
    /// `set_this_threads_nice` sets the calling thread's nice value, not the process's.
    #[test]
    fn set_this_threads_nice_sets_the_calling_threads_value() {
        let before = nice_of_threads("nice-probe-0");
        assert!(before.is_empty(), "{before:?}");
        let (set, wait) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let probe = std::thread::Builder::new()
            .name("nice-probe-0".into())
            .spawn(move || {
                set_this_threads_nice(7, "probe");
                set.send(()).unwrap();
                stopped.recv().unwrap();
            })
            .unwrap();
        wait.recv().unwrap();
        assert_eq!(nice_of_threads("nice-probe-0"), [7]);
        // this thread (and so the process's other threads) keeps its own value
        let mine = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let mine = mine
            .rfind(')')
            .and_then(|i| mine.get(i + 2..))
            .and_then(|rest| rest.split(' ').nth(16))
            .unwrap()
            .to_owned();
        assert_ne!(mine, "7");
        stop.send(()).unwrap();
        probe.join().unwrap();
    }

    /// The writer runs at [`WRITER_NICE`] when the process may raise a priority. Without the
    /// privilege the raise fails and the writer keeps the default (0), which is all that can
    /// be checked here: the run says so.
    #[test]
    fn the_writer_runs_at_a_raised_priority_when_the_process_may() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/w.db", dir.path().display());
        let store = Store::open(&url).unwrap();
        let privilege = may_raise_priority();
        let want = if privilege.is_some() { WRITER_NICE } else { 0 };
        match &privilege {
            Some(why) => eprintln!("the writer's priority: may raise it ({why}); want {want}"),
            None => eprintln!(
                "the writer's priority: SKIPPED the raise (no CAP_SYS_NICE, RLIMIT_NICE too low); checking it stays at 0"
            ),
        }
        let auditor = Auditor::new(store, "nice".into());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut seen = nice_of_threads("audit-writer");
        while !seen.contains(&want) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            seen = nice_of_threads("audit-writer");
        }
        assert!(
            seen.contains(&want),
            "writer threads' nice {seen:?}, want {want}"
        );
        // The indexer keeps the default priority (lowered, it fell behind under load). A
        // thread takes its name when it first runs, which on a loaded machine may be a while
        // after it was spawned: wait for it as for the writer.
        let mut indexers = nice_of_threads("audit-indexer");
        while !indexers.contains(&0) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            indexers = nice_of_threads("audit-indexer");
        }
        assert!(indexers.contains(&0), "indexer threads' nice {indexers:?}");
        drop(auditor);
    }
}
