-- Keep in step with migrations/sqlite and migrations/postgres (same names).
-- The RotationToken of a rotation's running attempt, as the SHA-256 (hex) of the token given
-- to the function: PutSecretValue with a RotationToken is accepted only when it is the
-- running attempt's, for that rotation's version. Never the token itself.
ALTER TABLE rotation_jobs ADD COLUMN rotation_token_hash TEXT;
