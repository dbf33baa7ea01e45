import { AgeLimit } from './age-limit.ts'
import { Callbacks } from './callbacks.ts'
import type { Middleware } from './middleware.ts'
import { Pipelines } from './pipelines.ts'
import { Retries } from './retries.ts'
import { ShutdownNotifications } from './shutdown.ts'
import { TimeLimit } from './time-limit.ts'

/**
 * The default middleware stack, in Dramatiq's order: AgeLimit, TimeLimit,
 * ShutdownNotifications, Callbacks, Pipelines, Retries. Every broker uses it when no
 * `middleware` option is given. "After" hooks run in reverse, so Retries sees a failure first.
 */
export function defaultMiddleware(): Middleware[] {
  return [new AgeLimit(), new TimeLimit(), new ShutdownNotifications(), new Callbacks(), new Pipelines(), new Retries()]
}
