import { InvalidArgumentError } from '@tq/core'

/** Schema names tq accepts: a plain lowercase identifier, so it never needs quoting rules. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/

/** Check a schema name (`tq` by default) and return it. */
export function checkSchemaName(schema: string): string {
  if (typeof schema !== 'string' || !SCHEMA_NAME.test(schema)) {
    throw new InvalidArgumentError(
      `schema must be a lowercase PostgreSQL identifier (letters, digits, _; at most 63), got ${JSON.stringify(schema)}`,
    )
  }
  return schema
}

/** The LISTEN/NOTIFY channel of a schema's queues. */
export function wakeChannel(schema: string): string {
  return `tq:${schema}`
}
