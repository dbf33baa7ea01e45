import { defineProject } from 'vitest/config'
import { testFiles } from '../../vitest.tier.ts'

export default defineProject({
  resolve: { conditions: ['@tq/source'] },
  ssr: { resolve: { conditions: ['@tq/source'] } },
  test: {
    name: 'sqs',
    include: testFiles(),
    // Starts fauxqs on 127.0.0.1 (or uses TQ_SQS_ENDPOINT) and provides its endpoint to the tests.
    globalSetup: ['./test/global-setup.ts'],
    // The files share one SQS endpoint; run them one after another.
    fileParallelism: false,
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
})
