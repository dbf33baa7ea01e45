import { defineProject } from 'vitest/config'

export default defineProject({
  // maxConcurrency: how many doc examples run-snippets.test.ts runs at once (each in its own process).
  test: {
    name: 'doc-snippets',
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    maxConcurrency: 6,
    // Generates the Prisma client the Prisma examples import.
    globalSetup: ['./test/global-setup.ts'],
  },
})
