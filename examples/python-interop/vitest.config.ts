import { defineProject } from 'vitest/config'

export default defineProject({
  resolve: { conditions: ['@tq/source'] },
  ssr: { resolve: { conditions: ['@tq/source'] } },
  test: { name: 'example-python-interop', include: ['test/**/*.test.ts'], testTimeout: 30_000 },
})
