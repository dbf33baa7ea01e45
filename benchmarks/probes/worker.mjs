// An in-process Redis worker for profiling the hot path: fills N no-op messages, then drains them
// with one Worker at concurrency C and prints the rate. Runs the compiled packages (build first).
//
//   node benchmarks/probes/worker.mjs [N] [C] [none|cpu|heap] [out.json]
//
// Uses database 8 of 127.0.0.1:6379 (flush it first: redis-cli -n 8 flushdb). `cpu` writes a
// .cpuprofile-format JSON, `heap` a sampling heap profile that counts collected objects too
// (bytes allocated, not retained): summarise them with top-cpu.mjs / top-heap.mjs.
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { performance } from 'node:perf_hooks'
import { Worker, actor } from '@tq/core'
import { RedisBroker } from '@tq/redis'

const [n = '60000', c = '8', mode = 'none', out = '/tmp/tq-profile.json'] = process.argv.slice(2)
const total = Number(n)
const concurrency = Number(c)
const broker = new RedisBroker({ url: 'redis://127.0.0.1:6379/8', namespace: 'tqprobe' })
let done = 0
let finish = () => undefined
const finished = new Promise((resolve) => (finish = resolve))
const noop = actor('noop', () => void (++done === total && finish()), { broker, queueName: 'probe' })
await broker.connect()
for (let i = 0; i < total; i += 1000) {
  await broker.enqueueMany(Array.from({ length: Math.min(1000, total - i) }, (_, j) => noop.message(i + j)))
}
const session = new Session()
session.connect()
if (mode === 'heap') {
  await session.post('HeapProfiler.enable')
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: 4096,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  })
}
if (mode === 'cpu') {
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 100 })
  await session.post('Profiler.start')
}
const worker = new Worker(broker, { concurrency, workerTimeout: 100 })
const started = performance.now()
await worker.start()
await finished
const ms = performance.now() - started
console.log(`${total} msgs c=${concurrency}: ${((total / ms) * 1000).toFixed(0)} msgs/s`)
if (mode === 'heap') writeFileSync(out, JSON.stringify((await session.post('HeapProfiler.stopSampling')).profile))
if (mode === 'cpu') writeFileSync(out, JSON.stringify((await session.post('Profiler.stop')).profile))
await worker.stop({ timeout: 5000 })
await broker.close()
