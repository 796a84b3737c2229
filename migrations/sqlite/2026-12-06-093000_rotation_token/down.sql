ALTER TABLE rotation_jobs DROP COLUMN rotation_token_hash;
