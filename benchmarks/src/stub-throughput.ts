// Messages per second through a StubBroker worker (no I/O: the worker's own cost per message).
//   pnpm exec tsx --conditions=@tq/source benchmarks/src/stub-throughput.ts [N]
import { StubBroker, Worker, actor } from '@tq/core'

const n = Number(process.argv[2] ?? 100_000)
const broker = new StubBroker()
const work = actor('work', async (i: number) => i + 1, { broker })
for (let round = 0; round < 3; round++) {
  for (let i = 0; i < n; i++) await work.send(i)
  const worker = new Worker(broker, { concurrency: 8 })
  const started = performance.now()
  await worker.start()
  await broker.join('default')
  const ms = performance.now() - started
  await worker.stop()
  process.stdout.write(`round ${round + 1}: ${Math.round(n / (ms / 1000))} msgs/s (${n} messages)\n`)
}
await broker.close()
