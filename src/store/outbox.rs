//! The replication outbox (`replication_outbox`, on a primary's server) and the applied
//! changes (`replication_applied`, on a peer): see `replication`.

use diesel::prelude::*;

use super::schema::{replication_applied, replication_outbox};
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
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
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
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

impl Tx<'_> {
    /// Enqueue a change.
    /// A change of a (secret, region) held back by a failed delivery's back-off waits as
    /// long as its group (so that the due changes are the changes of due groups).
    ///
    /// PostgreSQL: a blind insert. Its writes run SERIALIZABLE, and reading the group's oldest
    /// change puts a predicate lock on an index range that concurrent enqueues of other
    /// secrets write into, so concurrent replicated writes failed as serialization conflicts
    /// until their retries ran out. There the due query's own check of each group's oldest
    /// change holds a group in back-off back; its later changes only take room in a round.
    pub fn enqueue_outbox(&mut self, row: &NewOutboxRow) -> Result<(), StoreError> {
        let mut row = row.clone();
        if matches!(self.conn, crate::store::AnyConnection::Sqlite(_)) {
            if let Some(oldest) = self.outbox_oldest(&row.primary_secret_id, &row.region)? {
                row.next_attempt_at = row.next_attempt_at.max(oldest.next_attempt_at);
            }
        }
        native!(&mut *self.conn, |c| diesel::insert_into(
            replication_outbox::table
        )
        .values(&row)
        .execute(c))
        .map(|_| ())
        .map_err(|e| self.db(e))
    }

    /// For one peer region: the latest change of each secret whose oldest change is due at `now_ms` (at
    /// most `limit` of them, oldest first), with the oldest's attempt count and whether any
    /// of the group's changes allows overwriting.
    pub fn outbox_due(
        &mut self,
        region: &str,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let due: Vec<(String, String)> = replication_outbox::table
            .filter(replication_outbox::region.eq(region))
            .filter(replication_outbox::next_attempt_at.le(now_ms))
            .order(replication_outbox::seq.asc())
            .select((
                replication_outbox::primary_secret_id,
                replication_outbox::region,
            ))
            .limit(limit.saturating_mul(8))
            .load(self.conn)
            .map_err(|e| self.db(e))?;
        let mut out: Vec<OutboxRow> = Vec::new();
        // Groups held back by a failed delivery's back-off, looked up once each.
        let mut waiting: Vec<String> = Vec::new();
        for (sid, region) in due {
            if waiting.contains(&sid)
                || out
                    .iter()
                    .any(|r| r.primary_secret_id == sid && r.region == region)
            {
                continue;
            }
            if i64::try_from(out.len()).unwrap_or(i64::MAX) >= limit {
                break;
            }
            // The group is due when its oldest change is (a failed delivery's back-off holds
            // the changes enqueued since too).
            let Some(oldest) = self.outbox_oldest(&sid, &region)? else {
                continue;
            };
            if oldest.next_attempt_at > now_ms {
                waiting.push(sid);
                continue;
            }
            let mut latest: OutboxRow = replication_outbox::table
                .filter(replication_outbox::primary_secret_id.eq(&sid))
                .filter(replication_outbox::region.eq(&region))
                .order(replication_outbox::seq.desc())
                .select(OutboxRow::as_select())
                .first(self.conn)
                .map_err(|e| self.db(e))?;
            let forced: i64 = replication_outbox::table
                .filter(replication_outbox::primary_secret_id.eq(&sid))
                .filter(replication_outbox::region.eq(&region))
                .filter(replication_outbox::force_overwrite.eq(true))
                .count()
                .get_result(self.conn)
                .map_err(|e| self.db(e))?;
            latest.force_overwrite = forced > 0;
            latest.attempts = oldest.attempts;
            out.push(latest);
        }
        Ok(out)
    }

    /// Remove the delivered changes of a (secret, region), up to `seq`.
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
        .map(|_| ())
        .map_err(|e| self.db(e))
    }

    /// Record a failed delivery of a (secret, region)'s changes up to `seq`: the attempt
    /// count, the next attempt's time and the error.
    pub fn outbox_failed(
        &mut self,
        primary_secret_id: &str,
        region: &str,
        seq: i64,
        attempts: i32,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        diesel::update(
            replication_outbox::table
                .filter(replication_outbox::primary_secret_id.eq(primary_secret_id))
                .filter(replication_outbox::region.eq(region))
                .filter(replication_outbox::seq.le(seq)),
        )
        .set((
            replication_outbox::attempts.eq(attempts),
            replication_outbox::next_attempt_at.eq(next_attempt_at),
            replication_outbox::last_error.eq(error),
        ))
        .execute(self.conn)
        .map_err(|e| self.db(e))?;
        // The changes enqueued during that delivery wait with their group.
        diesel::update(
            replication_outbox::table
                .filter(replication_outbox::primary_secret_id.eq(primary_secret_id))
                .filter(replication_outbox::region.eq(region))
                .filter(replication_outbox::seq.gt(seq)),
        )
        .set(replication_outbox::next_attempt_at.eq(next_attempt_at))
        .execute(self.conn)
        .map(|_| ())
        .map_err(|e| self.db(e))
    }

    /// Per region: the number of undelivered changes and the oldest one's time.
    pub fn outbox_depths(&mut self) -> Result<Vec<(String, i64, Option<i64>)>, StoreError> {
        use diesel::dsl::{count_star, min};
        replication_outbox::table
            .group_by(replication_outbox::region)
            .select((
                replication_outbox::region,
                count_star(),
                min(replication_outbox::created_at),
            ))
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    /// The oldest undelivered change of a (secret, region): its time, attempts and last error.
    ///
    /// Asked on every write of a primary replicated to a peer: two statements diesel keeps
    /// prepared (the group's first sequence number, an aggregate read from the end of the
    /// `replication_outbox_target` range, then that row by its key), not `ORDER BY seq
    /// LIMIT 1`, whose bound LIMIT makes SQLite prepare the statement again on every
    /// execution (see `store::secrets`).
    pub fn outbox_oldest(
        &mut self,
        primary_secret_id: &str,
        region: &str,
    ) -> Result<Option<OutboxRow>, StoreError> {
        let first: Option<i64> = native!(&mut *self.conn, |c| replication_outbox::table
            .filter(replication_outbox::primary_secret_id.eq(primary_secret_id))
            .filter(replication_outbox::region.eq(region))
            .select(diesel::dsl::min(replication_outbox::seq))
            .get_result(c))
        .map_err(|e| self.db(e))?;
        let Some(seq) = first else {
            return Ok(None);
        };
        native!(&mut *self.conn, |c| replication_outbox::table
            .find(seq)
            .select(OutboxRow::as_select())
            .get_result(c)
            .optional())
        .map_err(|e| self.db(e))
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
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
        }
    }

    fn ids(rows: &[OutboxRow]) -> Vec<&str> {
        rows.iter().map(|r| r.primary_secret_id.as_str()).collect()
    }

    /// A secret whose delivery failed keeps being written: its later changes wait with it,
    /// and the due query still finds the other secrets' changes behind them.
    #[test]
    fn a_group_in_back_off_does_not_hide_the_due_groups_behind_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display())).unwrap();
        store
            .write_blocking(|tx| -> Result<(), ApiError> {
                let now = 1_000;
                tx.enqueue_outbox(&change("a", now))?;
                let first = tx.outbox_oldest("a", "eu-west-1")?.unwrap();
                tx.outbox_failed("a", "eu-west-1", first.seq, 1, now + 10_000, "down")?;
                for _ in 0..20 {
                    tx.enqueue_outbox(&change("a", now + 1))?;
                }
                tx.enqueue_outbox(&change("b", now + 2))?;
                let due = tx.outbox_due("eu-west-1", now + 3, 1)?;
                assert_eq!(ids(&due), vec!["b"]);
                // Once its back-off is over, `a` is due with its latest change.
                let due = tx.outbox_due("eu-west-1", now + 10_000, 4)?;
                assert_eq!(ids(&due), vec!["a", "b"]);
                assert_eq!(due[0].attempts, 1);
                assert_eq!(due[0].seq, first.seq + 20);
                Ok(())
            })
            .unwrap();
    }

    #[derive(diesel::QueryableByName)]
    struct PlanRow {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }

    /// The due query reads an index range on (region, next_attempt_at): with a dead peer the
    /// outbox holds every change since, all in back-off, and a scan of the region's rows
    /// every 100 ms would cost the primary's writes.
    #[test]
    fn the_due_query_reads_an_index_range_of_due_changes() {
        use diesel::RunQueryDsl;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display())).unwrap();
        let due = replication_outbox::table
            .filter(replication_outbox::region.eq("eu-west-1"))
            .filter(replication_outbox::next_attempt_at.le(5_i64))
            .order(replication_outbox::seq.asc())
            .select((
                replication_outbox::primary_secret_id,
                replication_outbox::region,
            ))
            .limit(64);
        let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&due)
            .to_string()
            .split(" -- ")
            .next()
            .unwrap()
            .replace('?', "1");
        let plan = store
            .read_blocking(move |tx| {
                Ok(native!(&mut *tx.conn, |c| diesel::sql_query(format!(
                    "EXPLAIN QUERY PLAN {sql}"
                ))
                .load::<PlanRow>(c))
                .unwrap())
            })
            .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|r| r.detail).collect();
        assert!(
            plan.iter()
                .any(|d| d.contains("replication_outbox_due") && d.contains("next_attempt_at<")),
            "{plan:?}"
        );
    }
}
