ALTER TABLE secrets DROP COLUMN tag_list;
