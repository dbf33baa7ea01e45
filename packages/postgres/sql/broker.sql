-- @tq/postgres: the broker tables in schema tq (what `tq postgres migrate` applies).
-- For another schema: migrationScript({ schema }) or `tq postgres migrate --print --schema <name>`.

CREATE SCHEMA IF NOT EXISTS tq;

CREATE TABLE IF NOT EXISTS tq.schema_versions (
  component text PRIMARY KEY,
  version integer NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- broker 1: messages, dead letters and worker heartbeats
CREATE TABLE tq.messages (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue text NOT NULL,
  message_id text NOT NULL,
  body bytea NOT NULL,
  available_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  claimed_by uuid,
  claimed_at timestamptz,
  deliveries integer NOT NULL DEFAULT 0
) WITH (fillfactor = 80);
CREATE INDEX messages_ready ON tq.messages (queue, available_at, id) WHERE claimed_by IS NULL;
CREATE INDEX messages_claimed ON tq.messages (claimed_by) WHERE claimed_by IS NOT NULL;
CREATE TABLE tq.dead_letters (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue text NOT NULL,
  message_id text NOT NULL,
  body bytea NOT NULL,
  reason text,
  enqueued_at timestamptz NOT NULL,
  dead_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX dead_letters_queue ON tq.dead_letters (queue, id);
CREATE INDEX dead_letters_dead_at ON tq.dead_letters (dead_at);
CREATE TABLE tq.workers (
  id uuid PRIMARY KEY,
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz NOT NULL DEFAULT now(),
  info jsonb NOT NULL DEFAULT '{}'
);

INSERT INTO tq.schema_versions (component, version) VALUES ('broker', 1)
  ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, applied_at = now();
