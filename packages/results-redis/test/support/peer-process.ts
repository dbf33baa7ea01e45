/**
 * The other process of cross-process.test.ts, run as
 * `node --import tsx --conditions=@tq/source test/support/peer-process.ts <mode>`:
 *
 * - `worker`: a RedisBroker + Results(RedisResultBackend) worker processing `add` and `fails`;
 * - `reader`: for each message (a Dramatiq wire dict, one JSON line on stdin) prints
 *   `waiting <id>`, then does a blocking read and prints `result <id> <json>` or
 *   `error <id> <name> <message>`.
 *
 * Both print `ready` (the reader: `ready <backendId>`) once connected and exit cleanly on SIGTERM. The broker and backend
 * namespaces come from TQ_TEST_BROKER_NS and TQ_TEST_RESULTS_NS.
 */
import { createInterface } from 'node:readline'
import { Message, Results, Worker, defaultMiddleware } from '@tq/core'
import { RedisBroker } from '@tq/redis'
import { RedisResultBackend } from '../../src/index.ts'
import { REDIS_URL } from '../helpers.ts'
import { declareActors } from './actors.ts'

const mode = process.argv[2]
const backend = new RedisResultBackend({
  url: REDIS_URL,
  namespace: process.env['TQ_TEST_RESULTS_NS'] ?? 'missing',
  usePrefixKeys: true,
})
const say = (line: string): void => {
  process.stdout.write(`${line}\n`)
}

if (mode === 'worker') {
  const broker = new RedisBroker({
    url: REDIS_URL,
    namespace: process.env['TQ_TEST_BROKER_NS'] ?? 'missing',
    middleware: [...defaultMiddleware(), new Results({ backend })],
  })
  declareActors(broker)
  const worker = new Worker(broker, { workerTimeout: 50 })
  await worker.start()
  process.once('SIGTERM', () => {
    void (async () => {
      await worker.stop({ timeout: 2000 })
      await broker.close()
      await backend.close()
      process.exit(0)
    })()
  })
  say('ready')
} else if (mode === 'reader') {
  await backend.client.ping()
  const lines = createInterface({ input: process.stdin })
  lines.on('line', (line) => {
    const message = Message.fromWire(JSON.parse(line))
    say(`waiting ${message.messageId}`)
    backend.getResult(message, { block: true, timeout: 5000 }).then(
      (value) => say(`result ${message.messageId} ${JSON.stringify(value)}`),
      (error: Error) => say(`error ${message.messageId} ${error.name} ${error.message}`),
    )
  })
  process.once('SIGTERM', () => {
    lines.close()
    void backend.close().then(() => process.exit(0))
  })
  say(`ready ${backend.backendId}`)
} else {
  process.stderr.write(`unknown mode ${String(mode)}\n`)
  process.exit(2)
}
