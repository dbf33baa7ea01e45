import { limitsSchema, resultsSchema } from './backends-schema.ts'
import { brokerSchema } from './broker-schema.ts'
import { outboxSchema } from './outbox/schema.ts'
import type { SchemaComponent } from './schema.ts'
import { trackingSchema } from './tracking/schema.ts'

/** Every part of the schema, in the order `tq postgres migrate` applies them. */
export const schemaComponents: readonly SchemaComponent[] = [
  brokerSchema,
  outboxSchema,
  trackingSchema,
  resultsSchema,
  limitsSchema,
]
