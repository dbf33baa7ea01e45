// The cost of enqueueing inside the application's own transaction: `count` transactions of
// BEGIN, an INSERT into an application table, COMMIT, against the same with one enqueue before the
// COMMIT, on one checked-out connection, in alternating blocks (so drift hits both alike). The
// application table is a real (logged) table, so both kinds of COMMIT flush the WAL.
import pg from 'pg'
import type { TransactionSample } from './protocol.ts'
import { SCHEMAS, withAdmin } from './pg.ts'
import type { BenchContext, SystemModule } from './types.ts'

const TABLE = `${SCHEMAS.app}.orders`
const BLOCK = 20
const WARMUP = 40

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length)

export async function measureTransactions(
  system: SystemModule,
  ctx: BenchContext,
  queue: string,
  count: number,
): Promise<TransactionSample> {
  if (!system.transactional) throw new Error(`${system.name} cannot enqueue in a caller's transaction`)
  await withAdmin(ctx.pgUrl, async (admin) => {
    await admin.query(`CREATE SCHEMA IF NOT EXISTS ${SCHEMAS.app}`)
    await admin.query(`DROP TABLE IF EXISTS ${TABLE}`)
    await admin.query(
      `CREATE TABLE ${TABLE} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, value integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
    )
  })
  const producer = await system.transactional(ctx, queue)
  const pool = new pg.Pool({ connectionString: ctx.pgUrl, max: 1, application_name: `tqbench-tx-${ctx.runId}` })
  const client = await pool.connect()
  // Count what goes over the application's connection.
  let statements = 0
  const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>
  Object.assign(client, { query: (...args: unknown[]) => (statements++, query(...args)) })
  let value = 0
  const transaction = async (send: boolean): Promise<number> => {
    const started = performance.now()
    await client.query('BEGIN')
    await client.query(`INSERT INTO ${TABLE} (value) VALUES ($1)`, [++value])
    if (send) await producer.send(client, value)
    await client.query('COMMIT')
    return performance.now() - started
  }
  const baseline: number[] = []
  const withSend: number[] = []
  const statementsOf = { baseline: 0, withSend: 0 }
  try {
    for (let i = 0; i < WARMUP; i++) await transaction(i % 2 === 0)
    const outsideBefore = producer.outsideStatements?.()
    for (let block = 0; baseline.length < count; block++) {
      // ABBA: the order flips from block to block.
      for (const send of block % 2 === 0 ? [false, true] : [true, false]) {
        const into = send ? withSend : baseline
        const before = statements
        for (let i = 0; i < BLOCK && into.length < count; i++) into.push(await transaction(send))
        statementsOf[send ? 'withSend' : 'baseline'] += statements - before
      }
    }
    const outsideAfter = producer.outsideStatements?.()
    return {
      count,
      baselineMedianMs: median(baseline),
      baselineMeanMs: mean(baseline),
      withSendMedianMs: median(withSend),
      withSendMeanMs: mean(withSend),
      baselineStatements: statementsOf.baseline / baseline.length,
      withSendStatements: statementsOf.withSend / withSend.length,
      outsideStatements:
        outsideBefore === undefined || outsideAfter === undefined
          ? undefined
          : (outsideAfter - outsideBefore) / withSend.length,
    }
  } finally {
    client.release(true)
    await pool.end()
    await producer.close()
    await withAdmin(ctx.pgUrl, (admin) => admin.query(`DROP SCHEMA IF EXISTS ${SCHEMAS.app} CASCADE`))
  }
}
