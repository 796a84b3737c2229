-- Keep in step with migrations/postgres (same names).
-- A secret's rotation configuration (RotateSecret) and dates. `next_rotation_at` is when the
-- scheduler next starts a rotation (the start of the schedule's window); its index lets the
-- scheduler find due secrets without reading every secret.
ALTER TABLE secrets ADD COLUMN rotation_enabled BOOLEAN;
ALTER TABLE secrets ADD COLUMN rotation_lambda_arn TEXT;
ALTER TABLE secrets ADD COLUMN rotation_rules TEXT;
ALTER TABLE secrets ADD COLUMN last_rotated_at BIGINT;
ALTER TABLE secrets ADD COLUMN next_rotation_at BIGINT;
CREATE INDEX secrets_next_rotation ON secrets (next_rotation_at);
-- One rotation in progress (or failed) per secret: committed with its AWSPENDING version, so
-- that a restart resumes it. `state` is `pending` (due at `next_attempt_at`), `running` (held
-- by a worker until `next_attempt_at`, its lease) or `failed` (no more attempts).
CREATE TABLE rotation_jobs (
    secret_id TEXT PRIMARY KEY NOT NULL,
    token TEXT NOT NULL,
    function_arn TEXT NOT NULL,
    test_only BOOLEAN NOT NULL,
    step TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX rotation_jobs_due ON rotation_jobs (state, next_attempt_at);
