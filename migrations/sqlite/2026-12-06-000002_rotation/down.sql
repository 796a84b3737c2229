DROP INDEX rotation_jobs_due;
DROP TABLE rotation_jobs;
DROP INDEX secrets_next_rotation;
ALTER TABLE secrets DROP COLUMN next_rotation_at;
ALTER TABLE secrets DROP COLUMN last_rotated_at;
ALTER TABLE secrets DROP COLUMN rotation_rules;
ALTER TABLE secrets DROP COLUMN rotation_lambda_arn;
ALTER TABLE secrets DROP COLUMN rotation_enabled;
