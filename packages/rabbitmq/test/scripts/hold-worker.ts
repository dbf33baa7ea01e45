/**
 * A worker process for the SIGKILL test: it takes messages and never finishes them, printing
 * `started <i>` for each one it runs. The test kills it with SIGKILL.
 *   node --import tsx --conditions=@tq/source test/scripts/hold-worker.ts <url> <queue> <connectionName>
 */
import { Worker, actor } from '@tq/core'
import { RabbitmqBroker } from '../../src/index.ts'

const [url, queueName, connectionName] = process.argv.slice(2)
if (!url || !queueName || !connectionName) throw new Error('usage: hold-worker.ts <url> <queue> <connectionName>')

const broker = new RabbitmqBroker({ url, middleware: [], connectionName })
actor(
  'hold',
  async (i: number) => {
    process.stdout.write(`started ${i}\n`)
    await new Promise<never>(() => undefined)
  },
  { broker, queueName },
)
const worker = new Worker(broker, { concurrency: 3, queuePrefetch: 6, workerTimeout: 100 })
await worker.start()
process.stdout.write('ready\n')
