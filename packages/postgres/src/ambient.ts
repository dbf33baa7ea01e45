import { AsyncLocalStorage } from 'node:async_hooks'
import type { EnqueueOptions, TransactionExecutor } from '@tq/core'

/**
 * A broker's ambient transaction (`broker.withTransaction(tx, fn)`): every enqueue inside `fn`
 * (awaited there, however deep) joins `tx` unless it names a transaction of its own.
 */
export class AmbientTransaction {
  readonly #storage = new AsyncLocalStorage<TransactionExecutor>()

  run<T>(transaction: TransactionExecutor, fn: () => T | Promise<T>): Promise<T> {
    return Promise.resolve(this.#storage.run(transaction, fn))
  }

  /** The enqueue options with the ambient transaction filled in, if there is one and none was given. */
  apply(options: EnqueueOptions): EnqueueOptions {
    if (options.transaction !== undefined) return options
    const ambient = this.#storage.getStore()
    return ambient ? { ...options, transaction: ambient } : options
  }
}
