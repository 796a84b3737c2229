-- Cross-account replicas in the same region (AssociateCrossAccountReplica,
-- DisassociateCrossAccountReplica, CreateSecret's CrossAccountPrimaryARN).
--
-- On the replica secret: `cross_account_primary_arn` is the primary it was created for (set
-- by CreateSecret, cleared by StopReplicationToReplica), and `cross_account_status` its
-- status while no association stands (`Pending` until associated, `Detached` after the
-- primary's DisassociateCrossAccountReplica); while associated, the entry's status applies.
-- On the primary: `cross_account_replica` says it has a cross-account entry in
-- `secret_replicas` (so that a write on any other secret looks for none).
ALTER TABLE secrets ADD COLUMN cross_account_primary_arn TEXT;
ALTER TABLE secrets ADD COLUMN cross_account_status TEXT;
ALTER TABLE secrets ADD COLUMN cross_account_replica BOOLEAN NOT NULL DEFAULT FALSE;
-- A primary's cross-account entry: `cross_account` set, `region` the primary's own region
-- (so at most one per primary), the replica named by `replica_arn` (kept after the replica
-- is gone), and the role given as ReplicationRoleARN.
ALTER TABLE secret_replicas ADD COLUMN cross_account BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE secret_replicas ADD COLUMN replica_arn TEXT;
ALTER TABLE secret_replicas ADD COLUMN replication_role_arn TEXT;
