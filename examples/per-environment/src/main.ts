// Run with `pnpm start` (in memory), or pick a broker:
//   TQ_BROKER_URL=redis://127.0.0.1:6379/0 pnpm start
//   TQ_BROKER_URL=amqp://guest:guest@127.0.0.1:5672 pnpm start
import { Worker } from '@tq/core'
import { broker, onReport, publish, queueName, resize } from './tasks.ts'

export async function main(log: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<void> {
  onReport(log)
  log(`broker: ${broker.constructor.name}`)
  const worker = new Worker(broker, { concurrency: 4, workerTimeout: 100 })
  await worker.start()
  try {
    await resize.send('cat.png', 320)
    await publish.sendWithOptions({ args: ['cat.png'], delay: 100 })
    await broker.join(queueName, { timeout: 10_000 })
  } finally {
    await worker.stop()
    await broker.close()
  }
  log('done')
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main()
}
