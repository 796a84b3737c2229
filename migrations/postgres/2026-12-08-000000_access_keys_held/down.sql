DROP TABLE access_keys_held;
