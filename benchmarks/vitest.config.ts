import { defineProject } from 'vitest/config'

export default defineProject({
  resolve: { conditions: ['@tq/source'] },
  ssr: { resolve: { conditions: ['@tq/source'] } },
  test: {
    name: 'benchmarks',
    include: ['test/**/*.test.ts'],
    // The quick run spawns its own processes and takes most of a minute on a busy 2-core machine.
    testTimeout: 120_000,
  },
})
