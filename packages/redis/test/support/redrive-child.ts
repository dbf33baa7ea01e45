// A process for the redrive crash test: it redrives a queue's dead letters `limit` at a time
// (many script calls, so a SIGKILL lands midway), says "started" before the first call and
// "done <moved>" at the end, then waits to be killed.
//   node --import tsx --conditions=@tq/source redrive-child.ts <url> <namespace> <queue> <limit>
import { RedisBroker } from '../../src/index.ts'

const [url, namespace, queueName, limitArg] = process.argv.slice(2)
const limit = Number(limitArg)
const broker = new RedisBroker({ url: url as string, namespace: namespace as string, middleware: [] })
await broker.connect()
process.stdout.write('started\n')
let moved = 0
for (;;) {
  const n = await broker.redriveDeadLetters(queueName as string, { limit })
  if (n === 0) break
  moved += n
}
process.stdout.write(`done ${moved}\n`)
setInterval(() => undefined, 60_000)
