// Run with `pnpm start` (needs RabbitMQ on 127.0.0.1:5672 with guest/guest, or AMQP_URL).
// One process plays both sides so the demo is self-contained.
import { Worker } from '@tq/core'
import { broker, chargeCard, onReport, queueName, sendReceipt, syncStock } from './tasks.ts'

export async function main(log: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<void> {
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

    // Wait until the queue and its delay queue (retries wait there too) have no ready messages
    // and this worker holds none.
    await broker.join(queueName, { timeout: 15_000 })

    // A message that failed for good is dead-lettered by RabbitMQ into q.XQ (kept 7 days).
    const { dead } = await broker.getQueueMessageCounts(queueName)
    log(`${queueName}.XQ holds ${dead} dead letter(s)`)
  } finally {
    await worker.stop()
    await broker.close()
  }
  log('done')
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main()
}
