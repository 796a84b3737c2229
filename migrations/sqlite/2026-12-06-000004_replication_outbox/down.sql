DROP TABLE replication_applied;
DROP TABLE replication_outbox;
ALTER TABLE secret_replicas DROP COLUMN peer;
