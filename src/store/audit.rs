//! Audit rows: append to a chain, read back (by chain order or by query), digests and
//! anchors, pruning.

use diesel::prelude::*;

use super::conn::AnyConnection;
use super::fixed::{Arg, Fixed, FixedSql};
use super::rows::{
    resource_short_name, AuditDigestRow, AuditFilter, AuditLookupRow, AuditRow, NewAuditRow,
};
use super::schema::{
    audit_digests, audit_events, audit_lookup, audit_lookup_blocks, audit_lookup_terms,
};

/// Apply an [`AuditFilter`]'s conditions (all but the event id) to a boxed query on a table
/// with the audit query columns (`audit_events` or `audit_lookup`, as `$a`).
macro_rules! audit_filters {
    ($q:ident, $a:ident, $f:expr, $sqlite:expr) => {{
        let f: &AuditFilter = $f;
        if let Some(v) = &f.account_id {
            $q = $q.filter($a::account_id.eq(v.clone()));
        }
        if let Some(v) = &f.event_name {
            $q = $q.filter($a::event_name.eq(v.clone()));
        }
        if let Some(v) = &f.event_source {
            $q = $q.filter($a::event_source.eq(v.clone()));
        }
        if let Some(v) = f.read_only {
            $q = $q.filter($a::read_only.eq(v));
        }
        if let Some(v) = &f.user_name {
            $q = $q.filter($a::user_name.eq(v.clone()));
        }
        if let Some(v) = &f.access_key_id {
            $q = $q.filter($a::access_key_id.eq(v.clone()));
        }
        if let Some(v) = &f.resource_type {
            $q = $q.filter($a::resource_type.eq(v.clone()));
        }
        if let Some(v) = &f.resource_name {
            $q = if v.starts_with("arn:") {
                $q.filter($a::resource_arn.eq(v.clone()))
            } else {
                $q.filter($a::resource_name.eq(v.clone()))
            };
        }
        if let Some(p) = &f.resource_prefix {
            let arn = p.starts_with("arn:");
            $q = match ($sqlite, arn) {
                // BINARY collation: a range is an exact, index-friendly prefix match.
                (true, true) => $q
                    .filter($a::resource_arn.ge(p.clone()))
                    .filter($a::resource_arn.lt(prefix_upper(p))),
                (true, false) => $q
                    .filter($a::resource_name.ge(p.clone()))
                    .filter($a::resource_name.lt(prefix_upper(p))),
                // PostgreSQL collations need not order by bytes: LIKE is exact there.
                (false, true) => $q.filter($a::resource_arn.like(like_prefix(p)).escape('\\')),
                (false, false) => $q.filter($a::resource_name.like(like_prefix(p)).escape('\\')),
            };
        }
        if let Some(v) = &f.principal_arn {
            $q = $q.filter($a::principal_arn.eq(v.clone()));
        }
        if f.denied_only {
            // The evaluator says which kind of deny; "Deny" is what older records say.
            $q = $q.filter($a::decision.eq_any(DENIALS));
        }
        if let Some(v) = &f.error_code {
            $q = $q.filter($a::error_code.eq(v.clone()));
        }
        if let Some(v) = &f.source_ip {
            $q = $q.filter($a::source_ip.eq(v.clone()));
        }
        if let Some(v) = f.since_ms {
            $q = $q.filter($a::event_time.ge(v));
        }
        if let Some(v) = f.until_ms {
            $q = $q.filter($a::event_time.le(v));
        }
        if let Some((t, c, s)) = &f.before {
            $q = $q.filter(
                $a::event_time.le(*t).and(
                    $a::event_time
                        .lt(*t)
                        .or($a::chain_id.lt(c.clone()))
                        .or($a::chain_id.eq(c.clone()).and($a::seq.lt(*s))),
                ),
            );
        }
    }};
}
use super::{StoreError, Tx};

