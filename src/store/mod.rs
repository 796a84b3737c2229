//! The only module that knows diesel and SQL.
//!
//! One schema, two backends (SQLite bundled, PostgreSQL) through one `MultiConnection`.
//! Operations run closures over a [`Tx`] inside one transaction: `Store::write` for changes
//! (serialised in-process on SQLite; SERIALIZABLE with retries on PostgreSQL) and
//! `Store::read` for consistent reads. Blocking work runs on tokio's blocking pool.
//!
//! A store handle may carry a [`CommitHook`] (`Store::with_hook`): every write transaction
//! made through that handle lets the hook add rows just before it commits (the request's
//! audit record, so the change and its record commit together or not at all).
//!
//! May depend on: `error` (for the closure's error type), `secrets` and `audit` row types.
//! Never on actix or `policy`.

/// Run a diesel query on the concrete connection behind an [`AnyConnection`]: `native!(conn,
/// |c| query.get_result(c))`. Through the `MultiConnection` wrapper every execution first
/// renders the query's SQL text again (even when its prepared statement is cached); on the
/// concrete connection a query with a static type is looked up in the statement cache by
/// type and its SQL is never rebuilt. For the hot read path (one request = a handful of
/// point lookups). The body is expanded once per backend.
macro_rules! native {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::AnyConnection::Sqlite($c) => $body,
            $crate::store::AnyConnection::Postgresql($c) => $body,
        }
    };
}

mod audit;
mod batch;
pub mod cache;
mod changes;
mod conn;
mod fixed;
mod keys;
mod kms;
mod listing;
pub mod outbox;
mod replicas;
mod role_ids;
pub mod rotated_mysql;
pub mod rotated_pg;
mod rotation;
pub mod rows;
mod schema;
mod secrets;

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::Connection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

pub use audit::{lookup_block, record_terms};
pub use conn::{audit_chain_path, audit_index_path, redact_url, AnyConnection, Backend};
#[cfg(test)]
pub use listing::fresh_postgres_store;
pub use listing::{prefix_end, ListKey, ListOrder, ListPos, NEVER_ACCESSED};
pub use rotation::RotationJobRow;

use crate::error::ApiError;
use rows::{AuditFilter, AuditRow};

/// Why a store call failed. Messages never carry secret values.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] DieselError),
    #[error("connection pool: {0}")]
    Pool(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("bad database url `{0}`")]
    Url(String),
    #[error("blocking task failed: {0}")]
    Join(String),
    #[error("too many concurrent write conflicts; giving up")]
    Conflict,
}

impl StoreError {
    /// Whether this is a unique-constraint violation (a concurrent insert of the same key).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            Self::Db(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

fn is_retryable(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) => {
            // SQLite: another process holds the write lock past busy_timeout.
            let m = info.message();
            m.contains("database is locked") || m.contains("deadlock detected")
        }
        _ => false,
    }
}

/// A transaction in progress. Its methods live in the `store::*` submodules.
#[derive(Debug)]
pub struct Tx<'c> {
    conn: &'c mut AnyConnection,
    /// Set when a statement failed with a retryable conflict; the whole closure is retried.
    conflict: bool,
}

impl<'c> Tx<'c> {
    /// Map a diesel error, remembering retryable conflicts.
    fn db(&mut self, e: DieselError) -> StoreError {
        if is_retryable(&e) {
            self.conflict = true;
        }
        StoreError::Db(e)
    }

    /// Have [`Store::write`] run the whole closure again (in a new transaction) when this
    /// attempt fails: the caller met a conflict the database did not flag as one (a unique
    /// key taken by a concurrent writer it could not see).
    pub fn retry_on_failure(&mut self) {
        self.conflict = true;
    }
}

/// Rows a write transaction adds for someone else just before it commits (a request's audit
/// record). Called inside the transaction after the closure returned `Ok`, with that result
/// (as `Any`, to be recognised by type). Whatever it returns lives until the transaction
/// has ended and is then told how (a lock held until then, say).
pub trait CommitHook: Send + Sync + std::fmt::Debug {
    fn before_commit(
        &self,
        tx: &mut Tx<'_>,
        result: &dyn Any,
    ) -> Result<Option<Box<dyn TxEnd>>, ApiError>;
}

