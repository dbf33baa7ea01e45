// Run with `pnpm demo` from the repository root: no server needed.
import { Worker, group, pipeline } from '@tq/core'
import { add, broker, flaky, greet } from './app.ts'

export async function main(log: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<void> {
  const worker = new Worker(broker, { concurrency: 4, workerTimeout: 100 })
  await worker.start()
  try {
    // Send a message and wait for its result.
    const message = await add.send(1, 2)
    log(`add(1, 2) = ${await message.getResult({ block: true, timeout: 5000 })}`)

    // A delayed message runs no earlier than its delay.
    const sentAt = Date.now()
    const later = await greet.sendWithOptions({ args: ['later'], delay: 200 })
    log(`${await later.getResult({ block: true, timeout: 5000 })} (after ${Date.now() - sentAt} ms)`)

    // Failures are retried with backoff.
    const retried = await flaky.send()
    log(`flaky(): ${await retried.getResult({ block: true, timeout: 5000 })}`)

    // A pipeline passes each result to the next step: (1 + 2) + 3, then + 4.
    const chain = await pipeline([add.message(1, 2), add.message(3), add.message(4)]).run()
    log(`pipeline 1 + 2 + 3 + 4 = ${await chain.getResult({ block: true, timeout: 5000 })}`)

    // A group runs its messages in parallel; results come back in order.
    const names = await group(['Ada', 'Grace', 'Linus'].map((name) => greet.message(name))).run()
    log(`group: ${(await names.collectResults({ block: true, timeout: 5000 })).join(' ')}`)

    await broker.join('default', { timeout: 5000 })
  } finally {
    await worker.stop()
  }
  log('done')
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main()
}