impl Tx<'_> {
    /// The last record of a chain (highest sequence number).
    pub fn last_audit(&mut self, chain_id: &str) -> Result<Option<AuditRow>, StoreError> {
        audit_events::table
            .filter(audit_events::chain_id.eq(chain_id))
            .order(audit_events::seq.desc())
            .select(AuditRow::as_select())
            .first(self.conn)
            .optional()
            .map_err(|e| self.db(e))
    }

    /// `(seq, hash)` of the last record of a chain.
    pub fn audit_head(&mut self, chain_id: &str) -> Result<Option<(i64, String)>, StoreError> {
        audit_events::table
            .filter(audit_events::chain_id.eq(chain_id))
            .order(audit_events::seq.desc())
            .select((audit_events::seq, audit_events::hash))
            .first(self.conn)
            .optional()
            .map_err(|e| self.db(e))
    }

    /// Insert many records in order (see [`Tx::insert_new_audits`]).
    pub fn insert_audits(&mut self, rows: &[AuditRow]) -> Result<(), StoreError> {
        let rows: Vec<NewAuditRow<'_>> = rows.iter().map(AuditRow::as_new).collect();
        self.insert_new_audits(&rows)
    }

    /// Insert many records in order, in multi-row INSERTs of 16, then 4, then 1 row, from
    /// rows that borrow their strings. Each of the three is a [`Fixed`] statement: diesel
    /// prepares it once per connection and keys its cache by type, so it is neither rebuilt
    /// nor re-prepared per record or per commit. (diesel's own batch insert caches only by a
    /// `'static` row type, one that owns its strings: the writer would copy every record's
    /// text and columns to build it. A per-row insert with `None`s as DEFAULT makes diesel
    /// build the SQL of every record, measured at ~15 % of the audit writer; a `sql_query` is
    /// never cached.)
    /// PostgreSQL also saves a round trip per row.
    pub fn insert_new_audits(&mut self, rows: &[NewAuditRow<'_>]) -> Result<(), StoreError> {
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(16 * AUDIT_INSERT_COLUMNS);
        let mut rest = rows;
        while !rest.is_empty() {
            let n = if rest.len() >= 16 {
                16
            } else if rest.len() >= 4 {
                4
            } else {
                1
            };
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            args.clear();
            for r in chunk {
                args.extend(audit_insert_args(r));
            }
            let done = native!(self.conn, |c| match n {
                16 => Fixed::<InsertAudits<16>>::new(&args).execute(c),
                4 => Fixed::<InsertAudits<4>>::new(&args).execute(c),
                _ => Fixed::<InsertAudits<1>>::new(&args).execute(c),
            });
            done.map_err(|e| self.db(e))?;
        }
        Ok(())
    }

    /// SQLite (where the chain is a file of its own): keep in the main database a copy of
    /// record `seq` of `chain`, which this write transaction has just inserted with its
    /// change (should the chain file's commit not follow the main database's, the copy
    /// is appended to the chain at the next start, see [`Tx::adopt_pending_audits`]). Also
    /// drops the copies of records through `committed`, which the chain file holds. A no-op
    /// on PostgreSQL, where the change and its record are one transaction in one database.
    pub fn keep_pending_audits(
        &mut self,
        chain: &str,
        seq: i64,
        committed: Option<i64>,
    ) -> Result<(), StoreError> {
        let AnyConnection::Sqlite(c) = &mut *self.conn else {
            return Ok(());
        };
        use super::conn::{DropPending, KeepPending};
        use super::fixed::{Arg, Fixed};
        let mut r = Fixed::<KeepPending>::new(&[Arg::Text(chain), Arg::Int(seq)])
            .execute(c)
            .map(|_| ());
        if let (Ok(()), Some(through)) = (&r, committed) {
            r = Fixed::<DropPending>::new(&[Arg::Text(chain), Arg::Int(through)])
                .execute(c)
                .map(|_| ());
        }
        r.map_err(|e| self.db(e))
    }

    /// SQLite: append to their chains the write records whose change committed but whose
    /// chain insert did not (see [`Tx::keep_pending_audits`]); for an appender that does not
    /// know where its chain ends (after a start, or a commit of unknown outcome). The copies
    /// stay in the main database until a later write transaction drops them, once this one
    /// is known committed: dropped here, they would be lost when the chain file's commit
    /// fails after the main file's. A no-op on PostgreSQL.
    pub fn adopt_pending_audits(&mut self) -> Result<(), StoreError> {
        let AnyConnection::Sqlite(c) = &mut *self.conn else {
            return Ok(());
        };
        use diesel::connection::SimpleConnection;
        c.batch_execute(&super::conn::ADOPT_PENDING_SQL)
            .map_err(|e| self.db(e))
    }

    /// A chain's records in order, from `after_seq` (exclusive), at most `limit`.
    pub fn audit_range(
        &mut self,
        chain_id: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        audit_events::table
            .filter(audit_events::chain_id.eq(chain_id))
            .filter(audit_events::seq.gt(after_seq))
            .order(audit_events::seq.asc())
            .limit(limit)
            .select(AuditRow::as_select())
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    /// One record of a chain.
    pub fn audit_record(
        &mut self,
        chain_id: &str,
        seq: i64,
    ) -> Result<Option<AuditRow>, StoreError> {
        audit_events::table
            .filter(audit_events::chain_id.eq(chain_id))
            .filter(audit_events::seq.eq(seq))
            .select(AuditRow::as_select())
            .first(self.conn)
            .optional()
            .map_err(|e| self.db(e))
    }

    /// Every chain id present (with records, digests or anchors).
    pub fn audit_chains(&mut self) -> Result<Vec<String>, StoreError> {
        let mut chains: Vec<String> = audit_events::table
            .select(audit_events::chain_id)
            .distinct()
            .load(self.conn)
            .map_err(|e| self.db(e))?;
        let signed: Vec<String> = audit_digests::table
            .select(audit_digests::chain_id)
            .distinct()
            .load(self.conn)
            .map_err(|e| self.db(e))?;
        chains.extend(signed);
        chains.sort();
        chains.dedup();
        Ok(chains)
    }

    /// Records matching `f`, newest first (`event_time`, then chain, then seq, descending).
    /// Reads the lookup index, so bring it up to date first ([`super::Store::query_audit`]);
    /// an event id is looked up on the chain table itself.
    pub fn query_audit_index(&mut self, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let sqlite = matches!(self.conn, AnyConnection::Sqlite(_));
        if f.event_id.is_some() || !f.has_lookup_attribute() {
            use audit_events as a;
            let mut q = a::table.select(AuditRow::as_select()).into_boxed();
            audit_filters!(q, a, f, sqlite);
            if let Some(v) = &f.event_id {
                q = q.filter(a::event_id.eq(v.clone()));
            }
            return q
                .order((a::event_time.desc(), a::chain_id.desc(), a::seq.desc()))
                .limit(f.limit.max(0))
                .load(self.conn)
                .map_err(|e| self.db(e));
        }
        let keys = self.lookup_by_block(f, sqlite)?;
        self.audit_rows_by_key(&keys)
    }

    /// The keys of the newest `f.limit` lookup entries matching `f`, block by block (see
    /// `sql/audit_lookup.sql`): the blocks that hold every term `f` names (all blocks when it
    /// names none) are visited from the latest event time down, each one scanned by primary
    /// key, and the search stops at a block whose records are all older than the last of
    /// `f.limit` found.
    fn lookup_by_block(
        &mut self,
        f: &AuditFilter,
        sqlite: bool,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        use audit_lookup as a;
        use audit_lookup_blocks as b;
        let limit = usize::try_from(f.limit).unwrap_or(0);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let newest = match (f.until_ms, &f.before) {
            (Some(u), Some((t, _, _))) => Some(u.min(*t)),
            (u, t) => u.or(t.as_ref().map(|(t, _, _)| *t)),
        };
        let mut q = b::table
            .select((b::chain_id, b::blk, b::max_time))
            .into_boxed();
        if let Some(lo) = f.since_ms {
            q = q.filter(b::max_time.ge(lo));
        }
        if let Some(hi) = newest {
            q = q.filter(b::min_time.le(hi));
        }
        let mut blocks: Vec<(String, i64, i64)> = q.load(self.conn).map_err(|e| self.db(e))?;
        for term in filter_terms(f) {
            let mut holding: std::collections::HashMap<String, std::collections::HashSet<i64>> =
                std::collections::HashMap::new();
            let rows: Vec<(String, i64)> = audit_lookup_terms::table
                .filter(audit_lookup_terms::term.eq(term))
                .select((audit_lookup_terms::chain_id, audit_lookup_terms::blk))
                .load(self.conn)
                .map_err(|e| self.db(e))?;
            for (chain, blk) in rows {
                holding.entry(chain).or_default().insert(blk);
            }
            blocks.retain(|(c, blk, _)| holding.get(c).is_some_and(|b| b.contains(blk)));
        }
        blocks.sort_by_key(|b| std::cmp::Reverse(b.2));
        // (event_time, chain_id, seq), newest first.
        let mut found: Vec<(i64, String, i64)> = Vec::new();
        for (chain, blk, max_time) in blocks {
            if found.len() >= limit && found.get(limit - 1).is_some_and(|w| max_time < w.0) {
                break;
            }
            let first = blk.saturating_mul(LOOKUP_BLOCK);
            let mut q = a::table
                .select((a::event_time, a::chain_id, a::seq))
                .filter(a::chain_id.eq(chain))
                .filter(a::seq.between(first, first.saturating_add(LOOKUP_BLOCK - 1)))
                .into_boxed();
            audit_filters!(q, a, f, sqlite);
            let rows: Vec<(i64, String, i64)> = q
                .order((a::event_time.desc(), a::chain_id.desc(), a::seq.desc()))
                .limit(f.limit)
                .load(self.conn)
                .map_err(|e| self.db(e))?;
            if rows.is_empty() {
                continue;
            }
            found.extend(rows);
            found.sort_by(|x, y| y.cmp(x));
            found.truncate(limit);
        }
        Ok(found.into_iter().map(|(_, c, s)| (c, s)).collect())
    }

    /// The records at `keys`, in that order (keys whose record is gone are skipped: the
    /// lookup index may still list records retention just deleted).
    fn audit_rows_by_key(&mut self, keys: &[(String, i64)]) -> Result<Vec<AuditRow>, StoreError> {
        let mut by_chain: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
        for (c, s) in keys {
            by_chain.entry(c.as_str()).or_default().push(*s);
        }
        let mut found: std::collections::HashMap<(String, i64), AuditRow> =
            std::collections::HashMap::with_capacity(keys.len());
        for (chain, seqs) in by_chain {
            for part in seqs.chunks(5_000) {
                let rows: Vec<AuditRow> = audit_events::table
                    .filter(audit_events::chain_id.eq(chain))
                    .filter(audit_events::seq.eq_any(part))
                    .select(AuditRow::as_select())
                    .load(self.conn)
                    .map_err(|e| self.db(e))?;
                for r in rows {
                    found.insert((r.chain_id.clone(), r.seq), r);
                }
            }
        }
        Ok(keys.iter().filter_map(|k| found.remove(k)).collect())
    }

    /// Every chain with records, by an index seek per chain (no scan of the records).
    pub fn audit_chain_ids(&mut self) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = Vec::new();
        loop {
            let mut q = audit_events::table
                .select(diesel::dsl::min(audit_events::chain_id))
                .into_boxed();
            if let Some(last) = out.last() {
                q = q.filter(audit_events::chain_id.gt(last.clone()));
            }
            let next: Option<String> = q.get_result(self.conn).map_err(|e| self.db(e))?;
            match next {
                Some(c) => out.push(c),
                None => return Ok(out),
            }
        }
    }

    /// Add up to `max_rows` of `chain_id`'s records that are not yet in the lookup index to
    /// it, and move the chain's mark. Returns whether records remain to be indexed.
    ///
    /// The mark claims the index's write lock first (SQLite: the index file's lock only,
    /// never the main database's), then reads where the chain ends: records are numbered
    /// under the chain's tail lock, which is held through their commit, so once a sequence
    /// number is visible every lower one is too. Idempotent: two indexers (the server, a
    /// CLI query) may run at once.
    pub fn index_audit_chain(&mut self, chain_id: &str, max_rows: i64) -> Result<bool, StoreError> {
        use super::schema::audit_index_state as st;
        let claimed = native!(self.conn, |c| diesel::insert_into(st::table)
            .values((st::chain_id.eq(chain_id), st::indexed_through.eq(0_i64)))
            .on_conflict_do_nothing()
            .execute(c));
        claimed.map_err(|e| self.db(e))?;
        let (mut lo, lo_hash): (i64, String) = st::table
            .filter(st::chain_id.eq(chain_id))
            .select((st::indexed_through, st::indexed_hash))
            .get_result(self.conn)
            .map_err(|e| self.db(e))?;
        if lo > 0 && !self.index_matches_chain(chain_id, lo, &lo_hash)? {
            tracing::warn!(chain = %chain_id, "the audit lookup index does not match its chain; rebuilding it");
            diesel::delete(audit_lookup::table.filter(audit_lookup::chain_id.eq(chain_id)))
                .execute(self.conn)
                .map_err(|e| self.db(e))?;
            diesel::delete(
                audit_lookup_blocks::table.filter(audit_lookup_blocks::chain_id.eq(chain_id)),
            )
            .execute(self.conn)
            .map_err(|e| self.db(e))?;
            diesel::delete(
                audit_lookup_terms::table.filter(audit_lookup_terms::chain_id.eq(chain_id)),
            )
            .execute(self.conn)
            .map_err(|e| self.db(e))?;
            diesel::update(st::table.filter(st::chain_id.eq(chain_id)))
                .set((st::indexed_through.eq(0_i64), st::indexed_hash.eq("")))
                .execute(self.conn)
                .map_err(|e| self.db(e))?;
            lo = 0;
        }
        let end: Option<i64> = audit_events::table
            .filter(audit_events::chain_id.eq(chain_id))
            .filter(audit_events::seq.gt(lo))
            .filter(audit_events::seq.le(lo.saturating_add(max_rows)))
            .select(diesel::dsl::max(audit_events::seq))
            .get_result(self.conn)
            .map_err(|e| self.db(e))?;
        let Some(hi) = end else {
            return Ok(false);
        };
        let sqlite = matches!(self.conn, AnyConnection::Sqlite(_));
        let statements = if sqlite {
            [COPY_TO_LOOKUP_SQLITE, BLOCK_BOUNDS_SQLITE, TERMS_SQLITE]
        } else {
            [COPY_TO_LOOKUP_PG, BLOCK_BOUNDS_PG, TERMS_PG]
        };
        for sql in statements {
            let done = native!(self.conn, |c| {
                diesel::sql_query(sql)
                    .bind::<diesel::sql_types::Text, _>(chain_id)
                    .bind::<diesel::sql_types::BigInt, _>(lo)
                    .bind::<diesel::sql_types::BigInt, _>(hi)
                    .execute(c)
            });
            done.map_err(|e| self.db(e))?;
        }
        let hi_hash: String = audit_events::table
            .filter(audit_events::chain_id.eq(chain_id))
            .filter(audit_events::seq.eq(hi))
            .select(audit_events::hash)
            .get_result(self.conn)
            .map_err(|e| self.db(e))?;
        // Only forward: a concurrent indexer may have gone further already.
        diesel::update(
            st::table
                .filter(st::chain_id.eq(chain_id))
                .filter(st::indexed_through.lt(hi)),
        )
        .set((st::indexed_through.eq(hi), st::indexed_hash.eq(hi_hash)))
        .execute(self.conn)
        .map_err(|e| self.db(e))?;
        Ok(hi >= lo.saturating_add(max_rows))
    }

    /// Whether the lookup index's mark (`seq` with `hash`) still describes the chain: the
    /// record there has that hash, or it was pruned (the chain goes on past it). A chain that
    /// ends before the mark, or holds another record there, was replaced (restored from an
    /// older backup, say) and its index must be rebuilt.
    fn index_matches_chain(
        &mut self,
        chain_id: &str,
        seq: i64,
        hash: &str,
    ) -> Result<bool, StoreError> {
        let at: Option<String> = audit_events::table
            .filter(audit_events::chain_id.eq(chain_id))
            .filter(audit_events::seq.eq(seq))
            .select(audit_events::hash)
            .get_result(self.conn)
            .optional()
            .map_err(|e| self.db(e))?;
        if let Some(h) = at {
            return Ok(h == hash);
        }
        let beyond: Option<i64> = audit_events::table
            .filter(audit_events::chain_id.eq(chain_id))
            .filter(audit_events::seq.gt(seq))
            .select(diesel::dsl::min(audit_events::seq))
            .get_result(self.conn)
            .map_err(|e| self.db(e))?;
        Ok(beyond.is_some())
    }

    /// A chain's lookup index entries `after_seq < seq <= through_seq`, in seq order (what
    /// `audit verify` compares with the chain).
    pub fn audit_lookup_range(
        &mut self,
        chain_id: &str,
        after_seq: i64,
        through_seq: i64,
    ) -> Result<Vec<AuditLookupRow>, StoreError> {
        audit_lookup::table
            .filter(audit_lookup::chain_id.eq(chain_id))
            .filter(audit_lookup::seq.gt(after_seq))
            .filter(audit_lookup::seq.le(through_seq))
            .order(audit_lookup::seq.asc())
            .select(AuditLookupRow::as_select())
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    /// How far a chain is in the lookup index (every record with `seq <=` it is in it), if
    /// it was ever indexed.
    pub fn audit_index_mark(&mut self, chain_id: &str) -> Result<Option<i64>, StoreError> {
        use super::schema::audit_index_state as st;
        st::table
            .filter(st::chain_id.eq(chain_id))
            .select(st::indexed_through)
            .first(self.conn)
            .optional()
            .map_err(|e| self.db(e))
    }

    /// A chain's lookup blocks: `(blk, min_time, max_time)`.
    pub fn audit_lookup_blocks(
        &mut self,
        chain_id: &str,
    ) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        use audit_lookup_blocks as b;
        b::table
            .filter(b::chain_id.eq(chain_id))
            .select((b::blk, b::min_time, b::max_time))
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    /// Which of `terms` block `blk` of a chain's lookup index holds (a point look-up per
    /// term, by primary key).
    pub fn audit_lookup_terms_in(
        &mut self,
        chain_id: &str,
        blk: i64,
        terms: &[String],
    ) -> Result<Vec<String>, StoreError> {
        use audit_lookup_terms as t;
        let mut out = Vec::with_capacity(terms.len());
        for part in terms.chunks(500) {
            let found: Vec<String> = t::table
                .filter(t::chain_id.eq(chain_id))
                .filter(t::blk.eq(blk))
                .filter(t::term.eq_any(part))
                .select(t::term)
                .load(self.conn)
                .map_err(|e| self.db(e))?;
            out.extend(found);
        }
        Ok(out)
    }

    /// Drop a chain's lookup index (entries, blocks, terms, mark): the next query or indexer
    /// pass rebuilds it from the chain.
    pub fn reset_audit_index(&mut self, chain_id: &str) -> Result<(), StoreError> {
        use super::schema::audit_index_state as st;
        diesel::delete(audit_lookup::table.filter(audit_lookup::chain_id.eq(chain_id)))
            .execute(self.conn)
            .map_err(|e| self.db(e))?;
        diesel::delete(
            audit_lookup_blocks::table.filter(audit_lookup_blocks::chain_id.eq(chain_id)),
        )
        .execute(self.conn)
        .map_err(|e| self.db(e))?;
        diesel::delete(audit_lookup_terms::table.filter(audit_lookup_terms::chain_id.eq(chain_id)))
            .execute(self.conn)
            .map_err(|e| self.db(e))?;
        diesel::delete(st::table.filter(st::chain_id.eq(chain_id)))
            .execute(self.conn)
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    pub fn insert_audit_digest(&mut self, row: &AuditDigestRow) -> Result<(), StoreError> {
        diesel::insert_into(audit_digests::table)
            .values(row)
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    /// A chain's digests and anchors, by kind then `seq_to`.
    pub fn audit_digests(&mut self, chain_id: &str) -> Result<Vec<AuditDigestRow>, StoreError> {
        audit_digests::table
            .filter(audit_digests::chain_id.eq(chain_id))
            .order((audit_digests::kind.asc(), audit_digests::seq_to.asc()))
            .select(AuditDigestRow::as_select())
            .load(self.conn)
            .map_err(|e| self.db(e))
    }

    /// The latest digest (or anchor) of a chain.
    pub fn last_audit_digest(
        &mut self,
        chain_id: &str,
        kind: &str,
    ) -> Result<Option<AuditDigestRow>, StoreError> {
        audit_digests::table
            .filter(audit_digests::chain_id.eq(chain_id))
            .filter(audit_digests::kind.eq(kind))
            .order(audit_digests::seq_to.desc())
            .select(AuditDigestRow::as_select())
            .first(self.conn)
            .optional()
            .map_err(|e| self.db(e))
    }

    /// The lowest seq of a chain whose event time is at or after `at_ms`.
    pub fn first_audit_seq_since(
        &mut self,
        chain_id: &str,
        at_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        audit_events::table
            .filter(audit_events::chain_id.eq(chain_id))
            .filter(audit_events::event_time.ge(at_ms))
            .select(diesel::dsl::min(audit_events::seq))
            .first(self.conn)
            .map_err(|e| self.db(e))
    }

    /// Delete a chain's records up to and including `seq`.
    /// (Their lookup index rows too: derived data, deleted in the same transaction.)
    pub fn delete_audit_through(&mut self, chain_id: &str, seq: i64) -> Result<usize, StoreError> {
        let records = diesel::delete(
            audit_events::table
                .filter(audit_events::chain_id.eq(chain_id))
                .filter(audit_events::seq.le(seq)),
        )
        .execute(self.conn)
        .map_err(|e| self.db(e))?;
        diesel::delete(
            audit_lookup::table
                .filter(audit_lookup::chain_id.eq(chain_id))
                .filter(audit_lookup::seq.le(seq)),
        )
        .execute(self.conn)
        .map_err(|e| self.db(e))?;
        // Blocks all of whose records are gone (a partly pruned block keeps its bounds and
        // terms: they only ever widen a search).
        let gone = seq.saturating_add(1) / LOOKUP_BLOCK;
        diesel::delete(
            audit_lookup_blocks::table
                .filter(audit_lookup_blocks::chain_id.eq(chain_id))
                .filter(audit_lookup_blocks::blk.lt(gone)),
        )
        .execute(self.conn)
        .map_err(|e| self.db(e))?;
        diesel::delete(
            audit_lookup_terms::table
                .filter(audit_lookup_terms::chain_id.eq(chain_id))
                .filter(audit_lookup_terms::blk.lt(gone)),
        )
        .execute(self.conn)
        .map_err(|e| self.db(e))?;
        Ok(records)
    }
}

/// The columns of [`InsertAudits`], in the order [`audit_insert_args`] binds them.
const AUDIT_INSERT_HEAD: &str = "INSERT INTO audit_events (chain_id, seq, event_id, event_time, \
     event_name, principal_arn, access_key_id, source_ip, resource_arn, error_code, decision, \
     record, prev_hash, hash, account_id, event_source, read_only, user_name, resource_type, \
     resource_name) VALUES (";

/// How many columns [`AUDIT_INSERT_HEAD`] names.
const AUDIT_INSERT_COLUMNS: usize = 20;

/// A row's binds, in [`AUDIT_INSERT_HEAD`]'s column order.
fn audit_insert_args<'a>(r: &NewAuditRow<'a>) -> [Arg<'a>; AUDIT_INSERT_COLUMNS] {
    [
        Arg::Text(r.chain_id),
        Arg::Int(r.seq),
        Arg::Text(r.event_id),
        Arg::Int(r.event_time),
        Arg::Text(r.event_name),
        Arg::OptText(r.principal_arn),
        Arg::OptText(r.access_key_id),
        Arg::OptText(r.source_ip),
        Arg::OptText(r.resource_arn),
        Arg::OptText(r.error_code),
        Arg::Text(r.decision),
        Arg::Text(r.record),
        Arg::Text(r.prev_hash),
        Arg::Text(r.hash),
        Arg::OptText(r.account_id),
        Arg::OptText(r.event_source),
        Arg::OptBool(r.read_only),
        Arg::OptText(r.user_name),
        Arg::OptText(r.resource_type),
        Arg::OptText(r.resource_name),
    ]
}

/// The multi-row INSERT of `N` audit rows (`N` is 1, 4 or 16), a [`Fixed`] statement.
struct InsertAudits<const N: usize>;

impl<const N: usize> FixedSql for InsertAudits<N> {
    fn pieces() -> &'static [&'static str] {
        static ONE: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
        static FOUR: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
        static SIXTEEN: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
        // Another N gets no pieces, and `Fixed` answers an error (never the wrong text).
        let cell = match N {
            1 => &ONE,
            4 => &FOUR,
            16 => &SIXTEEN,
            _ => return &[],
        };
        cell.get_or_init(|| audit_insert_pieces(N))
    }
}

/// The text of a `rows`-row INSERT around its binds: the head before the first, `), (`
/// between rows, `, ` between columns, `)` at the end.
fn audit_insert_pieces(rows: usize) -> Vec<&'static str> {
    let mut p = Vec::with_capacity(rows * AUDIT_INSERT_COLUMNS + 1);
    for row in 0..rows {
        for column in 0..AUDIT_INSERT_COLUMNS {
            p.push(match (row, column) {
                (0, 0) => AUDIT_INSERT_HEAD,
                (_, 0) => "), (",
                _ => ", ",
            });
        }
    }
    p.push(")");
    p
}

