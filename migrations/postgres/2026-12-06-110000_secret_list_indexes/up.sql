-- ListSecrets reads a page by walking one of these in its sort order from the page token
-- (keyset pagination), so a page costs what it reads, not what the account holds. Each
-- holds the name, so the `name` filter is tested on the index entry before the row is read;
-- the name index also holds the sort keys, so a name-prefix candidate set is read and
-- ordered from the index alone. `COALESCE(last_accessed_at, -1)`: a secret never read sorts
-- first (the same expression in `store::secrets`). Text columns are indexed and compared
-- in the "C" collation (byte order), as the prefix match and the page order are, whatever
-- the database's default collation.
CREATE INDEX secrets_list_created ON secrets (account_id, region, created_at, secret_id COLLATE "C", name COLLATE "C");
CREATE INDEX secrets_list_changed ON secrets (account_id, region, last_changed_at, secret_id COLLATE "C", name COLLATE "C");
CREATE INDEX secrets_list_accessed ON secrets (account_id, region, (COALESCE(last_accessed_at, -1)), secret_id COLLATE "C", name COLLATE "C");
CREATE INDEX secrets_list_name ON secrets (account_id, region, name COLLATE "C", secret_id COLLATE "C", created_at, last_changed_at, last_accessed_at);
