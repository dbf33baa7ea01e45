import type { Broker, EnqueueOptions } from './broker.ts'
import { InvalidArgumentError } from './errors.ts'
import { getBroker } from './global.ts'
import type { Logger } from './logger.ts'
import { Message } from './message.ts'
import { validateQueueName } from './queue-names.ts'

// `never` parameters (not `any[]`): any function is assignable, and unannotated parameters with
// defaults keep the type of their initializer instead of becoming `any`.
type AnyFn = (...args: never) => unknown

/** An error class, for `throws`. */
export type ErrorClass = abstract new (...args: never[]) => Error

/**
 * Options the default middleware (and `Results`) understand, settable per actor and per
 * message. A middleware of your own declares more through `actorOptions`; add their types by
 * augmenting this interface (`declare module '@tq/core' { interface MiddlewareOptions { … } }`).
 */
export interface MiddlewareOptions {
  /** Retries: how many times a failing message is retried (default 20; `null` = forever). */
  maxRetries?: number | null
  /** Retries: the first backoff, in ms (default 15 000). */
  minBackoff?: number
  /** Retries: the longest backoff, in ms (default 7 days). */
  maxBackoff?: number
  /** Retries: retry only while this returns true (replaces `maxRetries`). Actor-level only. */
  retryWhen?: (retries: number, error: unknown) => boolean
  /** Retries: errors of these classes are not retried (the message is dead-lettered). */
  throws?: ErrorClass | readonly ErrorClass[]
  /** Retries: an actor sent `(messageDict, { retries, max_retries })` when retries run out. */
  onRetryExhausted?: string | AnyActor
  /** TimeLimit: ms before the actor's signal fires and the message fails (default 10 min). */
  timeLimit?: number
  /** AgeLimit: ms after `messageTimestamp` past which the message is dead-lettered unprocessed. */
  maxAge?: number
  /** ShutdownNotifications: abort this actor's signal when the worker shuts down. */
  notifyShutdown?: boolean
  /** Callbacks: an actor sent `(messageDict, result)` after success. */
  onSuccess?: string | AnyActor
  /** Callbacks: an actor sent `(messageDict, { type, message })` after each failure. */
  onFailure?: string | AnyActor
  /** Results: store this actor's results. */
  storeResults?: boolean
  /** Results: how long results are kept, in ms (default 10 min). */
  resultTtl?: number
  /** Pipelines: do not append the previous step's result to this message's arguments. */
  pipeIgnore?: boolean
}

export interface ActorOptions extends MiddlewareOptions {
  /** Defaults to the function's name. */
  actorName?: string
  /** Defaults to `"default"`; must match `[a-zA-Z_][a-zA-Z0-9._-]*`. */
  queueName?: string
  /** Worker-local priority: lower runs first (default 0). */
  priority?: number
  /** Defaults to `getBroker()`. */
  broker?: Broker
}

/** `args` is optional when the actor takes no required arguments. */
type ArgsField<A extends unknown[]> = [] extends A ? { args?: A } : { args: A }

/** Per-message options: any middleware option, plus broker fields such as `brokerPriority`. */
export interface MessageOptionsInput extends MiddlewareOptions {
  brokerPriority?: number
  /** Delay (ms) applied when this message is enqueued as a pipeline step or group child. */
  delay?: number
  [option: string]: unknown
}

export type MessageWithOptionsInput<A extends unknown[]> = ArgsField<A> & {
  kwargs?: Record<string, unknown>
} & MessageOptionsInput

export type SendWithOptionsInput<A extends unknown[]> = ArgsField<A> & {
  kwargs?: Record<string, unknown>
  /** Milliseconds before the message becomes due. */
  delay?: number
} & MessageOptionsInput

/** What an actor has besides being callable. */
export interface ActorMembers<A extends unknown[], R> {
  readonly fn: (...args: A) => unknown
  readonly broker: Broker
  readonly actorName: string
  readonly queueName: string
  readonly priority: number
  /** The middleware options given at declaration. */
  readonly options: Readonly<MiddlewareOptions & Record<string, unknown>>
  readonly logger: Logger
  /** Build a message (nothing is sent). */
  message(...args: A): Message<R>
  messageWithOptions(input: MessageWithOptionsInput<A>): Message<R>
  /** Send a message; resolves with the enqueued message. */
  send(...args: A): Promise<Message<R>>
  sendWithOptions(input: SendWithOptionsInput<A>): Promise<Message<R>>
}

/**
 * An actor: call it to run the function in-process, or `send` it a message to run it on a
 * worker. `A` are the function's arguments, `R` its (awaited) result, `Ret` what a direct call
 * returns.
 */
export type Actor<A extends unknown[] = unknown[], R = unknown, Ret = R | Promise<R>> = ((...args: A) => Ret) &
  ActorMembers<A, R>

