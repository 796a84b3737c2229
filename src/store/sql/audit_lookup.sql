-- The audit trail's lookup index: one row per record of audit_events, the query columns
-- only, with the indexes LookupEvents and `strongroom audit query` use. Derived data, filled
-- in batches behind the chain (see `store::audit`); audit_index_state says how far each
-- chain is indexed. Queries with no lookup attribute (time only, or an event id) read the
-- chain table (its time and event id indexes). PostgreSQL: the migration
-- 2026-11-29-000000_audit_lookup holds these statements (keep them in step). SQLite: this lives
-- in its own database file beside the main one (`<database>-audit-index`), attached to every
-- connection, so that indexing never takes the main database's write lock; its
-- `user_version` says which version of these statements built it (see `store::conn`).
--
-- Resource-keyed entries are bucketed: `blk` is the record's block of 4,096 sequence numbers
-- (`seq / 4096`), and the resource indexes begin with (chain_id, blk). Keyed by resource alone,
-- each new record landed on a leaf of its own (one per secret: with 10,000 secrets, every
-- record dirtied two random pages, written to the WAL and again at the checkpoint); within the
-- current block, one indexer batch shares a few dozen pages. A query by resource seeks each
-- block from the newest, using audit_lookup_blocks' time bounds to stop early (a million
-- records are 245 blocks).
CREATE TABLE IF NOT EXISTS audit_lookup (
    chain_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    blk BIGINT NOT NULL,
    event_time BIGINT NOT NULL,
    event_name TEXT NOT NULL,
    principal_arn TEXT,
    access_key_id TEXT,
    source_ip TEXT,
    resource_arn TEXT,
    error_code TEXT,
    decision TEXT NOT NULL,
    account_id TEXT,
    event_source TEXT,
    read_only BOOLEAN,
    user_name TEXT,
    resource_type TEXT,
    resource_name TEXT,
    PRIMARY KEY (chain_id, seq)
) /*SQLITE: WITHOUT ROWID*/;
-- Each block's event time bounds (records are numbered at commit, so their times are only
-- nearly in order; the bounds let a newest-first query skip and stop soundly).
CREATE TABLE IF NOT EXISTS audit_lookup_blocks (
    chain_id TEXT NOT NULL,
    blk BIGINT NOT NULL,
    min_time BIGINT NOT NULL,
    max_time BIGINT NOT NULL,
    PRIMARY KEY (chain_id, blk)
);
-- indexed_hash: the hash of record indexed_through, so that an index that no longer matches its
-- chain (a database restored from an older backup beside a newer index file) is rebuilt.
CREATE TABLE IF NOT EXISTS audit_index_state (
    chain_id TEXT PRIMARY KEY NOT NULL,
    indexed_through BIGINT NOT NULL,
    indexed_hash TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_lookup_principal ON audit_lookup (principal_arn, event_time);
CREATE INDEX IF NOT EXISTS audit_lookup_resource ON audit_lookup (chain_id, blk, resource_arn, event_time);
CREATE INDEX IF NOT EXISTS audit_lookup_acct_time ON audit_lookup (account_id, event_time);
CREATE INDEX IF NOT EXISTS audit_lookup_acct_name ON audit_lookup (account_id, event_name, event_time);
CREATE INDEX IF NOT EXISTS audit_lookup_acct_user ON audit_lookup (account_id, user_name, event_time);
CREATE INDEX IF NOT EXISTS audit_lookup_acct_akid ON audit_lookup (account_id, access_key_id, event_time);
CREATE INDEX IF NOT EXISTS audit_lookup_res_name ON audit_lookup (chain_id, blk, resource_name, event_time);
-- Denials and errors are the exception: partial indexes hold only those (a query names the
-- partial index's condition word for word, see `store::audit`).
CREATE INDEX IF NOT EXISTS audit_lookup_denied ON audit_lookup (event_time) WHERE decision <> 'Allow';
CREATE INDEX IF NOT EXISTS audit_lookup_error ON audit_lookup (error_code, event_time) WHERE error_code IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_lookup_ip ON audit_lookup (source_ip, event_time);
