// A scheduler process for the failover test: sends `tick` every <every> ms (missed: 'all'),
// electing its leader with the others through the tracking backend's lease. Prints
// "ready <owner>" once started; SIGTERM stops it (giving the lease up).
//   node --import tsx --conditions=@tq/source scheduler-process.ts <url> <namespace> <prefix> <queue> <lease> <every>
import { Scheduler, actor } from '@tq/core'
import { RedisBroker, RedisTrackingBackend } from '../../src/index.ts'

const [url, namespace, prefix, queueName, lease, every] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
  string,
]
const backend = new RedisTrackingBackend({ url, prefix })
const broker = new RedisBroker({ url, namespace })
const tick = actor('tick', () => undefined, { broker, queueName })
const scheduler = new Scheduler({ broker, backend, lease: Number(lease) })
scheduler.add('fast', tick, { every: Number(every), missed: 'all' })
await scheduler.start()
process.stdout.write(`ready ${scheduler.owner}\n`)
process.once('SIGTERM', () => {
  void scheduler
    .stop()
    .then(() => broker.close())
    .then(() => backend.close())
    .then(() => process.exit(0))
})
