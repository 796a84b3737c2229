//! Audit rows: append to a chain, read back.

use diesel::prelude::*;

use super::rows::AuditRow;
use super::schema::audit_events;
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

    pub fn insert_audit(&mut self, row: &AuditRow) -> Result<(), StoreError> {
        diesel::insert_into(audit_events::table)
            .values(row)
            .execute(self.conn)
            .map(|_| ())
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

    /// Every chain id present.
    pub fn audit_chains(&mut self) -> Result<Vec<String>, StoreError> {
        audit_events::table
            .select(audit_events::chain_id)
            .distinct()
            .load(self.conn)
            .map_err(|e| self.db(e))
    }
}
