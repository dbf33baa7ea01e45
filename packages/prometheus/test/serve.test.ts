import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { aggregateMetrics, serveAggregatedMetrics, serveMetrics, type MetricsServer } from '../src/index.ts'

const servers: MetricsServer[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()))
})

/** A registry as one worker process would have it. */
function processRegistry(processed: number, inProgress: number, durations: number[]): Registry {
  const registry = new Registry()
  const labelNames = ['queue_name', 'actor_name'] as const
  const labels = { queue_name: 'q', actor_name: 'a' }
  new Counter({ name: 'dramatiq_messages_total', help: 'h', labelNames, registers: [registry] }).inc(labels, processed)
  new Gauge({ name: 'dramatiq_messages_inprogress', help: 'h', labelNames, registers: [registry] }).set(
    labels,
    inProgress,
  )
  const histogram = new Histogram({
    name: 'dramatiq_message_duration_milliseconds',
    help: 'h',
    labelNames,
    buckets: [10, 100],
    registers: [registry],
  })
  for (const d of durations) histogram.observe(labels, d)
  return registry
}

describe('serveMetrics', () => {
  it('serves the registry at /metrics on 127.0.0.1, 404 elsewhere, 405 for other methods', async () => {
    const registry = processRegistry(3, 1, [5])
    const server = await serveMetrics({ port: 0, registry })
    servers.push(server)
    expect(server.host).toBe('127.0.0.1')
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/metrics`)

    const response = await fetch(server.url)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe(registry.contentType)
    const body = await response.text()
    expect(body).toContain('# TYPE dramatiq_messages_total counter')
    expect(body).toContain('dramatiq_messages_total{queue_name="q",actor_name="a"} 3')

    expect((await fetch(`http://127.0.0.1:${server.port}/other`)).status).toBe(404)
    expect((await fetch(server.url, { method: 'POST' })).status).toBe(405)
    expect((await fetch(`${server.url}?x=1`)).status).toBe(200)
  })

  it('rejects when the port is taken', async () => {
    const first = await serveMetrics({ port: 0, registry: new Registry() })
    servers.push(first)
    await expect(serveMetrics({ port: first.port, registry: new Registry() })).rejects.toThrow(/EADDRINUSE/)
  })
})

describe('aggregated metrics', () => {
  it('sums counters, gauges and histograms across processes', async () => {
    const a = await processRegistry(3, 1, [5, 50]).getMetricsAsJSON()
    const b = await processRegistry(4, 2, [500]).getMetricsAsJSON()
    const text = await aggregateMetrics([a, b]).metrics()
    expect(text).toContain('dramatiq_messages_total{queue_name="q",actor_name="a"} 7')
    expect(text).toContain('dramatiq_messages_inprogress{queue_name="q",actor_name="a"} 3')
    expect(text).toContain('dramatiq_message_duration_milliseconds_bucket{le="10",queue_name="q",actor_name="a"} 1')
    expect(text).toContain('dramatiq_message_duration_milliseconds_bucket{le="100",queue_name="q",actor_name="a"} 2')
    expect(text).toContain('dramatiq_message_duration_milliseconds_bucket{le="+Inf",queue_name="q",actor_name="a"} 3')
    expect(text).toContain('dramatiq_message_duration_milliseconds_count{queue_name="q",actor_name="a"} 3')
  })

  it('serves what collect() gathers on every scrape, and a 500 when it fails', async () => {
    let processed = 1
    let fail = false
    const server = await serveAggregatedMetrics({
      port: 0,
      collect: async () => {
        if (fail) throw new Error('a worker process did not answer')
        return [
          await processRegistry(processed, 0, []).getMetricsAsJSON(),
          await processRegistry(10, 0, []).getMetricsAsJSON(),
        ]
      },
    })
    servers.push(server)
    expect(await (await fetch(server.url)).text()).toContain(
      'dramatiq_messages_total{queue_name="q",actor_name="a"} 11',
    )
    processed = 5
    expect(await (await fetch(server.url)).text()).toContain(
      'dramatiq_messages_total{queue_name="q",actor_name="a"} 15',
    )
    fail = true
    const response = await fetch(server.url)
    expect(response.status).toBe(500)
    expect(await response.text()).toContain('a worker process did not answer')
  })
})
