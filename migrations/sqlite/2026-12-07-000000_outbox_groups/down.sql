ALTER TABLE replication_outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE replication_outbox ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE replication_outbox ADD COLUMN last_error TEXT;
CREATE INDEX replication_outbox_due ON replication_outbox (region, next_attempt_at);
DROP TABLE replication_outbox_groups;
