import { defineProject } from 'vitest/config'
import { testFiles } from '../../vitest.tier.ts'

export default defineProject({
  resolve: { conditions: ['@tq/source'] },
  ssr: { resolve: { conditions: ['@tq/source'] } },
  test: {
    name: 'postgres',
    include: testFiles(),
  },
})
