// A broker URL's password never appears in what `tq worker` writes: not in log lines, not in
// error messages, not in stacks (everything the supervisor and its worker processes print is
// scanned, with --verbose so debug entries are included).
import { mkdirSync } from 'node:fs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Ledger } from '../src/ledger.ts'
import { TqWorker, killAll } from '../src/tq-process.ts'

const dir = `/tmp/rel-secrets-${process.pid}`
const ledgers: Ledger[] = []

beforeAll(() => mkdirSync(dir, { recursive: true }))
afterEach(async () => {
  killAll()
  for (const ledger of ledgers.splice(0)) await ledger.close()
})
afterAll(() => killAll())

/** A worker whose broker comes from TQ_BROKER_URL (the module only declares actors). */
function workerWithUrl(url: string, label: string): TqWorker {
  const ledger = new Ledger(`secrets-${label}`)
  ledgers.push(ledger)
  return new TqWorker({
    env: { TQ_BROKER_URL: url, TQ_REL_BROKER: 'global', TQ_REL_QUEUE: `rel_secrets_${label}`, ...ledger.env },
    args: ['--processes', '1', '--verbose', '--worker-shutdown-timeout', '2000'],
    logFile: `${dir}/${label}.log`,
  })
}

function expectNoSecret(worker: TqWorker, secret: string): void {
  const output = worker.lines.join('\n')
  expect(output.length).toBeGreaterThan(0)
  const leaks = worker.lines.filter((line) => line.includes(secret) || line.includes(encodeURIComponent(secret)))
  expect(leaks).toEqual([])
}

describe('secrets stay out of the output of tq worker', () => {
  it('redis://:<password>@ an unreachable port: exit code 3, the password nowhere', async () => {
    const secret = 's3cretPW'
    const worker = workerWithUrl(`redis://:${secret}@127.0.0.1:1/0`, 'redis')
    const { code } = await worker.exited
    expect(code, worker.tail()).toBe(3)
    // The failure says what failed (and where), without the credentials.
    expect(worker.lines.join('\n')).toMatch(/Could not connect to Redis at 127\.0\.0\.1:1/)
    expectNoSecret(worker, secret)
  }, 60_000)

  it('amqp://guest:<wrong password>@ RabbitMQ: exit code 3 with the refused login, the password nowhere', async () => {
    const secret = 'wr0ngPW-amqp'
    const worker = workerWithUrl(`amqp://guest:${secret}@127.0.0.1:5672/`, 'amqp')
    const { code } = await worker.exited
    expect(code, worker.tail()).toBe(3)
    expect(worker.lines.join('\n')).toMatch(/ACCESS.REFUSED/)
    expectNoSecret(worker, secret)
  }, 60_000)
})
