// The broker's statements, built once per schema. Each is one round trip; the ones on the hot
// path (enqueue, claim, ack) are prepared by name on each pooled connection.

/** The statements of one schema's broker tables. */
export interface BrokerQueries {
  /**
   * Insert messages (parallel arrays: canonical queue, message id, body, delay in ms) in order,
   * then ring the doorbell of each distinct queue ($5: channel, $6: the queues). Inside a
   * transaction the notifications go out at commit, with the rows.
   */
  readonly enqueue: string
  /**
   * Claim up to $3 due messages of queue $1 for worker $2 (FOR UPDATE SKIP LOCKED), plus one row
   * whose `next_in` says in how many ms the queue's next delayed message falls due (null: none).
   */
  readonly claim: string
  /** Delete acked messages ($1 ids) still claimed by worker $2. */
  readonly ack: string
  /** Move messages ($1 ids, $3 reasons) claimed by worker $2 to the dead letters. */
  readonly deadLetter: string
  /** Give messages ($1 ids) claimed by worker $2 back to their queue, ringing its doorbell ($3: channel). */
  readonly release: string
  /** Give back everything worker $1 still claims ($2: channel). */
  readonly releaseAll: string
  /** Record worker $1's heartbeat ($2: info). */
  readonly heartbeat: string
  /** Forget worker $1. */
  readonly forgetWorker: string
  /**
   * Release the claims of workers silent for more than $1 ms (and of ids with no live heartbeat
   * claimed that long ago), forget those workers, ring the doorbells ($2: channel).
   */
  readonly reap: string
  /** Drop dead letters older than $1 ms. */
  readonly expireDeadLetters: string
  /** Ready, delayed, claimed and dead counts of queue $1. */
  readonly counts: string
  /** Drop the unclaimed messages of queue $1. */
  readonly flush: string
  /** Drop the dead letters of queue $1. */
  readonly flushDead: string
  /** Insert one raw body ($2) on queue $1 (message id $3), as a foreign producer would. */
  readonly putRaw: string
  /** Lock up to $2 dead letters of queue $1 after id $3, oldest first (inside a transaction). */
  readonly lockDead: string
  /** Delete dead letters $1. */
  readonly deleteDead: string
  /** Up to $2 dead letters of queue $1, oldest first. */
  readonly deadLetters: string
}

export function brokerQueries(s: string): BrokerQueries {
  return {
    enqueue: `WITH ins AS (
  INSERT INTO ${s}.messages (queue, message_id, body, available_at)
  SELECT t.q, t.m, t.b, clock_timestamp() + t.d * interval '1 millisecond'
  FROM unnest($1::text[], $2::text[], $3::bytea[], $4::float8[]) WITH ORDINALITY AS t(q, m, b, d, n)
  ORDER BY t.n
  RETURNING 1
)
SELECT count(*)::int AS rung FROM (SELECT pg_notify($5, q) FROM unnest($6::text[]) AS q) AS bells`,
    claim: `WITH picked AS (
  SELECT id FROM ${s}.messages
  WHERE queue = $1 AND claimed_by IS NULL AND available_at <= now()
  ORDER BY available_at, id
  LIMIT $3
  FOR UPDATE SKIP LOCKED
), claimed AS (
  UPDATE ${s}.messages m SET claimed_by = $2, claimed_at = now(), deliveries = m.deliveries + 1
  FROM picked WHERE m.id = picked.id
  RETURNING m.id, m.message_id, m.body, m.deliveries, m.available_at
)
SELECT id::text AS id, message_id, body, deliveries, available_at, NULL::float8 AS next_in FROM claimed
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, (
  SELECT extract(epoch FROM min(available_at) - now()) * 1000 FROM ${s}.messages
  WHERE queue = $1 AND claimed_by IS NULL AND available_at > now()
)`,
    ack: `DELETE FROM ${s}.messages WHERE id = ANY($1::bigint[]) AND claimed_by = $2`,
    deadLetter: `WITH gone AS (
  DELETE FROM ${s}.messages WHERE id = ANY($1::bigint[]) AND claimed_by = $2
  RETURNING id, queue, message_id, body, enqueued_at
)
INSERT INTO ${s}.dead_letters (queue, message_id, body, reason, enqueued_at)
SELECT g.queue, g.message_id, g.body, r.reason, g.enqueued_at
FROM gone g JOIN unnest($1::bigint[], $3::text[]) AS r(id, reason) ON r.id = g.id
ORDER BY g.id`,
    release: `WITH back AS (
  UPDATE ${s}.messages SET claimed_by = NULL, claimed_at = NULL
  WHERE id = ANY($1::bigint[]) AND claimed_by = $2
  RETURNING queue
)
SELECT pg_notify($3, q) FROM (SELECT DISTINCT queue FROM back) AS x(q)`,
    releaseAll: `WITH back AS (
  UPDATE ${s}.messages SET claimed_by = NULL, claimed_at = NULL WHERE claimed_by = $1
  RETURNING queue
)
SELECT pg_notify($2, q) FROM (SELECT DISTINCT queue FROM back) AS x(q)`,
    heartbeat: `INSERT INTO ${s}.workers (id, info) VALUES ($1, $2::jsonb)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`,
    forgetWorker: `DELETE FROM ${s}.workers WHERE id = $1`,
    reap: `WITH dead AS (
  DELETE FROM ${s}.workers WHERE heartbeat_at < now() - $1 * interval '1 millisecond'
  RETURNING id
), back AS (
  UPDATE ${s}.messages m SET claimed_by = NULL, claimed_at = NULL
  WHERE m.claimed_by IS NOT NULL
    AND (m.claimed_by IN (SELECT id FROM dead) OR (
      m.claimed_at < now() - $1 * interval '1 millisecond'
      AND NOT EXISTS (
        SELECT 1 FROM ${s}.workers w
        WHERE w.id = m.claimed_by AND w.heartbeat_at >= now() - $1 * interval '1 millisecond'
      )
    ))
  RETURNING m.queue
)
SELECT q AS queue, pg_notify($2, q) FROM (SELECT DISTINCT queue FROM back) AS x(q)`,
    expireDeadLetters: `DELETE FROM ${s}.dead_letters WHERE dead_at < now() - $1 * interval '1 millisecond'`,
    counts: `SELECT
  count(*) FILTER (WHERE claimed_by IS NULL AND available_at <= now())::int AS ready,
  count(*) FILTER (WHERE claimed_by IS NULL AND available_at > now())::int AS delayed,
  count(*) FILTER (WHERE claimed_by IS NOT NULL)::int AS running,
  (SELECT count(*) FROM ${s}.dead_letters WHERE queue = $1)::int AS dead
FROM ${s}.messages WHERE queue = $1`,
    flush: `DELETE FROM ${s}.messages WHERE queue = $1 AND claimed_by IS NULL`,
    flushDead: `DELETE FROM ${s}.dead_letters WHERE queue = $1`,
    putRaw: `INSERT INTO ${s}.messages (queue, message_id, body) VALUES ($1, $3, $2)`,
    lockDead: `SELECT d.id::text AS id, d.body FROM ${s}.dead_letters d WHERE d.queue = $1 AND d.id > $3::bigint ORDER BY d.id LIMIT $2 FOR UPDATE SKIP LOCKED`,
    deleteDead: `DELETE FROM ${s}.dead_letters WHERE id = ANY($1::bigint[])`,
    deadLetters: `SELECT message_id, body, reason, dead_at FROM ${s}.dead_letters WHERE queue = $1 ORDER BY id LIMIT $2`,
  }
}
