import { actor, type Broker } from '@tq/core'

export class ValueError extends Error {
  override name = 'ValueError'
}

/** The actors both sides of the cross-process tests declare (a producer needs them to build messages). */
export function declareActors(broker: Broker) {
  // `y` defaults so a pipeline step can be `add.message(3)` (the previous result is appended).
  const add = actor((x: number, y: number = 0) => x + y, { broker, actorName: 'add', storeResults: true })
  const fails = actor(
    (): never => {
      throw new ValueError('boom')
    },
    { broker, actorName: 'fails', storeResults: true, maxRetries: 0 },
  )
  return { add, fails }
}
