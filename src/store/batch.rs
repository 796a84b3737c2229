//! Group commit for SQLite write transactions.
//!
//! SQLite has one writer, and a write transaction's cost is mostly its COMMIT: the WAL frames
//! of every page it dirtied and an fsync. Requests' writes ([`Store::write`]) therefore go to
//! one thread that takes every write waiting and runs them in one transaction, then commits
//! once and answers them all:
//!
//! - a write that fails is rolled back alone and answered with its error; the others are
//!   unaffected (the same isolation as one transaction each: writes run one after the
//!   other, each sees the ones before it). The batch first runs without savepoints (a
//!   savepoint makes SQLite copy every page a write dirties into its statement journal:
//!   6–8 % of the writer's time under PutSecretValue load); when a write fails, the batch is
//!   rolled back and run again with each write inside its own SAVEPOINT, so that only the
//!   failed one's changes are undone. A batch of one write needs no savepoint at all;
//! - a write's [`CommitHook`] (its audit record) runs with its write, so the record and the
//!   change are still in the same transaction, and the hook is told the batch's outcome;
//! - nothing is answered before the COMMIT returned, so every acknowledged write is durable
//!   (`synchronous = FULL`); if the COMMIT fails, every write of the batch gets the error;
//! - the database lock taken by another process ("database is locked") retries the whole
//!   batch, as it retries a single transaction.
//!
//! PostgreSQL keeps one transaction per request (its commits run in parallel already).
//! Background jobs and the CLI use [`Store::write_blocking`] directly.

use std::any::Any;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::Connection;
use tokio::sync::oneshot;

use super::{
    is_retryable, AnyConnection, CommitHook, Outcome, Store, StoreError, Tx, TxEnd, TxFail,
};
use crate::error::ApiError;

/// Most writes in one transaction.
const MAX_BATCH: usize = 64;
/// Most writes waiting for the writer thread.
const QUEUE: usize = 4096;
/// Retries of a batch (the database locked by another process) and of a write that met a
/// conflict it asked to retry.
const MAX_RETRIES: u32 = 20;

pub(super) type Boxed = Box<dyn Any + Send>;
type JobFn = Box<dyn FnMut(&mut Tx<'_>) -> Result<Boxed, ApiError> + Send>;

/// One write waiting for the writer thread.
pub(super) struct Job {
    f: JobFn,
    hook: Option<Arc<dyn CommitHook>>,
    done: oneshot::Sender<Result<Boxed, ApiError>>,
}

/// The handle requests enqueue their writes with; the thread stops when it is dropped.
pub(super) struct Queue {
    tx: SyncSender<Job>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteQueue")
    }
}

impl Queue {
    /// Start the writer thread for `store` (which must not hold this queue: the thread ends
    /// when the last handle holding the queue is gone).
    pub(super) fn start(store: Store) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&store, &rx))
            .map_err(|e| StoreError::Pool(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { tx })
    }

    /// Run `f` (with `hook`) in the next batch and wait for the batch's commit.
    pub(super) async fn write<T, F>(
        &self,
        mut f: F,
        hook: Option<Arc<dyn CommitHook>>,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>) -> Result<T, ApiError> + Send + 'static,
    {
        let (done, answer) = oneshot::channel();
        let job = Job {
            f: Box::new(move |tx| f(tx).map(|v| Box::new(v) as Boxed)),
            hook,
            done,
        };
        // The queue is bounded: wait (without blocking the runtime) while it is full.
        let deadline = tokio::time::Instant::now() + QUEUE_WAIT;
        match crate::queue::send(&self.tx, job, deadline).await {
            Ok(()) => {}
            Err(crate::queue::SendError::Full) => {
                return Err(ApiError::internal("write queue full"));
            }
            Err(crate::queue::SendError::Disconnected) => {
                return Err(ApiError::internal("the store's writer is not running"));
            }
        }
        let boxed = answer
            .await
            .map_err(|_| ApiError::internal("the store's writer stopped"))??;
        boxed
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| ApiError::internal("write result of an unexpected type"))
    }
}

/// How long a write waits for room in the writer's queue before failing.
const QUEUE_WAIT: Duration = Duration::from_secs(30);

