-- The audit trail's query indexes move off the chain table. Every index on audit_events was
-- updated inside each group commit, and the indexes keyed by resource, principal, key or
-- address touched a random page per record: most of what a commit wrote. The chain table
-- keeps its primary key, the unique event id and the time index (all three grow at their
-- right edge); the query indexes live on audit_lookup, which the server fills in batches
-- behind the chain (`store::audit`, "deferred lookup index"), and which every query first
-- brings up to date.
-- Keep in step with migrations/sqlite and migrations/postgres (same directory name).
DROP INDEX audit_events_principal;
DROP INDEX audit_events_resource;
DROP INDEX audit_events_acct_time;
DROP INDEX audit_events_acct_name;
DROP INDEX audit_events_acct_user;
DROP INDEX audit_events_acct_akid;
DROP INDEX audit_events_res_name;
DROP INDEX audit_events_decision;
DROP INDEX audit_events_error;
DROP INDEX audit_events_ip;
