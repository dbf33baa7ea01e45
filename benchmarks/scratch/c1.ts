import { Worker, actor, setBroker } from '@tq/core'
import { RedisBroker } from '@tq/redis'

const c = Number(process.argv[2] ?? 1)
const n = Number(process.argv[3] ?? 20000)
const broker = new RedisBroker({ url: 'redis://127.0.0.1:6379/5' })
setBroker(broker)
let done = 0
let resolveDone: () => void = () => {}
const noop = actor(function noop(_i: number) { if (++done === n) resolveDone() }, { broker, queueName: 'scratch' })
await broker.flushAll()
for (let round = 0; round < 2; round++) {
  done = 0
  const msgs = Array.from({ length: n }, (_, i) => noop.message(i))
  for (let i = 0; i < n; i += 1000) await broker.enqueueMany(msgs.slice(i, i + 1000))
  const worker = new Worker(broker, { concurrency: c, workerTimeout: 100 })
  const t0 = performance.now()
  await worker.start()
  await new Promise<void>((r) => { resolveDone = r; if (done >= n) r() })
  const dt = performance.now() - t0
  await worker.stop()
  console.log(`c=${c} round ${round}: ${Math.round(n / (dt / 1000))} msgs/s`, (globalThis as any).__tqstats ?? '')
}
await broker.close()
