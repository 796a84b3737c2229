//! The tail of this server's chain: who may append next, and where the chain ends.
//!
//! Two kinds of transactions append to one chain: the group-commit writer (read requests'
//! records, digests) and write requests' own transactions (their record beside the change,
//! `in_tx`). Each takes the [`Tail`] lock before it reads the head and keeps it until its
//! transaction has committed or rolled back, so sequence numbers and `prev_hash` links are
//! handed out in commit order and a rolled-back (or retried) transaction consumes nothing.
//!
//! The head is cached: a transaction's snapshot may predate the last commit (PostgreSQL
//! SERIALIZABLE takes it at the first statement), so it cannot always read the head itself.
//! The cache is filled from the database only when empty (at start, or after an append
//! found its seq taken: another process writing the same chain), and then the head read is
//! in the appender's own transaction; if that read was stale the insert fails on the
//! `(chain, seq)` key and the transaction is retried from scratch.
//!
//! The lock is a flag under a mutex (not a guard borrowed from it) so that it can be held
//! across the store's transaction boundary by a value that owns an `Arc` of the tail; it is
//! always taken with a timeout, so a stuck holder fails requests instead of hanging them.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::chain::{ANCHOR, GENESIS};
use crate::error::ApiError;
use crate::store::rows::NewAuditRow;
use crate::store::{Outcome, StoreError, Tx, TxEnd};

/// The shared tail of one chain.
#[derive(Debug)]
pub struct Tail {
    chain_id: String,
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug)]
struct State {
    busy: bool,
    /// `(seq, hash)` of the last committed record, when known.
    head: Option<(i64, String)>,
    /// Records committed since the last digest.
    undigested: u64,
    last_digest: Instant,
    /// The thread holding the lock (`busy`).
    owner: Option<std::thread::ThreadId>,
    /// The last record appended under the current lock, committed or not.
    batch_head: Option<(i64, String)>,
}

impl Tail {
    pub fn new(chain_id: String) -> Arc<Self> {
        Arc::new(Self {
            chain_id,
            state: Mutex::new(State {
                busy: false,
                head: None,
                undigested: 0,
                last_digest: Instant::now(),
                owner: None,
                batch_head: None,
            }),
            freed: Condvar::new(),
        })
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records committed since the last digest, and how long ago that digest was.
    pub fn undigested(&self) -> (u64, Duration) {
        let s = self.state();
        (s.undigested, s.last_digest.elapsed())
    }

    /// Take the append lock, waiting at most `timeout`.
    pub fn lock(self: &Arc<Self>, timeout: Duration) -> Result<Append, ApiError> {
        let deadline = Instant::now() + timeout;
        let me = std::thread::current().id();
        let mut s = self.state();
        if s.busy && s.owner == Some(me) {
            // A later write of the same group commit (`store::batch` runs the writes of one
            // transaction on one thread): it shares the lock, and
            // appends after what the earlier ones appended, uncommitted yet.
            let head = s.batch_head.clone().or_else(|| s.head.clone());
            let committed = s.head.as_ref().map(|h| h.0);
            drop(s);
            return Ok(Append {
                tail: Arc::clone(self),
                head,
                committed,
                staged: None,
                digested: false,
                released: false,
                nested: true,
            });
        }
        while s.busy {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::error!(chain = %self.chain_id, "audit chain busy for {timeout:?}; failing the request");
                return Err(ApiError::internal("audit chain busy"));
            }
            s = self
                .freed
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        s.busy = true;
        s.owner = Some(me);
        s.batch_head = None;
        let head = s.head.clone();
        drop(s);
        Ok(Append {
            tail: Arc::clone(self),
            committed: head.as_ref().map(|h| h.0),
            head,
            staged: None,
            digested: false,
            released: false,
            nested: false,
        })
    }
}

/// The append lock of a [`Tail`], held until the transaction that appends has ended.
#[derive(Debug)]
pub struct Append {
    tail: Arc<Tail>,
    head: Option<(i64, String)>,
    /// The seq of the last record known committed when the lock was taken.
    committed: Option<i64>,
    /// The head after this transaction's rows, and how many rows.
    staged: Option<(i64, String, u64)>,
    digested: bool,
    released: bool,
    /// Shares the lock of an earlier append on the same thread (see [`Tail::lock`]): its end
    /// moves the head but leaves the lock to that one.
    nested: bool,
}

impl Append {
    pub fn chain_id(&self) -> &str {
        &self.tail.chain_id
    }

    /// Where the chain ends (from the cache, or read in `tx` when unknown): the last
    /// record, else the prune anchor, else the genesis.
    pub fn head(&mut self, tx: &mut Tx<'_>) -> Result<(i64, String), StoreError> {
        if let Some(h) = &self.head {
            return Ok(h.clone());
        }
        let chain = self.tail.chain_id.clone();
        tx.adopt_pending_audits()?;
        let h = match tx.audit_head(&chain)? {
            Some(h) => h,
            None => tx
                .last_audit_digest(&chain, ANCHOR)?
                .map_or((0, GENESIS.to_owned()), |a| (a.seq_to, a.last_hash)),
        };
        self.head = Some(h.clone());
        Ok(h)
    }

