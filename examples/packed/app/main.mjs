// Runs in a scratch project with the packed tarballs installed: no workspace, no TypeScript,
// no source condition. Prints one line per check.
import { StubBroker, Worker, actor, getBroker } from '@tq/core'

const stub = new StubBroker()
const add = actor('add', (x, y) => x + y, { broker: stub })
const seen = []
stub.addMiddleware({ afterProcessMessage: (_b, _m, { result }) => void seen.push(result) })
const worker = new Worker(stub, { workerTimeout: 50 })
await worker.start()
await add.send(1, 2)
await stub.join('default')
await worker.stop()
console.log(`stub: ${seen.join(',')}`)

// getBroker() finds the adapter package by TQ_BROKER_URL's scheme (require of its ESM dist).
const broker = getBroker()
console.log(`getBroker: ${broker.constructor.name}`)
const queueName = `packed_${process.pid}`
const results = []
const mul = actor('mul', (x, y) => void results.push(x * y), { broker, queueName })
const w = new Worker(broker, { workerTimeout: 100 })
await w.start()
await mul.send(6, 7)
await broker.join(queueName, { timeout: 10_000 })
await w.stop()
await broker.flush(queueName)
await broker.close()
console.log(`redis: ${results.join(',')}`)

// The Postgres broker from its tarball, with node-postgres installed by the app as its peer.
const { PostgresBroker } = await import('@tq/postgres')
const pg = new PostgresBroker({ connectionString: process.env.TQ_PACKED_PG_URL, schema: `packed_${process.pid}` })
const pgResults = []
const pgMul = actor('mul', (x, y) => void pgResults.push(x * y), { broker: pg, queueName })
const pw = new Worker(pg, { workerTimeout: 100 })
await pw.start()
await pgMul.send(6, 7)
await pg.join(queueName, { timeout: 10_000 })
await pw.stop()
await pg.pool.query(`DROP SCHEMA packed_${process.pid} CASCADE`)
await pg.close()
console.log(`postgres: ${pgResults.join(',')}`)
