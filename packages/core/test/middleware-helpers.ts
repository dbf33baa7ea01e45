// Shared set-up for the middleware-*.test.ts files (not a test file itself).
import { afterEach } from 'vitest'
import {
  AgeLimit,
  Callbacks,
  Pipelines,
  Retries,
  ShutdownNotifications,
  StubBroker,
  TimeLimit,
  Worker,
  createLogger,
  defaultMiddleware,
  type LogEntry,
  type Message,
  type Middleware,
  type WireMessage,
} from '../src/index.ts'

export interface Enqueued {
  message: Message
  delay: number | undefined
  /** The payload as it went to the queue, decoded. */
  wire: WireMessage
}

const workers: Worker[] = []

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ timeout: 1000 })))
})

/** A StubBroker with `stack`, a recorder of every enqueue, a captured log and a started worker (stopped after the test). */
export async function setup(stack: Middleware[] = defaultMiddleware(), options: { concurrency?: number } = {}) {
  const logs: LogEntry[] = []
  const broker = new StubBroker({ middleware: stack, logger: createLogger((e) => logs.push(e)) })
  const enqueued: Enqueued[] = []
  broker.addMiddleware({
    afterEnqueue: (_b, message, delay) => {
      const wire = JSON.parse(new TextDecoder().decode(message.encode(broker.encoder))) as WireMessage
      enqueued.push({ message, delay, wire })
    },
  })
  const worker = new Worker(broker, { workerTimeout: 50, ...options })
  workers.push(worker)
  await worker.start()
  return { broker, worker, enqueued, logs }
}

/** The default stack with millisecond backoffs. */
export function fastStack(
  retries: Retries = new Retries({ minBackoff: 1, maxBackoff: 5 }),
  ...extra: Middleware[]
): Middleware[] {
  return [
    new AgeLimit(),
    new TimeLimit(),
    new ShutdownNotifications(),
    new Callbacks(),
    new Pipelines(),
    retries,
    ...extra,
  ]
}

/** Wait until the default queue is drained and the worker idle. */
export async function drain(broker: StubBroker, worker: Worker, queue = 'default'): Promise<void> {
  await broker.join(queue, { failFast: false, timeout: 5000 })
  await worker.join({ timeout: 5000 })
}

export interface Deferred<T> {
  promise: Promise<T>
  resolve: (value: T) => void
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}
