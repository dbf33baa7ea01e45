import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { drizzle as drizzlePostgresJs } from 'drizzle-orm/postgres-js'
import knexFactory from 'knex'
import { Kysely, PostgresDialect } from 'kysely'
import postgres from 'postgres'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  InvalidArgumentError,
  TransactionUnsupportedError,
  StubBroker,
  Worker,
  actor,
  group,
  pipeline,
  type TransactionExecutor,
} from '@tq/core'
import { Ledger, waitFor } from '@tq/core/testing'
import { PostgresBroker, fromDrizzle, fromKnex, fromKysely, fromPg, fromPostgresJs } from '../src/index.ts'
import { PG_URL, dropSchema, testPool, testSchema } from './helpers.ts'

const schema = testSchema('tq_tx')
const pool = testPool(10)
const broker = new PostgresBroker({ pool, schema, middleware: [] })
const queueName = 'tx_default'
const ledger = new Ledger<string>()
const record = actor('record', (tag: string) => ledger.record(tag), { broker, queueName })
const worker = new Worker(broker, { workerTimeout: 100, concurrency: 8 })

const sql = postgres(PG_URL, { max: 4, onnotice: () => undefined })
const knex = knexFactory({ client: 'pg', connection: PG_URL, pool: { min: 0, max: 4 } })
const kysely = new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool: testPool(4) }) })
const drizzleOnPg = drizzlePg(testPool(4))
const drizzleOnPostgresJs = drizzlePostgresJs(postgres(PG_URL, { max: 2, onnotice: () => undefined }))

beforeAll(async () => {
  await broker.migrate()
  await pool.query(`CREATE TABLE ${schema}.app_rows (tag text PRIMARY KEY)`)
  await worker.start()
})

afterAll(async () => {
  await worker.stop({ timeout: 5000 })
  await broker.close()
  await Promise.all([
    sql.end(),
    knex.destroy(),
    kysely.destroy(),
    drizzleOnPg.$client.end(),
    drizzleOnPostgresJs.$client.end(),
  ])
  await dropSchema(pool, schema)
  await pool.end()
})

class Rollback extends Error {}

/**
 * Each library's way to run `body` in a transaction, committing or rolling back; `body` gets
 * the executor and a way to write an application row in the same transaction.
 */
interface Library {
  name: string
  run(
    commit: boolean,
    body: (tx: TransactionExecutor, insertRow: (tag: string) => Promise<void>) => Promise<void>,
  ): Promise<void>
}

const insert = `INSERT INTO ${schema}.app_rows (tag) VALUES ($1)`

const libraries: Library[] = [
  {
    name: 'pg (fromPg)',
    run: async (commit, body) => {
      const client = await pool.connect()
      try {
        await client.query('BEGIN')
        await body(fromPg(client), async (tag) => {
          await client.query(insert, [tag])
        })
        await client.query(commit ? 'COMMIT' : 'ROLLBACK')
      } finally {
        client.release()
      }
    },
  },
  {
    name: 'postgres.js (fromPostgresJs)',
    run: async (commit, body) => {
      await sql
        .begin(async (tx) => {
          await body(fromPostgresJs(tx), async (tag) => {
            await tx.unsafe(insert, [tag])
          })
          if (!commit) throw new Rollback()
        })
        .catch((error: unknown) => {
          if (!(error instanceof Rollback)) throw error
        })
    },
  },
  {
    name: 'Knex (fromKnex)',
    run: async (commit, body) => {
      await knex
        .transaction(async (trx) => {
          await body(fromKnex(trx), async (tag) => {
            await trx.raw(`INSERT INTO ${schema}.app_rows (tag) VALUES (?)`, [tag])
          })
          if (!commit) throw new Rollback()
        })
        .catch((error: unknown) => {
          if (!(error instanceof Rollback)) throw error
        })
    },
  },
  {
    name: 'Kysely (fromKysely)',
    run: async (commit, body) => {
      await kysely
        .transaction()
        .execute(async (trx) => {
          await body(fromKysely(trx), async (tag) => {
            await fromKysely(trx).query(insert, [tag])
          })
          if (!commit) throw new Rollback()
        })
        .catch((error: unknown) => {
          if (!(error instanceof Rollback)) throw error
        })
    },
  },
  {
    name: 'Drizzle on node-postgres (fromDrizzle)',
    run: async (commit, body) => {
      await drizzleOnPg
        .transaction(async (tx) => {
          await body(fromDrizzle(tx), async (tag) => {
            await fromDrizzle(tx).query(insert, [tag])
          })
          if (!commit) throw new Rollback()
        })
        .catch((error: unknown) => {
          if (!(error instanceof Rollback)) throw error
        })
    },
  },
  {
    name: 'Drizzle on postgres.js (fromDrizzle)',
    run: async (commit, body) => {
      await drizzleOnPostgresJs
        .transaction(async (tx) => {
          await body(fromDrizzle(tx), async (tag) => {
            await fromDrizzle(tx).query(insert, [tag])
          })
          if (!commit) throw new Rollback()
        })
        .catch((error: unknown) => {
          if (!(error instanceof Rollback)) throw error
        })
    },
  },
]

async function readyCount(): Promise<number> {
  return (await broker.queueCounts(queueName)).ready
}

async function rowExists(tag: string): Promise<boolean> {
  const { rows } = await pool.query(`SELECT 1 FROM ${schema}.app_rows WHERE tag = $1`, [tag])
  return rows.length === 1
}

