import { defineProject } from 'vitest/config'
import { testFiles } from '../../vitest.tier.ts'

export default defineProject({
  resolve: { conditions: ['@tq/source'] },
  ssr: { resolve: { conditions: ['@tq/source'] } },
  test: {
    name: 'dashboard',
    // The HTTP contract suites (`*.unit.test.ts`) need no server; the browser tests need Redis, RabbitMQ and Chromium.
    include: testFiles(),
    // The browser tests share one Redis, one RabbitMQ and a 2-core machine: one file at a time.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
