-- @tq/postgres: the results tables in schema tq (what `tq postgres migrate` applies).
-- For another schema: migrationScript({ schema }) or `tq postgres migrate --print --schema <name>`.

CREATE SCHEMA IF NOT EXISTS tq;

CREATE TABLE IF NOT EXISTS tq.schema_versions (
  component text PRIMARY KEY,
  version integer NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- results 1: results with their expiry
CREATE TABLE tq.results (
  key text PRIMARY KEY,
  value bytea NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX results_expires_at ON tq.results (expires_at);

INSERT INTO tq.schema_versions (component, version) VALUES ('results', 1)
  ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, applied_at = now();
