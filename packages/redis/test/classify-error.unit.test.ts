import {
  BrokerConnectionError,
  BrokerError,
  ConnectionClosedError,
  ConnectionFailedError,
  DecodeError,
  ErrorCode,
} from '@tq/core'
import { describe, expect, it } from 'vitest'
import { classifyRedisError } from '../src/index.ts'

/** Errors shaped like the ones ioredis, redis-errors and node:net produce. */
function named(name: string, message: string, extra: Record<string, unknown> = {}): Error {
  const error = new Error(message)
  Object.defineProperty(error, 'name', { value: name })
  return Object.assign(error, extra)
}

describe('classifyRedisError', () => {
  it.each([
    ['a closed connection', new Error('Connection is closed.')],
    ['a command aborted by the close', named('AbortError', 'Command aborted due to connection close')],
    ['a reset socket', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })],
    ['a broken pipe', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })],
    ['an offline queue that is off', new Error("Stream isn't writeable and enableOfflineQueue options is false")],
    ['a socket timeout', new Error("Socket timeout. Expecting data, but didn't receive any in 100ms.")],
  ])('maps %s to ConnectionClosedError (retryable)', (_label, error) => {
    const classified = classifyRedisError(error)
    expect(classified).toBeInstanceOf(ConnectionClosedError)
    expect(classified.code).toBe(ErrorCode.CONNECTION_CLOSED)
    expect(classified.retryable).toBe(true)
    expect(classified.cause).toBe(error)
  })

  it.each([
    ['a refused connection', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6390'), { code: 'ECONNREFUSED' })],
    ['an unknown host', Object.assign(new Error('getaddrinfo ENOTFOUND nohost'), { code: 'ENOTFOUND' })],
    ['a connect timeout', new Error('connect ETIMEDOUT')],
    [
      'ioredis giving up',
      named('MaxRetriesPerRequestError', 'Reached the max retries per request limit (which is 20).'),
    ],
  ])('maps %s to ConnectionFailedError (retryable)', (_label, error) => {
    const classified = classifyRedisError(error)
    expect(classified).toBeInstanceOf(ConnectionFailedError)
    expect(classified.retryable).toBe(true)
  })

  it.each([
    ['LOADING', named('ReplyError', 'LOADING Redis is loading the dataset in memory')],
    ['BUSY', named('ReplyError', 'BUSY Redis is busy running a script.')],
    ['READONLY', named('ReplyError', "READONLY You can't write against a read only replica.")],
    ['a command timeout', new Error('Command timed out')],
  ])('maps a transient server state (%s) to BrokerConnectionError (retryable)', (_label, error) => {
    const classified = classifyRedisError(error)
    expect(classified).toBeInstanceOf(BrokerConnectionError)
    expect(classified).not.toBeInstanceOf(ConnectionClosedError)
    expect(classified.retryable).toBe(true)
  })

  it.each([
    ['WRONGTYPE', named('ReplyError', 'WRONGTYPE Operation against a key holding the wrong kind of value')],
    [
      'a script error',
      named('ReplyError', 'ERR user_script:1: Script attempted to access nonexistent global variable'),
    ],
    ['a bug', new TypeError("Cannot read properties of undefined (reading 'x')")],
    ['a non-error', 'just a string'],
  ])('maps %s to a BrokerError that is not retryable', (_label, error) => {
    const classified = classifyRedisError(error)
    expect(classified).toBeInstanceOf(BrokerError)
    expect(classified).not.toBeInstanceOf(BrokerConnectionError)
    expect(classified.retryable).toBe(false)
  })

  it('returns tq errors unchanged', () => {
    const error = new DecodeError('bad')
    expect(classifyRedisError(error)).toBe(error)
  })
})
