// Runs `pnpm bench -- --quick` as a child process (on its own Redis database; the PostgreSQL
// systems with a small delayed backlog) and checks that the report has every row, with positive
// numbers, and that the Markdown and the charts render. It asserts no speed: the point is to keep
// the harness working.
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'
import { BEGIN, END, renderSection, writeDocs } from '../src/report/markdown.ts'
import { PG_BEGIN, PG_END, renderPostgresSection } from '../src/report/postgres.ts'
import { renderChart, renderPostgresChart } from '../src/report/svg.ts'
import type { BenchReport } from '../src/report/types.ts'
import { POSTGRES_SYSTEMS, type SystemName } from '../src/peers/types.ts'

const benchDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const scratch = mkdtempSync(join(tmpdir(), 'bench-quick-test-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

function runQuick(out: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--conditions=@tq/source',
        'src/bench.ts',
        '--quick',
        '--redis-db',
        '11',
        '--backlog',
        '5000',
        '--out',
        out,
        '--no-docs',
      ],
      { cwd: benchDir, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.on('close', (code) => resolvePromise({ code, output }))
  })
}

const positive = (value: number): boolean => Number.isFinite(value) && value > 0

describe('pnpm bench -- --quick', () => {
  let report: BenchReport
  let output = ''

  test('runs every scenario without failures and writes the JSON report', async () => {
    const out = join(scratch, 'quick.json')
    const result = await runQuick(out)
    output = result.output
    expect(result.code, output).toBe(0)
    report = JSON.parse(readFileSync(out, 'utf8')) as BenchReport
    expect(report.mode).toBe('quick')
    expect(report.failures, output).toEqual([])
  })

  test('machine facts are filled in', () => {
    const m = report.machine
    expect(m.cores).toBeGreaterThan(0)
    expect(m.memoryGiB).toBeGreaterThan(0)
    expect(m.cpuModel.length).toBeGreaterThan(0)
    expect(m.node).toBe(process.version)
    expect(m.redis).toMatch(/^\d+\.\d+/)
    expect(m.rabbitmq).toMatch(/^\d+\.\d+/)
    expect(m.postgres).toMatch(/^\d+(\.\d+)?/)
    expect(m.versions?.['graphile-worker']).toMatch(/^0\.17\./)
    expect(m.versions?.['pg-boss']).toMatch(/^10\./)
  })

  test('has an end-to-end row for every system, concurrency and process count', () => {
    const { concurrencies, processes } = report.settings
    const top = Math.max(...concurrencies)
    const expected: Array<[SystemName, number, number]> = []
    for (const p of processes) {
      for (const c of concurrencies) {
        for (const system of ['tq-redis', 'bullmq', 'bee-queue', 'tq-rabbitmq', ...POSTGRES_SYSTEMS] as const)
          expected.push([system, c, p])
        if (c === top) expected.push(['raw-redis', c, p], ['raw-amqp', c, p])
        if (p === 1) expected.push(['tq-stub', c, p], ['tq-sqs', c, p])
      }
    }
    expect(concurrencies).toEqual([1, 8, 100])
    expect(processes).toEqual([1, 2])
    for (const [system, c, p] of expected) {
      const row = report.endToEnd.find((r) => r.system === system && r.concurrency === c && r.processes === p)
      expect(row, `${system} c=${c} ×${p}`).toBeDefined()
      expect(
        positive(row!.rate) && positive(row!.ms) && positive(row!.fillMs) && positive(row!.n),
        `${system} c=${c} ×${p}`,
      ).toBe(true)
    }
    expect(report.endToEnd).toHaveLength(expected.length)
  })

  test('has enqueue, latency and memory rows with positive numbers', () => {
    const all: SystemName[] = [
      'tq-redis',
      'bullmq',
      'bee-queue',
      'raw-redis',
      'tq-rabbitmq',
      'raw-amqp',
      'tq-sqs',
      'tq-stub',
      ...POSTGRES_SYSTEMS,
    ]
    for (const system of all) {
      const row = report.enqueue.find((e) => e.system === system)
      expect(row, system).toBeDefined()
      expect(
        positive(row!.bulkRate) && positive(row!.singleRate) && positive(row!.inFlightRate ?? NaN) && row!.fills > 0,
        system,
      ).toBe(true)
    }
    for (const system of all.filter((s) => s !== 'raw-redis')) {
      const row = report.latency.find((l) => l.system === system)
      expect(row, system).toBeDefined()
      expect(row!.n).toBe(report.settings.latencyCount)
      expect(positive(row!.p50) && row!.p99 >= row!.p50 && row!.max >= row!.p99, system).toBe(true)
    }
    // The quick mode measures tq on Redis only; the full run adds the peers.
    expect(report.memory.map((m) => m.system)).toEqual(['tq-redis'])
    for (const system of ['tq-redis'] as const) {
      const row = report.memory.find((m) => m.system === system)
      expect(row, system).toBeDefined()
      for (const key of [
        'idleMb',
        'queuedMb',
        'tenthMb',
        'endMb',
        'peakMb',
        'heapTenthMb',
        'heapEndMb',
        'rate',
      ] as const) {
        expect(positive(row![key]), `${system} ${key}`).toBe(true)
      }
      expect(row!.peakMb).toBeGreaterThanOrEqual(row!.endMb)
      expect(row!.series.length).toBeGreaterThan(0)
    }
    const tq = report.memory.find((m) => m.system === 'tq-redis')!
    expect(tq.processed).toBe(report.settings.memoryProcessed)
    expect(tq.processed).toBeGreaterThan(tq.queued)
  })

  test('has the PostgreSQL backlog and transaction rows', () => {
    expect(report.settings.delayedBacklog).toBe(5000)
    for (const system of POSTGRES_SYSTEMS) {
      const row = report.delayed?.find((d) => d.system === system)
      expect(row, system).toBeDefined()
      expect(row!.backlog).toBe(5000)
      expect(row!.rounds).toHaveLength(report.settings.rounds)
      expect(positive(row!.rate) && positive(row!.seedMs), system).toBe(true)
      const tx = report.transactions?.find((t) => t.system === system)
      expect(tx, system).toBeDefined()
      expect(positive(tx!.baselineMedianMs) && positive(tx!.withSendMedianMs), system).toBe(true)
      // BEGIN, the application's INSERT, COMMIT; one more statement for the enqueue.
      expect([tx!.baselineStatements, tx!.withSendStatements], system).toEqual([3, 4])
    }
    expect(report.transactions?.find((t) => t.system === 'tq-postgres')?.outsideStatements).toBe(0)
  })

  test('has the cold rows: a fresh worker per run, its GC profiled', () => {
    for (const system of ['tq-redis', 'bullmq', 'bee-queue'] as const) {
      for (const concurrency of report.settings.concurrencies) {
        const row = report.cold?.find((c) => c.system === system && c.concurrency === concurrency)
        expect(row, `${system} c=${concurrency}`).toBeDefined()
        expect(row!.n).toBe(report.settings.coldN)
        expect(positive(row!.rate) && positive(row!.bytesPerMessage), `${system} c=${concurrency}`).toBe(true)
        expect(row!.gcMsPerMessage).toBeGreaterThanOrEqual(0)
      }
    }
  })

  test('renders the Markdown section and the chart, and replaces the section on a second write', () => {
    const section = renderSection(report)
    for (const heading of [
      '### Targets',
      '### End to end on Redis',
      '### Against the raw clients',
      '### Enqueue',
      '### Cold: a fresh worker process',
      '### Idle latency',
      '### Worker memory',
    ]) {
      expect(section).toContain(heading)
    }
    expect(section).not.toContain('NaN')
    const svg = renderChart(report)
    expect(svg.startsWith('<svg')).toBe(true)
    expect(svg).not.toContain('NaN')
    // One bar per end-to-end row (the PostgreSQL rows have a chart of their own), plus the legend and enqueue.
    const mainRows = report.endToEnd.filter((r) => !POSTGRES_SYSTEMS.includes(r.system))
    expect((svg.match(/<rect /g) ?? []).length).toBeGreaterThan(mainRows.length)

    const docs = join(scratch, 'docs')
    mkdirSync(docs, { recursive: true })
    const md = join(docs, 'benchmarks.md')
    writeFileSync(md, `# Benchmarks\n\nHand-written intro.\n\n${BEGIN}\nold\n${END}\n\nHand-written outro.\n`)
    writeDocs(report, docs)
    writeDocs(report, docs)
    const text = readFileSync(md, 'utf8')
    expect(text.split(BEGIN)).toHaveLength(2)
    expect(text.split(END)).toHaveLength(2)
    expect(text).toContain('Hand-written intro.')
    expect(text).toContain('Hand-written outro.')
    expect(text).not.toContain('\nold\n')
    expect(readFileSync(join(docs, 'benchmarks.svg'), 'utf8')).toBe(svg)
  })

  test('renders the PostgreSQL section and chart; a PostgreSQL-only report leaves the main section alone', () => {
    const section = renderPostgresSection(report, 'quick.json')
    for (const heading of ['### PostgreSQL targets', '### End to end on PostgreSQL', '### Enqueue inside the']) {
      expect(section).toContain(heading)
    }
    expect(section).not.toContain('NaN')
    const svg = renderPostgresChart(report)
    expect(svg.startsWith('<svg')).toBe(true)
    expect(svg).not.toContain('NaN')
    const pgRows = report.endToEnd.filter((r) => POSTGRES_SYSTEMS.includes(r.system))
    expect((svg.match(/<rect /g) ?? []).length).toBeGreaterThan(pgRows.length + POSTGRES_SYSTEMS.length)

    const docs = join(scratch, 'docs-pg')
    mkdirSync(docs, { recursive: true })
    const md = join(docs, 'benchmarks.md')
    writeFileSync(md, `# Benchmarks\n\n${BEGIN}\nmain numbers\n${END}\n\n## Profiles\n`)
    const postgresOnly: BenchReport = { ...report, settings: { ...report.settings, systems: [...POSTGRES_SYSTEMS] } }
    const written = writeDocs(postgresOnly, docs, 'postgres.json')
    writeDocs(postgresOnly, docs, 'postgres.json')
    expect(written.map((path) => path.split('/').pop())).toEqual(['benchmarks.md', 'benchmarks-postgres.svg'])
    const text = readFileSync(md, 'utf8')
    expect(text).toContain(`${BEGIN}\nmain numbers\n${END}`)
    expect(text.split(PG_BEGIN)).toHaveLength(2)
    expect(text.indexOf(END)).toBeLessThan(text.indexOf(PG_BEGIN))
    expect(text.indexOf(PG_END)).toBeLessThan(text.indexOf('## Profiles'))
    expect(text).toContain('benchmarks/results/postgres.json')
  })
})
