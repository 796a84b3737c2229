//! How the read cache (`cache`) learns of writes made outside this store's handles.
//!
//! SQLite: one connection that only asks `PRAGMA main.data_version`, which changes whenever
//! another connection (of this process or another) committed to the main database.
//!
//! PostgreSQL: other servers write the same database. The sequence `data_version`
//! (migration `2026-12-06-140000_data_version`) is advanced by every write transaction of
//! every server that may change cached data, *after* its COMMIT and before its caller is
//! answered ([`Changes::announce`]); a server that starts advances it once (covering a
//! server that died between a COMMIT and its advance). Before a cached read, the store asks
//! the sequence's `last_value` (one short query on a connection of its own, [`Probe`]):
//!
//! - a value it has not seen yet empties the cache (its generation moves on), and what is
//!   read next is kept under the new generation: the value was asked before the read, so the
//!   read sees every write whose advance the value counts (each committed before advancing);
//! - a write acknowledged before a request arrived has advanced the sequence before that,
//!   so the request's question sees a value other than the one an older entry was kept
//!   under, and is not answered from it;
//! - a value smaller than one already seen (an answer overtaken by a later one) serves and
//!   keeps nothing.
//!
//! Reads that need the question at the same time share it ([`SharedQuestion`]): a thread of
//! the store sends one question at a time, whenever a read wants one, and a read answers
//! with the first question *sent after it arrived*, waiting for it without holding its
//! thread. A question sent before a read arrived never answers it (it could have been asked
//! before a write acknowledged since), so each read's answer is as exact as with a question
//! of its own, after at most two round trips; the database answers one question per round
//! trip however many reads wait for it, instead of one per read. (A second thread, so that
//! a read arriving during a question has its own sent at once, measured no faster.)
//!
//! A sequence is not transactional: an advance inside the write transaction could be seen
//! before the COMMIT, and a read between the two would be kept as current. It takes no row
//! lock either, so concurrent writers neither wait for nor conflict with each other on it.
//! Writes of the audit trail do not advance it (`Store::audit_writer`): they change nothing
//! that is cached.
//!
//! With a check interval (`--pg-change-check-ms`), a thread of the store asks the sequence
//! every interval instead, and a cached read asks nothing: [`Changes::generation`] serves the
//! cache only while the last answer's question was asked at most two intervals ago, and
//! nothing cached otherwise (a check that fails or stalls leaves every read to the
//! database). A write acknowledged by another server is then seen by this server's reads at
//! most about one interval later (the time since the last question was asked); this
//! server's own writes are seen at once, as without an interval, since they move the
//! cache's generation themselves before they are answered.
//!
//! A write whose advance failed (on its connection and on a probe connection: the database
//! or the way to it failing right after the COMMIT) is not acknowledged, but it may have
//! committed. Its store owes an advance: it serves nothing cached until it has made it, and
//! its thread makes it as soon as it can (within about a second, or an interval), without
//! waiting for a read. A server that could not ask the sequence for a while may have missed
//! such a write whose writer could not advance it either: it forgets what it had seen, and
//! the next answer, whatever its value, empties its cache.
//!
//! What the check does not see: a change made with SQL behind the servers' backs (not
//! through a strongroom store); advance the sequence after one (`SELECT nextval
//! ('data_version')`), or restart the servers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use diesel::connection::Connection;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::{PgConnection, QueryDsl, QueryResult, RunQueryDsl};

use super::cache::ReadCache;
use super::fixed::{fixed_sql, Fixed};
use super::AnyConnection;

diesel::table! {
    /// The sequence `data_version`, read as the one-row relation it is.
    data_version (last_value) {
        last_value -> BigInt,
    }
}

fixed_sql!(
    /// Advance the sequence (see the module's documentation).
    Advance = ["SELECT nextval('data_version')"]
);

/// Advance `data_version` on `c` (PostgreSQL only).
pub(super) fn advance(c: &mut AnyConnection) -> QueryResult<()> {
    match c {
        AnyConnection::Postgresql(c) => Fixed::<Advance>::new(&[]).execute(c).map(|_| ()),
        AnyConnection::Sqlite(_) => Ok(()),
    }
}

/// Where the store asks whether data changed.
pub(super) enum Watch {
    /// SQLite: the sentinel connection (asks `PRAGMA main.data_version`).
    Sqlite(Pool<ConnectionManager<AnyConnection>>),
    /// PostgreSQL: the sequence, on the probe's connections.
    Postgres(Probe),
}

