-- The read cache's change check (src/store/changes.rs): every write transaction of secret
-- data, on every server, advances this sequence after its COMMIT and before it is answered;
-- a server serves what it cached only while the sequence has not moved since it read it.
-- Not a table: a sequence is advanced outside any transaction, without a row lock, so
-- concurrent writers never wait for or conflict with each other on it. CACHE 1 (the
-- default): every advance is seen at once by every session.
CREATE SEQUENCE data_version CACHE 1;
