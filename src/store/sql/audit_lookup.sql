-- The audit trail's lookup index: one row per record of audit_events, the query columns
-- only, in sequence order, and a block-level term index over them. Derived data, filled in
-- batches behind the chain (see `store::audit`); audit_index_state says how far each chain is
-- indexed. Queries with no lookup attribute (time only, or an event id) read the chain table
-- (its time and event id indexes). PostgreSQL: the migration
-- 2026-12-02-000000_audit_lookup_terms holds these statements (keep them in step). SQLite:
-- this lives in its own database file beside the main one (`<database>-audit-index`),
-- attached to every connection, so that indexing never takes the main database's write lock;
-- its `user_version` says which version of these statements built it (see `store::conn`).
--
-- Records are grouped in blocks of 1,024 sequence numbers (`blk = seq / 1024`). Instead of a
-- b-tree entry per record for every attribute a query may name (ten secondary indexes, the
-- indexer's largest cost: 8-10 b-tree inserts per record), audit_lookup_terms says which
-- blocks hold at least one record with a given attribute value (a term such as
-- `p:<principal ARN>`, see `store::audit::TERMS`): one entry per distinct value per block. A
-- query walks the blocks that hold all its terms, newest first (audit_lookup_blocks' time
-- bounds let it stop early), and scans each one's 1,024 rows by primary key. A million
-- records are 977 blocks.
CREATE TABLE IF NOT EXISTS audit_lookup (
    chain_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
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
-- Which blocks hold a record with each term (see above).
CREATE TABLE IF NOT EXISTS audit_lookup_terms (
    chain_id TEXT NOT NULL,
    term TEXT NOT NULL,
    blk BIGINT NOT NULL,
    PRIMARY KEY (term, chain_id, blk)
) /*SQLITE: WITHOUT ROWID*/;
-- indexed_hash: the hash of record indexed_through, so that an index that no longer matches its
-- chain (a database restored from an older backup beside a newer index file) is rebuilt.
CREATE TABLE IF NOT EXISTS audit_index_state (
    chain_id TEXT PRIMARY KEY NOT NULL,
    indexed_through BIGINT NOT NULL,
    indexed_hash TEXT NOT NULL DEFAULT ''
);
