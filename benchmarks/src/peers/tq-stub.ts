// tq on the in-memory StubBroker: the cost of tq itself (encoding, the Worker, middleware) with
// no network. Producer and consumer share the broker, so both run in the same agent process.
import { StubBroker, Worker, actor, type Actor } from '@tq/core'
import type { BenchContext, SystemModule } from './types.ts'

interface Shared {
  broker: StubBroker
  noop: (value: number) => void
  send: Actor<[number], void, void>
}

const shared = new Map<string, Shared>()

function sharedFor(ctx: BenchContext, queue: string): Shared {
  let entry = shared.get(queue)
  if (!entry) {
    const broker = new StubBroker(ctx.tqMiddleware === 'none' ? { middleware: [] } : {})
    const state = { broker, noop: (_value: number): void => undefined } as Shared
    state.send = actor('noop', (value: number) => state.noop(value), { broker, queueName: queue })
    shared.set(queue, (entry = state))
  }
  return entry
}

export const system: SystemModule = {
  name: 'tq-stub',
  label: 'tq · StubBroker',
  backend: 'memory',
  kind: 'tq',
  inProcess: true,
  async producer(ctx, queue) {
    const { broker, send } = sharedFor(ctx, queue)
    return {
      async bulk(values) {
        await broker.enqueueMany(values.map((value) => send.message(value)))
      },
      async one(value) {
        await send.send(value)
      },
      async close() {},
    }
  },
  async consumer(ctx, queue, concurrency, onProcessed) {
    const state = sharedFor(ctx, queue)
    state.noop = onProcessed
    const worker = new Worker(state.broker, { concurrency, workerTimeout: 100 })
    return {
      start: () => worker.start(),
      async stop() {
        await worker.stop({ timeout: 5000 })
        await state.broker.close()
        shared.delete(queue)
      },
    }
  },
}
