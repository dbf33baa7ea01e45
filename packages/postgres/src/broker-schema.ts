import type { SchemaComponent } from './schema.ts'

/**
 * The broker's tables. `messages` holds every message not yet acked: ready (`available_at` in
 * the past, unclaimed), delayed (in the future) and claimed by a worker (`claimed_by`); delayed
 * messages and retries are rows like the others, so nothing moves them when they fall due.
 * `dead_letters` keeps nacked and undecodable messages (7 days by default); `workers` holds the
 * heartbeats that tell a dead worker's claims from a live one's.
 */
export const brokerSchema: SchemaComponent = {
  name: 'broker',
  migrations: [
    {
      version: 1,
      description: 'messages, dead letters and worker heartbeats',
      sql: (s) => `
CREATE TABLE ${s}.messages (
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
CREATE INDEX messages_ready ON ${s}.messages (queue, available_at, id) WHERE claimed_by IS NULL;
CREATE INDEX messages_claimed ON ${s}.messages (claimed_by) WHERE claimed_by IS NOT NULL;
CREATE TABLE ${s}.dead_letters (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue text NOT NULL,
  message_id text NOT NULL,
  body bytea NOT NULL,
  reason text,
  enqueued_at timestamptz NOT NULL,
  dead_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX dead_letters_queue ON ${s}.dead_letters (queue, id);
CREATE INDEX dead_letters_dead_at ON ${s}.dead_letters (dead_at);
CREATE TABLE ${s}.workers (
  id uuid PRIMARY KEY,
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz NOT NULL DEFAULT now(),
  info jsonb NOT NULL DEFAULT '{}'
);
`,
    },
  ],
}
