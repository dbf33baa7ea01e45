// A relay process for the outbox kill test: forwards the outbox of CHILD_SCHEMA to Redis
// (namespace CHILD_NAMESPACE), each batch held for CHILD_HOLD_MS after it was sent and before it
// is deleted, so a SIGKILL lands mid-forward. Prints "forwarding" when its first batch is sent.
import { RedisBroker } from '@tq/redis'
import { OutboxBroker } from '../../src/index.ts'

const env = (name: string): string => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}
const hold = Number(process.env['CHILD_HOLD_MS'] ?? '0')

class SlowRedis extends RedisBroker {
  override async enqueueMany(...args: Parameters<RedisBroker['enqueueMany']>): ReturnType<RedisBroker['enqueueMany']> {
    const sent = await super.enqueueMany(...args)
    process.stdout.write('forwarding\n')
    await new Promise((resolve) => setTimeout(resolve, hold))
    return sent
  }
}

const target = new SlowRedis({ url: env('CHILD_REDIS_URL'), namespace: env('CHILD_NAMESPACE'), middleware: [] })
const outbox = new OutboxBroker({
  connectionString: env('CHILD_PG_URL'),
  schema: env('CHILD_SCHEMA'),
  target,
  middleware: [],
  relay: true,
  batchSize: Number(process.env['CHILD_BATCH'] ?? '100'),
})
outbox.declareQueue(env('CHILD_QUEUE'))
outbox.startRelay()
