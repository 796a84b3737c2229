//! The replication outbox (`replication_outbox`, on a primary's server), with one row of
//! delivery state per (secret, peer region) that has changes waiting
//! (`replication_outbox_groups`: attempts, back-off, last error), and the applied changes
//! (`replication_applied`, on a peer): see `replication`.

use diesel::prelude::*;

use super::schema::{replication_applied, replication_outbox, replication_outbox_groups};
use super::{StoreError, Tx};

/// A change to deliver to a peer, as enqueued.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = replication_outbox)]
pub struct NewOutboxRow {
    pub primary_secret_id: String,
    pub primary_arn: String,
    pub region: String,
    /// `sync` or `delete`.
    pub kind: String,
    pub force_overwrite: bool,
    pub replica_kms_key_id: Option<String>,
    pub created_at: i64,
}

/// A change to deliver to a peer.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = replication_outbox)]
pub struct OutboxRow {
    pub seq: i64,
    pub primary_secret_id: String,
    pub primary_arn: String,
    pub region: String,
    pub kind: String,
    pub force_overwrite: bool,
    pub replica_kms_key_id: Option<String>,
    pub created_at: i64,
}

/// A (secret, peer region) with changes waiting: its oldest change's time and its delivery
/// state.
#[derive(Debug, Clone)]
pub struct OutboxPending {
    pub oldest_created_at: i64,
    pub attempts: i32,
    pub last_error: Option<String>,
}