/// The query columns copied from the chain table into the lookup index.
macro_rules! lookup_columns {
    () => {
        "chain_id, seq, event_time, event_name, principal_arn, access_key_id, source_ip, \
         resource_arn, error_code, decision, account_id, event_source, read_only, user_name, \
         resource_type, resource_name"
    };
}

/// Sequence numbers per lookup-index block (`sql/audit_lookup.sql`): `blk = seq / 1024`.
const LOOKUP_BLOCK: i64 = 1024;

/// [`LOOKUP_BLOCK`] as SQL text (a test keeps them equal).
macro_rules! block {
    () => {
        "1024"
    };
}

/// The decisions `AuditFilter::denied_only` selects: the evaluator says which kind of deny,
/// "Deny" is what older records say.
const DENIALS: [&str; 3] = ["ImplicitDeny", "ExplicitDeny", "Deny"];

/// The lookup block a record's `seq` falls in.
pub fn lookup_block(seq: i64) -> i64 {
    seq / LOOKUP_BLOCK
}

/// The terms the indexer (`TERMS_SQLITE`, `TERMS_PG`) writes for one lookup entry's block:
/// `kind:value` for each column it indexes that has a value, and `d:` for a decision other
/// than `Allow`.
pub fn record_terms(r: &AuditLookupRow) -> Vec<String> {
    let mut t = Vec::with_capacity(8);
    let columns: [(&str, Option<&str>); 7] = [
        ("n", Some(r.event_name.as_str())),
        ("u", r.user_name.as_deref()),
        ("k", r.access_key_id.as_deref()),
        ("p", r.principal_arn.as_deref()),
        ("i", r.source_ip.as_deref()),
        ("e", r.error_code.as_deref()),
        ("r", r.resource_name.as_deref()),
    ];
    for (kind, v) in columns {
        if let Some(v) = v {
            t.push(format!("{kind}:{v}"));
        }
    }
    if r.decision != "Allow" {
        t.push("d:".to_owned());
    }
    t
}

