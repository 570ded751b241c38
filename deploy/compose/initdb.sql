-- Run once by the Postgres image on an empty data folder (/docker-entrypoint-initdb.d): Dagster's
-- own database beside assay's (POSTGRES_DB), owned by the same role. assay creates its schemas,
-- the vector extension and the read-only role itself on first connection.
create database dagster;
