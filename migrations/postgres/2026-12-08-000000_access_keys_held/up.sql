-- Whether this database ever held an access key (src/store/keys.rs). A server starting on a
-- store without keys installs the bootstrap root key only into a database that never held
-- one, whatever its own data directory says: servers sharing one PostgreSQL each have a data
-- directory of their own, and one joining after every key was deleted on purpose would
-- otherwise install the environment's pair (or a new one) again. One row at most.
CREATE TABLE access_keys_held (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    first_at BIGINT NOT NULL
);
INSERT INTO access_keys_held (id, first_at)
    SELECT 1, (SELECT MIN(created_at) FROM access_keys) WHERE EXISTS (SELECT 1 FROM access_keys);