/// The terms of the block-level index (`sql/audit_lookup.sql`) that a record with `f`'s
/// attributes carries; a block without one of them holds no match. Each kind of term is a
/// letter and a colon before the value (see [`terms_arms!`], which writes them). A resource is
/// indexed by its short name: a query by ARN looks for the blocks holding the ARN's short name
/// and filters by the ARN itself.
fn filter_terms(f: &AuditFilter) -> Vec<String> {
    let mut t = Vec::new();
    let mut add = |kind: &str, v: &Option<String>| {
        if let Some(v) = v {
            t.push(format!("{kind}:{v}"));
        }
    };
    add("n", &f.event_name);
    add("u", &f.user_name);
    add("k", &f.access_key_id);
    add("p", &f.principal_arn);
    add("i", &f.source_ip);
    add("e", &f.error_code);
    add(
        "r",
        &f.resource_name.as_deref().map(|v| {
            if v.starts_with("arn:") {
                resource_short_name(v)
            } else {
                v.to_owned()
            }
        }),
    );
    if f.denied_only {
        t.push("d:".to_owned());
    }
    t
}

/// What copying a record into the lookup index does with an entry already there for its
/// seq: replaces it with the record's columns. Entries past the index's mark are not
/// checked by `audit verify` (it checks what the mark covers), so whatever is there when
/// the indexer reaches them (one written into the index file by hand after the mark was
/// moved back, say) is derived again from the chain rather than kept.
macro_rules! lookup_upsert {
    () => {
        "ON CONFLICT (chain_id, seq) DO UPDATE SET event_time = excluded.event_time, \
         event_name = excluded.event_name, principal_arn = excluded.principal_arn, \
         access_key_id = excluded.access_key_id, source_ip = excluded.source_ip, \
         resource_arn = excluded.resource_arn, error_code = excluded.error_code, \
         decision = excluded.decision, account_id = excluded.account_id, \
         event_source = excluded.event_source, read_only = excluded.read_only, \
         user_name = excluded.user_name, resource_type = excluded.resource_type, \
         resource_name = excluded.resource_name"
    };
}

