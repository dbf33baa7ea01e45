/**
 * A worker process for the SIGKILL test: it takes messages and never finishes them, printing
 * `started <i>` for each one it runs. The test kills it with SIGKILL.
 *   node --import tsx --conditions=@tq/source test/scripts/hold-worker.ts <endpoint> <region> <external> <prefix> <queue> <visibilityTimeout>
 */
import { Worker, actor } from '@tq/core'
import { SqsBroker } from '../../src/index.ts'

const [endpoint, region, external, queuePrefix, queueName, visibility] = process.argv.slice(2)
if (!endpoint || !region || !external || queuePrefix === undefined || !queueName || !visibility) {
  throw new Error('usage: hold-worker.ts <endpoint> <region> <external> <prefix> <queue> <visibilityTimeout>')
}

const broker = new SqsBroker({
  endpoint,
  region,
  ...(external === 'true' ? {} : { credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }),
  queuePrefix,
  visibilityTimeout: Number(visibility),
  waitTimeSeconds: 1,
  middleware: [],
})
actor(
  'hold',
  async (i: number) => {
    process.stdout.write(`started ${i}\n`)
    await new Promise<never>(() => undefined)
  },
  { broker, queueName },
)
const worker = new Worker(broker, { concurrency: 3, queuePrefetch: 3, workerTimeout: 100 })
await worker.start()
process.stdout.write('ready\n')
