import { SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base'
import {
  Broker,
  Message,
  Retries,
  StubBroker,
  Worker,
  actor,
  defaultMiddleware,
  pipeline,
  type Consumer,
  type WireMessage,
} from '@tq/core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { OpenTelemetry, messagingSystem } from '../src/index.ts'

const exporter = new InMemorySpanExporter()
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
const contextManager = new AsyncLocalStorageContextManager()

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable())
  propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  trace.setGlobalTracerProvider(provider)
})
afterAll(async () => {
  await provider.shutdown()
  trace.disable()
  propagation.disable()
  context.disable()
})

const workers: Worker[] = []
beforeEach(() => exporter.reset())
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ timeout: 1000 })))
})

async function setup(options: { start?: boolean } = {}) {
  const stack = defaultMiddleware().filter((m) => !(m instanceof Retries))
  const broker = new StubBroker({
    middleware: [...stack, new Retries({ minBackoff: 1, maxBackoff: 5 }), new OpenTelemetry()],
  })
  const worker = new Worker(broker, { workerTimeout: 20 })
  workers.push(worker)
  if (options.start !== false) await worker.start()
  return { broker, worker }
}

const spans = (): ReadableSpan[] => exporter.getFinishedSpans()
const named = (name: string): ReadableSpan[] => spans().filter((s) => s.name === name)
const parentOf = (span: ReadableSpan | undefined): string | undefined => span?.parentSpanContext?.spanId
const idOf = (span: ReadableSpan | undefined): string | undefined => span?.spanContext().spanId
const traceOf = (span: ReadableSpan | undefined): string | undefined => span?.spanContext().traceId

function one(name: string): ReadableSpan {
  const found = named(name)
  expect(
    found,
    `spans named ${name}: ${spans()
      .map((s) => s.name)
      .join(', ')}`,
  ).toHaveLength(1)
  return found[0] as ReadableSpan
}

