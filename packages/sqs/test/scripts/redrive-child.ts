/**
 * A process for the redrive SIGKILL test: it redrives the dead letters of a queue, printing
 * `moved <n>` each time a message reached the queue (the `afterEnqueue` hook) and `done <n>` at
 * the end. The test kills it with SIGKILL midway. With a command name and a number, the
 * process holds that call of that command (e.g. the 20th `DeleteMessageBatchCommand`) before
 * it is sent, forever, and prints `holding`: the test then kills it at that exact point.
 *   node --import tsx --conditions=@tq/source test/scripts/redrive-child.ts <endpoint> <region> <external> <prefix> <queue> <visibilityTimeout> [<command> <n>]
 */
import { SqsBroker } from '../../src/index.ts'

const [endpoint, region, external, queuePrefix, queueName, visibility, holdCommand, holdAt] = process.argv.slice(2)
if (!endpoint || !region || !external || queuePrefix === undefined || !queueName || !visibility) {
  throw new Error(
    'usage: redrive-child.ts <endpoint> <region> <external> <prefix> <queue> <visibilityTimeout> [<command> <n>]',
  )
}

let moved = 0
const broker = new SqsBroker({
  endpoint,
  region,
  ...(external === 'true' ? {} : { credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }),
  queuePrefix,
  visibilityTimeout: Number(visibility),
  waitTimeSeconds: 1,
  middleware: [{ afterEnqueue: () => void process.stdout.write(`moved ${++moved}\n`) }],
})
if (holdCommand) {
  let calls = 0
  broker.client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === holdCommand && ++calls === Number(holdAt)) {
        process.stdout.write('holding\n')
        await new Promise<never>(() => undefined)
      }
      return next(args)
    },
    { step: 'initialize', name: 'tqTestHold' },
  )
}
broker.declareQueue(queueName)
const n = await broker.redriveDeadLetters(queueName)
process.stdout.write(`done ${n}\n`)
await broker.close()
