import { afterEach, describe, expect, it, vi } from 'vitest'
import { SettleMemory } from '../src/settle-memory.ts'

describe('SettleMemory', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('returns a remembered decision once, only for the same id and identical bytes', () => {
    const memory = new SettleMemory()
    memory.remember('m1', Buffer.from('{"a":1}'), 'ack')
    memory.remember('m1', Buffer.from('{"a":2}'), 'nack')
    expect(memory.take('m2', Buffer.from('{"a":1}'))).toBeUndefined()
    expect(memory.take('m1', Buffer.from('{"a":3}'))).toBeUndefined()
    expect(memory.take('m1', Buffer.from('{"a":2}'))).toBe('nack')
    expect(memory.take('m1', Buffer.from('{"a":1}'))).toBe('ack')
    expect(memory.take('m1', Buffer.from('{"a":1}'))).toBeUndefined()
    expect(memory.size).toBe(0)
  })

  it('forgets after its ttl and beyond its capacity, oldest first', () => {
    vi.useFakeTimers()
    const memory = new SettleMemory(1000, 2)
    memory.remember('old', Buffer.from('x'), 'ack')
    vi.advanceTimersByTime(1500)
    expect(memory.take('old', Buffer.from('x'))).toBeUndefined()
    memory.remember('a', Buffer.from('x'), 'ack')
    memory.remember('b', Buffer.from('x'), 'ack')
    memory.remember('c', Buffer.from('x'), 'ack')
    expect(memory.size).toBe(2)
    expect(memory.take('a', Buffer.from('x'))).toBeUndefined()
    expect(memory.take('c', Buffer.from('x'))).toBe('ack')
  })
})
