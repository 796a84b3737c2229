-- The audit lookup index drops its ten secondary indexes for a block-level term index (see the
-- comment in src/store/sql/audit_lookup.sql, whose statements follow verbatim). The index is
-- derived data: it is dropped and rebuilt from audit_events by the server's indexer (and by
-- the first query). SQLite keeps this index in a file of its own, versioned by its
-- user_version, so migrations/sqlite has no counterpart of this migration.
DROP TABLE audit_lookup;
DROP TABLE audit_lookup_blocks;
DROP TABLE audit_index_state;
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
