import { Tracking } from '@tq/core'
import type { Redis } from 'ioredis'
import { afterEach, beforeEach, describe } from 'vitest'
import { RedisTrackingBackend } from '../src/index.ts'
import { REDIS_URL, deleteNamespace } from './helpers.ts'

/**
 * Describe `suite` twice: as it is, and again with Tracking on the tq side (a
 * RedisTrackingBackend under a prefix of the test's namespace, cleaned up after each test), which
 * `use` hands to the brokers the suite builds. The wire suites check that a Python peer sees no
 * difference.
 */
export function withAndWithoutTracking(
  name: string,
  suite: () => void,
  options: { namespace: () => string; client: Redis; use: (tracking: Tracking | undefined) => void },
): void {
  describe(name, suite)
  describe(`${name}, with Tracking on`, () => {
    let backend: RedisTrackingBackend | undefined
    beforeEach(() => {
      backend = new RedisTrackingBackend({ url: REDIS_URL, prefix: `tq-tracking-${options.namespace()}` })
      options.use(new Tracking({ backend, flushInterval: 5 }))
    })
    afterEach(async () => {
      await backend?.close()
      await deleteNamespace(options.client, `tq-tracking-${options.namespace()}`)
      options.use(undefined)
      backend = undefined
    })
    suite()
  })
}
