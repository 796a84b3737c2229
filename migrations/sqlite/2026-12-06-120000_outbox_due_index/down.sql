DROP INDEX replication_outbox_due;
