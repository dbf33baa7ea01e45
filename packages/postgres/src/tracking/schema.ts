import type { SchemaComponent } from '../schema.ts'

/**
 * The tables of `PostgresTrackingBackend` (component `tracking`), beside the broker's in the same
 * schema, none of their names shared with it:
 *
 * - `tracked_messages`: a row per message. The columns a listing filters and orders by (`queue`,
 *   `actor`, `state`, `enqueued_at`) are columns of their own, each with an index ordered
 *   newest first; `search` is the lowercased text a search looks in (id, actor, arguments);
 *   `data` the rest of the record (`json`, kept as written: `jsonb` refuses `\u0000` in strings
 *   and reorders keys, and nothing queries inside it); `args`/`kwargs` and `body` are apart so
 *   that a state change does not rewrite them. Times are Unix ms as `double precision` (exact
 *   for every integer ms; `state_at` may be `-Infinity`, a record no state update reached yet).
 *   A record whose `expires_at` (its last update plus the retention) has passed is not read,
 *   and bounded sweeps delete it.
 * - `tracking_cancels`, `tracking_unique`, `tracking_leases`: keyed rows with an expiry
 *   (`timestamptz`, the server's clock, so hosts with skewed clocks agree on a ttl).
 * - `tracking_workers`: a worker's last heartbeat (`json`) and its expiry.
 * - `tracking_throughput`: finished attempts per minute and queue.
 * - `tracking_schedules`: the `Scheduler`'s marks.
 *
 * Identifiers and ordered text columns use the "C" collation: listings order by code point, as
 * the JS cursor helpers compare ids.
 */
export const trackingSchema: SchemaComponent = {
  name: 'tracking',
  migrations: [
    {
      version: 1,
      description: 'tracked messages, cancels, unique keys, worker heartbeats, throughput, leases and schedule marks',
      sql: (s) => `
CREATE TABLE ${s}.tracked_messages (
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
CREATE INDEX tracked_messages_newest ON ${s}.tracked_messages (enqueued_at, message_id);
CREATE INDEX tracked_messages_queue ON ${s}.tracked_messages (queue, enqueued_at, message_id);
CREATE INDEX tracked_messages_actor ON ${s}.tracked_messages (actor, enqueued_at, message_id);
CREATE INDEX tracked_messages_state ON ${s}.tracked_messages (state, enqueued_at, message_id);
CREATE INDEX tracked_messages_expires ON ${s}.tracked_messages (expires_at);
CREATE TABLE ${s}.tracking_cancels (
  message_id text PRIMARY KEY,
  mode text NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX tracking_cancels_expires ON ${s}.tracking_cancels (expires_at);
CREATE TABLE ${s}.tracking_unique (
  key text PRIMARY KEY,
  message_id text NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX tracking_unique_expires ON ${s}.tracking_unique (expires_at);
CREATE TABLE ${s}.tracking_workers (
  id text COLLATE "C" PRIMARY KEY,
  heartbeat json NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE TABLE ${s}.tracking_throughput (
  minute bigint NOT NULL,
  queue text COLLATE "C" NOT NULL,
  processed bigint NOT NULL,
  failed bigint NOT NULL,
  PRIMARY KEY (minute, queue)
);
CREATE TABLE ${s}.tracking_leases (
  name text PRIMARY KEY,
  owner text NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE TABLE ${s}.tracking_schedules (
  id text PRIMARY KEY,
  through double precision NOT NULL,
  last_due double precision,
  last_message_id text,
  last_sent_at double precision,
  updated_at timestamptz NOT NULL DEFAULT now()
);
`,
    },
  ],
}
