import { InvalidArgumentError, qName, validateQueueName } from '@tq/core'

/** The longest queue name SQS accepts. */
export const SQS_MAX_QUEUE_NAME = 80

const SQS_NAME = /^[A-Za-z0-9_-]+$/
const PREFIX = /^[A-Za-z0-9_-]*$/

/** Throws `InvalidArgumentError` unless `prefix` only holds characters SQS allows in queue names. */
export function validateQueuePrefix(prefix: string): void {
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
    throw new InvalidArgumentError(
      `Invalid SQS queuePrefix ${JSON.stringify(prefix)}: SQS queue names allow only letters, digits, '-' and '_'`,
    )
  }
}

/**
 * The SQS queue name of a tq queue name (`q`, `q.DQ` or `q.XQ`): the prefix, then the canonical
 * name with every `.` replaced by `_`, then `_DQ` / `_XQ` for the delay and dead-letter queues.
 *
 *   orders        → <prefix>orders
 *   orders.DQ     → <prefix>orders_DQ
 *   orders.XQ     → <prefix>orders_XQ
 *   emails.high   → <prefix>emails_high
 *
 * SQS names allow only letters, digits, `-` and `_` (at most 80 characters), so the mapping is
 * not injective: `a.b` and `a_b` share an SQS queue. The broker refuses to declare two tq queues
 * that map to the same SQS name; across processes, keep queue names distinct after the mapping.
 * Throws `InvalidArgumentError` for a name that would exceed 80 characters.
 */
export function sqsQueueName(queueName: string, prefix = ''): string {
  validateQueueName(queueName)
  const canonical = qName(queueName)
  const suffix = queueName === canonical ? '' : queueName.endsWith('.DQ') ? '_DQ' : '_XQ'
  const name = `${prefix}${canonical.replaceAll('.', '_')}${suffix}`
  if (!SQS_NAME.test(name)) {
    throw new InvalidArgumentError(
      `Queue ${JSON.stringify(queueName)} maps to ${JSON.stringify(name)}, which is not a valid SQS queue name`,
    )
  }
  if (name.length > SQS_MAX_QUEUE_NAME) {
    throw new InvalidArgumentError(
      `Queue ${JSON.stringify(queueName)} maps to the SQS queue name ${JSON.stringify(name)} of ${name.length} ` +
        `characters; SQS allows at most ${SQS_MAX_QUEUE_NAME}. Use a shorter queue name or queuePrefix.`,
    )
  }
  return name
}
