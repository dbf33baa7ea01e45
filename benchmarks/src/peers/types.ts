// The contract every system under test implements: a producer (enqueue) and a consumer (a worker
// running a no-op handler), both created inside an agent process (src/peers/agent.ts).
import type { PoolClient } from 'pg'

/** Systems the harness knows; each has a module in this folder. */
export const SYSTEMS = [
  'tq-redis',
  'bullmq',
  'bee-queue',
  'raw-redis',
  'tq-rabbitmq',
  'raw-amqp',
  'tq-sqs',
  'tq-stub',
  'tq-postgres',
  'graphile-worker',
  'pg-boss',
] as const
export type SystemName = (typeof SYSTEMS)[number]

/** The systems that run on PostgreSQL: reset by their own `prepare`, reported in a section of their own. */
export const POSTGRES_SYSTEMS: readonly SystemName[] = ['tq-postgres', 'graphile-worker', 'pg-boss']
export const isPostgres = (system: SystemName): boolean => POSTGRES_SYSTEMS.includes(system)

/** Where the servers are, shared by the orchestrator and the agents (sent over IPC, so plain data). */
export interface BenchContext {
  /** `redis://127.0.0.1:6379/10`: a database of its own, flushed before each scenario. */
  redisUrl: string
  amqpUrl: string
  /** `postgres://postgres@127.0.0.1:5432/test`: each PostgreSQL system keeps to a schema of its own. */
  pgUrl: string
  /** fauxqs endpoint, when the SQS rows run. */
  sqsEndpoint?: string
  /** Unique per harness run: part of RabbitMQ/SQS queue names and connection names. */
  runId: string
  /** tq brokers use their default middleware stack (`default`) or none (`none`). */
  tqMiddleware: 'default' | 'none'
}

export interface Producer {
  /** Enqueue these values, one message each, in one bulk call (the caller chunks by 1000). */
  bulk(values: readonly number[]): Promise<void>
  /** Enqueue one message and wait until the broker has it. */
  one(value: number): Promise<void>
  close(): Promise<void>
}

/** Enqueues inside a transaction the caller holds (a checked-out node-postgres client after BEGIN). */
export interface TransactionalProducer {
  /** Enqueue one message on `client`, inside its open transaction. */
  send(client: PoolClient, value: number): Promise<void>
  /** Statements the system ran on connections of its own during the sends, where it can tell. */
  outsideStatements?(): number
  close(): Promise<void>
}

export interface ConsumerHandle {
  /** Start processing (the clock starts just before this). */
  start(): Promise<void>
  /** Stop processing and close connections. */
  stop(): Promise<void>
}

export interface SystemModule {
  readonly name: SystemName
  /** Short label for tables and the chart. */
  readonly label: string
  readonly backend: 'redis' | 'rabbitmq' | 'sqs' | 'memory' | 'postgres'
  /** `tq`: the thing measured; `peer`: another library; `ceiling`: raw client, no queue semantics. */
  readonly kind: 'tq' | 'peer' | 'ceiling'
  /** Producer and consumer must share one process (an in-memory broker). */
  readonly inProcess?: boolean
  producer(ctx: BenchContext, queue: string): Promise<Producer>
  /**
   * A consumer running `concurrency` no-op handlers at once. `onProcessed` is called from the
   * handler with the message's value (the handler does nothing else).
   */
  consumer(
    ctx: BenchContext,
    queue: string,
    concurrency: number,
    onProcessed: (value: number) => void,
  ): Promise<ConsumerHandle>
  /** Remove what the scenario left on the server (Redis is flushed by the orchestrator instead). */
  cleanup?(ctx: BenchContext, queue: string): Promise<void>
  /**
   * Reset the system's server-side state and leave it ready to use (PostgreSQL: drop the schema,
   * run the migrations), so that no scenario measures another's leftovers or a migration.
   */
  prepare?(ctx: BenchContext): Promise<void>
  /** Enqueue `count` messages due in `delayMs` (a backlog that is not due), as fast as the system allows. */
  seedDelayed?(ctx: BenchContext, queue: string, count: number, delayMs: number): Promise<void>
  /** A producer that enqueues inside the caller's transaction, if the system can. */
  transactional?(ctx: BenchContext, queue: string): Promise<TransactionalProducer>
}

/** Load a system's module (dynamically, so an agent only loads the client libraries it uses). */
export async function loadSystem(name: SystemName): Promise<SystemModule> {
  switch (name) {
    case 'tq-redis':
      return (await import('./tq-redis.ts')).system
    case 'bullmq':
      return (await import('./bullmq.ts')).system
    case 'bee-queue':
      return (await import('./bee-queue.ts')).system
    case 'raw-redis':
      return (await import('./raw-redis.ts')).system
    case 'tq-rabbitmq':
      return (await import('./tq-rabbitmq.ts')).system
    case 'raw-amqp':
      return (await import('./raw-amqp.ts')).system
    case 'tq-sqs':
      return (await import('./tq-sqs.ts')).system
    case 'tq-stub':
      return (await import('./tq-stub.ts')).system
    case 'tq-postgres':
      return (await import('./tq-postgres.ts')).system
    case 'graphile-worker':
      return (await import('./graphile-worker.ts')).system
    case 'pg-boss':
      return (await import('./pg-boss.ts')).system
  }
}

/** `redis://host:port/db` → the pieces the peers' clients want. */
export function redisTarget(url: string): { host: string; port: number; db: number } {
  const parsed = new URL(url)
  return {
    host: parsed.hostname || '127.0.0.1',
    port: Number(parsed.port || 6379),
    db: Number(parsed.pathname.replace(/^\//, '') || 0),
  }
}
