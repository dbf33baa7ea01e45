// What the scenarios need from a broker under test. One implementation per broker.
import type { Broker } from '@tq/core'

/** A payload put on the queue by hand, bypassing tq (a foreign or hostile producer). */
export interface RawPut {
  /** What the broker calls it (Redis message id, AMQP message id, SQS message id). */
  id: string
  bytes: Uint8Array
}

export interface Target {
  readonly name: 'redis' | 'rabbitmq' | 'sqs' | 'postgres'
  /** The queue of the `record` actor (the `probe` actor uses `<queue>_probe`). */
  readonly queue: string
  /** The producer: a broker in the test process with `record` and `probe` declared. */
  readonly producer: Broker
  /** Environment for the worker module (TQ_REL_BROKER, TQ_REL_URL, …), without the ledger's. */
  workerEnv(): Record<string, string>
  /** Send `record(id)` for each id (in batches). */
  send(ids: readonly number[]): Promise<void>
  /** Send `probe(name)`. */
  sendProbe(name: string): Promise<void>
  /**
   * Cut every connection of the worker processes and of the producer (only those: other
   * suites share the servers). Resolves with how many connections were cut (or 1 for a server
   * bounce) once the cut is done.
   */
  cut(): Promise<number>
  /** Put raw bytes on the `record` queue, bypassing tq. */
  putRaw(bytes: Uint8Array, label: string): Promise<RawPut>
  /** The raw bodies in the queue's dead-letter queue. */
  deadLetters(): Promise<Uint8Array[]>
  /**
   * Resolves once the broker holds nothing more of the queue: nothing ready, nothing in flight
   * (Redis: no ack-set members left by dead workers), so no redelivery can still come.
   */
  drained(timeout: number): Promise<void>
  /**
   * Messages the broker still counts as in flight for worker process `pid` (delivered, not
   * settled); undefined when the broker cannot tell per process. Read right after a kill, it is
   * what the kill stranded.
   */
  heldBy?(pid: number): Promise<number | undefined>
  /** Delete everything the run created on the server and close the producer. */
  cleanup(): Promise<void>
}

export const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i)
