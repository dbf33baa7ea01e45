import { defineProject } from 'vitest/config'

export default defineProject({
  resolve: { conditions: ['@tq/source'] },
  ssr: { resolve: { conditions: ['@tq/source'] } },
  test: {
    name: 'encoder-msgpack',
    include: ['test/**/*.test.ts'],
  },
})