const ran = (tag: string): Promise<void> =>
  waitFor(() => ledger.counts.has(tag), { timeout: 10_000, message: `${tag} to run` })

/** Send a committed marker and wait for it: FIFO, so anything sent before it has run too. */
async function drainWithMarker(tag: string): Promise<void> {
  await record.send(tag)
  await ran(tag)
  await broker.join(queueName, { timeout: 10_000 })
}

describe.each(libraries)('transactional enqueue: $name', (library) => {
  const key = library.name.replace(/\W+/g, '_')

  it('commits the message with the row: invisible before the commit, run after it', async () => {
    const tag = `${key}-commit`
    await library.run(true, async (tx, insertRow) => {
      await insertRow(tag)
      const sent = await record.sendWithOptions({ args: [tag], transaction: tx })
      expect(sent.queueName).toBe(queueName)
      expect(await readyCount()).toBe(0)
      expect(ledger.counts.get(tag)).toBeUndefined()
    })
    await ran(tag)
    expect(await rowExists(tag)).toBe(true)
  })

  it('delivers nothing of a rolled-back transaction: a send, a delayed send, a group and a pipeline', async () => {
    const tag = `${key}-rollback`
    await library.run(false, async (tx, insertRow) => {
      await insertRow(tag)
      await record.sendWithOptions({ args: [tag], transaction: tx })
      await record.sendWithOptions({ args: [`${tag}-delayed`], delay: 10, transaction: tx })
      await group([record.message(`${tag}-g1`), record.message(`${tag}-g2`)], { broker }).run({ transaction: tx })
      await pipeline([record.message(`${tag}-p1`), record.message(`${tag}-p2`)], { broker }).run({ transaction: tx })
    })
    await drainWithMarker(`${key}-after-rollback`)
    expect([...ledger.counts.keys()].filter((t) => t.startsWith(tag))).toEqual([])
    expect(await rowExists(tag)).toBe(false)
  })

  it('joins the ambient transaction of broker.withTransaction, nested sends and groups included', async () => {
    const tag = `${key}-ambient`
    await library.run(true, async (tx) => {
      await broker.withTransaction(tx, async () => {
        await record.send(`${tag}-1`)
        await group([record.message(`${tag}-2`), record.message(`${tag}-3`)], { broker }).run()
        expect(await readyCount()).toBe(0)
      })
    })
    for (const t of [`${tag}-1`, `${tag}-2`, `${tag}-3`]) await ran(t)
    const rolledBack = `${key}-ambient-rollback`
    await library.run(false, async (tx) => {
      await broker.withTransaction(tx, () => record.send(rolledBack))
    })
    await drainWithMarker(`${key}-after-ambient`)
    expect(ledger.counts.get(rolledBack)).toBeUndefined()
  })

  it('runs one statement in the transaction per send', async () => {
    let statements = 0
    await library.run(false, async (tx) => {
      const counting: TransactionExecutor = {
        query: (text, params) => {
          statements++
          return tx.query(text, params)
        },
      }
      await record.sendWithOptions({ args: ['counted'], transaction: counting })
      expect(statements).toBe(1)
      await broker.enqueueMany([record.message('c1'), record.message('c2'), record.message('c3')], {
        transaction: counting,
      })
      expect(statements).toBe(2)
    })
  })
})

describe('transactional enqueue: at scale and refusals', () => {
  it('delivers nothing of 1 000 rolled-back sends', async () => {
    const tag = 'thousand'
    for (let round = 0; round < 100; round++) {
      await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const client = await pool.connect()
          try {
            await client.query('BEGIN')
            await record.sendWithOptions({ args: [`${tag}-${round}-${i}`], transaction: fromPg(client) })
            await client.query('ROLLBACK')
          } finally {
            client.release()
          }
        }),
      )
    }
    await drainWithMarker('after-thousand')
    expect([...ledger.counts.keys()].filter((t) => t.startsWith(tag))).toEqual([])
    expect(await broker.queueCounts(queueName)).toMatchObject({ ready: 0, delayed: 0 })
  })

  it('refuses what would run outside the transaction', async () => {
    expect(() => fromPg(pool)).toThrow(InvalidArgumentError)
    expect(() => fromKnex(knex)).toThrow(InvalidArgumentError)
    expect(() => fromKysely(kysely)).toThrow(InvalidArgumentError)
    expect(() => fromPostgresJs(sql)).toThrow(InvalidArgumentError)
    expect(() => fromDrizzle(drizzleOnPg)).toThrow(InvalidArgumentError)
    await expect(record.sendWithOptions({ args: ['x'], transaction: {} as TransactionExecutor })).rejects.toThrow(
      InvalidArgumentError,
    )
  })

  it('a broker that cannot enqueue in a transaction says so and sends nothing', async () => {
    const stub = new StubBroker({ middleware: [] })
    const job = actor('job', () => undefined, { broker: stub, queueName: 'stubbed' })
    const client = await pool.connect()
    try {
      await client.query('BEGIN')
      const error = await job.sendWithOptions({ args: [], transaction: fromPg(client) }).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(TransactionUnsupportedError)
      expect((error as TransactionUnsupportedError).code).toBe('TQ_TRANSACTION_UNSUPPORTED')
      await client.query('ROLLBACK')
    } finally {
      client.release()
    }
    expect(stub.queueCounts ? (await stub.queueCounts('stubbed')).ready : 0).toBe(0)
    await stub.close()
  })
})
