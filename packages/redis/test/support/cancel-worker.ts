// A worker process for the cross-process cancel test: runs `wait` actors that block until their
// signal fires, reports "aborted <id> <reason name>" for each abort and "ready" once it consumes.
//   node --import tsx --conditions=@tq/source cancel-worker.ts <url> <namespace> <tracking prefix> <queue>
import { Retries, Tracking, Worker, actor, currentMessage } from '@tq/core'
import { RedisBroker, RedisTrackingBackend } from '../../src/index.ts'

const [url, namespace, prefix, queueName] = process.argv.slice(2) as [string, string, string, string]
const backend = new RedisTrackingBackend({ url, prefix })
const broker = new RedisBroker({
  url,
  namespace,
  middleware: [new Retries({ maxRetries: 5 }), new Tracking({ backend, flushInterval: 5, heartbeatInterval: 200 })],
})
actor(
  'wait',
  () =>
    new Promise((_resolve, reject) => {
      const message = currentMessage()
      const signal = message?.signal as AbortSignal
      signal.addEventListener('abort', () => {
        process.stdout.write(`aborted ${message?.messageId} ${(signal.reason as Error).name}\n`)
        reject(signal.reason as Error)
      })
    }),
  { broker, queueName },
)
const worker = new Worker(broker, { concurrency: 4, workerTimeout: 50 })
await worker.start()
process.stdout.write('ready\n')
process.once('SIGTERM', () => {
  void worker
    .stop({ timeout: 2000 })
    .then(() => broker.close())
    .then(() => backend.close())
    .then(() => process.exit(0))
})
