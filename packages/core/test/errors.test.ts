import { describe, expect, it } from 'vitest'
import * as tq from '../src/index.ts'
import {
  ActorNotFoundError,
  BrokerConnectionError,
  BrokerError,
  ConnectionClosedError,
  DecodeError,
  ErrorCode,
  QueueNotFoundError,
  ResultError,
  ResultFailureError,
  ResultTimeoutError,
  Retry,
  TqError,
} from '../src/index.ts'

describe('TqError hierarchy', () => {
  it('mirrors Dramatiq and carries stable codes', () => {
    const e = new ConnectionClosedError('gone', { cause: new Error('socket') })
    expect(e).toBeInstanceOf(ConnectionClosedError)
    expect(e).toBeInstanceOf(BrokerConnectionError)
    expect(e).toBeInstanceOf(BrokerError)
    expect(e).toBeInstanceOf(TqError)
    expect(e).toBeInstanceOf(Error)
    expect(e).not.toBeInstanceOf(DecodeError)
    expect(e.code).toBe('TQ_CONNECTION_CLOSED')
    expect(e.retryable).toBe(true)
    expect(e.name).toBe('ConnectionClosedError')
    expect((e.cause as Error).message).toBe('socket')
    expect(new ActorNotFoundError('x')).toBeInstanceOf(BrokerError)
    expect(new QueueNotFoundError('q').queueName).toBe('q')
    expect(new ResultTimeoutError('t')).toBeInstanceOf(ResultError)
    expect(new ResultFailureError('m', 'ValueError', 'boom').origExcType).toBe('ValueError')
    expect(new Retry('again', { delay: 100 }).delay).toBe(100)
    expect(new DecodeError('bad').retryable).toBe(false)
  })

  it('has a unique code per class', () => {
    const codes = Object.values(ErrorCode)
    expect(new Set(codes).size).toBe(codes.length)
  })

  it('instanceof works for an error from another copy of the package', () => {
    // Simulate a second copy: an object branded the same way, of a class this copy did not create.
    const foreign = Object.assign(new Error('from elsewhere'), { code: 'TQ_CONNECTION_CLOSED', retryable: true })
    Object.defineProperty(foreign, Symbol.for('@tq/error'), { value: true })
    expect(TqError.is(foreign)).toBe(true)
    expect(foreign).toBeInstanceOf(TqError)
    expect(foreign).toBeInstanceOf(BrokerConnectionError)
    expect(foreign).toBeInstanceOf(ConnectionClosedError)
    expect(foreign).not.toBeInstanceOf(DecodeError)
    expect(new Error('plain')).not.toBeInstanceOf(TqError)
  })

  it('every exported error class is a TqError', () => {
    const classes = Object.entries(tq).filter(
      ([name, value]) =>
        typeof value === 'function' && /Error$|^Retry$|^SkipMessage$/.test(name) && name !== 'errorTypeName',
    )
    expect(classes.length).toBeGreaterThan(15)
    for (const [, cls] of classes)
      if (cls !== TqError) expect((cls as { prototype: unknown }).prototype).toBeInstanceOf(TqError)
  })
})
