// The actors of the quickstart. Importing this module declares them on the broker it sets.
import { Results, StubBroker, StubResultBackend, actor, defaultMiddleware, setBroker } from '@tq/core'

export const backend = new StubResultBackend()
export const broker = new StubBroker({
  middleware: [...defaultMiddleware(), new Results({ backend, storeResults: true })],
})
setBroker(broker)

// `y` is optional so a pipeline step can be built with one argument: the previous result is appended.
export const add = actor('add', (x: number, y = 0) => x + y)

export const greet = actor('greet', async (name: string) => {
  await new Promise((resolve) => setTimeout(resolve, 10))
  return `Hello, ${name}!`
})

let calls = 0
/** Fails twice, then succeeds: Retries runs it again with backoff (kept tiny for the demo). */
export const flaky = actor(
  'flaky',
  () => {
    calls++
    if (calls < 3) throw new Error(`attempt ${calls} failed`)
    return `succeeded on attempt ${calls}`
  },
  { maxRetries: 5, minBackoff: 10, maxBackoff: 50 },
)
