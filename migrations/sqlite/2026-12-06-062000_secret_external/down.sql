ALTER TABLE secrets DROP COLUMN external_rotation_role_arn;
ALTER TABLE secrets DROP COLUMN external_rotation_metadata;
ALTER TABLE secrets DROP COLUMN secret_type;
