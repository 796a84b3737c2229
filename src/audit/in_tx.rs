//! A write request's record, appended in the request's own write transaction.
//!
//! The pipeline hands a write operation a store handle carrying a [`TxRecord`] (a
//! [`CommitHook`]): the first write transaction of the request that succeeds gets the
//! request's record appended just before COMMIT, so the change and its record are durable
//! together or not at all. The record is built on each attempt (a PostgreSQL retry gets a
//! fresh seq and link), from the request's draft plus what the transaction returned (the
//! operation's output, for `responseElements`). A transaction that fails adds nothing: the
//! pipeline then records the failed request through the group-commit writer as usual.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::chain::row_for;
use super::keys::AuditKeys;
use super::record::Draft;
use super::tail::Tail;
use crate::error::ApiError;
use crate::store::{CommitHook, Outcome, Tx, TxEnd};

/// Completes the draft from a transaction's result; `false`: record nothing for this one.
pub type Complete = Box<dyn Fn(&dyn Any, &mut Draft) -> bool + Send + Sync>;

/// One request's (or background event's) record, waiting for its write transaction.
pub struct TxRecord {
    tail: Arc<Tail>,
    keys: Option<Arc<AuditKeys>>,
    timeout: Duration,
    draft: Draft,
    event_id: String,
    complete: Complete,
    written: Arc<AtomicBool>,
    /// A request's record: the request is not one the group-commit writer waits for while
    /// this lives.
    _not_expected: Option<super::writer::NotExpected>,
}

impl std::fmt::Debug for TxRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxRecord")
            .field("chain", &self.tail.chain_id())
            .field("request_id", &self.draft.request_id)
            .field("written", &self.written())
            .finish_non_exhaustive()
    }
}

impl TxRecord {
    pub(super) fn new(
        tail: Arc<Tail>,
        keys: Option<Arc<AuditKeys>>,
        timeout: Duration,
        draft: Draft,
        complete: Complete,
        not_expected: Option<super::writer::NotExpected>,
    ) -> Self {
        Self {
            tail,
            keys,
            timeout,
            draft,
            event_id: super::new_event_id(),
            complete,
            written: Arc::new(AtomicBool::new(false)),
            _not_expected: not_expected,
        }
    }

    /// Whether the record was committed (with a change).
    pub fn written(&self) -> bool {
        self.written.load(Ordering::Acquire)
    }
}

/// The append lock of the transaction that carries the record.
struct Pending {
    append: super::tail::Append,
    written: Arc<AtomicBool>,
}

impl TxEnd for Pending {
    fn ended(self: Box<Self>, outcome: Outcome) {
        let Self { append, written } = *self;
        if outcome == Outcome::Committed {
            written.store(true, Ordering::Release);
        }
        append.finish(outcome);
    }
}

impl CommitHook for TxRecord {
    fn before_commit(
        &self,
        tx: &mut Tx<'_>,
        result: &dyn Any,
    ) -> Result<Option<Box<dyn TxEnd>>, ApiError> {
        if self.written() {
            // A later transaction of the same request: its record is already in.
            return Ok(None);
        }
        let mut draft = self.draft.clone();
        if !(self.complete)(result, &mut draft) {
            return Ok(None);
        }
        let (text, index) = draft.to_text(&self.event_id, self.keys.as_deref());
        let mut append = self.tail.lock(self.timeout)?;
        let fail = |e: crate::store::StoreError| {
            tracing::error!(request_id = %self.draft.request_id, "audit record not written with its change: {e}");
            ApiError::internal("audit write failed")
        };
        let (seq, prev) = append.head(tx).map_err(fail)?;
        let row = row_for(append.chain_id(), seq + 1, &prev, &text, &index);
        append.insert(tx, &[row.as_new()]).map_err(fail)?;
        tx.keep_pending_audits(append.chain_id(), row.seq, append.committed_seq())
            .map_err(fail)?;
        Ok(Some(Box::new(Pending {
            append,
            written: Arc::clone(&self.written),
        })))
    }
}
