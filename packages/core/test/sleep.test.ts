import { expect, it } from 'vitest'
import { sleep } from '../src/index.ts'

it('sleep() ends early when any of several signals aborts, and not before', async () => {
  const a = new AbortController()
  const b = new AbortController()
  let done = false
  const sleeping = sleep(60_000, [a.signal, undefined, b.signal]).then(() => (done = true))
  await Promise.resolve()
  expect(done).toBe(false)
  b.abort()
  await sleeping
  expect(done).toBe(true)
  // An aborted signal ends it at once; a single signal still works as before.
  await sleep(60_000, [new AbortController().signal, AbortSignal.abort()])
  await sleep(60_000, AbortSignal.abort())
})
