/**
 * Wakes waiters when something changes. `wait(ms)` resolves `true` when notified, `false` on
 * timeout or abort. Used for "wait for an event, not a guessed sleep".
 */
export class Notifier {
  #waiters = new Set<(notified: boolean) => void>()

  notify(): void {
    const waiters = this.#waiters
    if (waiters.size === 0) return
    this.#waiters = new Set()
    for (const w of waiters) w(true)
  }

  get waiting(): number {
    return this.#waiters.size
  }

  wait(timeoutMs?: number, signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false)
    return new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const done = (notified: boolean): void => {
        if (timer) clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.#waiters.delete(done)
        resolve(notified)
      }
      const onAbort = (): void => done(false)
      this.#waiters.add(done)
      if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) timer = setTimeout(done, Math.max(0, timeoutMs), false)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}

/**
 * Resolves after `ms`, or early (without error) when `signal` — or any of several signals —
 * aborts. Several signals are listened to directly, not combined with `AbortSignal.any()`, whose
 * combined signals a long-lived source keeps alive on Node 20.
 */
export function sleep(ms: number, signal?: AbortSignal | readonly (AbortSignal | undefined)[]): Promise<void> {
  const signals = signal === undefined ? [] : 'aborted' in signal ? [signal] : signal.filter((s) => s !== undefined)
  if (signals.some((s) => s.aborted)) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      for (const s of signals) s.removeEventListener('abort', done)
      resolve()
    }
    for (const s of signals) s.addEventListener('abort', done, { once: true })
  })
}