/// The read cache's change check: where to ask, and the last answer.
pub(super) struct Changes {
    watch: Watch,
    seen: Mutex<Option<i64>>,
    /// PostgreSQL with a check interval: the interval, and when the question of the last
    /// answer settled by the checking thread was asked (`None`: no answer yet).
    interval: Option<Duration>,
    asked: Mutex<Option<Instant>>,
    /// PostgreSQL without a check interval: the question shared by concurrent reads.
    question: SharedQuestion,
    /// PostgreSQL: write transactions through this process that may have committed but
    /// whose advance failed (their callers were answered with the error). While any is
    /// outstanding, this store serves nothing cached and advances the sequence first.
    unannounced: AtomicU64,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes").finish_non_exhaustive()
    }
}

impl Changes {
    pub(super) fn new(watch: Watch) -> Self {
        Self {
            watch,
            seen: Mutex::new(None),
            interval: None,
            asked: Mutex::new(None),
            question: SharedQuestion::default(),
            unannounced: AtomicU64::new(0),
        }
    }

    /// PostgreSQL: ask every `interval` on a thread of its own instead of before every
    /// cached read (see the module's documentation). The thread stops once the store's last
    /// handle is gone. SQLite: as [`Changes::new`].
    pub(super) fn checked_every(
        watch: Watch,
        interval: Duration,
        cache: &Arc<ReadCache>,
    ) -> std::io::Result<Arc<Self>> {
        if matches!(watch, Watch::Sqlite(_)) {
            return Ok(Arc::new(Self::new(watch)));
        }
        if interval.is_zero() {
            let changes = Arc::new(Self::new(watch));
            let weak = Arc::downgrade(&changes);
            std::thread::Builder::new()
                .name("store-changes".into())
                .spawn(move || ask_loop(&weak))?;
            return Ok(changes);
        }
        let changes = Arc::new(Self {
            interval: Some(interval),
            ..Self::new(watch)
        });
        let (weak_changes, weak_cache) = (Arc::downgrade(&changes), Arc::downgrade(cache));
        std::thread::Builder::new()
            .name("store-changes".into())
            .spawn(move || check_loop(&weak_changes, &weak_cache, interval))?;
        Ok(changes)
    }

    /// One question of the checking thread: settle the answer and record when it was asked.
    fn check_now(&self, cache: &ReadCache) {
        let Watch::Postgres(probe) = &self.watch else {
            return;
        };
        let asked = Instant::now();
        match probe.last_value() {
            Some(version) => {
                if self.settle(version, cache).is_some() {
                    *self.asked.lock().unwrap_or_else(PoisonError::into_inner) = Some(asked);
                }
            }
            None => self.lost(cache),
        }
    }

