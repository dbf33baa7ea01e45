import type { OutgoingMessage } from '@tq/core'
import type { RedisKeys } from './keys.ts'
import { redisMessageId } from './message-proxy.ts'
import type { ScriptArg } from './scripts.ts'
import { toBuffer } from './shared/client.ts'

/** Messages per enqueue script call. */
const BATCH = 1000

/** One `write()` call: it resolves once every script call carrying its messages succeeded. */
interface Ticket {
  /** Script calls carrying some of its messages and not yet answered. */
  calls: number
  failed: boolean
  resolve(): void
  reject(error: unknown): void
}

/** What is waiting to be written to one queue: (id, payload) pairs and, per message, its ticket. */
interface QueueWrites {
  readonly pairs: ScriptArg[]
  readonly tickets: Ticket[]
}

export interface WriteCoalescerOptions {
  readonly keys: RedisKeys
  /** Run the enqueue script (bounded by `connectTimeout`). */
  readonly enqueue: (keys: ScriptArg[], args: ScriptArg[]) => Promise<unknown>
}

/**
 * Coalesces enqueues: concurrent `send()` calls as well as `enqueueMany()` go out together, one
 * enqueue script call per queue and 1000 messages. With no call in flight, what is written
 * before the current turn's promise jobs run out goes at once (a lone `send()` waits for no
 * event-loop hop); while calls are in flight, everything written in the same turn of the event
 * loop (every I/O callback of it) shares the next call. A write costs one promise however many
 * messages it carries.
 */
export class WriteCoalescer {
  readonly #options: WriteCoalescerOptions
  readonly #pending = new Map<string, QueueWrites>()
  #scheduled = false
  /** Script calls sent and not yet answered. */
  #inFlight = 0
  readonly #flushNow = (): void => this.#flush()

  constructor(options: WriteCoalescerOptions) {
    this.#options = options
  }

  /** Queue messages for the next flush; resolves once Redis has them all. */
  write(messages: readonly OutgoingMessage[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const ticket: Ticket = { calls: 0, failed: false, resolve, reject }
      for (const { message, body } of messages) {
        let pending = this.#pending.get(message.queueName)
        if (!pending) this.#pending.set(message.queueName, (pending = { pairs: [], tickets: [] }))
        pending.pairs.push(redisMessageId(message) as string, toBuffer(body))
        pending.tickets.push(ticket)
      }
      if (!this.#scheduled) {
        this.#scheduled = true
        // Nothing in flight: go out at the end of this turn (sends made together in it still
        // share the call), no event-loop hop. Calls in flight: gather this turn's I/O callbacks too.
        if (this.#inFlight === 0) queueMicrotask(this.#flushNow)
        else setImmediate(this.#flushNow)
      }
    })
  }

  #flush(): void {
    this.#scheduled = false
    const batches = [...this.#pending]
    this.#pending.clear()
    const { keys } = this.#options
    for (const [queueName, { pairs, tickets }] of batches) {
      const scriptKeys = [keys.key(queueName), keys.msgs(queueName)]
      const channel = keys.channel(queueName)
      for (let first = 0; first < tickets.length; first += BATCH) {
        const end = Math.min(first + BATCH, tickets.length)
        const args: ScriptArg[] = [channel]
        for (let i = 2 * first; i < 2 * end; i++) args.push(pairs[i] as ScriptArg)
        // A write's messages are contiguous in a queue's list: its ticket is counted once per call.
        const carried: Ticket[] = []
        for (let i = first; i < end; i++) {
          const ticket = tickets[i] as Ticket
          if (carried[carried.length - 1] !== ticket) {
            carried.push(ticket)
            ticket.calls++
          }
        }
        this.#inFlight++
        this.#options.enqueue(scriptKeys, args).then(
          () => {
            this.#inFlight--
            for (const ticket of carried) if (--ticket.calls === 0 && !ticket.failed) ticket.resolve()
          },
          (error: unknown) => {
            this.#inFlight--
            for (const ticket of carried) {
              ticket.failed = true
              ticket.reject(error)
            }
          },
        )
      }
    }
  }
}
