import type { Broker } from '../broker.ts'
import type { Message } from '../message.ts'
import type { MessageProxy } from '../message-proxy.ts'
import type { AnyActor } from '../actor.ts'
import type { Worker } from '../worker.ts'
import type { ResultBackend } from '../results/backend.ts'

type Hook<A extends unknown[]> = (broker: Broker, ...args: A) => void | Promise<void>
type SyncHook<A extends unknown[]> = (broker: Broker, ...args: A) => void

/** What `afterProcessMessage` learns: the result, or the error the actor raised. */
export interface ProcessOutcome {
  result?: unknown
  /** Set when processing failed; `undefined` on success. */
  exception?: unknown
}

/**
 * A middleware hooks into the life of messages, actors, queues and workers. Every hook is
 * optional and may return a promise, which is awaited. Dramatiq's hooks, in camelCase.
 *
 * "before" hooks run in list order; a `SkipMessage` they throw propagates, any other error is
 * logged and swallowed. "after" hooks run in reverse list order and every error is logged and
 * swallowed. Declare hooks run synchronously (actors are declared at import time).
 */
export interface Middleware {
  /** Actor options this middleware understands (camelCase, e.g. `maxRetries`). */
  readonly actorOptions?: readonly string[]
  /** Set by the `Results` middleware; `broker.getResultBackend()` returns the first one. */
  readonly resultBackend?: ResultBackend

  beforeAck?: Hook<[message: MessageProxy]>
  afterAck?: Hook<[message: MessageProxy]>
  beforeNack?: Hook<[message: MessageProxy]>
  afterNack?: Hook<[message: MessageProxy]>
  beforeDeclareActor?: SyncHook<[actor: AnyActor]>
  afterDeclareActor?: SyncHook<[actor: AnyActor]>
  beforeDeclareQueue?: SyncHook<[queueName: string]>
  afterDeclareQueue?: SyncHook<[queueName: string]>
  afterDeclareDelayQueue?: SyncHook<[queueName: string]>
  beforeEnqueue?: Hook<[message: Message, delay: number | undefined]>
  /**
   * `body`: the message as it was encoded for the broker, and `at`: when the enqueue began (Unix
   * ms; a worker may run the message before its publish is confirmed), when the enqueue template
   * sent it (not on every path).
   */
  afterEnqueue?: Hook<[message: Message, delay: number | undefined, body?: Uint8Array, at?: number]>
  /** A delayed message was received and is held in worker memory until its eta. */
  beforeDelayMessage?: Hook<[message: MessageProxy]>
  /** May throw `SkipMessage` (after calling `message.fail()` to dead-letter it). */
  beforeProcessMessage?: Hook<[message: MessageProxy]>
  afterProcessMessage?: Hook<[message: MessageProxy, outcome: ProcessOutcome]>
  /** Emitted instead of `afterProcessMessage` when a before hook threw `SkipMessage`. */
  afterSkipMessage?: Hook<[message: MessageProxy]>
  /** A worker process started (the CLI emits it once per process). */
  afterProcessBoot?: Hook<[]>
  beforeProcessShutdown?: Hook<[]>
  beforeWorkerBoot?: Hook<[worker: Worker]>
  afterWorkerBoot?: Hook<[worker: Worker]>
  beforeWorkerShutdown?: Hook<[worker: Worker]>
  afterWorkerShutdown?: Hook<[worker: Worker]>
  /**
   * Wraps the call of the actor's function (innermost around the function, outermost first in
   * list order). `CurrentMessage` uses it to run the actor inside an async context.
   */
  wrapActorCall?: (broker: Broker, message: MessageProxy, call: () => Promise<unknown>) => Promise<unknown>
  /**
   * Deduplication: claim a message's `uniqueKey` as it is enqueued (`delay`: the enqueue's).
   * Resolves `undefined` when the message may go, or the message already holding the key (the
   * enqueue then sends nothing and resolves to it). Throws for bad unique options. The first
   * middleware that has it is asked (`Tracking`), only for messages with a `uniqueKey`.
   */
  claimUnique?: (broker: Broker, message: Message, delay: number | undefined) => Promise<Message | undefined>
}

export type HookName = Exclude<keyof Middleware, 'actorOptions' | 'resultBackend' | 'wrapActorCall' | 'claimUnique'>
export type SyncHookName =
  'beforeDeclareActor' | 'afterDeclareActor' | 'beforeDeclareQueue' | 'afterDeclareQueue' | 'afterDeclareDelayQueue'
export type AsyncHookName = Exclude<HookName, SyncHookName>

/** The arguments (after `broker`) of a hook. */
export type HookArgs<N extends HookName> =
  NonNullable<Middleware[N]> extends (broker: Broker, ...args: infer A) => unknown ? A : never

/** A middleware class, as `addMiddleware`'s `before`/`after` take it. */
export type MiddlewareClass = abstract new (...args: never[]) => Middleware
