-- Audit trail: query columns derived from each record (for LookupEvents and `audit query`),
-- their indexes, and the signed digests / prune anchors of each chain.
-- Keep in step with migrations/sqlite (same directory name).

ALTER TABLE audit_events ADD COLUMN account_id TEXT;
ALTER TABLE audit_events ADD COLUMN event_source TEXT;
ALTER TABLE audit_events ADD COLUMN read_only BOOLEAN;
ALTER TABLE audit_events ADD COLUMN user_name TEXT;
ALTER TABLE audit_events ADD COLUMN resource_type TEXT;
ALTER TABLE audit_events ADD COLUMN resource_name TEXT;

-- LookupEvents: scoped to the caller's account, newest first, one lookup attribute.
CREATE INDEX audit_events_acct_time ON audit_events (account_id, event_time);
CREATE INDEX audit_events_acct_name ON audit_events (account_id, event_name, event_time);
CREATE INDEX audit_events_acct_user ON audit_events (account_id, user_name, event_time);
CREATE INDEX audit_events_acct_akid ON audit_events (account_id, access_key_id, event_time);
-- ResourceName uses the resource indexes below (and init's audit_events_resource) with
-- the account as a filter. EventSource, ReadOnly and ResourceType have a handful of values:
-- they filter the (account_id, event_time) scan instead of having indexes of their own.
-- Every index costs each insert; these are the ones the queries need.
-- `strongroom audit query` (principal ARN, resource ARN and time have indexes since init):
-- secret names, denials, error codes, source addresses.
CREATE INDEX audit_events_res_name ON audit_events (resource_name, event_time);
CREATE INDEX audit_events_decision ON audit_events (decision, event_time);
CREATE INDEX audit_events_error ON audit_events (error_code, event_time);
CREATE INDEX audit_events_ip ON audit_events (source_ip, event_time);

-- kind = 'digest': records seq_from..=seq_to of the chain end with last_hash (signed).
-- kind = 'anchor': records up to seq_to were pruned; the last of them had hash last_hash.
CREATE TABLE audit_digests (
    chain_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq_from BIGINT NOT NULL,
    seq_to BIGINT NOT NULL,
    last_hash TEXT NOT NULL,
    record_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (chain_id, kind, seq_to)
);
