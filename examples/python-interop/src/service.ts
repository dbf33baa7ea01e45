// The Node half: a tq service on the same Redis as a Python Dramatiq service (python/tasks.py).
//
// What must match on both sides: the Redis database, the broker namespace, queue names, actor
// names, argument shapes, and the results namespace. Both read them from the same variables.
import { Results, Worker, actor, defaultMiddleware, setBroker, type Message } from '@tq/core'
import { RedisBroker } from '@tq/redis'
import { RedisResultBackend } from '@tq/results-redis'

const url = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379/0'

/** Dramatiq's RedisBroker namespace (its default is "dramatiq"). */
export const namespace = process.env['REDIS_NAMESPACE'] ?? 'dramatiq'
/** Dramatiq's RedisBackend namespace (its default is "dramatiq-results"). */
export const resultsNamespace = process.env['RESULTS_NAMESPACE'] ?? 'dramatiq-results'

export const resultBackend = new RedisResultBackend({ url, namespace: resultsNamespace })

export const broker = new RedisBroker({
  url,
  namespace,
  middleware: [...defaultMiddleware(), new Results({ backend: resultBackend })],
  // A Python producer sends no wake-up, so an idle tq worker finds its messages by polling:
  // every 250 ms here instead of the default 1 s.
  pollInterval: 250,
})
setBroker(broker)

let reporter: (line: string) => void = (line) => process.stdout.write(`${line}\n`)

/** Where the actors report what they did. A real app would write to its database or its logs. */
export function onReport(fn: (line: string) => void): void {
  reporter = fn
}

/**
 * Runs here, in Node; Python sends it with `make_thumbnail.send("/img/cat.png", width=320)`.
 * Python's keyword arguments arrive as one trailing object. The name is the Python one.
 */
export const makeThumbnail = actor(
  'make_thumbnail',
  (path: string, options: { width?: number } = {}) => {
    const width = options.width ?? 256
    const thumbnail = path.replace(/(\.\w+)$/, `.${width}$1`)
    reporter(`make_thumbnail(${path}, width=${width}) -> ${thumbnail}`)
    // Stored in Redis where Python's message.get_result() finds it.
    return { path, width, thumbnail }
  },
  { queueName: 'thumbnails', storeResults: true },
)

/**
 * Runs in Python (python/tasks.py). Declared here only so Node code can send it with types;
 * this service's worker does not consume the `reports` queue, so the body never runs here.
 */
export const buildReport = actor(
  'build_report',
  (_accountId: number, _options?: { format?: string }): never => {
    throw new Error('build_report runs in the Python service')
  },
  { queueName: 'reports' },
)

/** Ask the Python service for a report. Keyword arguments go in `kwargs`, as Python sends them. */
export async function requestReport(accountId: number, format: string): Promise<Message<never>> {
  return buildReport.sendWithOptions({ args: [accountId], kwargs: { format }, timeLimit: 60_000 })
}

/** Start the worker for the queues this service owns. */
export async function startService(): Promise<{ stop(): Promise<void> }> {
  const worker = new Worker(broker, { queues: ['thumbnails'], concurrency: 4 })
  await worker.start()
  return {
    async stop() {
      await worker.stop()
      await Promise.all([broker.close(), resultBackend.close()])
    },
  }
}
