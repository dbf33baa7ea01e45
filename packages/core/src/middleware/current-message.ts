import { AsyncLocalStorage } from 'node:async_hooks'
import type { MessageProxy } from '../message-proxy.ts'
import type { Middleware } from './middleware.ts'

const storage = new AsyncLocalStorage<MessageProxy>()

/** @internal The worker runs every actor call through this, so `currentMessage()` needs no middleware. */
export function runWithMessage<A extends unknown[], R>(proxy: MessageProxy, call: (...args: A) => R, ...args: A): R {
  return storage.run(proxy, call, ...args)
}

/**
 * Kept for code written before `currentMessage()` worked with the default stack: the worker now
 * runs every actor with its message as the current one, so this middleware adds nothing and
 * can be left out of the middleware list.
 */
export class CurrentMessage implements Middleware {
  readonly actorOptions: readonly string[] = []

  /** The message being processed by the calling actor, or `undefined` outside one. */
  static getCurrentMessage(): MessageProxy | undefined {
    return storage.getStore()
  }
}

/**
 * The message being processed by the calling actor (and everything it calls, across `await`s),
 * or `undefined` outside an actor run by a worker. Its `signal` aborts when the message's time
 * limit passes or, with `notifyShutdown`, when the worker shuts down:
 *
 * ```ts
 * const work = actor('work', async (url: string) => {
 *   const message = currentMessage()
 *   const response = await fetch(url, { signal: message?.signal })
 *   return { status: response.status, attempt: message?.options.retries ?? 0 }
 * })
 * ```
 */
export function currentMessage(): MessageProxy | undefined {
  return storage.getStore()
}
