// Sends CHILD_COUNT messages inside one transaction, commits, says "committed" and SIGKILLs
// itself at once: nothing of the broker (no close, no flush) runs after the commit.
// CHILD_KIND: postgres (PostgresBroker) or outbox (OutboxBroker in front of Redis).
import pg from 'pg'
import { actor, type Broker } from '@tq/core'
import { RedisBroker } from '@tq/redis'
import { OutboxBroker, PostgresBroker, fromPg } from '../../src/index.ts'

const env = (name: string): string => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}

const pool = new pg.Pool({ connectionString: env('CHILD_PG_URL'), max: 3 })
const schema = env('CHILD_SCHEMA')
const broker: Broker =
  env('CHILD_KIND') === 'outbox'
    ? new OutboxBroker({
        pool,
        schema,
        middleware: [],
        relay: false,
        target: new RedisBroker({ url: env('CHILD_REDIS_URL'), namespace: env('CHILD_NAMESPACE'), middleware: [] }),
      })
    : new PostgresBroker({ pool, schema, middleware: [] })
const job = actor('job', (_i: number) => undefined, { broker, queueName: 'q' })
await broker.connect()

const client = await pool.connect()
await client.query('BEGIN')
const transaction = fromPg(client)
for (let i = 0; i < Number(env('CHILD_COUNT')); i++) await job.sendWithOptions({ args: [i], transaction })
await client.query('COMMIT')
process.stdout.write('committed\n', () => process.kill(process.pid, 'SIGKILL'))
