import { afterAll } from 'vitest'
import { adminConformanceSuite } from '@tq/core/testing'
import { PostgresBroker } from '../src/index.ts'
import { PostgresTrackingBackend } from '../src/tracking/backend.ts'
import { PG_URL, dropSchema, testPool, testSchema } from './helpers.ts'

// The broker and tracking in PostgreSQL, as a deployment without Redis has them: the broker's
// tables in one schema, each test's tracking tables in a schema of their own.
const schema = testSchema('tq_admin_tracking')
const trackingSchemas: string[] = []
const pool = testPool(2)
afterAll(async () => {
  for (const s of [schema, ...trackingSchemas]) await dropSchema(pool, s)
  await pool.end()
})

adminConformanceSuite({
  name: 'PostgresBroker with PostgresTrackingBackend',
  createBroker: ({ middleware }) => new PostgresBroker({ connectionString: PG_URL, schema, middleware }),
  createTrackingBackend: () => {
    const tracking = testSchema('tq_admin_tracked')
    trackingSchemas.push(tracking)
    return new PostgresTrackingBackend({ connectionString: PG_URL, schema: tracking })
  },
})
