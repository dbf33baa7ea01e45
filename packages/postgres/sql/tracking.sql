-- @tq/postgres: the tracking tables in schema tq (what `tq postgres migrate` applies).
-- For another schema: migrationScript({ schema }) or `tq postgres migrate --print --schema <name>`.

CREATE SCHEMA IF NOT EXISTS tq;

CREATE TABLE IF NOT EXISTS tq.schema_versions (
  component text PRIMARY KEY,
  version integer NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- tracking 1: tracked messages, cancels, unique keys, worker heartbeats, throughput, leases and schedule marks
CREATE TABLE tq.tracked_messages (
  message_id text COLLATE "C" PRIMARY KEY,
  queue text NOT NULL,
  actor text NOT NULL,
  state text NOT NULL,
  state_at double precision NOT NULL,
  enqueued_at double precision NOT NULL,
  updated_at double precision NOT NULL,
  expires_at double precision NOT NULL,
  search text NOT NULL,
  data json NOT NULL,
  args json,
  kwargs json,
  body bytea
);
CREATE INDEX tracked_messages_newest ON tq.tracked_messages (enqueued_at, message_id);
CREATE INDEX tracked_messages_queue ON tq.tracked_messages (queue, enqueued_at, message_id);
CREATE INDEX tracked_messages_actor ON tq.tracked_messages (actor, enqueued_at, message_id);
CREATE INDEX tracked_messages_state ON tq.tracked_messages (state, enqueued_at, message_id);
CREATE INDEX tracked_messages_expires ON tq.tracked_messages (expires_at);
CREATE TABLE tq.tracking_cancels (
  message_id text PRIMARY KEY,
  mode text NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX tracking_cancels_expires ON tq.tracking_cancels (expires_at);
CREATE TABLE tq.tracking_unique (
  key text PRIMARY KEY,
  message_id text NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX tracking_unique_expires ON tq.tracking_unique (expires_at);
CREATE TABLE tq.tracking_workers (
  id text COLLATE "C" PRIMARY KEY,
  heartbeat json NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE TABLE tq.tracking_throughput (
  minute bigint NOT NULL,
  queue text COLLATE "C" NOT NULL,
  processed bigint NOT NULL,
  failed bigint NOT NULL,
  PRIMARY KEY (minute, queue)
);
CREATE TABLE tq.tracking_leases (
  name text PRIMARY KEY,
  owner text NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE TABLE tq.tracking_schedules (
  id text PRIMARY KEY,
  through double precision NOT NULL,
  last_due double precision,
  last_message_id text,
  last_sent_at double precision,
  updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO tq.schema_versions (component, version) VALUES ('tracking', 1)
  ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, applied_at = now();
