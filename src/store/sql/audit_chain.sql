-- SQLite only: the audit chain in a database file of its own (`<database>-audit`), attached to
-- every connection as `auditchain`. Its tables are the ones the PostgreSQL migrations build in
-- the main database (keep the columns, in this order, in step with them): the records, and
-- the signed digests and prune anchors of each chain. `user_version` says which version of
-- these statements built the file (see `store::conn`).
--
-- Why a file of its own: SQLite empties a connection's page cache for a database whenever
-- another connection committed to that database since its last transaction. With the chain
-- in the main file, every group commit of read requests' records cost every reader its cached
-- pages of the secrets tables; in a file of its own, those commits leave the main database
-- alone, and only changes to secrets do.
CREATE TABLE IF NOT EXISTS audit_events (
    chain_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    event_time BIGINT NOT NULL,
    event_name TEXT NOT NULL,
    principal_arn TEXT,
    access_key_id TEXT,
    source_ip TEXT,
    resource_arn TEXT,
    error_code TEXT,
    decision TEXT NOT NULL,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    account_id TEXT,
    event_source TEXT,
    read_only BOOLEAN,
    user_name TEXT,
    resource_type TEXT,
    resource_name TEXT,
    PRIMARY KEY (chain_id, seq)
);
CREATE INDEX IF NOT EXISTS audit_events_time ON audit_events (event_time);
CREATE TABLE IF NOT EXISTS audit_digests (
    chain_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq_from BIGINT NOT NULL,
    seq_to BIGINT NOT NULL,
    last_hash TEXT NOT NULL,
    record_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (chain_id, kind, seq_to)
);