const COPY_TO_LOOKUP_SQLITE: &str = concat!(
    "INSERT INTO audit_lookup (",
    lookup_columns!(),
    ") SELECT ",
    lookup_columns!(),
    " FROM audit_events WHERE chain_id = ? AND seq > ? AND seq <= ? ",
    lookup_upsert!()
);

const COPY_TO_LOOKUP_PG: &str = concat!(
    "INSERT INTO audit_lookup (",
    lookup_columns!(),
    ") SELECT ",
    lookup_columns!(),
    " FROM audit_events WHERE chain_id = $1 AND seq > $2 AND seq <= $3 ",
    lookup_upsert!()
);

/// Widen the time bounds of the blocks that records `seq > lo AND seq <= hi` fall in (read
/// from their lookup rows, just copied: a chain row is ten times as wide).
const BLOCK_BOUNDS_SQLITE: &str = concat!(
    "INSERT INTO audit_lookup_blocks (chain_id, blk, min_time, max_time) \
     SELECT chain_id, seq / ",
    block!(),
    ", MIN(event_time), MAX(event_time) FROM audit_lookup \
     WHERE chain_id = ? AND seq > ? AND seq <= ? GROUP BY chain_id, seq / ",
    block!(),
    " ON CONFLICT (chain_id, blk) DO UPDATE SET \
     min_time = MIN(audit_lookup_blocks.min_time, excluded.min_time), \
     max_time = MAX(audit_lookup_blocks.max_time, excluded.max_time)"
);

