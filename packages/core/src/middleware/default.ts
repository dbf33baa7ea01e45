import type { Middleware } from './middleware.ts'

/**
 * The default middleware stack, in Dramatiq's order: AgeLimit, TimeLimit,
 * ShutdownNotifications, Callbacks, Pipelines, Retries.
 */
export function defaultMiddleware(): Middleware[] {
  return []
}
