/** One settled promise to hand out where nothing is pending (saves a promise per call). */
export const RESOLVED: Promise<void> = Promise.resolve()

/** Whether `value` is a promise or any object with a `then` method. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== undefined &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function' &&
    (typeof value === 'object' || typeof value === 'function')
  )
}
