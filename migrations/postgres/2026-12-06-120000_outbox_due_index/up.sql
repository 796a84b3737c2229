-- The delivery worker's due query (region, next_attempt_at <= now) reads an index range, not
-- every waiting change of the region: with a dead or slow peer the outbox grows, and the
-- worker asks every 100 ms.
CREATE INDEX replication_outbox_due ON replication_outbox (region, next_attempt_at);
