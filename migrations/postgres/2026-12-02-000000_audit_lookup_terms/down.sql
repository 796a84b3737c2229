DROP TABLE audit_lookup_terms;
DROP TABLE audit_lookup_blocks;
DROP TABLE audit_lookup;
DROP TABLE audit_index_state;
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
