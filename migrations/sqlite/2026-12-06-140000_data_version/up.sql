-- Nothing to change on SQLite: the read cache learns of other connections' writes by asking
-- PRAGMA main.data_version (src/store/changes.rs). This migration exists so that both
-- backends keep the same migration names; its PostgreSQL counterpart creates the sequence
-- every server's writes advance.
SELECT 1;
