import { AsyncLocalStorage } from 'node:async_hooks'
import type { Broker } from '../broker.ts'
import type { MessageProxy } from '../message-proxy.ts'
import type { Middleware } from './middleware.ts'

const storage = new AsyncLocalStorage<MessageProxy>()

/**
 * Makes the message being processed available to the actor (and everything it calls, across
 * `await`s) through `currentMessage()`. Not in the default stack: it runs each actor inside an
 * `AsyncLocalStorage` context, which costs a little on every promise, so add it when you need it:
 *
 * ```ts
 * const broker = new StubBroker({ middleware: [...defaultMiddleware(), new CurrentMessage()] })
 * const work = actor(async (url: string) => {
 *   const message = currentMessage()
 *   // Aborts on the time limit and (with notifyShutdown) on worker shutdown.
 *   const response = await fetch(url, { signal: message?.signal })
 *   return { status: response.status, attempt: message?.options.retries ?? 0 }
 * }, { broker })
 * ```
 *
 * Outside an actor run by a worker, `currentMessage()` is `undefined`.
 */
export class CurrentMessage implements Middleware {
  readonly actorOptions: readonly string[] = []

  /** The message being processed by the calling actor, or `undefined` outside one. */
  static getCurrentMessage(): MessageProxy | undefined {
    return storage.getStore()
  }

  wrapActorCall(_broker: Broker, proxy: MessageProxy, call: () => Promise<unknown>): Promise<unknown> {
    return storage.run(proxy, call)
  }
}

/**
 * The message being processed by the calling actor (needs the `CurrentMessage` middleware), or
 * `undefined` outside one. Its `signal` aborts when the message's time limit passes or, with
 * `notifyShutdown`, when the worker shuts down.
 */
export function currentMessage(): MessageProxy | undefined {
  return storage.getStore()
}
