import { afterAll } from 'vitest'
import { adminConformanceSuite } from '@tq/core/testing'
import { PostgresBroker } from '../src/index.ts'
import { PG_URL, dropSchema, testPool, testSchema } from './helpers.ts'

const schema = testSchema('tq_admin')
const pool = testPool(2)
afterAll(async () => {
  await dropSchema(pool, schema)
  await pool.end()
})

adminConformanceSuite({
  name: 'PostgresBroker',
  createBroker: ({ middleware }) => new PostgresBroker({ connectionString: PG_URL, schema, middleware }),
})