/** Any actor, whatever its types. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- actors of every signature
export type AnyActor = Actor<any[], any, any>

const RESERVED = new Set(['actorName', 'queueName', 'priority', 'broker'])
const CALLBACK_OPTIONS = ['onSuccess', 'onFailure', 'onRetryExhausted'] as const

/** An actor option that names another actor may be given as the actor; the wire carries its name. */
function normalizeCallbacks(options: Record<string, unknown>): void {
  for (const key of CALLBACK_OPTIONS) {
    const value = options[key]
    if (value === undefined || value === null || typeof value === 'string') continue
    if (typeof value === 'function' && typeof (value as Partial<AnyActor>).actorName === 'string') {
      options[key] = (value as AnyActor).actorName
    } else {
      throw new InvalidArgumentError(`Option ${key} must be an actor or an actor name`)
    }
  }
}

/**
 * Declare an actor.
 *
 * ```ts
 * const add = actor((x: number, y: number) => x + y, { queueName: 'math' })
 * await add.send(1, 2)
 * ```
 */
export function actor<F extends AnyFn>(
  fn: F,
  options?: ActorOptions,
): Actor<Parameters<F>, Awaited<ReturnType<F>>, ReturnType<F>>
export function actor<F extends AnyFn>(
  name: string,
  fn: F,
  options?: ActorOptions,
): Actor<Parameters<F>, Awaited<ReturnType<F>>, ReturnType<F>>
export function actor(
  nameOrFn: string | AnyFn,
  fnOrOptions?: AnyFn | ActorOptions,
  maybeOptions?: ActorOptions,
): AnyActor {
  const fn = (typeof nameOrFn === 'function' ? nameOrFn : fnOrOptions) as AnyFn
  const opts = ((typeof nameOrFn === 'function' ? fnOrOptions : maybeOptions) ?? {}) as ActorOptions
  if (typeof fn !== 'function') throw new InvalidArgumentError('actor() needs a function')
  const actorName = typeof nameOrFn === 'string' ? nameOrFn : (opts.actorName ?? fn.name)
  if (!actorName) {
    throw new InvalidArgumentError('actor() needs a name for an anonymous function: actor("name", fn) or { actorName }')
  }
  const queueName = opts.queueName ?? 'default'
  validateQueueName(queueName)
  const priority = opts.priority ?? 0
  const broker = opts.broker ?? getBroker()

  const options: Record<string, unknown> = {}
  const unknown: string[] = []
  for (const [key, value] of Object.entries(opts)) {
    if (RESERVED.has(key)) continue
    if (!broker.actorOptions.has(key)) unknown.push(key)
    options[key] = value
  }
  if (unknown.length > 0) {
    throw new InvalidArgumentError(
      `Actor ${actorName}: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}. ` +
        `Did you forget to add a middleware to your broker? Known options: ${[...broker.actorOptions].sort().join(', ') || 'none'}`,
    )
  }
  normalizeCallbacks(options)
  if (broker.actors.has(actorName)) {
    throw new InvalidArgumentError(`An actor named ${JSON.stringify(actorName)} is already declared on this broker`)
  }

  const buildMessage = (
    args: unknown[],
    kwargs: Record<string, unknown> | undefined,
    messageOptions: Record<string, unknown>,
  ): Message => {
    normalizeCallbacks(messageOptions)
    return new Message({ queueName, actorName, args, kwargs: kwargs ?? {}, options: messageOptions })
  }
  const splitInput = (input: {
    args?: unknown[]
    kwargs?: Record<string, unknown>
    [k: string]: unknown
  }): [unknown[], Record<string, unknown> | undefined, Record<string, unknown>] => {
    const { args, kwargs, ...rest } = input
    const messageOptions: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(rest)) if (v !== undefined) messageOptions[k] = v
    return [args ?? [], kwargs, messageOptions]
  }

  const callable = function (this: unknown, ...args: unknown[]): unknown {
    return (fn as (...a: unknown[]) => unknown).apply(this, args)
  }
  const members = {
    fn,
    broker,
    actorName,
    queueName,
    priority,
    options: Object.freeze(options),
    logger: broker.logger.child({ component: 'actor', actor: actorName }),
    message: (...args: unknown[]) => buildMessage(args, undefined, {}),
    messageWithOptions: (input: Record<string, unknown>) => buildMessage(...splitInput(input)),
    send: async (...args: unknown[]) => broker.enqueue(buildMessage(args, undefined, {})),
    sendWithOptions: async (input: Record<string, unknown>) => {
      const { delay, ...rest } = input
      const enqueueOptions: EnqueueOptions = {}
      if (delay !== undefined && delay !== null) {
        if (typeof delay !== 'number' || !Number.isFinite(delay) || delay < 0) {
          throw new InvalidArgumentError(
            `delay must be a non-negative number of milliseconds, got ${JSON.stringify(delay) ?? typeof delay}`,
          )
        }
        enqueueOptions.delay = delay
      }
      return broker.enqueue(buildMessage(...splitInput(rest)), enqueueOptions)
    },
    toString: () => `Actor(${actorName})`,
  }
  Object.defineProperty(callable, 'name', { value: actorName })
  const result = Object.assign(callable, members) as unknown as AnyActor
  broker.declareActor(result)
  return result
}
