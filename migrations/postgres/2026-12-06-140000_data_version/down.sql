DROP SEQUENCE data_version;
