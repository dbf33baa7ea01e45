-- @tq/postgres: the limits tables in schema tq (what `tq postgres migrate` applies).
-- For another schema: migrationScript({ schema }) or `tq postgres migrate --print --schema <name>`.

CREATE SCHEMA IF NOT EXISTS tq;

CREATE TABLE IF NOT EXISTS tq.schema_versions (
  component text PRIMARY KEY,
  version integer NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- limits 1: rate-limiter counters and barrier notifications
CREATE TABLE tq.rate_limits (
  key text PRIMARY KEY,
  value bigint NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX rate_limits_expires_at ON tq.rate_limits (expires_at);
CREATE TABLE tq.rate_limit_events (
  key text PRIMARY KEY,
  notified bigint NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX rate_limit_events_expires_at ON tq.rate_limit_events (expires_at);

INSERT INTO tq.schema_versions (component, version) VALUES ('limits', 1)
  ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, applied_at = now();