/// How a transaction that a [`CommitHook`] added to ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    RolledBack,
    /// The COMMIT failed in a way that does not say whether it took effect.
    Unknown,
}

/// Told how the transaction ended (see [`CommitHook`]). Dropped without being told:
/// rolled back.
pub trait TxEnd {
    fn ended(self: Box<Self>, outcome: Outcome);
}

enum TxFail {
    Api(ApiError),
    Db(DieselError),
}

impl From<DieselError> for TxFail {
    fn from(e: DieselError) -> Self {
        Self::Db(e)
    }
}

/// The store: a connection pool plus, for SQLite, the in-process write lock.
#[derive(Clone)]
pub struct Store {
    pool: Pool<ConnectionManager<AnyConnection>>,
    /// Connections for read transactions (SQLite: separate; see `conn`).
    read_pool: Pool<ConnectionManager<AnyConnection>>,
    backend: Backend,
    /// Write transactions' connections (SQLite: the one writer connection; see `conn`).
    write_pool: Pool<ConnectionManager<AnyConnection>>,
    write_lock: Arc<Mutex<()>>,
    /// SQLite: the group-commit writer of [`Store::write`] (`batch`), started on first use.
    queue: Arc<std::sync::OnceLock<batch::Queue>>,
    /// Added to every write transaction made through this handle.
    hook: Option<Arc<dyn CommitHook>>,
    /// SQLite: the background checkpointer stops when every handle is gone.
    _checkpointer: Option<std::sync::mpsc::SyncSender<()>>,
    /// What short reads found, while nothing was written since (see `cache`).
    cache: Arc<cache::ReadCache>,
    /// How the cache learns of writes made outside this store's handles (SQLite: another
    /// connection's; PostgreSQL: another server's), and the last answer (see `changes`).
    changes: Arc<changes::Changes>,
    /// Whether this handle's write transactions may change cached data (every handle but
    /// the audit writer's: [`Store::audit_writer`]).
    changes_data: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("hook", &self.hook)
            .finish_non_exhaustive()
    }
}

const MAX_RETRIES: u32 = 60;

/// How long a transaction that met a conflict waits before its `attempt`+1st try: a random
/// time up to 3 ms per attempt so far (at most 30 ms). Random, so that transactions that
/// conflicted with each other (PostgreSQL's serialization failures among concurrent
/// writers) do not all come back at the same moment and conflict again.
fn retry_pause(attempt: u32) -> Duration {
    let most = u64::from(attempt.clamp(1, 10)) * 3_000;
    #[expect(clippy::cast_possible_truncation, reason = "a remainder below 30,000")]
    let micros = (uuid::Uuid::new_v4().as_u128() % u128::from(most)) as u64;
    Duration::from_micros(micros.max(500))
}

/// Run a transaction, `once`, until it neither meets another writer nor fails with a
/// retryable database error (SQLite busy, PostgreSQL's serialization failures), pausing
/// [`retry_pause`] between tries, at most [`MAX_RETRIES`] times; then answer
/// [`StoreError::Conflict`]. `once` gives its transaction's result and whether the
/// transaction met a conflict, or an error that ends the retries at once (no connection, a
/// committed write that could not be acknowledged).
fn retry_transaction<T>(
    mut once: impl FnMut() -> Result<(Result<T, TxFail>, bool), ApiError>,
) -> Result<T, ApiError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (result, conflict) = once()?;
        let fail = match result {
            Ok(v) => return Ok(v),
            Err(fail) => fail,
        };
        if !(conflict || matches!(&fail, TxFail::Db(e) if is_retryable(e))) {
            return Err(match fail {
                TxFail::Api(e) => e,
                TxFail::Db(e) => StoreError::Db(e).into(),
            });
        }
        if attempt >= MAX_RETRIES {
            return Err(StoreError::Conflict.into());
        }
        std::thread::sleep(retry_pause(attempt));
    }
}

