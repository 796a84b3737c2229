-- Nothing to change in the main database. On SQLite the audit lookup index lives in a file of
-- its own (`<database>-audit-index`), which records in its user_version which version of
-- src/store/sql/audit_lookup.sql built it and is rebuilt when that differs (`store::conn`).
-- This migration exists so that both backends keep the same migration names; its PostgreSQL
-- counterpart rebuilds the lookup tables in the main database, with the term index.
SELECT 1;
