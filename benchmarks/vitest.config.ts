import { defineProject } from 'vitest/config'

export default defineProject({
  resolve: { conditions: ['@tq/source'] },
  ssr: { resolve: { conditions: ['@tq/source'] } },
  test: {
    name: 'benchmarks',
    include: ['test/**/*.test.ts'],
    // The quick run spawns its own processes and takes about a minute on a busy 2-core machine
    // (Redis, RabbitMQ, SQS and PostgreSQL systems).
    testTimeout: 180_000,
  },
})
