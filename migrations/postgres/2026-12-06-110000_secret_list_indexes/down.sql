DROP INDEX secrets_list_name;
DROP INDEX secrets_list_accessed;
DROP INDEX secrets_list_changed;
DROP INDEX secrets_list_created;
