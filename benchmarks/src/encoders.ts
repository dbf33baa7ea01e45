// Encoder benchmark: MsgpackEncoder against JSONEncoder on a small message and a 64 KiB
// message: encode and decode speed (operations per second, median of several rounds) and size.
// No server needed.
//
//   corepack pnpm --filter @tq/benchmarks bench:encoders            # about 15 seconds
//   corepack pnpm --filter @tq/benchmarks bench:encoders -- --quick # about 3 seconds
import { performance } from 'node:perf_hooks'
import { isDeepStrictEqual } from 'node:util'
import { JSONEncoder, Message, type Encoder } from '@tq/core'
import { MsgpackEncoder } from '@tq/encoder-msgpack'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 3 : 7
const ROUND_MS = quick ? 100 : 300

/** A typical small task: a few arguments, kwargs, and the options Retries adds. */
function smallMessage(): Record<string, unknown> {
  return new Message({
    queueName: 'default',
    actorName: 'send_welcome_email',
    args: [1234567, 'ada@example.com'],
    kwargs: { locale: 'en-GB', template: 'welcome-v2', priority: 3 },
    options: { maxRetries: 20, retries: 1, eta: 1_700_000_123_456 },
    messageId: 'c0a8012e-5f2b-4c3d-9e1f-2a3b4c5d6e7f',
    messageTimestamp: 1_700_000_000_000,
  }).toWire() as unknown as Record<string, unknown>
}

/** A batch job: one argument holding an array of records, grown until the JSON body is 64 KiB. */
function largeMessage(): Record<string, unknown> {
  const rows: unknown[] = []
  const wire = new Message({
    queueName: 'reports',
    actorName: 'ingest_rows',
    args: [rows],
    messageId: '9b2f6c1e-0d4a-4e8b-8c7d-1f2e3d4c5b6a',
    messageTimestamp: 1_700_000_000_000,
  }).toWire() as unknown as Record<string, unknown>
  const json = new JSONEncoder()
  for (let i = 0; json.encode(wire).length < 64 * 1024; i++) {
    rows.push({
      id: 100_000 + i,
      name: `customer ${i}`,
      email: `customer${i}@example.com`,
      score: Math.round(((i * 7919) % 1000) * 1.37) / 100,
      active: i % 3 !== 0,
      tags: ['retail', i % 2 === 0 ? 'eu' : 'us'],
      created: 1_690_000_000_000 + i * 60_000,
    })
  }
  return wire
}

/** Size a batch of `fn` calls to about 1/20 of a round (this also warms it up). */
function batchSize(fn: () => unknown): number {
  let batch = 1
  for (;;) {
    const t = performance.now()
    for (let i = 0; i < batch; i++) fn()
    if (performance.now() - t >= ROUND_MS / 20) return batch
    batch *= 2
  }
}

/**
 * Operations per second of each function: the median of ROUNDS rounds of about ROUND_MS each.
 * Rounds alternate between the functions, so a burst of load elsewhere on the machine hits
 * all of them alike rather than whichever happened to run at the time.
 */
function opsPerSecond(fns: Array<() => unknown>): number[] {
  const batches = fns.map(batchSize)
  const rates: number[][] = fns.map(() => [])
  for (let round = 0; round < ROUNDS; round++) {
    fns.forEach((fn, k) => {
      const batch = batches[k] as number
      let ops = 0
      const start = performance.now()
      let elapsed = 0
      while (elapsed < ROUND_MS) {
        for (let i = 0; i < batch; i++) fn()
        ops += batch
        elapsed = performance.now() - start
      }
      ;(rates[k] as number[]).push((ops / elapsed) * 1000)
    })
  }
  return rates.map((r) => r.sort((a, b) => a - b)[Math.floor(r.length / 2)] as number)
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US')

interface Row {
  message: string
  encoder: string
  encode: number
  decode: number
  bytes: number
}

function measure(label: string, data: Record<string, unknown>, encoders: Array<[string, Encoder]>): Row[] {
  const bodies = encoders.map(([name, encoder]) => {
    const body = encoder.encode(data)
    // Both encoders must give back the same wire dict for the comparison to mean anything.
    if (!isDeepStrictEqual(encoder.decode(body), data))
      throw new Error(`${name} does not round-trip the ${label} message`)
    return body
  })
  const encodes = opsPerSecond(
    encoders.map(
      ([, encoder]) =>
        () =>
          encoder.encode(data),
    ),
  )
  const decodes = opsPerSecond(
    encoders.map(
      ([, encoder], k) =>
        () =>
          encoder.decode(bodies[k] as Uint8Array),
    ),
  )
  return encoders.map(([name], k) => ({
    message: label,
    encoder: name,
    encode: encodes[k] as number,
    decode: decodes[k] as number,
    bytes: (bodies[k] as Uint8Array).length,
  }))
}

function printTable(rows: Row[]): void {
  const header = ['message', 'encoder', 'encode ops/s', 'decode ops/s', 'size (bytes)']
  const body = rows.map((r) => [r.message, r.encoder, fmt(r.encode), fmt(r.decode), fmt(r.bytes)])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => (cells[i] as string).length)))
  const line = (cells: string[]): string =>
    '| ' +
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join(' | ') +
    ' |'
  console.log(line(header))
  console.log('| ' + widths.map((w, i) => (i < 2 ? '-'.repeat(w) : '-'.repeat(w - 1) + ':')).join(' | ') + ' |')
  for (const cells of body) console.log(line(cells))
}

const encoders: Array<[string, Encoder]> = [
  ['JSONEncoder', new JSONEncoder()],
  ['MsgpackEncoder', new MsgpackEncoder()],
]
const large = largeMessage()
const rows = [
  ...measure('small', smallMessage(), encoders),
  ...measure(`64 KiB (${(large['args'] as unknown[][])[0]?.length} records)`, large, encoders),
]
console.log(
  `Node ${process.version}, ${ROUNDS} alternating rounds of ${ROUND_MS} ms per encoder, median${quick ? ' (--quick)' : ''}\n`,
)
printTable(rows)
