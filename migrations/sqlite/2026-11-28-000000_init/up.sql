-- Strongroom initial schema (SQLite). Keep in step with migrations/postgres (same names).
-- Times are epoch milliseconds. Plaintext secret values never appear in any column.

CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL,
    user_name TEXT,
    secret_sealed BLOB NOT NULL,
    master_key_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE kms_keys (
    key_id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL,
    region TEXT NOT NULL,
    arn TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    key_manager TEXT NOT NULL,
    key_state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deletion_date BIGINT,
    rotation_enabled BOOLEAN NOT NULL,
    rotation_period_days INTEGER NOT NULL,
    next_rotation_at BIGINT,
    current_term INTEGER NOT NULL,
    policy TEXT
);

CREATE TABLE kms_key_material (
    key_id TEXT NOT NULL REFERENCES kms_keys(key_id),
    term INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    master_key_id INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (key_id, term)
);

CREATE TABLE kms_aliases (
    account_id TEXT NOT NULL,
    region TEXT NOT NULL,
    alias_name TEXT NOT NULL,
    target_key_id TEXT NOT NULL REFERENCES kms_keys(key_id),
    created_at BIGINT NOT NULL,
    last_updated_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, alias_name)
);

CREATE TABLE secrets (
    secret_id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    arn TEXT NOT NULL UNIQUE,
    description TEXT,
    kms_key_id TEXT,
    created_at BIGINT NOT NULL,
    last_changed_at BIGINT NOT NULL,
    last_accessed_at BIGINT,
    deleted_at BIGINT,
    purge_at BIGINT,
    owning_service TEXT,
    primary_region TEXT,
    resource_policy TEXT,
    UNIQUE (account_id, region, name)
);
CREATE INDEX secrets_purge ON secrets (purge_at);

CREATE TABLE secret_versions (
    secret_id TEXT NOT NULL REFERENCES secrets(secret_id) ON DELETE CASCADE,
    version_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_accessed_at BIGINT,
    value_kind TEXT,
    ciphertext BLOB,
    wrapped_dek BLOB,
    kms_key_id TEXT,
    kms_term INTEGER,
    PRIMARY KEY (secret_id, version_id)
);
CREATE INDEX secret_versions_created ON secret_versions (secret_id, created_at);

CREATE TABLE secret_stages (
    secret_id TEXT NOT NULL REFERENCES secrets(secret_id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    version_id TEXT NOT NULL,
    PRIMARY KEY (secret_id, stage),
    FOREIGN KEY (secret_id, version_id) REFERENCES secret_versions(secret_id, version_id)
);

CREATE TABLE secret_tags (
    secret_id TEXT NOT NULL REFERENCES secrets(secret_id) ON DELETE CASCADE,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (secret_id, tag_key)
);

CREATE TABLE audit_events (
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
    PRIMARY KEY (chain_id, seq)
);
CREATE INDEX audit_events_time ON audit_events (event_time);
CREATE INDEX audit_events_principal ON audit_events (principal_arn, event_time);
CREATE INDEX audit_events_resource ON audit_events (resource_arn, event_time);
