import type { AnyActor } from '../actor.ts'
import type { Broker } from '../broker.ts'
import type { MessageProxy } from '../message-proxy.ts'
import { runWithMessage } from '../middleware/current-message.ts'
import type { Middleware } from '../middleware/middleware.ts'

/**
 * Call an actor with a message's arguments (kwargs as a trailing object), inside every
 * `wrapActorCall` middleware (outermost first) and with the message as `currentMessage()`.
 * Rejects as soon as the message is aborted (time limit, shutdown), whatever the actor does.
 */
export function runActor(broker: Broker, actor: AnyActor, proxy: MessageProxy): Promise<unknown> {
  const kwargs = proxy.kwargs
  const args = Object.keys(kwargs).length > 0 ? [...proxy.args, kwargs] : proxy.args
  let call = async (): Promise<unknown> => actor.fn(...args)
  const wrappers = broker.actorCallWrappers
  for (let i = wrappers.length - 1; i >= 0; i--) {
    const m = wrappers[i] as Middleware
    const inner = call
    call = () => (m.wrapActorCall as NonNullable<Middleware['wrapActorCall']>).call(m, broker, proxy, inner)
  }
  // Every actor (and its wrappers) runs with its message as currentMessage(), signal included,
  // whatever the middleware list holds.
  const wrapped = call
  call = () => runWithMessage(proxy, wrapped)
  // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the abort reason as given
  if (proxy.aborted) return Promise.reject(proxy.abortReason)
  // Race the actor against an abort (time limit, shutdown) without an AbortSignal per message.
  return new Promise((resolve, reject) => {
    proxy.setAbortHandler(reject)
    call().then(
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
