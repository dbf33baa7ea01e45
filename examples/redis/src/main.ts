// Run with `pnpm start` (needs Redis on 127.0.0.1:6379, or REDIS_URL).
// One process plays both sides so the demo is self-contained.
import { Message, Worker } from '@tq/core'
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
    const stock = await syncStock.send('sku-7')

    // Wait until the queue, its delay queue (retries wait there too) and the messages this
    // worker holds are all empty.
    await broker.join(queueName, { timeout: 15_000 })

    // A message that failed for good stays in the dead-letter queue (7 days by default).
    const dead = await broker.deadLetters(queueName)
    const found = dead.some((letter) => Message.decode(letter.body).messageId === stock.messageId)
    log(`syncStock(sku-7) ${found ? 'is' : 'is not'} in the dead-letter queue ${queueName}.XQ`)
  } finally {
    await worker.stop()
    await broker.close()
  }
  log('done')
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main()
}
