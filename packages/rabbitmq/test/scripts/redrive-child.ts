/**
 * A redrive process for the SIGKILL test: it redrives every dead letter of a queue and prints
 * `moved <n>` when done. Its `beforeEnqueue` hook, on the first message of each batch after the
 * first, waits a timer tick (as a hook doing I/O would, so the previous batch's acks go out)
 * and prints `preparing <k>` for batch k. The test kills it with SIGKILL midway.
 *   node --import tsx --conditions=@tq/source test/scripts/redrive-child.ts <url> <queue> <connectionName> <batch>
 */
import { setTimeout as tick } from 'node:timers/promises'
import { RabbitmqBroker } from '../../src/index.ts'

const [url, queueName, connectionName, batch] = process.argv.slice(2)
if (!url || !queueName || !connectionName || !batch) {
  throw new Error('usage: redrive-child.ts <url> <queue> <connectionName> <batch>')
}

let seen = 0
const broker = new RabbitmqBroker({
  url,
  connectionName,
  middleware: [
    {
      beforeEnqueue: async () => {
        if (seen++ % Number(batch) !== 0 || seen === 1) return
        await tick(1)
        process.stdout.write(`preparing ${Math.ceil(seen / Number(batch))}\n`)
      },
    },
  ],
})
const started = performance.now()
const moved = await broker.redriveDeadLetters(queueName)
process.stdout.write(`moved ${moved} in ${Math.round(performance.now() - started)} ms\n`)
await broker.close()
