-- The delivery state of each (secret, peer region) with changes waiting in
-- `replication_outbox`: one row per group, in the same transactions as its changes (created
-- by the first change enqueued, deleted with the last change delivered). A failed delivery
-- updates this one row, so its cost does not grow with the changes waiting behind it (a dead
-- peer's backlog grows with every write). The worker's due query reads an index range of
-- groups whose `next_attempt_at` has come, oldest first.
CREATE TABLE replication_outbox_groups (
    primary_secret_id TEXT NOT NULL,
    region TEXT NOT NULL,
    -- Failed deliveries since the last one that succeeded.
    attempts INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    PRIMARY KEY (primary_secret_id, region)
);
CREATE INDEX replication_outbox_groups_due ON replication_outbox_groups (region, next_attempt_at);
INSERT INTO replication_outbox_groups (primary_secret_id, region, attempts, next_attempt_at, last_error)
    SELECT primary_secret_id, region, MAX(attempts), MAX(next_attempt_at), MAX(last_error)
    FROM replication_outbox GROUP BY primary_secret_id, region;
DROP INDEX replication_outbox_due;
ALTER TABLE replication_outbox DROP COLUMN attempts;
ALTER TABLE replication_outbox DROP COLUMN next_attempt_at;
ALTER TABLE replication_outbox DROP COLUMN last_error;