    /// Insert `rows` (built on [`Append::head`], or after the rows inserted before under this
    /// lock, in order) in `tx`. A seq already taken
    /// means another writer appended to this chain unseen: the cached head is dropped and
    /// the whole transaction is to be retried.
    pub fn insert(&mut self, tx: &mut Tx<'_>, rows: &[NewAuditRow<'_>]) -> Result<(), StoreError> {
        if let Err(e) = tx.insert_new_audits(rows) {
            if e.is_unique_violation() {
                self.forget_head();
                tx.retry_on_failure();
            }
            return Err(e);
        }
        if let Some(last) = rows.last() {
            // Several inserts under one lock (the writer inserts as it gathers): they add up.
            let before = self.staged.as_ref().map_or(0, |s| s.2);
            let n = before.saturating_add(u64::try_from(rows.len()).unwrap_or(u64::MAX));
            self.staged = Some((last.seq, last.hash.to_owned(), n));
            self.tail.state().batch_head = Some((last.seq, last.hash.to_owned()));
        }
        Ok(())
    }

    /// The seq of the last record known committed when the lock was taken (unknown after a
    /// start or a commit of unknown outcome).
    pub fn committed_seq(&self) -> Option<i64> {
        self.committed
    }

    /// This transaction also writes a digest through the new head.
    pub fn mark_digested(&mut self) {
        self.digested = true;
    }

    fn forget_head(&mut self) {
        self.head = None;
        self.tail.state().head = None;
    }

    /// The transaction ended: on commit, the new head is the chain's; otherwise nothing was
    /// consumed (and after an unknown outcome the head is read again next time).
    pub fn finish(mut self, outcome: Outcome) {
        self.release(outcome);
    }

    fn release(&mut self, outcome: Outcome) {
        if self.released {
            return;
        }
        self.released = true;
        let mut s = self.tail.state();
        match outcome {
            Outcome::Committed => {
                if let Some((seq, hash, n)) = self.staged.take() {
                    // Appends sharing one lock end the last first: only forward.
                    if s.head.as_ref().is_none_or(|h| seq > h.0) {
                        s.head = Some((seq, hash));
                    }
                    s.undigested = s.undigested.saturating_add(n);
                }
                if self.digested {
                    s.undigested = 0;
                    s.last_digest = Instant::now();
                }
            }
            Outcome::RolledBack => {}
            Outcome::Unknown => {
                if self.staged.is_some() {
                    s.head = None;
                }
            }
        }
        if self.nested {
            return;
        }
        s.busy = false;
        s.owner = None;
        s.batch_head = None;
        drop(s);
        self.tail.freed.notify_one();
    }
}

impl TxEnd for Append {
    fn ended(self: Box<Self>, outcome: Outcome) {
        (*self).finish(outcome);
    }
}

impl Drop for Append {
    fn drop(&mut self) {
        // Not told: the transaction did not commit.
        self.release(Outcome::RolledBack);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `r` is the lock's timeout (an internal error saying the chain is busy).
    fn busy(r: Result<Append, ApiError>) -> bool {
        matches!(r, Err(ApiError::Internal(m)) if m == "audit chain busy")
    }

    #[test]
    fn the_lock_times_out_and_is_released_on_drop() {
        let t = Tail::new("c".into());
        let a = t.lock(Duration::from_millis(10)).unwrap();
        let started = Instant::now();
        let t2 = Arc::clone(&t);
        // another thread waits, and gives up at its timeout
        let other = std::thread::spawn(move || busy(t2.lock(Duration::from_millis(50))));
        assert!(other.join().unwrap());
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(a);
        let b = t.lock(Duration::from_millis(10)).unwrap();
        b.finish(Outcome::RolledBack);
        assert!(t.lock(Duration::from_millis(10)).is_ok());
    }

    #[test]
    fn appends_of_one_group_commit_share_the_lock_and_chain_on() {
        let t = Tail::new("c".into());
        let mut a = t.lock(Duration::from_millis(10)).unwrap();
        a.head = Some((4, "h4".into()));
        a.staged = Some((5, "h5".into(), 1));
        t.state().batch_head = Some((5, "h5".into()));
        // the same thread again: nested, sees the uncommitted head
        let mut b = t.lock(Duration::from_millis(10)).unwrap();
        assert!(b.nested);
        assert_eq!(b.head, Some((5, "h5".into())));
        b.staged = Some((6, "h6".into(), 1));
        // other threads wait for the whole group
        let t2 = Arc::clone(&t);
        assert!(
            std::thread::spawn(move || busy(t2.lock(Duration::from_millis(20))))
                .join()
                .unwrap()
        );
        // ended last first: the head ends at the highest committed seq, then the lock frees
        b.finish(Outcome::Committed);
        assert!(t.state().busy);
        a.finish(Outcome::Committed);
        let s = t.state();
        assert!(!s.busy);
        assert_eq!(s.head, Some((6, "h6".into())));
        assert_eq!(s.undigested, 2);
    }

    #[test]
    fn only_a_commit_moves_the_head() {
        let t = Tail::new("c".into());
        let mut a = t.lock(Duration::from_millis(10)).unwrap();
        a.head = Some((4, "h4".into()));
        a.staged = Some((5, "h5".into(), 1));
        a.finish(Outcome::RolledBack);
        assert_eq!(t.state().head, None);
        let mut a = t.lock(Duration::from_millis(10)).unwrap();
        a.staged = Some((5, "h5".into(), 1));
        a.finish(Outcome::Committed);
        assert_eq!(t.state().head, Some((5, "h5".into())));
        assert_eq!(t.undigested().0, 1);
        let mut a = t.lock(Duration::from_millis(10)).unwrap();
        assert_eq!(a.head, Some((5, "h5".into())));
        a.staged = Some((6, "h6".into(), 1));
        a.finish(Outcome::Unknown);
        assert_eq!(t.state().head, None);
    }
}
