DROP TABLE secret_replicas;