fn run(store: &Store, rx: &Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let results =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_batch(store, &mut jobs)));
        let results = match results {
            Ok(r) => r,
            Err(_) => {
                tracing::error!("a write transaction panicked; its batch is rolled back");
                Err(ApiError::internal("write failed"))
            }
        };
        match results {
            Ok(results) => {
                for (job, r) in jobs.into_iter().zip(results) {
                    // A request that gave up waiting dropped its receiver.
                    let _ = job.done.send(r);
                }
            }
            Err(e) => {
                for job in jobs {
                    let _ = job.done.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Run `jobs` in one transaction; the per-write results, or the error every write gets.
fn run_batch(store: &Store, jobs: &mut [Job]) -> Result<Vec<Result<Boxed, ApiError>>, ApiError> {
    let mut attempt = 0;
    // Savepoints only once a write failed in this batch (see the module docs).
    let mut isolate = false;
    loop {
        attempt += 1;
        let (_guard, mut conn) = store.sqlite_writer()?;
        // What each write's hook added, in the order they were taken.
        let mut ends: Vec<Box<dyn TxEnd>> = Vec::new();
        let mut ran: Vec<Result<Boxed, ApiError>> = Vec::with_capacity(jobs.len());
        // Without savepoints: the first write that failed, its error, and whether it met a
        // conflict it asks to retry.
        let mut failed: Option<(ApiError, bool)> = None;
        // Isolated: a write met a conflict; the batch runs again in a new transaction.
        let mut retry = false;
        let c: &mut AnyConnection = &mut conn;
        let outer = c.transaction::<(), TxFail, _>(|c| {
            for job in jobs.iter_mut() {
                if isolate {
                    ran.push(run_one(c, job, &mut ends, &mut retry)?);
                    continue;
                }
                match run_direct(c, job, &mut ends) {
                    Ok(v) => ran.push(Ok(v)),
                    Err(f) => {
                        failed = Some(f);
                        // Roll everything back; the batch runs again (or, alone, answers).
                        return Err(TxFail::Api(ApiError::internal("write failed")));
                    }
                }
            }
            Ok(())
        });
        // Tell the hooks how it ended, the last taken first: the first holds the chain's
        // lock that the later ones share (`audit::tail`).
        let outcome = match &outer {
            Ok(()) => Outcome::Committed,
            Err(TxFail::Db(e)) if !is_retryable(e) => Outcome::Unknown,
            Err(_) => Outcome::RolledBack,
        };
        for end in ends.into_iter().rev() {
            end.ended(outcome);
        }
        // Before any write of the batch is answered (see `cache`).
        store.data_written();
        if let (Some((e, conflict)), Err(TxFail::Api(_))) = (failed, &outer) {
            // Rolled back. A write alone that failed for good gets its error, as it would
            // from its savepoint; otherwise the batch runs again, each write isolated. A
            // conflict (the database locked by another process after this transaction read
            // it) is a retry like any other: counted, after a pause, in a new transaction.
            if jobs.len() == 1 && !conflict {
                return Ok(vec![Err(e)]);
            }
            isolate = true;
            if !conflict {
                attempt -= 1;
                continue;
            }
            if attempt >= MAX_RETRIES {
                return Err(e);
            }
        } else {
            match outer {
                Ok(()) => return Ok(ran),
                Err(TxFail::Db(e)) if is_retryable(&e) && attempt < MAX_RETRIES => {}
                Err(TxFail::Api(_)) if retry && attempt < MAX_RETRIES => {}
                Err(TxFail::Db(e)) => return Err(StoreError::Db(e).into()),
                Err(TxFail::Api(e)) => return Err(e),
            }
        }
        drop(conn);
        drop(_guard);
        std::thread::sleep(super::retry_pause(attempt));
    }
}

/// One write straight in the batch's transaction: its value, or its error and whether it met
/// a conflict it asks to retry. What it wrote stays until the batch rolls back.
fn run_direct(
    c: &mut AnyConnection,
    job: &mut Job,
    ends: &mut Vec<Box<dyn TxEnd>>,
) -> Result<Boxed, (ApiError, bool)> {
    let mut tx = Tx {
        conn: c,
        conflict: false,
    };
    let r = (job.f)(&mut tx).and_then(|v| match &job.hook {
        None => Ok(v),
        Some(hook) => {
            let end = hook.before_commit(&mut tx, v.as_ref())?;
            ends.extend(end);
            Ok(v)
        }
    });
    r.map_err(|e| (e, tx.conflict))
}

/// One write in its savepoint. `Err` only for what must fail the whole batch: the database
/// locked by another process (a busy error, whether the write saw it or its statement did),
/// or a broken savepoint. A conflict cannot clear inside this transaction, whose snapshot
/// predates the other process's commit: the batch runs again in a new one (`retry`).
fn run_one(
    c: &mut AnyConnection,
    job: &mut Job,
    ends: &mut Vec<Box<dyn TxEnd>>,
    retry: &mut bool,
) -> Result<Result<Boxed, ApiError>, TxFail> {
    let mut conflict = false;
    let mut end: Option<Box<dyn TxEnd>> = None;
    let r = c.transaction::<Boxed, TxFail, _>(|c| {
        let mut tx = Tx {
            conn: c,
            conflict: false,
        };
        let mut r = (job.f)(&mut tx);
        if let (Ok(v), Some(hook)) = (&r, &job.hook) {
            match hook.before_commit(&mut tx, v.as_ref()) {
                Ok(e) => end = e,
                Err(e) => r = Err(e),
            }
        }
        conflict = tx.conflict;
        r.map_err(TxFail::Api)
    });
    match r {
        Ok(v) => {
            ends.extend(end);
            Ok(Ok(v))
        }
        Err(fail) => {
            // Rolled back to the savepoint: what the hook added is gone.
            if let Some(e) = end.take() {
                e.ended(Outcome::RolledBack);
            }
            match fail {
                TxFail::Db(e) if is_retryable(&e) => Err(TxFail::Db(e)),
                fail if conflict => {
                    *retry = true;
                    Err(fail)
                }
                TxFail::Api(e) => Ok(Err(e)),
                TxFail::Db(e) => Ok(Err(StoreError::Db(e).into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel::sql_types::BigInt;
    use diesel::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    /// Insert `key`, then fail when `fail` (after writing).
    fn insert(
        key: &'static str,
        fail: bool,
    ) -> impl FnMut(&mut Tx<'_>) -> Result<&'static str, ApiError> {
        move |tx| {
            tx.conn
                .batch_execute(&format!("INSERT INTO t (k) VALUES ('{key}')"))
                .map_err(|e| ApiError::from(StoreError::Db(e)))?;
            if fail {
                return Err(ApiError::InvalidParameter(format!("{key} fails")));
            }
            Ok(key)
        }
    }

    fn keys(store: &Store) -> Vec<String> {
        let mut out = vec![];
        for k in ["a", "b", "c", "d", "e"] {
            let n: Vec<Count> = store
                .read_blocking(move |tx| {
                    Ok(
                        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM t WHERE k = '{k}'"))
                            .load(tx.conn)
                            .map_err(StoreError::Db)?,
                    )
                })
                .unwrap();
            if n[0].n > 0 {
                out.push(k.to_owned());
            }
        }
        out
    }

    /// A store at `path` with the table `t (k)` the tests write.
    fn store_with_table(path: &std::path::Path) -> Store {
        let store = Store::open(&format!("sqlite://{}", path.display())).unwrap();
        store
            .write_blocking(|tx| {
                tx.conn
                    .batch_execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
                    .map_err(|e| ApiError::from(StoreError::Db(e)))
            })
            .unwrap();
        store
    }

    /// Put a write straight into the writer's queue: it is queued once this returns.
    fn enqueue(
        store: &Store,
        key: &'static str,
        fail: bool,
    ) -> oneshot::Receiver<Result<Boxed, ApiError>> {
        let (done, answer) = oneshot::channel();
        let mut f = insert(key, fail);
        let job = Job {
            f: Box::new(move |tx| f(tx).map(|v| Box::new(v) as Boxed)),
            hook: None,
            done,
        };
        store.queue.get().unwrap().tx.send(job).unwrap();
        answer
    }

    /// The answer to an enqueued write.
    async fn answer(r: oneshot::Receiver<Result<Boxed, ApiError>>) -> Result<&'static str, String> {
        r.await
            .unwrap()
            .map(|b| *b.downcast::<&'static str>().unwrap())
            .map_err(|e| e.message().to_owned())
    }

    /// A write that fails after writing is undone alone, whether it shares its batch (which
    /// then runs again with savepoints) or is alone in it (no savepoint at all); the others
    /// commit and get their results.
    #[tokio::test]
    async fn a_failed_write_is_undone_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_table(&dir.path().join("t.db"));
        // A batch of one that fails (this first write also starts the writer thread).
        let e = store.write(insert("e", true)).await.unwrap_err();
        assert!(e.message().contains("e fails"), "{e:?}");
        assert!(keys(&store).is_empty());

        // With the writer held, b, c and d are all in its queue before it may take the
        // next batch: c shares a batch with b and d (and a, if the writer had not taken it).
        let guard = store.write_lock.lock().unwrap();
        let a = enqueue(&store, "a", false);
        let rest: Vec<_> = [("b", false), ("c", true), ("d", false)]
            .into_iter()
            .map(|(k, fail)| enqueue(&store, k, fail))
            .collect();
        drop(guard);
        assert_eq!(answer(a).await, Ok("a"));
        let mut got = vec![];
        for r in rest {
            got.push(answer(r).await);
        }
        assert_eq!(got, vec![Ok("b"), Err("c fails".to_owned()), Ok("d")]);
        assert_eq!(keys(&store), vec!["a", "b", "d"]);
    }

    /// A write whose transaction read the database before another process committed to it
    /// cannot write in that transaction (SQLite's busy snapshot, "database is locked",
    /// returned at once): it runs again in a new transaction and commits, instead of
    /// failing with a server error.
    #[tokio::test]
    async fn a_write_that_met_another_process_s_commit_runs_again() {
        use diesel::Connection;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = store_with_table(&path);
        let mut runs = 0_usize;
        let written = store
            .write(move |tx| {
                runs += 1;
                let _: Vec<Count> = diesel::sql_query("SELECT COUNT(*) AS n FROM t")
                    .load(tx.conn)
                    .map_err(|e| ApiError::from(tx.db(e)))?;
                // The other process commits during the first two runs: the first alone in
                // its batch, the second isolated in its savepoint.
                if let Some(k) = ["a", "c"].get(runs - 1) {
                    let mut other =
                        diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
                    other
                        .batch_execute(&format!("INSERT INTO t (k) VALUES ('{k}')"))
                        .unwrap();
                }
                tx.conn
                    .batch_execute("INSERT INTO t (k) VALUES ('b')")
                    .map_err(|e| ApiError::from(tx.db(e)))?;
                Ok(runs)
            })
            .await;
        assert_eq!(written.map_err(|e| e.message().to_owned()), Ok(3));
        assert_eq!(keys(&store), vec!["a", "b", "c"]);
    }
}
