import type { Broker, EnqueueOptions, TransactionExecutor } from './broker.ts'
import { InvalidArgumentError } from './errors.ts'
import { getBroker } from './global.ts'
import type { Logger } from './logger.ts'
import { Message } from './message.ts'
import { validateQueueName } from './queue-names.ts'
import type { MessageFields, WireMessage } from './wire.ts'

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
  /**
   * Tracking (deduplication): while a message of this actor with the same key is queued,
   * delayed or running, `send` enqueues nothing and resolves to that message. Per message.
   */
  uniqueKey?: string
  /** Tracking: the longest a unique key is held, in ms (required with `uniqueKey`). */
  uniqueFor?: number
  /** Tracking: hold the unique key until the message starts or finishes (default `'finish'`). */
  uniqueUntil?: 'start' | 'finish'
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

/**
 * Per-message options: any middleware option, plus broker fields such as `brokerPriority`.
 * Closed, like `ActorOptions`: an unknown key (a typo such as `dealy`) does not compile, and at
 * runtime `messageWithOptions` / `sendWithOptions` reject an option no middleware registered on
 * the actor's broker declares. A middleware of your own adds its options by augmenting
 * `MiddlewareOptions`. (Decoded messages are not checked: unknown wire options pass through.)
 */
export interface MessageOptionsInput extends MiddlewareOptions {
  brokerPriority?: number
  /** Delay (ms) applied when this message is enqueued as a pipeline step or group child. */
  delay?: number
  /** Pipelines: the step enqueued after this message succeeds (`pipeline()` sets it for you). */
  pipeTarget?: MessageFields | WireMessage
}

export type MessageWithOptionsInput<A extends unknown[]> = ArgsField<A> & {
  kwargs?: Record<string, unknown>
} & MessageOptionsInput

export type SendWithOptionsInput<A extends unknown[]> = ArgsField<A> & {
  kwargs?: Record<string, unknown>
  /** Milliseconds before the message becomes due. */
  delay?: number
  /**
   * Enqueue inside this open transaction (an executor from `fromPg(client)`, `fromKnex(trx)`, …
   * of `@tq/postgres`): invisible until it commits, never delivered after a rollback. Brokers
   * that cannot honour it throw `TransactionUnsupportedError`.
   */
  transaction?: TransactionExecutor
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
/** Message options every actor takes, whatever its broker's middleware. */
const MESSAGE_FIELDS = ['args', 'kwargs', 'delay', 'transaction']
/** Broker fields a message may carry (read by the broker, not a middleware). */
const BROKER_MESSAGE_OPTIONS = ['brokerPriority']

/** Optimal-string-alignment distance (Levenshtein plus adjacent transpositions). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  )
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1)
      d[i]![j] = best
    }
  }
  return d[a.length]![b.length]!
}

/** The known name `name` is most likely a typo of, if one is close enough to be obvious. */
function closest(name: string, known: Iterable<string>): string | undefined {
  const lower = name.toLowerCase()
  // snake_case (`max_retries`) or wrong case (`maxretries`) of a known option.
  const squashed = lower.replace(/_/g, '')
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of known) {
    const c = candidate.toLowerCase()
    if (c === squashed) return candidate
    const distance = editDistance(lower, c)
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  // One edit per three characters (at most three): `dealy` → delay, `maxRetry` → maxRetries.
  const limit = Math.max(1, Math.min(3, Math.floor((name.length + 1) / 3)))
  return bestDistance <= limit ? best : undefined
}

/** `key`, with a "did you mean" when a known name is obviously meant. */
function withSuggestion(key: string, known: Iterable<string>): string {
  const suggestion = closest(key, known)
  return suggestion ? `${key} (did you mean ${suggestion}?)` : key
}

/** Throw `InvalidArgumentError` for a message option no middleware on `broker` declares. */
function checkMessageOptions(actorName: string, broker: Broker, input: Record<string, unknown>): void {
  const unknown: string[] = []
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue
    if (MESSAGE_FIELDS.includes(key) || BROKER_MESSAGE_OPTIONS.includes(key) || broker.actorOptions.has(key)) continue
    unknown.push(key)
  }
  if (unknown.length === 0) return
  const known = [...MESSAGE_FIELDS, ...BROKER_MESSAGE_OPTIONS, ...broker.actorOptions]
  const described = unknown.map((key) => withSuggestion(key, known))
  throw new InvalidArgumentError(
    `Actor ${actorName}: unknown message option${unknown.length > 1 ? 's' : ''} ${described.join(', ')}. ` +
      `Did you forget to add a middleware to your broker? Known options: ${[...new Set(known)].sort().join(', ')}`,
  )
}

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
    throw new InvalidArgumentError(
      "actor() needs a name: an arrow or anonymous function has none. Pass one first, actor('add', (x, y) => x + y), use a named function, or set { actorName }",
    )
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
      `Actor ${actorName}: unknown option${unknown.length > 1 ? 's' : ''} ` +
        `${unknown.map((key) => withSuggestion(key, broker.actorOptions)).join(', ')}. ` +
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
    messageWithOptions: (input: Record<string, unknown>) => {
      if ('transaction' in input) {
        throw new InvalidArgumentError(
          `Actor ${actorName}: transaction is an option of sendWithOptions (or of a group's or pipeline's run), not of a message`,
        )
      }
      checkMessageOptions(actorName, broker, input)
      return buildMessage(...splitInput(input))
    },
    // Not async: one promise fewer per send (a throw still becomes a rejection).
    send: (...args: unknown[]) => {
      try {
        return broker.enqueue(buildMessage(args, undefined, {}))
      } catch (error) {
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- what buildMessage or enqueue threw
        return Promise.reject(error)
      }
    },
    sendWithOptions: async (input: Record<string, unknown>) => {
      checkMessageOptions(actorName, broker, input)
      const { delay, transaction, ...rest } = input
      const enqueueOptions: EnqueueOptions = {}
      if (transaction !== undefined && transaction !== null)
        enqueueOptions.transaction = transaction as TransactionExecutor
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