impl Tx<'_> {
    /// Enqueue a change: its row, and its group's row if the group had no change waiting (a
    /// group in a failed delivery's back-off keeps it: the new change waits with the group).
    ///
    /// Both are blind writes (an insert, and an insert that does nothing on the group's key):
    /// on PostgreSQL, whose writes run SERIALIZABLE, reading the group's changes would put a
    /// predicate lock on an index range that concurrent enqueues of other secrets write into,
    /// and concurrent replicated writes would fail as serialization conflicts.
    pub fn enqueue_outbox(&mut self, row: &NewOutboxRow) -> Result<(), StoreError> {
        native!(&mut *self.conn, |c| diesel::insert_into(
            replication_outbox::table
        )
        .values(row)
        .execute(c))
        .map_err(|e| self.db(e))?;
        native!(&mut *self.conn, |c| diesel::insert_into(
            replication_outbox_groups::table
        )
        .values((
            replication_outbox_groups::primary_secret_id.eq(&row.primary_secret_id),
            replication_outbox_groups::region.eq(&row.region),
            replication_outbox_groups::attempts.eq(0),
            replication_outbox_groups::next_attempt_at.eq(row.created_at),
            replication_outbox_groups::last_error.eq(None::<String>),
        ))
        .on_conflict_do_nothing()
        .execute(c))
        .map(|_| ())
        .map_err(|e| self.db(e))
    }

    /// For one peer region: the latest change of each group that is due at `now_ms` (at most
    /// `limit` of them, the longest due first: a group is due from its oldest change's time,
    /// or from the end of a failed delivery's back-off), marked as allowing overwrites if any
    /// of the group's changes does, with the group's failed attempts so far. Reads an index
    /// range of due groups: the groups in back-off (with a dead peer, all of them) are not
    /// read.
    pub fn outbox_due(
        &mut self,
        region: &str,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<(OutboxRow, i32)>, StoreError> {
        let due: Vec<(String, i32)> = replication_outbox_groups::table
            .filter(replication_outbox_groups::region.eq(region))
            .filter(replication_outbox_groups::next_attempt_at.le(now_ms))
            .order(replication_outbox_groups::next_attempt_at.asc())
            .select((
                replication_outbox_groups::primary_secret_id,
                replication_outbox_groups::attempts,
            ))
            .limit(limit)
            .load(self.conn)
            .map_err(|e| self.db(e))?;
        let mut out = Vec::with_capacity(due.len());
        for (sid, attempts) in due {
            let latest: Option<OutboxRow> = replication_outbox::table
                .filter(replication_outbox::primary_secret_id.eq(&sid))
                .filter(replication_outbox::region.eq(region))
                .order(replication_outbox::seq.desc())
                .select(OutboxRow::as_select())
                .first(self.conn)
                .optional()
                .map_err(|e| self.db(e))?;
            // A group row outlives its changes in no transaction; none is skipped.
            let Some(mut latest) = latest else {
                continue;
            };
            if !latest.force_overwrite {
                let forced: i64 = replication_outbox::table
                    .filter(replication_outbox::primary_secret_id.eq(&sid))
                    .filter(replication_outbox::region.eq(region))
                    .filter(replication_outbox::force_overwrite.eq(true))
                    .count()
                    .get_result(self.conn)
                    .map_err(|e| self.db(e))?;
                latest.force_overwrite = forced > 0;
            }
            out.push((latest, attempts));
        }
        Ok(out)
    }

    /// Remove the delivered changes of a (secret, region), up to `seq`. The group's row goes
    /// with its last change; if changes were enqueued during the delivery, the group stays
    /// due with its attempts reset, in the place of its oldest change (the due query takes
    /// the groups in the order their oldest changes wait, so a secret written all the time
    /// does not keep its first change's place ahead of the others).
    pub fn outbox_delivered(
        &mut self,
        primary_secret_id: &str,
        region: &str,
        seq: i64,
    ) -> Result<(), StoreError> {
        diesel::delete(
            replication_outbox::table
                .filter(replication_outbox::primary_secret_id.eq(primary_secret_id))
                .filter(replication_outbox::region.eq(region))
                .filter(replication_outbox::seq.le(seq)),
        )
        .execute(self.conn)
        .map_err(|e| self.db(e))?;
        let group = replication_outbox_groups::table.find((primary_secret_id, region));
        match self.outbox_oldest_created_at(primary_secret_id, region)? {
            Some(created_at) => diesel::update(group)
                .set((
                    replication_outbox_groups::attempts.eq(0),
                    replication_outbox_groups::next_attempt_at.eq(created_at),
                    replication_outbox_groups::last_error.eq(None::<String>),
                ))
                .execute(self.conn),
            None => diesel::delete(group).execute(self.conn),
        }
        .map(|_| ())
        .map_err(|e| self.db(e))
    }

    /// The time of the oldest change waiting for a (secret, region), if any.
    fn outbox_oldest_created_at(
        &mut self,
        primary_secret_id: &str,
        region: &str,
    ) -> Result<Option<i64>, StoreError> {
        let Some(seq) = self.outbox_first_seq(primary_secret_id, region)? else {
            return Ok(None);
        };
        native!(&mut *self.conn, |c| replication_outbox::table
            .find(seq)
            .select(replication_outbox::created_at)
            .get_result(c)
            .optional())
        .map_err(|e| self.db(e))
    }

    /// Record a failed delivery of a (secret, region)'s changes: the attempt count, the next
    /// attempt's time and the error, on the group's row alone (the changes enqueued since
    /// wait with it).
    pub fn outbox_failed(
        &mut self,
        primary_secret_id: &str,
        region: &str,
        attempts: i32,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        diesel::update(replication_outbox_groups::table.find((primary_secret_id, region)))
            .set((
                replication_outbox_groups::attempts.eq(attempts),
                replication_outbox_groups::next_attempt_at.eq(next_attempt_at),
                replication_outbox_groups::last_error.eq(error),
            ))
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    /// Per region: the number of undelivered changes (a count over every waiting change).
    pub fn outbox_depths(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        replication_outbox::table
            .group_by(replication_outbox::region)
            .select((replication_outbox::region, diesel::dsl::count_star()))
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    /// The time of the oldest change waiting for `region`, if any: the minimum of the
    /// `replication_outbox_region` index's range, one lookup however many changes wait.
    pub fn outbox_oldest_in_region(&mut self, region: &str) -> Result<Option<i64>, StoreError> {
        native!(&mut *self.conn, |c| replication_outbox::table
            .filter(replication_outbox::region.eq(region))
            .select(diesel::dsl::min(replication_outbox::created_at))
            .get_result(c))
        .map_err(|e| self.db(e))
    }

    /// The first sequence number waiting for a (secret, region): an aggregate read from the
    /// end of the `replication_outbox_target` range, a statement diesel keeps prepared (not
    /// `ORDER BY seq LIMIT 1`, whose bound LIMIT makes SQLite prepare the statement again on
    /// every execution: see `store::secrets`).
    fn outbox_first_seq(
        &mut self,
        primary_secret_id: &str,
        region: &str,
    ) -> Result<Option<i64>, StoreError> {
        native!(&mut *self.conn, |c| replication_outbox::table
            .filter(replication_outbox::primary_secret_id.eq(primary_secret_id))
            .filter(replication_outbox::region.eq(region))
            .select(diesel::dsl::min(replication_outbox::seq))
            .get_result(c))
        .map_err(|e| self.db(e))
    }

    /// The changes waiting for a (secret, region), if any: the oldest one's time and the
    /// group's delivery state.
    pub fn outbox_pending(
        &mut self,
        primary_secret_id: &str,
        region: &str,
    ) -> Result<Option<OutboxPending>, StoreError> {
        let Some(oldest_created_at) = self.outbox_oldest_created_at(primary_secret_id, region)?
        else {
            return Ok(None);
        };
        let state: Option<(i32, Option<String>)> =
            native!(&mut *self.conn, |c| replication_outbox_groups::table
                .find((primary_secret_id, region))
                .select((
                    replication_outbox_groups::attempts,
                    replication_outbox_groups::last_error,
                ))
                .get_result(c)
                .optional())
            .map_err(|e| self.db(e))?;
        let (attempts, last_error) = state.unwrap_or((0, None));
        Ok(Some(OutboxPending {
            oldest_created_at,
            attempts,
            last_error,
        }))
    }

    /// On a peer: the last change applied of a primary in `region`.
    pub fn applied_seq(
        &mut self,
        primary_arn: &str,
        region: &str,
    ) -> Result<Option<i64>, StoreError> {
        replication_applied::table
            .find((primary_arn, region))
            .select(replication_applied::last_seq)
            .first(self.conn)
            .optional()
            .map_err(|e| self.db(e))
    }

    /// On a peer: record the last change applied of a primary in `region`.
    pub fn set_applied_seq(
        &mut self,
        primary_arn: &str,
        region: &str,
        seq: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        diesel::delete(replication_applied::table.find((primary_arn, region)))
            .execute(self.conn)
            .map_err(|e| self.db(e))?;
        diesel::insert_into(replication_applied::table)
            .values((
                replication_applied::primary_arn.eq(primary_arn),
                replication_applied::region.eq(region),
                replication_applied::last_seq.eq(seq),
                replication_applied::applied_at.eq(now_ms),
            ))
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use crate::store::Store;

    fn change(sid: &str, now: i64) -> NewOutboxRow {
        NewOutboxRow {
            primary_secret_id: sid.into(),
            primary_arn: format!(
                "arn:aws:secretsmanager:us-east-1:000000000000:secret:{sid}-AbCdEf"
            ),
            region: "eu-west-1".into(),
            kind: "sync".into(),
            force_overwrite: false,
            replica_kms_key_id: None,
            created_at: now,
        }
    }

    fn ids(rows: &[(OutboxRow, i32)]) -> Vec<&str> {
        rows.iter()
            .map(|(r, _)| r.primary_secret_id.as_str())
            .collect()
    }

    fn sqlite_store(dir: &tempfile::TempDir) -> Store {
        Store::open(&format!("sqlite://{}/t.db", dir.path().display())).unwrap()
    }

    /// A secret whose delivery failed keeps being written: its later changes wait with it,
    /// and the due query still finds the other secrets' changes.
    #[test]
    fn a_group_in_back_off_does_not_hide_the_due_groups_behind_it() {
        let dir = tempfile::tempdir().unwrap();
        sqlite_store(&dir)
            .write_blocking(|tx| -> Result<(), ApiError> {
                let now = 1_000;
                tx.enqueue_outbox(&change("a", now))?;
                let first = tx.outbox_due("eu-west-1", now, 8)?;
                assert_eq!(ids(&first), vec!["a"]);
                assert_eq!(first[0].1, 0);
                tx.outbox_failed("a", "eu-west-1", 1, now + 10_000, "down")?;
                for _ in 0..20 {
                    tx.enqueue_outbox(&change("a", now + 1))?;
                }
                tx.enqueue_outbox(&change("b", now + 2))?;
                let due = tx.outbox_due("eu-west-1", now + 3, 1)?;
                assert_eq!(ids(&due), vec!["b"]);
                // Once its back-off is over, `a` is due with its latest change, after `b`
                // (due since earlier).
                let due = tx.outbox_due("eu-west-1", now + 10_000, 4)?;
                assert_eq!(ids(&due), vec!["b", "a"]);
                assert_eq!(due[1].1, 1);
                assert_eq!(due[1].0.seq, first[0].0.seq + 20);
                let pending = tx.outbox_pending("a", "eu-west-1")?.unwrap();
                assert_eq!(pending.oldest_created_at, now);
                assert_eq!(pending.attempts, 1);
                assert_eq!(pending.last_error.as_deref(), Some("down"));
                Ok(())
            })
            .unwrap();
    }

    /// A delivery covers the changes up to the latest one it read; a change enqueued while
    /// it was on its way stays, due at once with the attempts reset, and the group's row goes
    /// only with its last change.
    #[test]
    fn a_change_enqueued_during_a_delivery_stays_due() {
        let dir = tempfile::tempdir().unwrap();
        sqlite_store(&dir)
            .write_blocking(|tx| -> Result<(), ApiError> {
                let now = 1_000;
                let mut forced = change("a", now);
                forced.force_overwrite = true;
                tx.enqueue_outbox(&forced)?;
                tx.enqueue_outbox(&change("a", now))?;
                let due = tx.outbox_due("eu-west-1", now, 8)?;
                assert_eq!(ids(&due), vec!["a"]);
                assert!(
                    due[0].0.force_overwrite,
                    "any change of the group may overwrite"
                );
                tx.outbox_failed("a", "eu-west-1", 2, now, "down")?;
                tx.enqueue_outbox(&change("a", now + 5))?;
                tx.outbox_delivered("a", "eu-west-1", due[0].0.seq)?;
                // Due from its oldest waiting change's time, not its first change's.
                assert!(tx.outbox_due("eu-west-1", now + 4, 8)?.is_empty());
                let again = tx.outbox_due("eu-west-1", now + 5, 8)?;
                assert_eq!(ids(&again), vec!["a"]);
                assert_eq!(again[0].1, 0);
                assert!(!again[0].0.force_overwrite);
                assert!(again[0].0.seq > due[0].0.seq);
                let pending = tx.outbox_pending("a", "eu-west-1")?.unwrap();
                assert_eq!(pending.oldest_created_at, now + 5);
                assert_eq!(pending.last_error, None);
                tx.outbox_delivered("a", "eu-west-1", again[0].0.seq)?;
                assert!(tx.outbox_pending("a", "eu-west-1")?.is_none());
                assert!(tx.outbox_due("eu-west-1", now + 5, 8)?.is_empty());
                let groups: i64 = replication_outbox_groups::table
                    .count()
                    .get_result(tx.conn)
                    .unwrap();
                assert_eq!(groups, 0);
                // The next change starts a group again.
                tx.enqueue_outbox(&change("a", now + 9))?;
                assert_eq!(ids(&tx.outbox_due("eu-west-1", now + 9, 8)?), vec!["a"]);
                Ok(())
            })
            .unwrap();
    }

    /// The lag gauge's oldest change per region is one index lookup: a dead peer's backlog
    /// is every write since it died, and the gauge is read every 100 ms.
    #[test]
    fn the_oldest_change_of_a_region_is_an_index_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir);
        store
            .write_blocking(|tx| -> Result<(), ApiError> {
                assert_eq!(tx.outbox_oldest_in_region("eu-west-1")?, None);
                tx.enqueue_outbox(&change("a", 30))?;
                tx.enqueue_outbox(&change("b", 20))?;
                let mut other = change("c", 10);
                other.region = "ap-south-1".into();
                tx.enqueue_outbox(&other)?;
                assert_eq!(tx.outbox_oldest_in_region("eu-west-1")?, Some(20));
                assert_eq!(tx.outbox_oldest_in_region("ap-south-1")?, Some(10));
                Ok(())
            })
            .unwrap();
        let oldest = replication_outbox::table
            .filter(replication_outbox::region.eq("eu-west-1"))
            .select(diesel::dsl::min(replication_outbox::created_at));
        let plan = plan_of(
            &store,
            diesel::debug_query::<diesel::sqlite::Sqlite, _>(&oldest).to_string(),
        );
        assert!(
            plan.iter()
                .any(|d| d.contains("replication_outbox_region") && d.contains("region=?")),
            "{plan:?}"
        );
    }

    /// SQLite's plan of `sql` (diesel's debug form, its bound values replaced by 1).
    fn plan_of(store: &Store, sql: String) -> Vec<String> {
        let sql = sql.split(" -- ").next().unwrap().replace('?', "1");
        store
            .read_blocking(move |tx| {
                Ok(native!(&mut *tx.conn, |c| diesel::sql_query(format!(
                    "EXPLAIN QUERY PLAN {sql}"
                ))
                .load::<PlanRow>(c))
                .unwrap())
            })
            .unwrap()
            .into_iter()
            .map(|r| r.detail)
            .collect()
    }

    #[derive(diesel::QueryableByName)]
    struct PlanRow {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }

    /// The due query reads an index range of due groups: with a dead peer every group is in
    /// back-off with its changes waiting, and a scan of them every 100 ms would cost the
    /// primary's writes.
    #[test]
    fn the_due_query_reads_an_index_range_of_due_groups() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir);
        let due = replication_outbox_groups::table
            .filter(replication_outbox_groups::region.eq("eu-west-1"))
            .filter(replication_outbox_groups::next_attempt_at.le(5_i64))
            .order(replication_outbox_groups::next_attempt_at.asc())
            .select((
                replication_outbox_groups::primary_secret_id,
                replication_outbox_groups::attempts,
            ))
            .limit(64);
        let plan = plan_of(
            &store,
            diesel::debug_query::<diesel::sqlite::Sqlite, _>(&due).to_string(),
        );
        assert!(
            plan.iter()
                .any(|d| d.contains("replication_outbox_groups_due")
                    && d.contains("next_attempt_at<")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|d| d.contains("TEMP B-TREE")),
            "sorted by the index, not after: {plan:?}"
        );
    }
}
