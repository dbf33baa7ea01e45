// Run with `pnpm start`. Without TQ_SQS_ENDPOINT it starts fauxqs (an SQS emulator) in this
// process on 127.0.0.1; with it (LocalStack, or https://sqs.<region>.amazonaws.com) it uses that.
// One process plays both sides so the demo is self-contained.
import { Worker } from '@tq/core'

/** Start fauxqs on 127.0.0.1 and an OS-chosen port unless an endpoint is configured. */
async function startEmulator(): Promise<(() => Promise<void>) | undefined> {
  if (process.env['TQ_SQS_ENDPOINT']) return undefined
  const { buildApp } = await import('fauxqs')
  const app = buildApp({ logger: false, defaultRegion: process.env['AWS_REGION'] ?? 'us-east-1' })
  process.env['TQ_SQS_ENDPOINT'] = await app.listen({ host: '127.0.0.1', port: 0 })
  // fauxqs accepts any credentials; the SDK still wants some.
  process.env['AWS_ACCESS_KEY_ID'] ??= 'test'
  process.env['AWS_SECRET_ACCESS_KEY'] ??= 'test'
  return () => app.close()
}

export async function main(log: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<void> {
  const stopEmulator = await startEmulator()
  // Imported after the endpoint is known: the module builds the broker from the environment.
  const { broker, chargeCard, onReport, queueName, sendReceipt, syncStock } = await import('./tasks.ts')
  onReport(log)

  // The worker side (in production: its own process, `npx tq worker dist/tasks.js`).
  const worker = new Worker(broker, { concurrency: 4, workerTimeout: 100 })
  await worker.start()
  try {
    // The producer side.
    log('sending chargeCard(order-1), sendReceipt(order-1) with a 500 ms delay, syncStock(sku-7)')
    await chargeCard.send('order-1', 4200)
    await sendReceipt.sendWithOptions({ args: ['order-1', Date.now()], delay: 500 })
    await syncStock.send('sku-7')

    // Wait until SQS counts nothing visible, in flight or delayed in the queue and its delay
    // queue, several times in a row (the counts are approximate).
    await broker.join(queueName, { timeout: 15_000 })

    // A message that failed for good is moved to the dead-letter queue (`<prefix>orders_XQ`).
    const { visible } = await broker.messageCounts(`${queueName}.XQ`)
    log(`${queueName}.XQ holds ${visible} dead letter(s)`)
  } finally {
    await worker.stop()
    await broker.close()
    await stopEmulator?.()
  }
  log('done')
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main()
}
