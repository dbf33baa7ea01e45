// The broker, the backends and the actors. Producers and workers both import this module.
import { GroupCallbacks, Results, actor, defaultMiddleware, setBroker } from '@tq/core'
import { RedisBroker, RedisRateLimiterBackend } from '@tq/redis'
import { RedisResultBackend } from '@tq/results-redis'

const url = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379/0'
const namespace = process.env['REDIS_NAMESPACE'] ?? 'tq-example'

export const queueName = 'pages'

/** Where results are kept (Dramatiq's keys and bytes: a Python service can read them). */
export const resultBackend = new RedisResultBackend({ url, namespace: `${namespace}-results` })
/** Where group barriers live; every worker must share it. */
export const rateLimiterBackend = new RedisRateLimiterBackend({ url })

export const broker = new RedisBroker({
  url,
  namespace,
  middleware: [
    ...defaultMiddleware(),
    // After the default stack, so a pipeline step's result is stored before the next step starts.
    new Results({ backend: resultBackend, storeResults: true }),
    new GroupCallbacks({ rateLimiterBackend }),
  ],
})
setBroker(broker)

let reporter: (line: string) => void = (line) => process.stdout.write(`${line}\n`)

/** Where the actors report what they did. A real app would write to its database or its logs. */
export function onReport(fn: (line: string) => void): void {
  reporter = fn
}

/** A tiny website (a real actor would fetch() it). */
const site: Record<string, string> = {
  '/': 'Welcome to the docs of tq',
  '/about': 'tq is Dramatiq for TypeScript and Node',
  '/contact': 'Write to the maintainers',
}

/** The name shows up in stored failures, on both sides: `actor raised PageNotFound: …`. */
export class PageNotFound extends Error {
  override name = 'PageNotFound'
}

export const fetchPage = actor(
  'fetchPage',
  (path: string) => {
    const text = site[path]
    if (text === undefined) throw new PageNotFound(`no page at ${path}`)
    return text
  },
  // `throws`: a missing page will not appear on a retry, so fail at once (no retries).
  { queueName, throws: PageNotFound },
)

// In a pipeline each step gets the previous step's result as its last argument; a parameter
// that a step receives that way has a default, so the message can be built without it.
export const countWords = actor('countWords', (text = '') => text.split(/\s+/).filter(Boolean).length, {
  queueName,
})

export const label = actor('label', (path: string, words = 0) => `${path}: ${words} words`, { queueName })

/** The group's completion callback: enqueued once, when every child has succeeded. */
export const siteCounted = actor(
  'siteCounted',
  (site: string, pages: number) => {
    reporter(`siteCounted(${site}): all ${pages} pages are counted`)
  },
  { queueName },
)
