import { randomUUID } from 'node:crypto'
import type { Broker, EnqueueOptions } from '../broker.ts'
import { ConfigurationError, InvalidArgumentError } from '../errors.ts'
import { getBroker } from '../global.ts'
import { Message } from '../message.ts'
import { GroupCallbacks } from '../middleware/group-callbacks.ts'
import { Barrier } from '../rate-limits/barrier.ts'
import type { MessageFields } from '../wire.ts'
import {
  Pipeline,
  hasResult,
  type CompositionOptions,
  type CompositionResultOptions,
  type RunOptions,
  type StepResult,
} from './pipeline.ts'

/** A child of a group: a message, a pipeline or another group. */
export type GroupChild = Message<unknown> | Pipeline<unknown> | Group<readonly unknown[]>

/** The result type of a group child: a message's or pipeline's result, a nested group's list. */
export type ChildResult<C> = C extends Group<infer R> ? R : StepResult<C>

/** The result types of a list of group children, in order. */
export type GroupResults<C extends readonly unknown[]> = { -readonly [K in keyof C]: ChildResult<C[K]> }

/**
 * Messages, pipelines and groups that run in parallel. Build one with {@link group}.
 *
 * Results come back in child order whatever the completion order: a message or pipeline child
 * gives its (final) result, a nested group the list of its results. Reading results needs the
 * `Results` middleware and `storeResults` on the actors.
 *
 * With `addCompletionCallback(message)`, the message is enqueued once every child has
 * succeeded; that needs the `GroupCallbacks` middleware.
 */
export class Group<R extends readonly unknown[] = unknown[]> {
  readonly children: readonly GroupChild[]
  /** Messages to enqueue when every child has succeeded. */
  readonly callbacks: MessageFields[] = []
  readonly #broker: Broker | undefined

  constructor(children: Iterable<GroupChild>, options: CompositionOptions = {}) {
    const list: GroupChild[] = []
    for (const child of children as Iterable<unknown>) {
      if (child instanceof Message || child instanceof Pipeline || child instanceof Group)
        list.push(child as GroupChild)
      else throw new InvalidArgumentError('Group children must be messages, pipelines or groups')
    }
    this.children = list
    this.#broker = options.broker
  }

  /** The broker this group enqueues to. */
  get broker(): Broker {
    return this.#broker ?? getBroker()
  }

  /** The number of children. */
  get length(): number {
    return this.children.length
  }

  /**
   * Enqueue `message` once every child of this group has succeeded (when the group runs with
   * the `GroupCallbacks` middleware). Call before `run()`. Returns nothing, as in Dramatiq.
   */
  addCompletionCallback(message: Message<unknown>): void {
    this.callbacks.push(message.asDict())
  }

  /**
   * Enqueue every child: messages with `delay`, pipelines and groups through their own
   * `run({ delay })`. With completion callbacks, first create the group's barrier and tag each
   * child (the last message of a pipeline child) with it. Resolves with the group.
   */
  async run(options: RunOptions = {}): Promise<this> {
    const broker = this.broker
    let children: readonly GroupChild[] = this.children
    if (this.callbacks.length > 0) {
      const middleware = broker.middleware.find((m): m is GroupCallbacks => m instanceof GroupCallbacks)
      if (!middleware) {
        throw new ConfigurationError(
          'Group completion callbacks need the GroupCallbacks middleware on the broker: ' +
            'broker.addMiddleware(new GroupCallbacks({ rateLimiterBackend }))',
        )
      }
      if (children.some((child) => child instanceof Group)) {
        throw new InvalidArgumentError('A group with completion callbacks cannot contain nested groups (not supported)')
      }
      if (children.length === 0) {
        throw new InvalidArgumentError('A group with completion callbacks needs at least one child')
      }
      const groupCompletionUuid = randomUUID()
      const barrier = new Barrier(middleware.rateLimiterBackend, groupCompletionUuid, { ttl: middleware.barrierTtl })
      await barrier.create(children.length)
      const tags = { groupCompletionUuid, groupCompletionCallbacks: this.callbacks }
      children = children.map((child) => {
        if (child instanceof Pipeline) {
          const steps = child.messages
          const last = (steps[steps.length - 1] as Message).copy({ options: tags })
          return new Pipeline([...steps.slice(0, -1), last], { broker })
        }
        return (child as Message).copy({ options: tags })
      })
    }
    const enqueueOptions: EnqueueOptions = options.delay === undefined ? {} : { delay: options.delay }
    if (options.transaction) enqueueOptions.transaction = options.transaction
    // In order; each run of plain messages in one enqueue (one round trip where the broker
    // batches, one statement inside a transaction), pipelines and nested groups through their run.
    let run: Message[] = []
    for (const child of children) {
      if (child instanceof Message) {
        run.push(child)
        continue
      }
      if (run.length > 0) await broker.enqueueMany(run, enqueueOptions)
      run = []
      await child.run(options)
    }
    if (run.length > 0) await broker.enqueueMany(run, enqueueOptions)
    return this
  }

