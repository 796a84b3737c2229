DROP INDEX secret_versions_empty;
