import type { Message, MessageOptions } from './message.ts'
import type { ProgressSink } from './tracking/progress.ts'
import type { MessageFields } from './wire.ts'

/**
 * What a consumer hands the worker: the message plus its processing state (failed, the
 * exception, an `AbortSignal` for time limits and shutdown). Brokers subclass it to keep their
 * delivery handles.
 */
export class MessageProxy<R = unknown> {
  readonly message: Message<R>
  failed = false
  /** The error the actor (or a middleware) raised while processing this delivery. */
  exception: unknown = undefined
  /** Whether the broker says this delivery was seen before (where it can tell). */
  redelivered = false
  /**
   * @internal Where `setProgress()` sends this delivery's progress: set by the `Tracking`
   * middleware when the attempt starts (a field, not a map entry per message).
   */
  progressSink: ProgressSink | undefined = undefined
  // Created only when someone asks for `signal`: an AbortController per message is measurable
  // on the hot path, and most actors never look at it.
  #controller: AbortController | undefined
  #aborted = false
  #reason: unknown = undefined
  #onAbort: ((reason: unknown) => void) | undefined

  constructor(message: Message<R>) {
    this.message = message
  }

  get queueName(): string {
    return this.message.queueName
  }
  get actorName(): string {
    return this.message.actorName
  }
  get args(): unknown[] {
    return this.message.args
  }
  get kwargs(): Record<string, unknown> {
    return this.message.kwargs
  }
  get options(): MessageOptions {
    return this.message.options
  }
  get messageId(): string {
    return this.message.messageId
  }
  get messageTimestamp(): number {
    return this.message.messageTimestamp
  }

  asDict(): MessageFields {
    return this.message.asDict()
  }

  /** Mark the delivery failed: the worker will nack (dead-letter) it instead of acking. */
  fail(): void {
    this.failed = true
  }

  stuffException(error: unknown): void {
    this.exception = error
  }

  clearException(): void {
    this.exception = undefined
  }

  /** Fires when processing should stop: time limit reached or (opted-in) worker shutdown. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController()
      if (this.#aborted) this.#controller.abort(this.#reason)
    }
    return this.#controller.signal
  }

  /** Whether `abort()` was called. */
  get aborted(): boolean {
    return this.#aborted
  }

  /** The reason given to `abort()`. */
  get abortReason(): unknown {
    return this.#reason
  }

  /** Ask the running actor to stop; the worker stops waiting for it and fails with `reason`. */
  abort(reason: unknown): void {
    if (this.#aborted) return
    this.#aborted = true
    this.#reason = reason
    this.#controller?.abort(reason)
    const onAbort = this.#onAbort
    this.#onAbort = undefined
    onAbort?.(reason)
  }

  /**
   * The one handler called (once, with the reason) when the message is aborted: how the worker
   * stops waiting for an actor without creating an AbortSignal per message. Middleware and
   * actors listen to `signal` instead. Pass `undefined` to clear it.
   */
  setAbortHandler(handler: ((reason: unknown) => void) | undefined): void {
    this.#onAbort = handler
  }

  toString(): string {
    return this.message.toString()
  }
}
