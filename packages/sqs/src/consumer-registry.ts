import { qName } from '@tq/core'

/** What the broker does to a consumer it opened; the consumer hands it over when it is built. */
export interface ConsumerControl {
  readonly queueName: string
  /** The consumer's `close()`. */
  close(): Promise<void>
  /** Forget buffered (not yet delivered) messages, after their queue was purged. */
  dropBuffered(): void
  /** Resolves when the poll loop has ended (its last long poll returned). */
  finished(): Promise<void>
  /** Abort a long poll in flight (the broker stopped waiting for it). */
  abortPoll(): void
  /** Stop extending visibility (the broker is closing). */
  stopExtending(): void
}

/**
 * The consumers a broker opened, open or closing (a closed consumer's last long poll may still
 * be in flight), and what the broker's `flush()` and `close()` do to them.
 */
export class ConsumerRegistry {
  readonly #open = new Set<ConsumerControl>()
  readonly #closing = new Set<ConsumerControl>()

  opened(consumer: ConsumerControl): void {
    this.#open.add(consumer)
  }

  /** A consumer was closed; it is kept until its poll loop ended. */
  closed(consumer: ConsumerControl): void {
    this.#open.delete(consumer)
    this.#closing.add(consumer)
    void consumer.finished().finally(() => this.#closing.delete(consumer))
  }

  /** Drop what the open consumers of a canonical queue (and its delay queue) buffered. */
  dropBuffered(canonical: string): void {
    for (const consumer of this.#open) if (qName(consumer.queueName) === canonical) consumer.dropBuffered()
  }

  /**
   * Close the open consumers (their buffered messages go back to the queues), wait up to
   * `timeout` ms for the long polls in flight, abort those still running, and stop every
   * visibility extension.
   */
  async closeAll(timeout: number): Promise<void> {
    const consumers = [...this.#open, ...this.#closing]
    await Promise.all([...this.#open].map((c) => c.close()))
    const polls = Promise.all(consumers.map((c) => c.finished()))
    let timer: NodeJS.Timeout | undefined
    const waited = await Promise.race([
      polls.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(resolve, timeout, false))),
    ])
    clearTimeout(timer)
    if (!waited) {
      for (const c of consumers) c.abortPoll()
      await polls
    }
    for (const c of consumers) c.stopExtending()
  }
}
