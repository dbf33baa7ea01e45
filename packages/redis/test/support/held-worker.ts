// A worker process for the dead-worker test: it fetches messages, never finishes them, says
// "held <n>" once it holds `prefetch` of them, and waits to be killed with SIGKILL.
//   node --import tsx --conditions=@tq/source held-worker.ts <url> <namespace> <queue> <prefetch>
import { Worker, actor } from '@tq/core'
import { RedisBroker } from '../../src/index.ts'

const [url, namespace, queueName, prefetchArg] = process.argv.slice(2)
const prefetch = Number(prefetchArg)
const broker = new RedisBroker({
  url: url as string,
  namespace: namespace as string,
  heartbeatTimeout: 1000,
  middleware: [],
})
actor('job', () => new Promise<never>(() => undefined), { broker, queueName: queueName as string })
const worker = new Worker(broker, { concurrency: 1, queuePrefetch: prefetch, workerTimeout: 50 })
await worker.start()
const timer = setInterval(() => {
  const { inFlight, queued } = worker.stats
  if (inFlight + queued >= prefetch) {
    clearInterval(timer)
    process.stdout.write(`held ${inFlight + queued} ${broker.brokerId}\n`)
  }
}, 5)
