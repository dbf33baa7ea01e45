import { InvalidArgumentError } from './errors.ts'

const QUEUE_NAME = /^[a-zA-Z_][a-zA-Z0-9._-]*$/

/** Throws `InvalidArgumentError` unless `name` is a valid queue name (Dramatiq's rule). */
export function validateQueueName(name: string): void {
  if (typeof name !== 'string' || !QUEUE_NAME.test(name)) {
    throw new InvalidArgumentError(
      `Invalid queue name ${JSON.stringify(name)}: queue names must match [a-zA-Z_][a-zA-Z0-9._-]*`,
    )
  }
}

/** The canonical queue name: `q.DQ` and `q.XQ` become `q`. */
export function qName(name: string): string {
  if (name.endsWith('.DQ') || name.endsWith('.XQ')) return name.slice(0, -3)
  return name
}

/** The delay queue of a queue: `q` and `q.XQ` become `q.DQ`. */
export function dqName(name: string): string {
  return `${qName(name)}.DQ`
}

/** The dead-letter queue of a queue: `q` and `q.DQ` become `q.XQ`. */
export function xqName(name: string): string {
  return `${qName(name)}.XQ`
}

export function isDelayQueue(name: string): boolean {
  return name.endsWith('.DQ')
}