  /**
   * The children's results in child order, as they become available. `timeout` (ms) is one
   * deadline shared by all children; without it each blocking read waits up to the backend's
   * default. Throws `ResultMissingError`, `ResultTimeoutError` or `ResultFailureError`.
   */
  async *getResults(options: CompositionResultOptions = {}): AsyncGenerator<R[number], void, undefined> {
    const deadline = options.timeout === undefined ? undefined : Date.now() + options.timeout
    for (const child of this.children) {
      const read: CompositionResultOptions = {}
      if (options.block !== undefined) read.block = options.block
      if (deadline !== undefined) read.timeout = Math.max(0, deadline - Date.now())
      if (child instanceof Group) yield (await child.collectResults(read)) as R[number]
      else if (child instanceof Pipeline) yield (await child.getResult(read)) as R[number]
      else yield (await child.getResult({ ...read, backend: this.broker.getResultBackend() })) as R[number]
    }
  }

  /** {@link getResults} collected into an array (typed per child). */
  async collectResults(options: CompositionResultOptions = {}): Promise<R> {
    const out: unknown[] = []
    for await (const result of this.getResults(options)) out.push(result)
    return out as unknown as R
  }

  /**
   * Wait until every child has a result. Throws `ResultTimeoutError` after `timeout` ms (one
   * deadline for the whole group; without it, each child may wait the backend's default), and
   * `ResultFailureError` if a child failed.
   */
  async wait(options: { timeout?: number } = {}): Promise<void> {
    const read: CompositionResultOptions = { block: true }
    if (options.timeout !== undefined) read.timeout = options.timeout
    for await (const _ of this.getResults(read)) {
      // Consumed only to wait.
    }
  }

  /**
   * Resolves with the number of children that have a result, whatever order they completed
   * in. Rejects with `ResultFailureError` if a child stored a failure.
   */
  get completedCount(): Promise<number> {
    return (async () => {
      let count = 0
      for (const child of this.children) {
        if (child instanceof Message) {
          if (await hasResult(child, { backend: this.broker.getResultBackend() })) count++
        } else if (await child.completed) {
          count++
        }
      }
      return count
    })()
  }

  /** Resolves true when every child has a result. */
  get completed(): Promise<boolean> {
    return this.completedCount.then((count) => count === this.children.length)
  }

  toString(): string {
    return `group([${this.children.map((c) => c.toString()).join(', ')}])`
  }
}

/**
 * Run messages, pipelines and groups in parallel.
 *
 * ```ts
 * const g = await group([add.message(1, 2), add.message(3, 4)], { broker }).run()
 * await g.collectResults({ block: true }) // [3, 7]
 * ```
 */
export function group<const C extends readonly GroupChild[]>(
  children: C,
  options: CompositionOptions = {},
): Group<GroupResults<C>> {
  return new Group<GroupResults<C>>(children, options)
}
