-- The audit chain moves to a SQLite file of its own (`<database>-audit`, schema in
-- src/store/sql/audit_chain.sql); `store::conn` copies the records and digests there and then
-- drops main's audit_events and audit_digests (a copy between two files cannot be one
-- migration: SQLite in WAL mode commits each file on its own).
--
-- A write request's record still commits with its change: the write transaction inserts it in
-- the chain file and, in the main database, in audit_pending. Should the process die between
-- the two files' commits (SQLite commits the main database first), the change and this copy
-- are durable, and the record is appended to the chain from here before anything else is
-- (`store::audit`). Rows stay until a later write transaction finds them in the chain.
-- Columns in the chain table's order (the copies are INSERT ... SELECT by name).
CREATE TABLE audit_pending (
    chain_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event_id TEXT NOT NULL,
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
