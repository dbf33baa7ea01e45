import type { AnyActor } from '../actor.ts'
import type { Broker } from '../broker.ts'
import { isThenable } from '../internal/promises.ts'
import type { MessageProxy } from '../message-proxy.ts'
import { runWithMessage } from '../middleware/current-message.ts'
import type { Middleware } from '../middleware/middleware.ts'

/**
 * Call an actor with a message's arguments (kwargs as a trailing object), inside every
 * `wrapActorCall` middleware (outermost first) and with the message as `currentMessage()`.
 * Rejects as soon as the message is aborted (time limit, shutdown), whatever the actor does.
 * One promise per call when the actor is synchronous, and no closure without wrappers.
 */
export function runActor(broker: Broker, actor: AnyActor, proxy: MessageProxy): Promise<unknown> {
  // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the abort reason as given
  if (proxy.aborted) return Promise.reject(proxy.abortReason)
  // Race the actor against an abort (time limit, shutdown) without an AbortSignal per message.
  return new Promise((resolve, reject) => {
    proxy.setAbortHandler(reject)
    let out: unknown
    try {
      // Every actor (and its wrappers) runs with its message as currentMessage(), signal included,
      // whatever the middleware list holds.
      out = runWithMessage(proxy, invoke, broker, actor, proxy)
    } catch (error) {
      proxy.setAbortHandler(undefined)
      reject(error) // eslint-disable-line @typescript-eslint/prefer-promise-reject-errors -- rethrow exactly what the actor threw
      return
    }
    if (!isThenable(out)) {
      proxy.setAbortHandler(undefined)
      resolve(out)
      return
    }
    out.then(
      (value) => {
        proxy.setAbortHandler(undefined)
        resolve(value)
      },
      (error: unknown) => {
        proxy.setAbortHandler(undefined)
        reject(error) // eslint-disable-line @typescript-eslint/prefer-promise-reject-errors -- rethrow exactly what the actor threw
      },
    )
  })
}

function invoke(broker: Broker, actor: AnyActor, proxy: MessageProxy): unknown {
  const kwargs = proxy.kwargs
  const args = hasKeys(kwargs) ? [...proxy.args, kwargs] : proxy.args
  const wrappers = broker.actorCallWrappers
  if (wrappers.length === 0) return actor.fn(...args)
  let call = async (): Promise<unknown> => actor.fn(...args)
  for (let i = wrappers.length - 1; i >= 0; i--) {
    const m = wrappers[i] as Middleware
    const inner = call
    call = () => (m.wrapActorCall as NonNullable<Middleware['wrapActorCall']>).call(m, broker, proxy, inner)
  }
  return call()
}

function hasKeys(object: object): boolean {
  for (const _ in object) return true
  return false
}
