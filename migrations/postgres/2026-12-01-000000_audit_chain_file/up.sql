-- Nothing to change on PostgreSQL: the chain stays in the main database, where a write
-- request's record commits with its change in one transaction. On SQLite the chain moves to a
-- file of its own, and write records keep a copy in the main database until the chain has them
-- (see migrations/sqlite, same directory name). This migration keeps the names in step.
SELECT 1;
