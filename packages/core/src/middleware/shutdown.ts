import type { Broker } from '../broker.ts'
import { ShutdownError } from '../errors.ts'
import type { MessageProxy } from '../message-proxy.ts'
import type { Worker } from '../worker.ts'
import type { Middleware } from './middleware.ts'

export interface ShutdownNotificationsOptions {
  /** Default for actors without `notifyShutdown` (default false). */
  notifyShutdown?: boolean
}

/**
 * Tells long-running actors that the worker is shutting down. While a message whose
 * `notifyShutdown` is on (message option, else actor option, else the middleware's; an
 * explicit `false` is honoured at every level) is being processed, `worker.stop()` aborts its
 * `signal` with a `ShutdownError`. The worker stops waiting for it and the message fails with
 * that error, so `Retries` puts it back on the queue for another worker. Messages that already
 * finished, and messages that did not opt in, are left alone (those get the stop timeout to
 * finish).
 *
 * An actor that can checkpoint should watch `currentMessage()?.signal` (with `CurrentMessage`)
 * and stop cleanly.
 *
 * The middleware belongs to a broker, so every worker of that broker in this process notifies
 * the actors of all of them when one of them stops.
 */
export class ShutdownNotifications implements Middleware {
  readonly actorOptions: readonly string[] = ['notifyShutdown']
  readonly notifyShutdown: boolean
  readonly #running = new Set<MessageProxy>()

  constructor(options: ShutdownNotificationsOptions = {}) {
    this.notifyShutdown = options.notifyShutdown ?? false
  }

  /** Messages that would be notified if the worker stopped now. */
  get pending(): number {
    return this.#running.size
  }

  #shouldNotify(broker: Broker, proxy: MessageProxy): boolean {
    const fromMessage = proxy.options.notifyShutdown
    if (fromMessage !== undefined && fromMessage !== null) return Boolean(fromMessage)
    const fromActor = broker.actors.get(proxy.actorName)?.options.notifyShutdown
    if (fromActor !== undefined && fromActor !== null) return Boolean(fromActor)
    return this.notifyShutdown
  }

  beforeProcessMessage(broker: Broker, proxy: MessageProxy): void {
    if (this.#shouldNotify(broker, proxy)) this.#running.add(proxy)
  }

  afterProcessMessage(_broker: Broker, proxy: MessageProxy): void {
    this.#running.delete(proxy)
  }

  afterSkipMessage(_broker: Broker, proxy: MessageProxy): void {
    this.#running.delete(proxy)
  }

  beforeWorkerShutdown(broker: Broker, _worker: Worker): void {
    if (this.#running.size === 0) return
    const logger = broker.logger.child({ component: 'shutdown-notifications' })
    const running = [...this.#running]
    this.#running.clear()
    for (const proxy of running) {
      logger.debug(`Notifying ${proxy.toString()} of the shutdown`, { messageId: proxy.messageId })
      proxy.abort(new ShutdownError())
    }
  }
}