const BLOCK_BOUNDS_PG: &str = concat!(
    "INSERT INTO audit_lookup_blocks (chain_id, blk, min_time, max_time) \
     SELECT chain_id, seq / ",
    block!(),
    ", MIN(event_time), MAX(event_time) FROM audit_lookup \
     WHERE chain_id = $1 AND seq > $2 AND seq <= $3 GROUP BY chain_id, seq / ",
    block!(),
    " ON CONFLICT (chain_id, blk) DO UPDATE SET \
     min_time = LEAST(audit_lookup_blocks.min_time, excluded.min_time), \
     max_time = GREATEST(audit_lookup_blocks.max_time, excluded.max_time)"
);

/// Record the terms of the lookup rows `seq > lo AND seq <= hi` (just copied) for their
/// blocks: one entry per distinct term per block. `$chain` and `$range` are the parameters'
/// placeholders (the chain is bound once and named twice: it is left out of the DISTINCT,
/// whose every comparison would otherwise compare its 36 bytes).
macro_rules! terms_sql {
    ($chain:literal, $range:literal) => {
        concat!(
            "WITH r AS (SELECT seq, event_name, user_name, access_key_id, principal_arn, \
             source_ip, error_code, resource_name, decision FROM audit_lookup WHERE chain_id = ",
            $chain,
            $range,
            ") INSERT INTO audit_lookup_terms (term, chain_id, blk) SELECT term, ",
            $chain,
            ", blk FROM (SELECT DISTINCT term, blk FROM (",
            terms_arms!(
                ("n", "event_name"),
                ("u", "user_name"),
                ("k", "access_key_id"),
                ("p", "principal_arn"),
                ("i", "source_ip"),
                ("e", "error_code"),
                ("r", "resource_name")
            ),
            "SELECT 'd:' AS term, seq / ",
            block!(),
            " AS blk FROM r WHERE decision <> 'Allow'",
            ") AS t WHERE term IS NOT NULL) AS d WHERE true ON CONFLICT DO NOTHING"
        )
    };
}

