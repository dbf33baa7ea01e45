// PostgreSQL under test: 127.0.0.1:5432 database `test`, a schema of its own per run (dropped
// afterwards), the workers' connections named after it (application_name) so a cut
// (pg_terminate_backend) closes only this run's.
import { actor } from '@tq/core'
import { PostgresBroker } from '@tq/postgres'
import pg from 'pg'
import { randomUUID } from 'node:crypto'
import { uniqueName, type Ledger } from '../ledger.ts'
import type { RawPut, Target } from './target.ts'

export const PG_URL = process.env['TQ_POSTGRES_TEST_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test'
const BATCH = 1000

export class PostgresTarget implements Target {
  readonly name = 'postgres' as const
  /** The schema, also the application_name of the run's connections. */
  readonly schema = uniqueName('pg').replaceAll('-', '_')
  readonly queue = 'rel_postgres'
  readonly producer: PostgresBroker
  readonly raw: pg.Pool
  readonly #ledger: Ledger
  readonly #record
  readonly #probe

  constructor(ledger: Ledger) {
    this.#ledger = ledger
    this.producer = new PostgresBroker({
      connectionString: PG_URL,
      schema: this.schema,
      poolOptions: { application_name: this.schema },
    })
    this.#record = actor('record', (_id: number, _padding?: string) => undefined, {
      broker: this.producer,
      queueName: this.queue,
    })
    this.#probe = actor('probe', (_name: string) => undefined, {
      broker: this.producer,
      queueName: `${this.queue}_probe`,
    })
    this.raw = new pg.Pool({ connectionString: PG_URL, max: 2, application_name: 'tq-rel-inspector' })
    this.raw.on('error', () => undefined)
  }

  workerEnv(): Record<string, string> {
    return {
      TQ_REL_BROKER: 'postgres',
      TQ_REL_URL: PG_URL,
      TQ_REL_NAMESPACE: this.schema,
      TQ_REL_QUEUE: this.queue,
      TQ_REL_HEARTBEAT_MS: '2000',
    }
  }

  async send(ids: readonly number[]): Promise<void> {
    for (let i = 0; i < ids.length; i += BATCH) {
      await this.producer.enqueueMany(ids.slice(i, i + BATCH).map((id) => this.#record.message(id)))
    }
  }

  async sendProbe(name: string): Promise<void> {
    await this.#probe.send(name)
  }

  /** Terminate every server process serving this run's connections (workers and producer). */
  async cut(): Promise<number> {
    const { rows } = await this.raw.query<{ done: boolean }>(
      'SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name = $1',
      [this.schema],
    )
    return rows.filter((r) => r.done).length
  }

  async putRaw(bytes: Uint8Array): Promise<RawPut> {
    await this.producer.connect()
    const id = randomUUID()
    await this.raw.query(`INSERT INTO ${this.schema}.messages (queue, message_id, body) VALUES ($1, $2, $3)`, [
      this.queue,
      id,
      Buffer.from(bytes),
    ])
    return { id, bytes }
  }

  async deadLetters(): Promise<Uint8Array[]> {
    return (await this.producer.deadLetters(this.queue, { limit: 100_000 })).map((d) => d.body)
  }

  async heldBy(pid: number): Promise<number | undefined> {
    const workerId = await this.#ledger.brokerIdOf(pid)
    if (!workerId) return undefined
    const { rows } = await this.raw.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${this.schema}.messages WHERE claimed_by = $1`,
      [workerId],
    )
    return rows[0]?.n ?? 0
  }

  async drained(timeout: number): Promise<void> {
    const deadline = Date.now() + timeout
    for (;;) {
      const c = await this.producer.queueCounts(this.queue)
      if (c.ready + c.delayed + (c.running ?? 0) === 0) return
      if (Date.now() > deadline) {
        throw new Error(
          `postgres ${this.schema}: not drained within ${timeout} ms (ready ${c.ready}, delayed ${c.delayed}, claimed ${c.running})`,
        )
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  async cleanup(): Promise<void> {
    await this.producer.close()
    await this.raw.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`)
    await this.raw.end()
  }
}

/** Restart the PostgreSQL server (every client of it is disconnected). */
export async function restartPostgres(): Promise<void> {
  const { execFileSync } = await import('node:child_process')
  const clusters = execFileSync('pg_lsclusters', ['--no-header'], { encoding: 'utf8' })
  const [version, name] = (clusters.trim().split('\n')[0] ?? '').split(/\s+/)
  if (!version || !name) throw new Error(`pg_lsclusters found no cluster: ${clusters}`)
  execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, name, 'restart'], { stdio: 'ignore' })
}
