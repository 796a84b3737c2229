-- Managed external secrets (botocore 1.44 model): the partner type a secret was created or
-- updated with (`Type`), and the partner's rotation metadata and role (set by RotateSecret's
-- `ExternalSecretRotationMetadata` / `ExternalSecretRotationRoleArn`; the metadata as the
-- JSON list of {Key, Value} the API carries). DescribeSecret and ListSecrets return them.
ALTER TABLE secrets ADD COLUMN secret_type TEXT;
ALTER TABLE secrets ADD COLUMN external_rotation_metadata TEXT;
ALTER TABLE secrets ADD COLUMN external_rotation_role_arn TEXT;