    /// The question could not be answered. PostgreSQL: a write committed meanwhile may never
    /// advance the sequence (its own advance failed too, see [`Changes::announce`]); SQLite:
    /// the next answer may come from a new connection. Either way what was seen and cached
    /// before is not trusted again: the next answer, whatever its value, empties the cache.
    fn lost(&self, cache: &ReadCache) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        *seen = None;
        cache.advance();
    }

    /// PostgreSQL: make the advance owed for writes through this store that may have
    /// committed unannounced (see [`Changes::announce`]). Whether none is owed any more.
    fn pay_owed(&self) -> bool {
        let Watch::Postgres(probe) = &self.watch else {
            return true;
        };
        let owed = self.unannounced.load(Ordering::Acquire);
        if owed == 0 {
            return true;
        }
        if probe
            .with(|c| Fixed::<Advance>::new(&[]).execute(c))
            .is_none()
        {
            return false;
        }
        // Only the writes counted before this advance are covered by it.
        self.unannounced
            .compare_exchange(owed, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Ask whether data changed since the last answer (emptying `cache` if so) and return
    /// the generation to read under. `None`: the question could not be answered, or the
    /// answer is older than one already had: serve and keep nothing. The generation is
    /// taken under the answer's lock, so that it always goes with the answer it was taken
    /// under (a read kept under it started after that answer was asked).
    pub(super) async fn generation(&self, cache: &ReadCache) -> Option<u64> {
        let version = match &self.watch {
            Watch::Sqlite(pool) => {
                let asked = pool
                    .get()
                    .ok()
                    .and_then(|mut c| super::conn::data_version(&mut c).ok());
                let Some(version) = asked else {
                    // The next answer may come from another connection, whose numbers
                    // compare to nothing seen before.
                    self.lost(cache);
                    return None;
                };
                version
            }
            Watch::Postgres(_) => {
                if self.unannounced.load(Ordering::Acquire) > 0 {
                    self.pay_owed();
                    return None;
                }
                if let Some(interval) = self.interval {
                    // The checking thread's last answer stands for the next two intervals;
                    // the generation is taken under its lock, as `settle` takes it.
                    let asked = self.asked.lock().unwrap_or_else(PoisonError::into_inner);
                    let fresh = asked.is_some_and(|t| t.elapsed() <= interval.saturating_mul(2));
                    return fresh.then(|| cache.generation());
                }
                let Some(version) = self.question.ask().await else {
                    self.lost(cache);
                    return None;
                };
                version
            }
        };
        self.settle(version, cache)
    }

    /// [`Changes::generation`] once the question was answered with `version`.
    fn settle(&self, version: i64, cache: &ReadCache) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        match *seen {
            Some(s) if s == version => {}
            // SQLite's data_version only differs; the sequence only grows.
            Some(s) if version < s && matches!(self.watch, Watch::Postgres(_)) => return None,
            _ => {
                *seen = Some(version);
                cache.advance();
            }
        }
        Some(cache.generation())
    }

    /// PostgreSQL: a write transaction through this store may have committed: advance the
    /// sequence before its caller is answered, on the write's connection `c`, else on a
    /// probe connection. When both fail the write is counted as unannounced (see
    /// [`Changes::generation`]) and the error returned, for the caller to be answered with.
    pub(super) fn announce(&self, c: &mut AnyConnection) -> QueryResult<()> {
        let Watch::Postgres(probe) = &self.watch else {
            return Ok(());
        };
        let Err(first) = advance(c) else {
            return Ok(());
        };
        let owed = self.unannounced.fetch_add(1, Ordering::AcqRel) + 1;
        match probe.with(|c| Fixed::<Advance>::new(&[]).execute(c)) {
            Some(_) => {
                let _ =
                    self.unannounced
                        .compare_exchange(owed, 0, Ordering::AcqRel, Ordering::Acquire);
                Ok(())
            }
            None => Err(first),
        }
    }
}

/// The checking thread of [`Changes::checked_every`]: a question every `interval`, until the
/// store is gone.
fn check_loop(changes: &Weak<Changes>, cache: &Weak<ReadCache>, interval: Duration) {
    loop {
        {
            let (Some(changes), Some(cache)) = (changes.upgrade(), cache.upgrade()) else {
                return;
            };
            changes.pay_owed();
            changes.check_now(&cache);
        }
        std::thread::sleep(interval);
    }
}

/// The thread of a store on PostgreSQL without a check interval: sends the questions its
/// reads want ([`SharedQuestion`]), one at a time, until the store is gone; and makes an
/// owed advance (at most about a second after it can be made, reads or not).
fn ask_loop(changes: &Weak<Changes>) {
    loop {
        let Some(changes) = changes.upgrade() else {
            return;
        };
        let Watch::Postgres(probe) = &changes.watch else {
            return;
        };
        changes
            .question
            .serve(Duration::from_secs(1), || probe.last_value());
        changes.pay_owed();
    }
}

/// Dropped only if a question unwinds (a panic; nothing in it is known to): every read,
/// waiting or to come, is then answered `None` at once (nothing cached is served, every read
/// goes to the database) instead of waiting for a question the thread no longer sends.
#[derive(Debug)]
struct Unwinding<'q>(&'q SharedQuestion);

impl Drop for Unwinding<'_> {
    fn drop(&mut self) {
        self.0.answers.send_replace((u64::MAX, None));
    }
}

/// One question at a time, sent when a caller wants one, its answer shared by every caller
/// that arrived before it was sent (see the module's documentation).
#[derive(Debug)]
struct SharedQuestion {
    rounds: Mutex<Rounds>,
    wanted: Condvar,
    /// The last question answered (numbered from 1 in the order sent), and its answer.
    answers: tokio::sync::watch::Sender<(u64, Option<i64>)>,
}

#[derive(Debug, Default)]
struct Rounds {
    /// The last question sent (or being sent).
    sent: u64,
    /// Whether a caller waits for a question not sent yet.
    wanted: bool,
}

