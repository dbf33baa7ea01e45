/**
 * Option lookups shared by the default middleware (internal; not exported).
 *
 * Dramatiq reads an option in one of two ways, and which one matters for falsy values:
 * - `orLookup`: the message option when truthy, else the actor option when set, else the
 *   middleware default. A message value of `0`, `false`, `null` or `''` falls through.
 * - `presentLookup`: the message option when set (even `0`/`null`), else the actor option when
 *   set, else the default. Explicit falsy values are honoured.
 * "Set" means the key holds something other than `undefined`.
 */
import type { AnyActor } from '../actor.ts'

type Options = Readonly<Record<string, unknown>>

/** Python's truthiness, for the values options can hold. */
export function truthy(value: unknown): boolean {
  if (value === undefined || value === null || value === false || value === 0 || value === '') return false
  if (typeof value === 'number' && Number.isNaN(value)) return false
  if (Array.isArray(value) && value.length === 0) return false
  return true
}

function actorOptions(actor: AnyActor | undefined): Options {
  return actor?.options ?? {}
}

/** `message.options.get(x) or actor.options.get(x, default)` */
export function orLookup<T>(options: Options, actor: AnyActor | undefined, key: string, fallback: T): unknown {
  const fromMessage = options[key]
  if (truthy(fromMessage)) return fromMessage
  const fromActor = actorOptions(actor)[key]
  return fromActor === undefined ? fallback : fromActor
}

/** `message.options.get(x, actor.options.get(x, default))` */
export function presentLookup<T>(options: Options, actor: AnyActor | undefined, key: string, fallback: T): unknown {
  const fromMessage = options[key]
  if (fromMessage !== undefined) return fromMessage
  const fromActor = actorOptions(actor)[key]
  return fromActor === undefined ? fallback : fromActor
}
