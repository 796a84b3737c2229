-- Keep in step with migrations/sqlite (same names).
-- The unique id (RoleId, `AROA…`) of each role declared in the policies directory: assigned
-- when a loaded set first declares the role, kept while every later set declares it, dropped
-- when a set no longer does. A role declared again under the same name is a new role with a
-- new id, so sessions of the old one (their tokens name its id) are refused, as on AWS.
CREATE TABLE role_ids (
    account_id TEXT NOT NULL,
    role_name TEXT NOT NULL,
    role_id TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, role_name)
);
