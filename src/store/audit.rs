//! Audit rows: append to a chain, read back (by chain order or by query), digests and
//! anchors, pruning.

use diesel::prelude::*;

use super::conn::AnyConnection;
use super::rows::{AuditDigestRow, AuditFilter, AuditRow};
use super::schema::{audit_digests, audit_events};
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

    pub fn insert_audit(&mut self, row: &AuditRow) -> Result<(), StoreError> {
        diesel::insert_into(audit_events::table)
            .values(row)
            .execute(self.conn)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    /// Insert many records in order. (Multi-row INSERT is not available through diesel's
    /// `MultiConnection`; inside one transaction the per-row cost is small.)
    pub fn insert_audits(&mut self, rows: &[AuditRow]) -> Result<(), StoreError> {
        for row in rows {
            self.insert_audit(row)?;
        }
        Ok(())
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
    pub fn query_audit(&mut self, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        use audit_events as a;
        let sqlite = matches!(self.conn, AnyConnection::Sqlite(_));
        let mut q = a::table.select(AuditRow::as_select()).into_boxed();
        if let Some(v) = &f.account_id {
            q = if f.resource_name.is_some() {
                // `account_id || ''` cannot use an index: the planner takes the resource's
                // index and filters by account (there is no (account, resource) index).
                q.filter(a::account_id.concat("").eq(v.clone()))
            } else {
                q.filter(a::account_id.eq(v.clone()))
            };
        }
        if let Some(v) = &f.event_id {
            q = q.filter(a::event_id.eq(v.clone()));
        }
        if let Some(v) = &f.event_name {
            q = q.filter(a::event_name.eq(v.clone()));
        }
        if let Some(v) = &f.event_source {
            q = q.filter(a::event_source.eq(v.clone()));
        }
        if let Some(v) = f.read_only {
            q = q.filter(a::read_only.eq(v));
        }
        if let Some(v) = &f.user_name {
            q = q.filter(a::user_name.eq(v.clone()));
        }
        if let Some(v) = &f.access_key_id {
            q = q.filter(a::access_key_id.eq(v.clone()));
        }
        if let Some(v) = &f.resource_type {
            q = q.filter(a::resource_type.eq(v.clone()));
        }
        if let Some(v) = &f.resource_name {
            q = if v.starts_with("arn:") {
                q.filter(a::resource_arn.eq(v.clone()))
            } else {
                q.filter(a::resource_name.eq(v.clone()))
            };
        }
        if let Some(p) = &f.resource_prefix {
            let arn = p.starts_with("arn:");
            q = match (sqlite, arn) {
                // BINARY collation: a range is an exact, index-friendly prefix match.
                (true, true) => q
                    .filter(a::resource_arn.ge(p.clone()))
                    .filter(a::resource_arn.lt(prefix_upper(p))),
                (true, false) => q
                    .filter(a::resource_name.ge(p.clone()))
                    .filter(a::resource_name.lt(prefix_upper(p))),
                // PostgreSQL collations need not order by bytes: LIKE is exact there.
                (false, true) => q.filter(a::resource_arn.like(like_prefix(p)).escape('\\')),
                (false, false) => q.filter(a::resource_name.like(like_prefix(p)).escape('\\')),
            };
        }
        if let Some(v) = &f.principal_arn {
            q = q.filter(a::principal_arn.eq(v.clone()));
        }
        if f.denied_only {
            // The evaluator says which kind of deny; "Deny" is what older records say.
            q = q.filter(a::decision.eq_any(["ImplicitDeny", "ExplicitDeny", "Deny"]));
        }
        if let Some(v) = &f.error_code {
            q = q.filter(a::error_code.eq(v.clone()));
        }
        if let Some(v) = &f.source_ip {
            q = q.filter(a::source_ip.eq(v.clone()));
        }
        if let Some(v) = f.since_ms {
            q = q.filter(a::event_time.ge(v));
        }
        if let Some(v) = f.until_ms {
            q = q.filter(a::event_time.le(v));
        }
        if let Some((t, c, s)) = &f.before {
            q = q.filter(
                a::event_time.le(*t).and(
                    a::event_time
                        .lt(*t)
                        .or(a::chain_id.lt(c.clone()))
                        .or(a::chain_id.eq(c.clone()).and(a::seq.lt(*s))),
                ),
            );
        }
        q.order((a::event_time.desc(), a::chain_id.desc(), a::seq.desc()))
            .limit(f.limit.max(0))
            .load(self.conn)
            .map_err(|e| self.db(e))
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
    pub fn delete_audit_through(&mut self, chain_id: &str, seq: i64) -> Result<usize, StoreError> {
        diesel::delete(
            audit_events::table
                .filter(audit_events::chain_id.eq(chain_id))
                .filter(audit_events::seq.le(seq)),
        )
        .execute(self.conn)
        .map_err(|e| self.db(e))
    }
}

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
