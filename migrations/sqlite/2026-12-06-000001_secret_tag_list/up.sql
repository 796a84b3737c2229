-- Whether a secret has a tag list (created with Tags, or tagged since): DescribeSecret and
-- ListSecrets then show `Tags`, empty once every tag was removed; a secret never tagged has
-- no `Tags` member, as on AWS. Secrets with tags have a list.
ALTER TABLE secrets ADD COLUMN tag_list BOOLEAN NOT NULL DEFAULT 0;
UPDATE secrets SET tag_list = 1 WHERE secret_id IN (SELECT secret_id FROM secret_tags);
