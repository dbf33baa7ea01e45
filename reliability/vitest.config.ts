import { defineProject } from 'vitest/config'

export default defineProject({
  resolve: { conditions: ['@tq/source'] },
  ssr: { resolve: { conditions: ['@tq/source'] } },
  test: {
    name: 'reliability',
    include: ['test/**/*.test.ts'],
    // Every file runs real worker processes and injects faults into shared servers: one at a time.
    fileParallelism: false,
    // Full runs (TQ_FAULTS=full) take minutes per scenario; each test sets its own budget.
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
})
