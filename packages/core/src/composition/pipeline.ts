import type { Broker, EnqueueOptions, TransactionExecutor } from '../broker.ts'
import { InvalidArgumentError, ResultMissingError } from '../errors.ts'
import { getBroker } from '../global.ts'
import { Message, type GetResultOptions } from '../message.ts'
import type { ResultGetOptions } from '../results/backend.ts'

export interface CompositionOptions {
  /**
   * The broker to enqueue to and read results through (its `Results` backend). Defaults to
   * the global `getBroker()`, looked up when first needed; pass it when your actors are
   * declared on another broker.
   */
  broker?: Broker
}

export interface RunOptions {
  /** Milliseconds before the first message (of each child, for a group) becomes due. */
  delay?: number
  /**
   * Enqueue inside this open transaction (an executor from `@tq/postgres`'s `fromPg(client)`,
   * `fromKnex(trx)`, …): nothing is visible until it commits. Brokers that cannot honour it throw
   * `TransactionUnsupportedError`.
   */
  transaction?: TransactionExecutor
}

/** A step of a pipeline: a message, or a pipeline whose steps are spliced in. */
export type PipelineStep = Message<unknown> | Pipeline<unknown>

/** The result type of a message or pipeline. */
export type StepResult<S> = S extends Pipeline<infer R> ? R : S extends Message<infer R> ? R : unknown

/** The result type of the last step of a list of steps. */
export type LastStepResult<C extends readonly unknown[]> = C extends readonly [...unknown[], infer L]
  ? StepResult<L>
  : C extends readonly (infer E)[]
    ? StepResult<E>
    : unknown

/** Blocking/timeout options for reading results, with a shared deadline in ms. */
export type CompositionResultOptions = ResultGetOptions

/**
 * Messages run one after another, each getting the previous result appended to its arguments
 * (unless it has `pipeIgnore`). Build one with {@link pipeline}.
 *
 * The messages are copies of the ones given (same ids), linked through their `pipeTarget`
 * option: the first message carries the whole rest of the chain, nested. `run()` enqueues only
 * the first; the `Pipelines` middleware enqueues each next step when the previous one
 * succeeds. A step that fails for good stops the pipeline.
 *
 * Reading results needs the `Results` middleware and `storeResults` on the actors.
 */
export class Pipeline<R = unknown> {
  /** The linked copies of the steps, in order. */
  readonly messages: readonly Message[]
  readonly #broker: Broker | undefined

  constructor(children: Iterable<PipelineStep>, options: CompositionOptions = {}) {
    const messages: Message[] = []
    for (const child of children as Iterable<unknown>) {
      if (child instanceof Pipeline) for (const m of child.messages) messages.push(m.copy())
      else if (child instanceof Message) messages.push(child.copy())
      else
        throw new InvalidArgumentError(
          'Pipeline steps must be messages or pipelines. A group cannot be a pipeline step ' +
            '(not supported, as in Dramatiq #103): run the group and pipe its results yourself.',
        )
    }
    if (messages.length === 0) throw new InvalidArgumentError('A pipeline needs at least one message')
    for (let i = 0; i < messages.length - 1; i++) {
      // asDict() shares the options object, so the first message ends up nesting the whole chain.
      ;(messages[i] as Message).options.pipeTarget = (messages[i + 1] as Message).asDict()
    }
    this.messages = messages
    this.#broker = options.broker
  }

  /** The broker this pipeline enqueues to. */
  get broker(): Broker {
    return this.#broker ?? getBroker()
  }

  /** The number of steps. */
  get length(): number {
    return this.messages.length
  }

  /** A new pipeline with `next` appended (Dramatiq's `pipeline | message`). */
  pipe<S extends PipelineStep>(next: S): Pipeline<StepResult<S>> {
    return new Pipeline<StepResult<S>>([this, next], this.#broker ? { broker: this.#broker } : {})
  }

  /**
   * Enqueue the first step. Its delay is the larger of `delay` and the first message's own
   * `delay` option. Later steps are delayed by their own `delay` option.
   */
  async run(options: RunOptions = {}): Promise<this> {
    const first = this.messages[0] as Message
    const own = typeof first.options.delay === 'number' ? first.options.delay : 0
    const delay = Math.max(options.delay ?? 0, own)
    const enqueueOptions: EnqueueOptions = delay > 0 ? { delay } : {}
    if (options.transaction) enqueueOptions.transaction = options.transaction
    await this.broker.enqueue(first, enqueueOptions)
    return this
  }

  /** The result of the last step (see `Message.getResult` for `block`, `timeout` and errors). */
  async getResult(options: CompositionResultOptions = {}): Promise<R> {
    return (await this.#last.getResult(this.#readOptions(options))) as R
  }

  /**
   * The result of every step, in order, as they become available. `timeout` is one deadline
   * shared by all steps; without it each blocking read waits up to the backend's default.
   */
  async *getResults(options: CompositionResultOptions = {}): AsyncGenerator<unknown, void, undefined> {
    const deadline = options.timeout === undefined ? undefined : Date.now() + options.timeout
    for (const message of this.messages) {
      const timeout = deadline === undefined ? options.timeout : Math.max(0, deadline - Date.now())
      yield await message.getResult(this.#readOptions({ ...options, ...(timeout === undefined ? {} : { timeout }) }))
    }
  }

  /** {@link getResults} collected into an array. */
  async collectResults(options: CompositionResultOptions = {}): Promise<unknown[]> {
    const out: unknown[] = []
    for await (const result of this.getResults(options)) out.push(result)
    return out
  }

  /**
   * Resolves true when the last step has a result. Rejects with `ResultFailureError` if the
   * last step stored a failure.
   */
  get completed(): Promise<boolean> {
    return hasResult(this.#last, this.#readOptions({}))
  }

  /** Resolves with the number of leading steps that have a result. */
  get completedCount(): Promise<number> {
    return (async () => {
      const options = this.#readOptions({})
      let count = 0
      for (const message of this.messages) {
        if (!(await hasResult(message, options))) break
        count++
      }
      return count
    })()
  }

  get #last(): Message {
    return this.messages[this.messages.length - 1] as Message
  }

  #readOptions(options: CompositionResultOptions): GetResultOptions {
    const out: GetResultOptions = { backend: this.broker.getResultBackend() }
    if (options.block !== undefined) out.block = options.block
    if (options.timeout !== undefined) out.timeout = options.timeout
    return out
  }

  toString(): string {
    return `pipeline([${this.messages.map((m) => m.toString()).join(', ')}])`
  }
}

/** Whether a message has a stored result (a stored failure rejects with `ResultFailureError`). */
export async function hasResult(message: Message, options: GetResultOptions): Promise<boolean> {
  try {
    await message.getResult({ ...options, block: false })
    return true
  } catch (error) {
    if (error instanceof ResultMissingError) return false
    throw error
  }
}

/**
 * Chain messages (and pipelines) so each runs after the previous one succeeds, with the
 * previous result appended to its arguments.
 *
 * ```ts
 * const p = await pipeline([add.message(1, 2), add.message(3)], { broker }).run()
 * await p.getResult({ block: true }) // (1 + 2) + 3 = 6
 * ```
 */
export function pipeline<const C extends readonly PipelineStep[]>(
  children: C,
  options: CompositionOptions = {},
): Pipeline<LastStepResult<C>> {
  return new Pipeline<LastStepResult<C>>(children, options)
}
