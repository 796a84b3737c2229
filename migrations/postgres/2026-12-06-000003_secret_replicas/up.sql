-- Replicas of a primary secret in other regions served by this store: one row per replica
-- region. `replica_secret_id` is the replica's own secrets row (in that region), written in
-- the primary's transactions; NULL when the replica could not be created (Status Failed,
-- with StatusMessage saying why). `kms_key_id` is the key as ReplicationStatus shows it.
CREATE TABLE secret_replicas (
    primary_secret_id TEXT NOT NULL,
    region TEXT NOT NULL,
    replica_secret_id TEXT,
    kms_key_id TEXT NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (primary_secret_id, region)
);
CREATE INDEX secret_replicas_replica ON secret_replicas (replica_secret_id);
