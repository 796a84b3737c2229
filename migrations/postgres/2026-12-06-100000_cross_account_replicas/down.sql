DELETE FROM secret_replicas WHERE cross_account;
ALTER TABLE secret_replicas DROP COLUMN replication_role_arn;
ALTER TABLE secret_replicas DROP COLUMN replica_arn;
ALTER TABLE secret_replicas DROP COLUMN cross_account;
ALTER TABLE secrets DROP COLUMN cross_account_replica;
ALTER TABLE secrets DROP COLUMN cross_account_status;
ALTER TABLE secrets DROP COLUMN cross_account_primary_arn;
