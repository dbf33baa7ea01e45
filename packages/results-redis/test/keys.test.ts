import { createHash } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { Message } from '@tq/core'
import { RedisResultBackend } from '../src/index.ts'
import { loadResultsFixture } from './helpers.ts'

// Unit tests: building keys opens no connection (the client connects lazily on first command).
const fixture = loadResultsFixture()
const backends: RedisResultBackend[] = []
afterEach(async () => {
  for (const b of backends.splice(0)) await b.close()
})

function backend(options: ConstructorParameters<typeof RedisResultBackend>[0] = {}): RedisResultBackend {
  const b = new RedisResultBackend({ url: 'redis://127.0.0.1:6379/8', ...options })
  backends.push(b)
  return b
}

function sentMessage(name: keyof typeof fixture.parts): Message {
  const { queue_name, actor_name, message_id } = fixture.parts[name].sent_message.parsed
  return new Message({ queueName: queue_name, actorName: actor_name, messageId: message_id })
}

describe('RedisResultBackend keys', () => {
  it.each(['success', 'failure'] as const)(
    'is the MD5 hex digest of namespace:queue:actor:id by default (%s)',
    (part) => {
      const { result_key, result_key_source, use_namespace_prefix_keys } = fixture.parts[part]
      expect(use_namespace_prefix_keys).toBe(false)
      const key = backend().buildMessageKey(sentMessage(part))
      expect(key).toBe(result_key)
      expect(key).toMatch(/^[0-9a-f]{32}$/)
      expect(createHash('md5').update(result_key_source).digest('hex')).toBe(key)
    },
  )

  it.each(['success_namespace_prefix_keys', 'failure_namespace_prefix_keys'] as const)(
    'is the plain namespace:queue:actor:id string with usePrefixKeys (%s)',
    (part) => {
      const { result_key, result_key_source, use_namespace_prefix_keys } = fixture.parts[part]
      expect(use_namespace_prefix_keys).toBe(true)
      const b = backend({ usePrefixKeys: true })
      expect(b.usePrefixKeys).toBe(true)
      expect(b.buildMessageKey(sentMessage(part))).toBe(result_key)
      expect(result_key).toBe(result_key_source)
    },
  )

  it('uses the canonical queue name and the given namespace', () => {
    const message = new Message({ queueName: 'mail.DQ', actorName: 'send', messageId: 'abc' })
    const b = backend({ namespace: 'ns', usePrefixKeys: true })
    expect(b.namespace).toBe('ns')
    expect(b.buildMessageKey(message)).toBe('ns:mail:send:abc')
    expect(b.buildMessageKey({ ...message, queueName: 'mail.XQ' })).toBe('ns:mail:send:abc')
    expect(backend({ namespace: 'ns' }).buildMessageKey(message)).toBe(
      createHash('md5').update('ns:mail:send:abc').digest('hex'),
    )
    expect(backend().namespace).toBe('dramatiq-results')
  })

  it('refuses a client with a keyPrefix and a bad connection cap', async () => {
    const { Redis } = await import('ioredis')
    const prefixed = new Redis('redis://127.0.0.1:6379/8', { lazyConnect: true, keyPrefix: 'x:' })
    expect(() => new RedisResultBackend({ client: prefixed })).toThrow(/keyPrefix/)
    prefixed.disconnect()
    expect(() => new RedisResultBackend({ url: 'redis://127.0.0.1:6379/8', maxBlockingConnections: 0 })).toThrow(
      /maxBlockingConnections/,
    )
  })
})