describe('OpenTelemetry', () => {
  it('traces the send as a producer span and the processing as a consumer span under it, with the actor inside', async () => {
    const { broker } = await setup()
    const tracer = trace.getTracer('app')
    const add = actor(
      'add',
      (a: number, b: number) => tracer.startActiveSpan('add the numbers', (span) => (span.end(), a + b)),
      { broker, queueName: 'math' },
    )
    const message = await add.send(1, 2)
    await broker.join('math')

    const send = one('send add')
    const process = one('process add')
    const inner = one('add the numbers')
    expect(send.kind).toBe(SpanKind.PRODUCER)
    expect(process.kind).toBe(SpanKind.CONSUMER)
    expect(parentOf(send)).toBeUndefined()
    expect(parentOf(process)).toBe(idOf(send))
    expect(parentOf(inner)).toBe(idOf(process))
    expect(new Set([traceOf(send), traceOf(process), traceOf(inner)]).size).toBe(1)

    expect(send.attributes).toEqual({
      'messaging.system': 'stub',
      'messaging.destination.name': 'math',
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'send',
      'messaging.message.id': message.messageId,
      'tq.actor.name': 'add',
      'tq.message.retries': 0,
    })
    expect(process.attributes).toMatchObject({
      'messaging.system': 'stub',
      'messaging.destination.name': 'math',
      'messaging.operation.type': 'process',
      'messaging.message.id': message.messageId,
      'tq.actor.name': 'add',
      'tq.message.retries': 0,
    })
    expect(process.status.code).toBe(SpanStatusCode.UNSET)
  })

  it('carries W3C traceparent in the trace_context option on the wire, and reads it back', async () => {
    const { broker } = await setup({ start: false })
    const add = actor('add', (a: number) => a, { broker })
    const message = await add.send(1)
    const send = one('send add')
    const traceparent = `00-${traceOf(send)}-${idOf(send)}-01`
    expect(message.options['traceContext']).toEqual({ traceparent })
    const wire = JSON.parse(new TextDecoder().decode(message.encode())) as WireMessage
    expect(wire.options).toMatchObject({ trace_context: { traceparent } })
    expect(Message.decode(message.encode()).options['traceContext']).toEqual({ traceparent })
  })

  it('runs one trace from send() through the actor and its retry', async () => {
    const { broker } = await setup()
    let attempts = 0
    const flaky = actor(
      'flaky',
      () => {
        attempts++
        trace.getTracer('app').startSpan(`attempt ${attempts}`).end()
        if (attempts === 1) throw new TypeError('first attempt fails')
        return 'ok'
      },
      { broker, maxRetries: 3 },
    )
    await flaky.send()
    await broker.join('default')
    expect(attempts).toBe(2)

    const sends = named('send flaky')
    const processes = named('process flaky')
    expect(sends).toHaveLength(2)
    expect(processes).toHaveLength(2)
    const send1 = sends.find((s) => parentOf(s) === undefined)
    const send2 = sends.find((s) => parentOf(s) !== undefined)
    const first = processes.find((s) => s.attributes['tq.message.retries'] === 0)
    const second = processes.find((s) => s.attributes['tq.message.retries'] === 1)
    // send() → process (fails) → send (the retry, from inside the failed processing) → process (succeeds)
    expect(parentOf(send1)).toBeUndefined()
    expect(parentOf(first)).toBe(idOf(send1))
    expect(parentOf(send2)).toBe(idOf(first))
    expect(send2?.attributes['tq.message.retries']).toBe(1)
    expect(send2?.attributes['tq.message.delay']).toBeGreaterThan(0)
    expect(parentOf(second)).toBe(idOf(send2))
    expect(parentOf(one('attempt 1'))).toBe(idOf(first))
    expect(parentOf(one('attempt 2'))).toBe(idOf(second))
    expect(new Set(spans().map(traceOf)).size).toBe(1)

    expect(first?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'first attempt fails' })
    expect(first?.attributes['error.type']).toBe('TypeError')
    const exception = first?.events.find((e) => e.name === 'exception')
    expect(exception?.attributes).toMatchObject({
      'exception.type': 'TypeError',
      'exception.message': 'first attempt fails',
    })
    expect(second?.status.code).toBe(SpanStatusCode.UNSET)
  })

  it('marks a message that exhausts its retries as failed and dead-lettered', async () => {
    const { broker } = await setup()
    const doomed = actor(
      'doomed',
      () => {
        throw new Error('always')
      },
      { broker, maxRetries: 0 },
    )
    await doomed.send()
    await broker.join('default', { failFast: false })
    const process = one('process doomed')
    expect(process.status.code).toBe(SpanStatusCode.ERROR)
    expect(process.attributes['tq.message.dead_lettered']).toBe(true)
  })

  it('nests the send under the span that is active when send() is called, and sends from an actor under its processing', async () => {
    const { broker } = await setup()
    const child = actor('child', () => {}, { broker })
    const parent = actor('parent', async () => void (await child.send()), { broker })
    await trace.getTracer('app').startActiveSpan('http request', async (span) => {
      await parent.send()
      span.end()
    })
    await broker.join('default')

    const request = one('http request')
    expect(parentOf(one('send parent'))).toBe(idOf(request))
    expect(parentOf(one('send child'))).toBe(idOf(one('process parent')))
    expect(parentOf(one('process child'))).toBe(idOf(one('send child')))
    expect(new Set(spans().map(traceOf))).toEqual(new Set([traceOf(request)]))
  })

  it('keeps the context of a delayed message when it moves to its queue (no extra span)', async () => {
    const { broker } = await setup()
    const later = actor('later', () => {}, { broker })
    await later.sendWithOptions({ args: [], delay: 20 })
    await broker.join('default')
    expect(
      spans()
        .map((s) => s.name)
        .sort(),
    ).toEqual(['process later', 'send later'])
    expect(parentOf(one('process later'))).toBe(idOf(one('send later')))
    expect(one('send later').attributes['tq.message.delay']).toBe(20)
  })

  it('continues the trace into the next step of a pipeline', async () => {
    const { broker } = await setup()
    const double = actor('double', (x: number) => x * 2, { broker })
    const inc = actor('inc', (x?: number) => (x ?? 0) + 1, { broker })
    await pipeline([double.message(1), inc.message()], { broker }).run()
    await broker.join('default')
    expect(parentOf(one('send inc'))).toBe(idOf(one('process double')))
    expect(parentOf(one('process inc'))).toBe(idOf(one('send inc')))
    expect(new Set(spans().map(traceOf)).size).toBe(1)
  })
})

describe('messagingSystem', () => {
  abstract class Named extends Broker {
    override enqueue(message: Message): Promise<Message> {
      return Promise.resolve(message)
    }
    override consume(): Consumer {
      throw new Error('not used')
    }
    override flush(): Promise<void> {
      return Promise.resolve()
    }
    override flushAll(): Promise<void> {
      return Promise.resolve()
    }
    override join(): Promise<void> {
      return Promise.resolve()
    }
    override close(): Promise<void> {
      return Promise.resolve()
    }
  }
  class RedisBroker extends Named {}
  class RabbitmqBroker extends Named {}
  class SqsBroker extends Named {}

  it('derives messaging.system from the broker class name', () => {
    expect(messagingSystem(new StubBroker({ middleware: [] }))).toBe('stub')
    expect(messagingSystem(new RedisBroker({ middleware: [] }))).toBe('redis')
    expect(messagingSystem(new RabbitmqBroker({ middleware: [] }))).toBe('rabbitmq')
    expect(messagingSystem(new SqsBroker({ middleware: [] }))).toBe('aws_sqs')
  })

  it('takes messagingSystem and a tracer provider from the options', async () => {
    const own = new InMemorySpanExporter()
    const ownProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(own)] })
    const broker = new StubBroker({
      middleware: [new OpenTelemetry({ tracerProvider: ownProvider, messagingSystem: 'valkey' })],
    })
    const noop = actor('noop', () => {}, { broker })
    await noop.send()
    expect(own.getFinishedSpans().map((s) => [s.name, s.attributes['messaging.system']])).toEqual([
      ['send noop', 'valkey'],
    ])
    expect(spans()).toHaveLength(0)
    await ownProvider.shutdown()
  })
})