impl Default for SharedQuestion {
    fn default() -> Self {
        Self {
            rounds: Mutex::default(),
            wanted: Condvar::new(),
            answers: tokio::sync::watch::Sender::new((0, None)),
        }
    }
}

impl SharedQuestion {
    /// The answer of a question sent after this call began (`None`: not answered). Waits
    /// for it without holding the thread; needs a thread that [`SharedQuestion::serve`]s.
    async fn ask(&self) -> Option<i64> {
        let mut answers = self.answers.subscribe();
        let needed = {
            let mut r = self.rounds.lock().unwrap_or_else(PoisonError::into_inner);
            r.wanted = true;
            // Every question numbered above `sent` is sent after now.
            r.sent + 1
        };
        self.wanted.notify_one();
        loop {
            let (round, answer) = *answers.borrow_and_update();
            if round >= needed {
                return answer;
            }
            answers.changed().await.ok()?;
        }
    }

    /// Wait up to `idle` for a caller to want a question; if one does, send it with `ask`
    /// and publish its answer to every caller waiting for it.
    fn serve(&self, idle: Duration, ask: impl FnOnce() -> Option<i64>) {
        let round = {
            let mut r = self.rounds.lock().unwrap_or_else(PoisonError::into_inner);
            if !r.wanted {
                r = self
                    .wanted
                    .wait_timeout(r, idle)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            if !r.wanted {
                return;
            }
            r.wanted = false;
            r.sent += 1;
            r.sent
        };
        let unwinding = Unwinding(self);
        let answer = ask();
        std::mem::forget(unwinding);
        self.answers.send_replace((round, answer));
    }
}

/// Most connections a [`Probe`] opens.
const PROBE_CONNECTIONS: usize = 4;

/// PostgreSQL connections for the change check only, outside the store's pool: a pooled
/// connection is tested with a query of its own at every checkout (a round trip as long
/// as the check), a probe connection is not; one whose query failed is closed instead of
/// being used again.
pub(super) struct Probe {
    url: String,
    state: Mutex<ProbeState>,
    freed: Condvar,
}

#[derive(Default)]
struct ProbeState {
    idle: Vec<PgConnection>,
    /// Connections open (idle or in use).
    open: usize,
}

impl Probe {
    pub(super) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            state: Mutex::new(ProbeState::default()),
            freed: Condvar::new(),
        }
    }

    /// The sequence's `last_value` (`None`: not answered).
    fn last_value(&self) -> Option<i64> {
        self.with(|c| {
            data_version::table
                .select(data_version::last_value)
                .get_result::<i64>(c)
        })
    }

    /// Run `f` on a probe connection (opened when none is idle and fewer than
    /// [`PROBE_CONNECTIONS`] are open; else waited for). `None`: no connection, or `f` failed
    /// (and its connection is closed).
    fn with<T>(&self, f: impl FnOnce(&mut PgConnection) -> QueryResult<T>) -> Option<T> {
        let mut c = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(c) = s.idle.pop() {
                    break Some(c);
                }
                if s.open < PROBE_CONNECTIONS {
                    s.open += 1;
                    break None;
                }
                s = self.freed.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
        }
        .map_or_else(|| PgConnection::establish(&self.url).ok(), Some);
        let r = c.as_mut().map(f);
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let out = match (c, r) {
            (Some(c), Some(Ok(v))) => {
                s.idle.push(c);
                Some(v)
            }
            _ => {
                s.open -= 1;
                None
            }
        };
        drop(s);
        self.freed.notify_one();
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    use diesel::connection::SimpleConnection;
    use diesel::sql_types::BigInt;

    use super::*;
    use crate::error::ApiError;
    use crate::store::{Store, StoreError, Tx};

    /// The URL of a fresh database on `STRONGROOM_TEST_DATABASE_URL`'s server, with a
    /// one-row table `t` (`v` = 0), or `None` when the variable is not set.
    fn fresh_database() -> Option<String> {
        let base = std::env::var("STRONGROOM_TEST_DATABASE_URL").ok()?;
        let mut conn = PgConnection::establish(&base).unwrap();
        let name = format!("sr_changes_{}", uuid::Uuid::new_v4().simple());
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        PgConnection::establish(&url)
            .unwrap()
            .batch_execute("CREATE TABLE t (v BIGINT NOT NULL); INSERT INTO t VALUES (0);")
            .unwrap();
        Some(url)
    }

    #[derive(diesel::QueryableByName)]
    struct V {
        #[diesel(sql_type = BigInt)]
        v: i64,
    }

    fn read_v(tx: &mut Tx<'_>) -> Result<Option<i64>, ApiError> {
        let r: V = diesel::sql_query("SELECT v FROM t")
            .get_result(tx.conn)
            .map_err(StoreError::Db)?;
        Ok(Some(r.v))
    }

    /// `store`'s cached read of `t.v`, counting the reads that went to the database.
    fn cached_v(store: &Store, reads: &Arc<AtomicUsize>) -> i64 {
        let reads = Arc::clone(reads);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let v = rt
            .block_on(store.read_point_cached("t.v".to_owned(), move |tx| {
                reads.fetch_add(1, SeqCst);
                read_v(tx)
            }))
            .unwrap();
        *v.unwrap()
    }

    fn set_v(store: &Store, v: i64) -> Result<(), ApiError> {
        store.write_blocking(move |tx| {
            diesel::sql_query(format!("UPDATE t SET v = {v}"))
                .execute(tx.conn)
                .map_err(StoreError::Db)?;
            Ok(())
        })
    }

    /// Two servers on one database: a write acknowledged by one is seen by the other's very
    /// next read, although that server answered the reads before it from its cache; and a
    /// write through the same server too.
    #[test]
    fn a_write_through_any_server_is_seen_by_the_next_read() {
        let Some(url) = fresh_database() else {
            return;
        };
        let (a, b) = (Store::open(&url).unwrap(), Store::open(&url).unwrap());
        let reads = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            assert_eq!(cached_v(&b, &reads), 0);
        }
        assert_eq!(
            reads.load(SeqCst),
            1,
            "read once, then served from the cache"
        );
        for n in 1..=5 {
            set_v(&a, n).unwrap();
            assert_eq!(cached_v(&b, &reads), n);
            assert_eq!(cached_v(&b, &reads), n);
            set_v(&b, 100 + n).unwrap();
            assert_eq!(cached_v(&b, &reads), 100 + n);
            assert_eq!(cached_v(&a, &reads), 100 + n);
        }
        assert_eq!(reads.load(SeqCst), 1 + 5 * 3);
    }

    /// The audit writer's commits change nothing cached: they leave every server's cache as
    /// it is. A store that starts (say after a server died between a COMMIT and its
    /// advance) empties every server's.
    #[test]
    fn audit_commits_keep_the_cache_and_a_start_empties_it() {
        let Some(url) = fresh_database() else {
            return;
        };
        let (a, b) = (Store::open(&url).unwrap(), Store::open(&url).unwrap());
        let reads = Arc::new(AtomicUsize::new(0));
        assert_eq!(cached_v(&a, &reads), 0);
        assert_eq!(cached_v(&b, &reads), 0);
        assert_eq!(reads.load(SeqCst), 2);
        a.audit_writer()
            .write_blocking(|tx| {
                diesel::sql_query("CREATE TABLE IF NOT EXISTS audit_like (x BIGINT)")
                    .execute(tx.conn)
                    .map_err(StoreError::Db)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(cached_v(&a, &reads), 0);
        assert_eq!(cached_v(&b, &reads), 0);
        assert_eq!(reads.load(SeqCst), 2, "the audit commit emptied no cache");
        let _c = Store::open(&url).unwrap();
        assert_eq!(cached_v(&a, &reads), 0);
        assert_eq!(cached_v(&b, &reads), 0);
        assert_eq!(
            reads.load(SeqCst),
            4,
            "a start empties every server's cache"
        );
    }

    /// A write whose advance fails (here: the sequence is gone) is not acknowledged,
    /// although it committed, and no server serves anything cached while the sequence
    /// cannot be asked; once it can, the writer advances it before anything is served.
    #[test]
    fn a_write_that_cannot_be_announced_is_not_acknowledged() {
        let Some(url) = fresh_database() else {
            return;
        };
        let (a, b) = (Store::open(&url).unwrap(), Store::open(&url).unwrap());
        let reads = Arc::new(AtomicUsize::new(0));
        assert_eq!(cached_v(&b, &reads), 0);
        assert_eq!(cached_v(&b, &reads), 0);
        assert_eq!(reads.load(SeqCst), 1);
        let mut admin = PgConnection::establish(&url).unwrap();
        admin
            .batch_execute("ALTER SEQUENCE data_version RENAME TO data_version_away")
            .unwrap();
        assert!(set_v(&a, 7).is_err(), "committed, but not announced");
        // Nothing cached is served while the sequence cannot be asked.
        assert_eq!(cached_v(&b, &reads), 7);
        assert_eq!(cached_v(&a, &reads), 7);
        assert_eq!(reads.load(SeqCst), 3);
        admin
            .batch_execute("ALTER SEQUENCE data_version_away RENAME TO data_version")
            .unwrap();
        let before = last_value(&mut admin);
        // `a` owes an advance: its next check makes it (and serves nothing).
        assert_eq!(cached_v(&a, &reads), 7);
        assert!(last_value(&mut admin) > before);
        assert_eq!(cached_v(&b, &reads), 7);
        assert_eq!(cached_v(&b, &reads), 7);
        assert_eq!(
            reads.load(SeqCst),
            5,
            "cached again once the sequence answers"
        );
    }

    /// A server that could not ask the sequence (here: it is gone) may have missed a write
    /// committed meanwhile whose advance failed: once the sequence answers again with the
    /// value it saw before, it serves nothing it cached before, although the writer has not
    /// read since (its owed advance not made yet). It never answers an older value than one
    /// it read from the database.
    #[test]
    fn what_was_cached_before_the_sequence_could_not_be_asked_is_not_served_after() {
        let interval = std::time::Duration::from_millis(50);
        for check in [std::time::Duration::ZERO, interval] {
            let Some(url) = fresh_database() else {
                return;
            };
            let a = Store::open(&url).unwrap();
            let b = Store::open_configured(&url, 0, check).unwrap();
            let reads = Arc::new(AtomicUsize::new(0));
            let settle = || std::thread::sleep(interval * 3);
            settle();
            assert_eq!(cached_v(&b, &reads), 0);
            assert_eq!(cached_v(&b, &reads), 0);
            let mut admin = PgConnection::establish(&url).unwrap();
            admin
                .batch_execute("ALTER SEQUENCE data_version RENAME TO data_version_away")
                .unwrap();
            assert!(set_v(&a, 7).is_err(), "committed, but not announced");
            settle();
            assert_eq!(cached_v(&b, &reads), 7, "{check:?}");
            admin
                .batch_execute("ALTER SEQUENCE data_version_away RENAME TO data_version")
                .unwrap();
            settle();
            assert_eq!(cached_v(&b, &reads), 7, "{check:?}");
            assert_eq!(cached_v(&b, &reads), 7, "{check:?}");
            // Positive control: cached again once the sequence answers.
            let before = reads.load(SeqCst);
            assert_eq!(cached_v(&b, &reads), 7);
            assert_eq!(reads.load(SeqCst), before, "{check:?}");
            drop(a);
        }
    }

    /// A write whose advance failed only on its own server (its role may not advance the
    /// sequence for a while; the other server asks it all along): the writer's store makes
    /// the owed advance by itself once it can, without a read through it, so the other
    /// server's cache learns of the write within about a second.
    #[test]
    fn an_owed_advance_is_made_without_a_read_through_the_writer() {
        let Some(url) = fresh_database() else {
            return;
        };
        // `b` first: the migrations make the tables the role is granted.
        let b = Store::open(&url).unwrap();
        let mut admin = PgConnection::establish(&url).unwrap();
        let role = format!("sr_w_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!(
                "CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'; \
                 GRANT ALL ON SCHEMA public TO {role}; \
                 GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}; \
                 GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role};"
            ))
            .unwrap();
        let (prefix, db) = url.rsplit_once('/').unwrap();
        let host = prefix.rsplit_once('@').map_or(prefix, |(_, h)| h);
        // A role other than the test server's own logs in with its password (over TLS).
        let a = Store::open(&format!(
            "postgres://{role}:pw-{role}@{host}/{db}?sslmode=require"
        ))
        .unwrap();
        let reads = Arc::new(AtomicUsize::new(0));
        assert_eq!(cached_v(&b, &reads), 0);
        assert_eq!(cached_v(&b, &reads), 0);
        admin
            .batch_execute(&format!(
                "REVOKE ALL ON SEQUENCE data_version FROM {role}; \
                 REVOKE ALL ON SEQUENCE data_version FROM PUBLIC;"
            ))
            .unwrap();
        assert!(set_v(&a, 7).is_err(), "committed, but not announced");
        admin
            .batch_execute(&format!("GRANT ALL ON SEQUENCE data_version TO {role};"))
            .unwrap();
        let start = std::time::Instant::now();
        while cached_v(&b, &reads) != 7 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(5),
                "b still serves what it cached before the write"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        drop(a);
    }

    fn last_value(c: &mut PgConnection) -> i64 {
        data_version::table
            .select(data_version::last_value)
            .get_result(c)
            .unwrap()
    }

    /// A thread serving `q`'s questions with `ask` until `q` is the last handle left.
    fn serving(q: &Arc<SharedQuestion>, ask: impl Fn() -> Option<i64> + Send + 'static) {
        let weak = Arc::downgrade(q);
        std::thread::spawn(move || {
            while let Some(q) = weak.upgrade() {
                q.serve(std::time::Duration::from_millis(20), &ask);
            }
        });
    }

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Callers one after the other each get a question of their own.
    #[test]
    fn a_caller_with_no_question_in_flight_gets_its_own() {
        let q = Arc::new(SharedQuestion::default());
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&asked);
        serving(&q, move || {
            Some(i64::try_from(counter.fetch_add(1, SeqCst)).unwrap() + 1)
        });
        for n in 1..=3 {
            assert_eq!(block_on(q.ask()), Some(n));
        }
        assert_eq!(asked.load(SeqCst), 3);
    }

    /// Callers that arrive while a question is in flight do not take its answer (it was sent
    /// before they arrived, perhaps before a write acknowledged since): they share the next
    /// question, sent once for all of them. A question that fails answers `None` to every
    /// caller that waited for it.
    #[test]
    fn callers_arriving_during_a_question_share_the_next_one() {
        for (second, want) in [(Some(2), Some(2)), (None, None)] {
            let q = Arc::new(SharedQuestion::default());
            let (release, hold) = std::sync::mpsc::channel::<()>();
            let hold = Mutex::new(hold);
            let asked = Arc::new(AtomicUsize::new(0));
            let counter = Arc::clone(&asked);
            serving(&q, move || {
                let n = counter.fetch_add(1, SeqCst);
                if n == 0 {
                    hold.lock().unwrap().recv().unwrap();
                    return Some(1);
                }
                second
            });
            let first = {
                let q = Arc::clone(&q);
                std::thread::spawn(move || block_on(q.ask()))
            };
            while asked.load(SeqCst) == 0 {
                std::thread::yield_now();
            }
            // The first question is in flight: these three arrive after it was sent.
            let later = block_on(async {
                let waits = futures_util::future::join_all((0..3).map(|_| q.ask()));
                let release = async {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    release.send(()).unwrap();
                };
                futures_util::future::join(waits, release).await.0
            });
            // The first caller takes its own question's answer, or a later one's if that
            // was published before it looked (a later question was sent after it arrived too).
            let first = first.join().unwrap();
            assert!(first == Some(1) || first == want, "{first:?}");
            assert_eq!(later, vec![want; 3]);
            assert_eq!(asked.load(SeqCst), 2, "one question for the three");
        }
    }

    /// A question whose thread unwinds answers `None` to its callers and to every later
    /// one: reads then go to the database instead of waiting for an answer that never comes.
    #[test]
    fn a_question_that_panics_sends_every_read_to_the_database() {
        let q = Arc::new(SharedQuestion::default());
        serving(&q, || panic!("the question's thread unwinds"));
        assert_eq!(block_on(q.ask()), None);
        assert_eq!(block_on(q.ask()), None);
    }

    /// An answer older than one already seen serves and keeps nothing; a newer one empties
    /// the cache.
    #[test]
    fn answers_move_the_generation_forward_only() {
        let c = Changes::new(Watch::Postgres(Probe::new("postgres://unused")));
        let cache = ReadCache::default();
        let seen = |v: i64| c.settle(v, &cache);
        let g = seen(5).unwrap();
        cache.put("k".to_owned(), Arc::new(1_u32), g);
        assert_eq!(seen(5), Some(g));
        assert_eq!(seen(4), None);
        // The overtaken answer emptied nothing.
        assert_eq!(cache.get::<u32>("k").as_deref(), Some(&1));
        assert!(seen(6).unwrap() > g);
        assert_eq!(cache.get::<u32>("k"), None);
    }
}