impl Store {
    /// Open (and migrate) the database at `url` (`sqlite://PATH` or `postgres://...`).
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, conn::READ_MMAP_BYTES)
    }

    /// [`Store::open`], with SQLite's read connections mapping up to `read_mmap_bytes` of the
    /// database (`PRAGMA main.mmap_size`; 0: none, the default): faster reads, more RSS (see
    /// `conn::READ_MMAP_BYTES`).
    pub fn open_with(url: &str, read_mmap_bytes: u64) -> Result<Self, StoreError> {
        Self::open_configured(url, read_mmap_bytes, std::time::Duration::ZERO)
    }

    /// [`Store::open_with`], and on PostgreSQL the read cache's change check made every
    /// `pg_change_check` on a thread of its own instead of before every cached read (zero:
    /// before every cached read, the default; see `changes`).
    pub fn open_configured(
        url: &str,
        read_mmap_bytes: u64,
        pg_change_check: std::time::Duration,
    ) -> Result<Self, StoreError> {
        let (backend, pool) = conn::open_pool(url)?;
        let read_pool = conn::open_read_pool(url, &pool, read_mmap_bytes)?;
        let write_pool = conn::open_write_pool(url, &pool)?;
        let (checkpointer, watch) = match backend {
            Backend::Sqlite => (
                Some(start_checkpointer(pool.clone())?),
                changes::Watch::Sqlite(conn::open_sentinel(url)?),
            ),
            Backend::Postgres => {
                // A server that died between a write's COMMIT and its advance left the
                // sequence behind that write: every start advances it once.
                let mut c = pool.get().map_err(|e| StoreError::Pool(e.to_string()))?;
                changes::advance(&mut c)?;
                (None, changes::Watch::Postgres(changes::Probe::new(url)))
            }
        };
        let cache = Arc::new(cache::ReadCache::default());
        let changes = changes::Changes::checked_every(watch, pg_change_check, &cache)
            .map_err(|e| StoreError::Pool(format!("cannot start the change check: {e}")))?;
        Ok(Self {
            _checkpointer: checkpointer,
            pool,
            read_pool,
            write_pool,
            backend,
            write_lock: Arc::new(Mutex::new(())),
            queue: Arc::new(std::sync::OnceLock::new()),
            hook: None,
            cache,
            changes,
            changes_data: true,
        })
    }

    /// This store for the audit writer, whose write transactions write only the audit files
    /// (the chain and its digests): they leave the read cache as it is, so that a group
    /// commit of audit records does not empty it. Nothing else may write through it.
    #[must_use]
    pub fn audit_writer(&self) -> Self {
        Self {
            changes_data: false,
            ..self.clone()
        }
    }

    /// The data generation to read a cacheable result under (see `cache`), after asking
    /// whether a write was made outside this store's handles since the last time (SQLite:
    /// by another connection; PostgreSQL: through another server; see `changes`); if so,
    /// everything cached is dropped. Writes through this store's handles drop it
    /// themselves, before they are answered. `None` when the question cannot be answered:
    /// nothing is then cached or served from the cache.
    async fn cache_generation(&self) -> Option<u64> {
        self.changes.generation(&self.cache).await
    }

    /// [`Store::read_point`] through the read cache (`cache`): what `f` found (`Some`) is
    /// kept under `key` and, while no write has ended since, served again without a read.
    /// `key` must name everything `f` chooses by (an entry under it is taken as `f`'s
    /// answer), and `f` must read the database only (no clock, no caller).
    pub async fn read_point_cached<T, F>(
        &self,
        key: String,
        f: F,
    ) -> Result<Option<Arc<T>>, ApiError>
    where
        T: std::any::Any + Send + Sync,
        F: FnOnce(&mut Tx<'_>) -> Result<Option<T>, ApiError> + Send + 'static,
    {
        let generation = self.cache_generation().await;
        if generation.is_some() {
            if let Some(hit) = self.cache.get::<T>(&key) {
                return Ok(Some(hit));
            }
        }
        let found = self.read_point(f).await?.map(Arc::new);
        if let (Some(found), Some(generation)) = (&found, generation) {
            self.cache.put(key, Arc::clone(found), generation);
        }
        Ok(found)
    }

    /// [`Store::read_point_cached`] for several keys at once: what is cached under `keys` is
    /// served from the cache, and the rest is read in one short read, `f` answering for the
    /// positions of `keys` it is given, in that order (one answer each), and kept. The same
    /// rules hold for each key and for `f` as for `read_point_cached`.
    pub async fn read_points_cached<T, F>(
        &self,
        keys: Vec<String>,
        f: F,
    ) -> Result<Vec<Option<Arc<T>>>, ApiError>
    where
        T: std::any::Any + Send + Sync,
        F: FnOnce(&mut Tx<'_>, &[usize]) -> Result<Vec<Option<T>>, ApiError> + Send + 'static,
    {
        let generation = self.cache_generation().await;
        let mut out: Vec<Option<Arc<T>>> = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let hit = generation.and_then(|_| self.cache.get::<T>(key));
            if hit.is_none() {
                missing.push(i);
            }
            out.push(hit);
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let (missing, found) = self
            .read_point(move |tx| {
                let found = f(tx, &missing)?;
                Ok((missing, found))
            })
            .await?;
        if found.len() != missing.len() {
            return Err(ApiError::internal(format!(
                "a cached read answered {} of {} keys",
                found.len(),
                missing.len()
            )));
        }
        for (i, found) in missing.into_iter().zip(found) {
            let found = found.map(Arc::new);
            if let (Some(found), Some(generation), Some(key)) = (&found, generation, keys.get(i)) {
                self.cache.put(key.clone(), Arc::clone(found), generation);
            }
            if let Some(slot) = out.get_mut(i) {
                *slot = found;
            }
        }
        Ok(out)
    }

    /// A write transaction through this handle ended: what is cached may be stale.
    fn data_written(&self) {
        if self.changes_data {
            self.cache.advance();
        }
    }

    /// This store with `hook` added to every write transaction made through the handle
    /// returned (the original handle is unchanged).
    #[must_use]
    pub fn with_hook(&self, hook: Arc<dyn CommitHook>) -> Self {
        Self {
            hook: Some(hook),
            ..self.clone()
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Each connection pool's (name, connections open, connections idle), for metrics.
    pub fn pool_use(&self) -> [(&'static str, u32, u32); 3] {
        let state = |p: &Pool<ConnectionManager<AnyConnection>>| {
            let s = p.state();
            (s.connections, s.idle_connections)
        };
        let (a, b) = state(&self.pool);
        let (c, d) = state(&self.read_pool);
        let (e, f) = state(&self.write_pool);
        [("main", a, b), ("read", c, d), ("write", e, f)]
    }

    fn conn(&self) -> Result<PooledConnection<ConnectionManager<AnyConnection>>, StoreError> {
        self.pool.get().map_err(|e| StoreError::Pool(e.to_string()))
    }

    /// Run `f` in one write transaction. Retried on PostgreSQL serialization failures
    /// (so `f` must be repeatable); committed only when `f` returns `Ok`. The handle's
    /// [`CommitHook`], if any, adds its rows to the same transaction (on every attempt).
    /// SQLite: `f` runs in a transaction shared with the other writes waiting at the time,
    /// committed once for all of them (`batch`); it sees what they wrote before it, and its
    /// own failure rolls back only its own changes (so `f` may run more than once).
    pub async fn write<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>) -> Result<T, ApiError> + Send + 'static,
    {
        if self.backend == Backend::Sqlite {
            if self.queue.get().is_none() {
                // The thread's handle has a queue of its own (never used), so that dropping
                // the last handle of this store stops it.
                let detached = Self {
                    queue: Arc::new(std::sync::OnceLock::new()),
                    hook: None,
                    ..self.clone()
                };
                // Two first writes at once: one queue wins, the other's thread stops.
                let _ = self.queue.set(batch::Queue::start(detached)?);
            }
            if let Some(q) = self.queue.get() {
                return q.write(f, self.hook.clone()).await;
            }
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_blocking(f))
            .await
            .map_err(|e| ApiError::from(StoreError::Join(e.to_string())))?
    }

    /// The blocking body of [`Store::write`], for background jobs and the CLI.
    pub fn write_blocking<T, F>(&self, mut f: F) -> Result<T, ApiError>
    where
        T: 'static,
        F: FnMut(&mut Tx<'_>) -> Result<T, ApiError>,
    {
        retry_transaction(|| {
            let mut conflict = false;
            // What the hook added; told how the transaction ended, after it ended.
            let mut end: Option<Box<dyn TxEnd>> = None;
            let (result, announced) = {
                let _guard = match self.backend {
                    Backend::Sqlite => Some(
                        self.write_lock
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner),
                    ),
                    Backend::Postgres => None,
                };
                // SQLite: the one writer connection, free whenever the lock is held.
                let mut conn = self
                    .write_pool
                    .get()
                    .map_err(|e| StoreError::Pool(e.to_string()))?;
                let c: &mut AnyConnection = &mut conn;
                let result = c.transaction::<T, TxFail, _>(|c| {
                    if self.backend == Backend::Postgres {
                        diesel::RunQueryDsl::execute(
                            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
                            c,
                        )?;
                    }
                    let mut tx = Tx {
                        conn: c,
                        conflict: false,
                    };
                    let mut r = f(&mut tx);
                    if let (Ok(v), Some(hook)) = (&r, &self.hook) {
                        match hook.before_commit(&mut tx, v) {
                            Ok(e) => end = e,
                            Err(e) => r = Err(e),
                        }
                    }
                    conflict = tx.conflict;
                    r.map_err(TxFail::Api)
                });
                let outcome = match &result {
                    Ok(_) => Outcome::Committed,
                    Err(TxFail::Db(e)) if !is_retryable(e) => Outcome::Unknown,
                    Err(_) => Outcome::RolledBack,
                };
                if let Some(e) = end.take() {
                    e.ended(outcome);
                }
                // PostgreSQL: other servers' caches learn of a write that may have committed
                // before its caller is answered (see `changes`).
                let announced = if self.changes_data && outcome != Outcome::RolledBack {
                    self.changes.announce(c)
                } else {
                    Ok(())
                };
                (result, announced)
            };
            // Before the caller is answered (see `cache`).
            self.data_written();
            if result.is_ok() {
                // Committed, but other servers may not learn of it: not acknowledged.
                announced.map_err(StoreError::Db)?;
            }
            Ok((result, conflict))
        })
    }

    /// Run `f` in a read transaction (a consistent snapshot).
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, ApiError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_blocking(f))
            .await
            .map_err(|e| ApiError::from(StoreError::Join(e.to_string())))?
    }

    /// Run `f`, a short read (a few lookups by key), in a read transaction. On SQLite it
    /// runs on the calling thread: a WAL read of a few indexed rows takes tens of
    /// microseconds, less than handing the closure to the blocking pool and waking the task
    /// again (two thread switches). On PostgreSQL (network round trips) it goes to the
    /// blocking pool like [`Store::read`]. Use [`Store::read`] for anything that scans.
    pub async fn read_point<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, ApiError> + Send + 'static,
    {
        match self.backend {
            Backend::Sqlite => self.read_blocking(f),
            Backend::Postgres => {
                let store = self.clone();
                tokio::task::spawn_blocking(move || store.read_point_blocking(f))
                    .await
                    .map_err(|e| ApiError::from(StoreError::Join(e.to_string())))?
            }
        }
    }

    /// The blocking body of [`Store::read_point`]. On PostgreSQL `f`'s statements run
    /// without BEGIN and COMMIT (two round trips fewer): each sees what was committed
    /// before it started, as it would in the READ COMMITTED transaction [`Store::read`]
    /// opens (PostgreSQL's default level). On SQLite: [`Store::read_blocking`].
    fn read_point_blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<T, ApiError>,
    {
        if self.backend == Backend::Sqlite {
            return self.read_blocking(f);
        }
        let mut conn = self
            .read_pool
            .get()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        f(&mut Tx {
            conn: &mut conn,
            conflict: false,
        })
    }

    /// The blocking body of [`Store::read`].
    pub fn read_blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<T, ApiError>,
    {
        let mut conn = self
            .read_pool
            .get()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let c: &mut AnyConnection = &mut conn;
        let r = c.transaction::<T, TxFail, _>(|c| {
            let mut tx = Tx {
                conn: c,
                conflict: false,
            };
            f(&mut tx).map_err(TxFail::Api)
        });
        match r {
            Ok(v) => Ok(v),
            Err(TxFail::Api(e)) => Err(e),
            Err(TxFail::Db(e)) => Err(StoreError::Db(e).into()),
        }
    }

    /// Bring the audit lookup index up to date for `chain` (or every chain): see
    /// [`Tx::index_audit_chain`]. Runs its own transactions, never under the SQLite write
    /// lock (the index is a separate file there), a bounded number of records each, at most
    /// `max_batches` of them per chain (the background indexer takes one at a time, with a
    /// pause between, so a backlog drains without starving requests). Whether some chain
    /// may hold more to index: its last batch was full.
    pub fn index_audit_blocking(
        &self,
        chain: Option<&str>,
        max_batches: usize,
    ) -> Result<bool, ApiError> {
        let chains = match chain {
            Some(c) => vec![c.to_owned()],
            None => self.read_blocking(|tx| Ok(tx.audit_chain_ids()?))?,
        };
        let mut conn = self.conn()?;
        let mut more_left = false;
        for chain in &chains {
            let mut full = false;
            for _ in 0..max_batches {
                // A batch that met another writer (SQLite: the server's indexer or writer
                // committed after this transaction's snapshot, which waiting cannot cure;
                // PostgreSQL: a serialization failure) is tried again on a fresh snapshot.
                let more = retry_transaction(|| {
                    let mut conflict = false;
                    let c: &mut AnyConnection = &mut conn;
                    let result = c.transaction::<bool, TxFail, _>(|c| {
                        let mut tx = Tx {
                            conn: c,
                            conflict: false,
                        };
                        let r = tx
                            .index_audit_chain(chain, AUDIT_INDEX_BATCH)
                            .map_err(|e| TxFail::Api(e.into()));
                        conflict = tx.conflict;
                        r
                    });
                    Ok((result, conflict))
                })?;
                full = more;
                if !more {
                    break;
                }
            }
            more_left |= full;
        }
        Ok(more_left)
    }

    /// Audit records matching `f` (newest first), after bringing the lookup index up to
    /// date, so the answer includes everything committed before the call.
    pub fn query_audit_blocking(&self, f: &AuditFilter) -> Result<Vec<AuditRow>, ApiError> {
        if f.event_id.is_none() && f.has_lookup_attribute() {
            self.index_audit_blocking(None, usize::MAX)?;
        }
        self.read_blocking(|tx| Ok(tx.query_audit_index(f)?))
    }

    /// [`Store::query_audit_blocking`] on the blocking pool.
    pub async fn query_audit(&self, f: AuditFilter) -> Result<Vec<AuditRow>, ApiError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.query_audit_blocking(&f))
            .await
            .map_err(|e| ApiError::from(StoreError::Join(e.to_string())))?
    }
}

