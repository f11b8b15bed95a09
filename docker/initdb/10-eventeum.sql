-- Runs once, when the image's entrypoint creates the database (POSTGRES_DB,
-- "postgres" by default, which is also eventeum.database's default).
CREATE EXTENSION IF NOT EXISTS eventeum;
