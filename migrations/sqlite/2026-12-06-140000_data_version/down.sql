-- Nothing to undo on SQLite (see up.sql). This migration exists so that both backends keep
-- the same migration names.
SELECT 1;
