import { createHash } from 'node:crypto'
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

/** PostgreSQL refuses a NOTIFY channel of 64 bytes or more. */
const MAX_CHANNEL_BYTES = 63

/**
 * A LISTEN/NOTIFY channel of a schema: `tq:<schema>` (the broker's queues) or
 * `tq:<schema>:<part>`; with the schema as its MD5 digest when the name would be too long.
 */
export function channelName(schema: string, part?: string): string {
  const suffix = part === undefined ? '' : `:${part}`
  const plain = `tq:${schema}${suffix}`
  if (Buffer.byteLength(plain) <= MAX_CHANNEL_BYTES) return plain
  return `tq:${createHash('md5').update(schema).digest('hex')}${suffix}`
}
