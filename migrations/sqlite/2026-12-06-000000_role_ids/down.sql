DROP TABLE role_ids;
