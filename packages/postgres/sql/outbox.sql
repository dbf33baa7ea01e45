-- @tq/postgres: the outbox tables in schema tq (what `tq postgres migrate` applies).
-- For another schema: migrationScript({ schema }) or `tq postgres migrate --print --schema <name>`.

CREATE SCHEMA IF NOT EXISTS tq;

CREATE TABLE IF NOT EXISTS tq.schema_versions (
  component text PRIMARY KEY,
  version integer NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- outbox 1: the outbox of messages for another broker
CREATE TABLE tq.outbox (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue text NOT NULL,
  body bytea NOT NULL,
  delay_ms double precision NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE tq.outbox_rejected (
  id bigint PRIMARY KEY,
  queue text NOT NULL,
  body bytea NOT NULL,
  reason text NOT NULL,
  rejected_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

INSERT INTO tq.schema_versions (component, version) VALUES ('outbox', 1)
  ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, applied_at = now();
