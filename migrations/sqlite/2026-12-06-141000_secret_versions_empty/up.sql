-- The versions without a value (a rotation's AWSPENDING placeholder before the rotation
-- function fills it), by secret: a replica's placeholders are looked for on every write of
-- its primary, and they are few where the versions are many.
CREATE INDEX secret_versions_empty ON secret_versions (secret_id, version_id) WHERE value_kind IS NULL;
