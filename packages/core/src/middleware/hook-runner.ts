import type { Broker } from '../broker.ts'
import { SkipMessage } from '../errors.ts'
import { isThenable } from '../internal/promises.ts'
import { errorMeta, type Logger } from '../logger.ts'
import type { AsyncHookName, HookName, Middleware, SyncHookName } from './middleware.ts'

type AnyHook = (broker: Broker, ...args: unknown[]) => unknown

/**
 * Runs a broker's middleware hooks: the hooks of each signal cached in list order, errors
 * logged (a before hook's `SkipMessage` propagated), and no promise made for a hook that
 * returned synchronously. The broker's `emit*` / `run*` methods are built on it.
 */
export class HookRunner {
  readonly #broker: Broker
  readonly #middleware: readonly Middleware[]
  readonly #logger: () => Logger
  readonly #cache = new Map<HookName, Middleware[]>()

  constructor(broker: Broker, middleware: readonly Middleware[], logger: () => Logger) {
    this.#broker = broker
    this.#middleware = middleware
    this.#logger = logger
  }

  /** The middleware list changed. */
  invalidate(): void {
    this.#cache.clear()
  }

  /** The middleware with a `name` hook, in list order. */
  list(name: HookName): Middleware[] {
    let list = this.#cache.get(name)
    if (!list) {
      list = this.#middleware.filter((m) => typeof m[name] === 'function')
      this.#cache.set(name, list)
    }
    return list
  }

  /** Call one middleware's synchronous hook, if it has one; errors are logged. */
  callSync(m: Middleware, name: SyncHookName, args: unknown[]): void {
    const hook = m[name] as AnyHook | undefined
    if (!hook) return
    try {
      hook.call(m, this.#broker, ...args)
    } catch (error) {
      this.#failed(m, name, error)
    }
  }

  /** Every synchronous `name` hook, in list order (`before`) or reversed (`after`). */
  emitSync(name: SyncHookName, order: 'before' | 'after', args: unknown[]): void {
    const hooks = this.list(name)
    if (order === 'before') for (const m of hooks) this.callSync(m, name, args)
    else for (let i = hooks.length - 1; i >= 0; i--) this.callSync(hooks[i] as Middleware, name, args)
  }

  /** Before hooks in list order: `undefined` if all returned synchronously, else a promise for the rest. */
  runBefore(name: AsyncHookName, args: unknown[]): Promise<void> | undefined {
    const hooks = this.list(name)
    for (let i = 0; i < hooks.length; i++) {
      const pending = this.#invoke(hooks[i] as Middleware, name, args, true)
      if (pending) return this.#finish(hooks, i, pending, name, args, true)
    }
    return undefined
  }

  /** After hooks in reverse list order: `undefined` if all returned synchronously. Never throws. */
  runAfter(name: AsyncHookName, args: unknown[]): Promise<void> | undefined {
    const hooks = this.list(name)
    for (let i = hooks.length - 1; i >= 0; i--) {
      const pending = this.#invoke(hooks[i] as Middleware, name, args, false)
      if (pending) return this.#finish(hooks, i, pending, name, args, false)
    }
    return undefined
  }

  /** Call one hook: its promise if it returned one; errors logged (a before hook's `SkipMessage` thrown). */
  #invoke(m: Middleware, name: AsyncHookName, args: unknown[], before: boolean): PromiseLike<unknown> | undefined {
    try {
      const out = (m[name] as AnyHook).call(m, this.#broker, ...args)
      return isThenable(out) ? out : undefined
    } catch (error) {
      if (before && error instanceof SkipMessage) throw error
      this.#failed(m, name, error)
      return undefined
    }
  }

  /**
   * The rest of a hook run once `hooks[index]` returned `pending`: before hooks onwards in list
   * order (a `SkipMessage` rejects), after hooks backwards (every error logged).
   */
  async #finish(
    hooks: Middleware[],
    index: number,
    pending: PromiseLike<unknown>,
    name: AsyncHookName,
    args: unknown[],
    before: boolean,
  ): Promise<void> {
    const step = before ? 1 : -1
    for (let i = index; i >= 0 && i < hooks.length; i += step) {
      const m = hooks[i] as Middleware
      try {
        await (i === index ? pending : this.#invoke(m, name, args, before))
      } catch (error) {
        if (before && error instanceof SkipMessage) throw error
        this.#failed(m, name, error)
      }
    }
  }

  #failed(m: Middleware, name: HookName, error: unknown): void {
    this.#logger().error(`Unhandled error in ${m.constructor.name}.${name}`, errorMeta(error))
  }
}