impl Store {
    /// SQLite: checkpoint the audit chain file's WAL on the write connection, between write
    /// transactions (see [`conn::checkpoint_chain_between_writes`]). PostgreSQL: nothing.
    /// For the audit writer, after it acknowledged a group commit.
    pub fn checkpoint_chain_blocking(&self) -> Result<(), ApiError> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        let (_guard, mut conn) = self.sqlite_writer()?;
        conn::checkpoint_chain_between_writes(&mut conn).map_err(StoreError::Db)?;
        Ok(())
    }

    /// SQLite: the write lock and, under it, the one write connection.
    fn sqlite_writer(
        &self,
    ) -> Result<
        (
            std::sync::MutexGuard<'_, ()>,
            PooledConnection<ConnectionManager<AnyConnection>>,
        ),
        StoreError,
    > {
        let guard = self
            .write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let conn = self
            .write_pool
            .get()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        Ok((guard, conn))
    }
}

/// Run [`conn::checkpoint_passive`] every [`conn::CHECKPOINT_EVERY`] on a connection of `pool`
/// until the returned sender (held by every store handle) is dropped.
fn start_checkpointer(
    pool: Pool<ConnectionManager<AnyConnection>>,
) -> Result<std::sync::mpsc::SyncSender<()>, StoreError> {
    use std::sync::mpsc::RecvTimeoutError;
    let (stop, rx) = std::sync::mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("store-checkpointer".into())
        .spawn(move || loop {
            match rx.recv_timeout(conn::CHECKPOINT_EVERY) {
                Err(RecvTimeoutError::Disconnected) => return,
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            }
            let done = pool
                .get()
                .map_err(|e| e.to_string())
                .and_then(|mut c| conn::checkpoint_passive(&mut c).map_err(|e| e.to_string()));
            if let Err(e) = done {
                // The writer's own checkpoint still runs; nothing is lost.
                tracing::warn!("background WAL checkpoint failed: {e}");
            }
        })
        .map_err(|e| StoreError::Pool(format!("cannot start the checkpointer thread: {e}")))?;
    Ok(stop)
}

/// Most records one lookup-index transaction adds.
const AUDIT_INDEX_BATCH: i64 = 5_000;
