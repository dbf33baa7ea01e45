import { defineProject } from 'vitest/config'

export default defineProject({
  test: { name: 'doc-snippets', include: ['test/**/*.test.ts'], testTimeout: 120_000 },
})
