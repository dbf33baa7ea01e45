import type { Message } from './message.ts'
import type { MessageProxy } from './message-proxy.ts'

export interface ConsumeOptions {
  /** Most messages delivered and not yet acked/nacked/requeued at once. */
  prefetch?: number
  /** Milliseconds `receive()` waits for a message before resolving with none. */
  timeout?: number
}

export interface ReceiveOptions {
  /** Resolves `receive()` early (with whatever it has, possibly nothing). */
  signal?: AbortSignal
}

/**
 * A consumer delivers one queue's messages to one worker. The contract:
 * - `receive()` resolves with at least one message, or with none after the consume `timeout`
 *   (or when `signal` aborts, or after `close()`); it never leaves more than `prefetch`
 *   deliveries outstanding.
 * - Every delivered message is eventually acked, nacked or requeued by the worker; until then
 *   the broker keeps it (a crash of the worker process makes it come back).
 * - A payload that cannot be decoded is never returned: the consumer dead-letters it and logs
 *   why.
 * - `nack` dead-letters; `requeue` returns messages to the queue for another delivery.
 * Not promised: ordering across consumers, exactly-once delivery.
 */
export interface Consumer {
  readonly queueName: string
  receive(options?: ReceiveOptions): Promise<MessageProxy[]>
  ack(message: MessageProxy): Promise<void>
  nack(message: MessageProxy): Promise<void>
  requeue(messages: readonly MessageProxy[]): Promise<void>
  close(): Promise<void>
  /**
   * Optional, for delay-queue consumers: move a due delayed message to its queue as `due` (the
   * message without its eta) and settle the delivery, atomically; resolves with the message as
   * enqueued. Without it the worker enqueues `due` and then acks the delivery — two steps, so a
   * crash between them runs the message twice (Dramatiq #431).
   */
  promote?(message: MessageProxy, due: Message): Promise<Message>
  /**
   * Optional, for consumers the broker pushes to (RabbitMQ): stop taking deliveries and hand
   * back what was delivered but not returned by `receive()`. Acks, nacks and requeues of
   * messages already received keep working until `close()`. The worker calls it when it stops.
   */
  stopReceiving?(): Promise<void>
}