/// The kinds of term of [`terms_sql!`] that name a column, each followed by `UNION ALL`:
/// `kind:` and the column's value, where it has one (the letters [`filter_terms`] uses).
macro_rules! terms_arms {
    ($(($kind:literal, $column:literal)),+) => {
        concat!($(
            "SELECT '",
            $kind,
            ":' || ",
            $column,
            " AS term, seq / ",
            block!(),
            " AS blk FROM r UNION ALL ",
        )+)
    };
}

const TERMS_SQLITE: &str = terms_sql!("?1", " AND seq > ?2 AND seq <= ?3");

const TERMS_PG: &str = terms_sql!("$1", " AND seq > $2 AND seq <= $3");

/// The smallest string above every string that starts with `p` (in byte order).
fn prefix_upper(p: &str) -> String {
    format!("{p}\u{10FFFF}")
}

/// `p%` with LIKE's metacharacters escaped by `\`.
fn like_prefix(p: &str) -> String {
    let mut s = String::with_capacity(p.len() + 1);
    for c in p.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_size_is_the_same_in_rust_and_sql() {
        assert_eq!(block!(), LOOKUP_BLOCK.to_string());
        for sql in [BLOCK_BOUNDS_SQLITE, BLOCK_BOUNDS_PG, TERMS_SQLITE, TERMS_PG] {
            assert!(sql.contains(&format!("seq / {LOOKUP_BLOCK}")), "{sql}");
        }
    }

    /// Every kind of term a query may look for is one the indexer writes.
    #[test]
    fn the_indexer_writes_every_kind_of_term_a_query_names() {
        let f = AuditFilter {
            event_name: Some("x".into()),
            user_name: Some("x".into()),
            access_key_id: Some("x".into()),
            principal_arn: Some("x".into()),
            source_ip: Some("x".into()),
            error_code: Some("x".into()),
            resource_name: Some("x".into()),
            denied_only: true,
            ..AuditFilter::default()
        };
        let kinds = filter_terms(&f);
        assert_eq!(kinds.len(), 8);
        for sql in [TERMS_SQLITE, TERMS_PG] {
            assert_eq!(sql.matches(" UNION ALL ").count(), kinds.len() - 1, "{sql}");
            for term in &kinds {
                let kind = term.trim_end_matches('x');
                assert!(sql.contains(&format!("SELECT '{kind}'")), "{kind}: {sql}");
            }
        }
    }

    /// The multi-row INSERT has one bind per column per row, rows in parentheses; an
    /// unexpected row count gets no text (and `Fixed` then refuses it).
    #[test]
    fn the_audit_insert_has_a_bind_per_column_per_row() {
        for n in [1, 4, 16] {
            let pieces = audit_insert_pieces(n);
            assert_eq!(pieces.len(), n * AUDIT_INSERT_COLUMNS + 1);
            let sql = pieces.join("?");
            assert_eq!(sql.matches("), (").count(), n - 1, "{sql}");
            assert!(sql.ends_with("?)"), "{sql}");
        }
        let columns = AUDIT_INSERT_HEAD
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(cols, _)| cols.split(',').count());
        assert_eq!(columns, Some(AUDIT_INSERT_COLUMNS));
        assert_eq!(
            InsertAudits::<16>::pieces().len(),
            16 * AUDIT_INSERT_COLUMNS + 1
        );
        assert!(InsertAudits::<2>::pieces().is_empty());
    }

    /// A query's terms are the ones its matches were indexed under: a resource by its short
    /// name whether the query names the ARN or the name.
    #[test]
    fn a_filter_names_the_terms_its_matches_carry() {
        let f = AuditFilter {
            event_name: Some("GetSecretValue".into()),
            resource_name: Some("arn:aws:secretsmanager:us-east-1:1:secret:db/pw-AbCdEf".into()),
            denied_only: true,
            read_only: Some(true),
            ..AuditFilter::default()
        };
        assert_eq!(filter_terms(&f), ["n:GetSecretValue", "r:db/pw", "d:"]);
        let by_name = AuditFilter {
            resource_name: Some("db/pw".into()),
            ..AuditFilter::default()
        };
        assert_eq!(filter_terms(&by_name), ["r:db/pw"]);
        assert!(filter_terms(&AuditFilter::default()).is_empty());
    }
}
