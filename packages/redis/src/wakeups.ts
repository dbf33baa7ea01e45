import { Notifier, errorMeta, type Logger } from '@tq/core'
import type { Redis } from 'ioredis'
import type { RedisKeys } from './keys.ts'
import { quit } from './shared/client.ts'

/** The wake-up state of one queue, shared by its consumers in this broker. */
export interface WakeState {
  /** Bumped on every wake-up for the queue (and on resubscribe). */
  generation: number
  readonly notifier: Notifier
  refs: number
}

export interface WakeupsOptions {
  readonly keys: RedisKeys
  readonly logger: Logger
  /** Open the subscriber connection (on the first subscription). */
  readonly openSubscriber: () => Redis
  /** An error on the subscriber connection. */
  readonly onError: (error: unknown) => void
  readonly isClosed: () => boolean
}

/**
 * Wake-ups: producers publish on `<ns>:__wakeup__.<queue>` when a message lands on an empty
 * queue (a tq addition; Dramatiq neither sends nor needs them), and idle consumers wait for one
 * instead of only polling. One subscriber connection per broker, opened on first use; a
 * reconnect (wake-ups meanwhile are lost) wakes every consumer to fetch again.
 */
export class Wakeups {
  readonly #options: WakeupsOptions
  readonly #states = new Map<string, WakeState>()
  #subscriber: Redis | undefined

  constructor(options: WakeupsOptions) {
    this.#options = options
  }

  /** The wake-up state of a queue; subscribes on first use. */
  subscribe(queueName: string): WakeState {
    let state = this.#states.get(queueName)
    if (!state) {
      state = { generation: 0, notifier: new Notifier(), refs: 0 }
      this.#states.set(queueName, state)
      if (this.#options.keys.wakeups) {
        const subscribed = state
        this.#client()
          .subscribe(this.#options.keys.wakeupChannel(queueName))
          .then(() => {
            // A wake-up published before the subscription took effect was missed: fetch again.
            wake(subscribed)
          })
          .catch((error: unknown) => {
            this.#options.logger.warn('Could not subscribe to wake-ups; falling back to polling', {
              queue: queueName,
              ...errorMeta(error),
            })
          })
      }
    }
    state.refs++
    return state
  }

  /** Release a queue's wake-up state. */
  unsubscribe(queueName: string): void {
    const state = this.#states.get(queueName)
    if (!state || --state.refs > 0) return
    this.#states.delete(queueName)
    if (this.#subscriber && this.#options.keys.wakeups && !this.#options.isClosed()) {
      this.#subscriber.unsubscribe(this.#options.keys.wakeupChannel(queueName)).catch(() => undefined)
    }
  }

  /** Close the subscriber connection. */
  async close(): Promise<void> {
    if (this.#subscriber) await quit(this.#subscriber)
  }

  #client(): Redis {
    if (this.#subscriber) return this.#subscriber
    const subscriber = this.#options.openSubscriber()
    const prefix = this.#options.keys.wakeupPrefix
    subscriber.on('message', (channel: string) => {
      if (!channel.startsWith(prefix)) return
      const state = this.#states.get(channel.slice(prefix.length))
      if (state) wake(state)
    })
    // After a reconnect, wake-ups sent meanwhile are lost: make every consumer fetch again.
    let readyBefore = false
    subscriber.on('ready', () => {
      if (readyBefore) for (const state of this.#states.values()) wake(state)
      readyBefore = true
    })
    subscriber.on('error', this.#options.onError)
    this.#subscriber = subscriber
    return subscriber
  }
}

function wake(state: WakeState): void {
  state.generation++
  state.notifier.notify()
}
