import { describe, expect, it } from 'vitest'
import {
  BrokerConnectionError,
  ConnectionClosedError,
  ConnectionFailedError,
  ErrorCode,
  ResultError,
  ResultTimeoutError,
} from '@tq/core'
import { classifyRedisError } from '../src/index.ts'

const withCode = (message: string, code: string): Error => Object.assign(new Error(message), { code })
const named = (name: string, message: string): Error => Object.assign(new Error(message), { name })

describe('classifyRedisError', () => {
  it.each([
    ['refused', withCode('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED')],
    ['unknown host', withCode('getaddrinfo ENOTFOUND nowhere', 'ENOTFOUND')],
    ['connect timeout', withCode('connect ETIMEDOUT', 'ETIMEDOUT')],
    [
      'retries exhausted',
      named('MaxRetriesPerRequestError', 'Reached the max retries per request limit (which is 20).'),
    ],
  ])('maps a failed connection (%s) to a retryable ConnectionFailedError', (_label, error) => {
    const mapped = classifyRedisError(error)
    expect(mapped).toBeInstanceOf(ConnectionFailedError)
    expect(mapped.code).toBe(ErrorCode.CONNECTION_FAILED)
    expect(mapped.retryable).toBe(true)
    expect(mapped.cause).toBe(error)
  })

  it.each([
    ['reset', withCode('read ECONNRESET', 'ECONNRESET')],
    ['broken pipe', withCode('write EPIPE', 'EPIPE')],
    ['closed', new Error('Connection is closed.')],
    ['no offline queue', new Error("Stream isn't writeable and enableOfflineQueue options is false")],
    ['aborted', named('AbortError', 'Command aborted due to connection close')],
  ])('maps a lost connection (%s) to a retryable ConnectionClosedError', (_label, error) => {
    const mapped = classifyRedisError(error)
    expect(mapped).toBeInstanceOf(ConnectionClosedError)
    expect(mapped.retryable).toBe(true)
  })

  it.each([
    ['command timeout', new Error('Command timed out')],
    ['loading', named('ReplyError', 'LOADING Redis is loading the dataset in memory')],
    ['read-only replica', named('ReplyError', "READONLY You can't write against a read only replica.")],
  ])('maps a server that cannot serve now (%s) to a retryable BrokerConnectionError', (_label, error) => {
    const mapped = classifyRedisError(error)
    expect(mapped).toBeInstanceOf(BrokerConnectionError)
    expect(mapped).not.toBeInstanceOf(ConnectionClosedError)
    expect(mapped.code).toBe(ErrorCode.BROKER_CONNECTION)
    expect(mapped.retryable).toBe(true)
  })

  it('maps other replies and unknown errors to a ResultError that is not retryable', () => {
    const wrongType = named('ReplyError', 'WRONGTYPE Operation against a key holding the wrong kind of value')
    const mapped = classifyRedisError(wrongType)
    expect(mapped).toBeInstanceOf(ResultError)
    expect(mapped.code).toBe(ErrorCode.RESULT)
    expect(mapped.retryable).toBe(false)
    expect(mapped.message).toContain('WRONGTYPE')
    expect(classifyRedisError('weird')).toBeInstanceOf(ResultError)
  })

  it('returns tq errors unchanged', () => {
    const error = new ResultTimeoutError('late')
    expect(classifyRedisError(error)).toBe(error)
  })
})
