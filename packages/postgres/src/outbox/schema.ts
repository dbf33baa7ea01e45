import type { SchemaComponent } from '../schema.ts'

/**
 * The outbox: messages committed with the application's transactions, waiting for the relay to
 * forward them to the target broker. A row per message; the relay deletes it in the transaction
 * that forwarded it.
 */
export const outboxSchema: SchemaComponent = {
  name: 'outbox',
  migrations: [
    {
      version: 1,
      description: 'the outbox of messages for another broker',
      sql: (s) => `
CREATE TABLE ${s}.outbox (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue text NOT NULL,
  body bytea NOT NULL,
  delay_ms double precision NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE ${s}.outbox_rejected (
  id bigint PRIMARY KEY,
  queue text NOT NULL,
  body bytea NOT NULL,
  reason text NOT NULL,
  rejected_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
`,
    },
  ],
}

/** The outbox's statements for one schema. */
export function outboxQueries(s: string) {
  return {
    /** Insert messages (queues, bodies, delays in ms) in order and ring the relay ($4: channel). */
    insert: `WITH ins AS (
  INSERT INTO ${s}.outbox (queue, body, delay_ms)
  SELECT t.q, t.b, t.d FROM unnest($1::text[], $2::bytea[], $3::float8[]) WITH ORDINALITY AS t(q, b, d, n)
  ORDER BY t.n
  RETURNING 1
)
SELECT count(*)::int AS rung FROM (SELECT pg_notify($4, 'outbox') FROM (SELECT 1 FROM ins LIMIT 1) AS one) AS bell`,
    /** One relay at a time: a transaction-scoped advisory lock ($1: the key text). */
    lead: `SELECT pg_try_advisory_xact_lock(hashtext($1)) AS leader`,
    /** The oldest $1 committed rows, locked, with the ms until each is due (0 for one sent without a delay). */
    take: `SELECT o.id::text AS id, o.queue, o.body,
  CASE WHEN o.delay_ms <= 0 THEN 0
    ELSE greatest(0, extract(epoch FROM (o.created_at + o.delay_ms * interval '1 millisecond') - clock_timestamp()) * 1000)
  END AS due_in
FROM ${s}.outbox o ORDER BY o.id LIMIT $1 FOR UPDATE`,
    /** Forwarded: delete them ($1 ids). */
    done: `DELETE FROM ${s}.outbox WHERE id = ANY($1::bigint[])`,
    /** Rows that cannot be forwarded (undecodable): set aside with the reason. */
    reject: `WITH gone AS (DELETE FROM ${s}.outbox WHERE id = ANY($1::bigint[]) RETURNING id, queue, body)
INSERT INTO ${s}.outbox_rejected (id, queue, body, reason)
SELECT g.id, g.queue, g.body, r.reason FROM gone g JOIN unnest($1::bigint[], $2::text[]) AS r(id, reason) ON r.id = g.id`,
    /** Rows waiting for queue $1. */
    pending: `SELECT count(*)::int AS n FROM ${s}.outbox WHERE queue = $1`,
    /** Drop the rows waiting for queue $1. */
    flush: `DELETE FROM ${s}.outbox WHERE queue = $1`,
  }
}

export type OutboxQueries = ReturnType<typeof outboxQueries>
