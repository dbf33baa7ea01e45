import { defineProject } from 'vitest/config'
import { testFiles } from '../../vitest.tier.ts'

export default defineProject({
  resolve: { conditions: ['@tq/source'] },
  ssr: { resolve: { conditions: ['@tq/source'] } },
  test: {
    name: 'results-redis',
    include: testFiles(),
    // The files share one Redis database (each with its own namespace); run them one after another.
    fileParallelism: false,
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
})
