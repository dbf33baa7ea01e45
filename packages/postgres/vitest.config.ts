import { defineProject } from 'vitest/config'
import { testFiles } from '../../vitest.tier.ts'

export default defineProject({
  resolve: { conditions: ['@tq/source'] },
  ssr: { resolve: { conditions: ['@tq/source'] } },
  test: {
    name: 'postgres',
    include: testFiles(),
    // Generates the Prisma client of the fromPrisma tests.
    globalSetup: ['./test/global-setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
})
