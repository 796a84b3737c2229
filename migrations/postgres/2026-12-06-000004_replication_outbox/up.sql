-- Replication to regions served by peer servers (`--peer REGION=URL`).
--
-- On the primary's server: `secret_replicas.peer` marks a replica region served by a peer
-- (its replica lives in the peer's store, `replica_secret_id` is NULL), and every change of a
-- replicated primary leaves one row in `replication_outbox`, in the write's transaction.
-- The delivery worker ships the secret's state as it is when delivered (values decrypted in
-- memory only; the outbox holds no value), in `seq` order, and deletes the rows delivered.
ALTER TABLE secret_replicas ADD COLUMN peer BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE replication_outbox (
    seq BIGSERIAL PRIMARY KEY,
    primary_secret_id TEXT NOT NULL,
    primary_arn TEXT NOT NULL,
    region TEXT NOT NULL,
    -- `sync` (ship the secret's state) or `delete` (remove the replica).
    kind TEXT NOT NULL,
    force_overwrite BOOLEAN NOT NULL,
    -- The replica's key as requested (resolved by the peer in its region), if any.
    replica_kms_key_id TEXT,
    created_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT
);
CREATE INDEX replication_outbox_target ON replication_outbox (primary_secret_id, region, seq);
CREATE INDEX replication_outbox_region ON replication_outbox (region, created_at);
-- On a peer: the last change applied per primary secret and replica region (a change whose
-- `seq` is not above it is already applied and ignored).
CREATE TABLE replication_applied (
    primary_arn TEXT NOT NULL,
    region TEXT NOT NULL,
    last_seq BIGINT NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (primary_arn, region)
);
