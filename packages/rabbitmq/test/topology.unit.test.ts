import { describe, expect, it } from 'vitest'
import { DEAD_MESSAGE_TTL, queueDeclarations, type QueueArgumentValue } from '../src/index.ts'
import { fixture } from './helpers.ts'

interface Frame {
  method?: string
  fields?: {
    queue: string
    durable: boolean
    exclusive: boolean
    auto_delete: boolean
    passive: boolean
    arguments: Array<{ key: string; type_tag: string; value: unknown }>
  }
}

interface EnqueueFixture {
  no_max_priority: { client_frames_by_connection: Frame[][] }
  max_priority_10: { client_frames_by_connection: Frame[][] }
}

/** Our arguments in the fixture's form: key, AMQP type tag, value. */
function tagged(
  args: Readonly<Record<string, QueueArgumentValue>>,
): Array<{ key: string; type_tag: string; value: unknown }> {
  return Object.entries(args).map(([key, value]) =>
    typeof value === 'string'
      ? { key, type_tag: 'S', value }
      : { key, type_tag: value['!'] === 'int' ? 'I' : 'l', value: value.value },
  )
}

describe('topology', () => {
  const enqueue = fixture<EnqueueFixture>('rabbitmq-enqueue')

  for (const [part, queue, maxPriority] of [
    ['no_max_priority', 'fixture_default', undefined],
    ['max_priority_10', 'fixture_prio', 10],
  ] as const) {
    it(`declares exactly Dramatiq's queues and arguments (${part})`, () => {
      const frames = enqueue[part].client_frames_by_connection.flat().filter((f) => f.method === 'queue.declare')
      const expected = frames.map((f) => ({
        name: f.fields?.queue,
        durable: f.fields?.durable,
        exclusive: f.fields?.exclusive,
        autoDelete: f.fields?.auto_delete,
        arguments: f.fields?.arguments,
      }))
      const queueName = frames[0]?.fields?.queue ?? ''
      expect(queueName).toBe(queue)
      const ours = queueDeclarations(queueName, { maxPriority }).map((d) => ({
        name: d.name,
        durable: d.durable,
        exclusive: d.exclusive,
        autoDelete: d.autoDelete,
        arguments: tagged(d.arguments),
      }))
      expect(ours).toEqual(expected)
    })
  }

  it("keeps Dramatiq's dead-message TTL and encodes a larger one as int64", () => {
    expect(DEAD_MESSAGE_TTL).toBe(604_800_000)
    const [, , xq] = queueDeclarations('q', { deadMessageTtl: 2 ** 32 })
    expect(xq?.arguments['x-message-ttl']).toEqual({ '!': 'long', value: 2 ** 32 })
  })
})
