import { randomUUID } from 'node:crypto'
import { afterAll } from 'vitest'
import { brokerConformanceSuite } from '@tq/core/testing'
import { PostgresBroker } from '../src/index.ts'
import { PG_URL, dropSchema, testPool, testSchema } from './helpers.ts'

const schema = testSchema('tq_conf')
const pool = testPool()
afterAll(async () => {
  await dropSchema(pool, schema)
  await pool.end()
})

brokerConformanceSuite({
  name: 'PostgresBroker',
  createBroker: ({ middleware }) => new PostgresBroker({ connectionString: PG_URL, schema, middleware }),
  holdsDelayedMessages: false,
  putRaw: async (_broker, queueName, body) => {
    await pool.query(`INSERT INTO ${schema}.messages (queue, message_id, body) VALUES ($1, $2, $3)`, [
      queueName,
      randomUUID(),
      Buffer.from(body),
    ])
  },
  deadLetters: async (_broker, queueName) => {
    const { rows } = await pool.query<{ body: Buffer }>(
      `SELECT body FROM ${schema}.dead_letters WHERE queue = $1 ORDER BY id`,
      [queueName],
    )
    return rows.map((r) => new Uint8Array(r.body))
  },
})
