import { describe, expect, it } from 'vitest'
import {
  BrokerConnectionError,
  BrokerError,
  ConfigurationError,
  ConnectionClosedError,
  ConnectionFailedError,
  ErrorCode,
  MessageTooLargeError,
  QueueNotFoundError,
  TqError,
} from '@tq/core'
import { classifyAmqpError } from '../src/index.ts'

/** An error shaped like the ones amqplib builds from a server's channel.close / connection.close. */
const closeError = (code: number, text: string): Error =>
  Object.assign(new Error(`Channel closed by server: ${code} (${text.split(' ')[0]}) with message "${text}"`), {
    code,
    classId: 50,
    methodId: 10,
  })

const withCode = (message: string, code: string): Error => Object.assign(new Error(message), { code })

describe('classifyAmqpError', () => {
  it('maps a forced or internal connection close to a retryable ConnectionClosedError', () => {
    for (const code of [320, 541]) {
      const cause = closeError(code, 'CONNECTION_FORCED - closed via management plugin')
      const error = classifyAmqpError(cause)
      expect(error).toBeInstanceOf(ConnectionClosedError)
      expect(error.code).toBe(ErrorCode.CONNECTION_CLOSED)
      expect(error.retryable).toBe(true)
      expect(error.cause).toBe(cause)
    }
  })

  it('maps operations on a dead channel or connection to ConnectionClosedError', () => {
    const illegal = Object.assign(new Error('Channel closed'), { name: 'IllegalOperationError' })
    for (const cause of [
      illegal,
      new Error('channel closed'),
      new Error('Connection closed (Error: Unexpected close)'),
      new Error('Heartbeat timeout'),
    ]) {
      const error = classifyAmqpError(cause)
      expect(error, cause.message).toBeInstanceOf(ConnectionClosedError)
      expect(error.retryable).toBe(true)
    }
  })

  it('maps socket failures: refused/unresolvable → ConnectionFailedError, reset → ConnectionClosedError', () => {
    for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT', 'EHOSTUNREACH']) {
      const error = classifyAmqpError(withCode(`connect ${code} 127.0.0.1:5999`, code))
      expect(error, code).toBeInstanceOf(ConnectionFailedError)
      expect(error.retryable).toBe(true)
    }
    expect(classifyAmqpError(new Error('connect ETIMEDOUT'))).toBeInstanceOf(ConnectionFailedError)
    for (const code of ['ECONNRESET', 'EPIPE']) {
      expect(classifyAmqpError(withCode(`write ${code}`, code))).toBeInstanceOf(ConnectionClosedError)
    }
  })

  it('maps a nacked publish and resource errors to a retryable BrokerConnectionError', () => {
    for (const cause of [
      new Error('message nacked'),
      closeError(506, 'RESOURCE_ERROR - memory alarm'),
      closeError(405, 'RESOURCE_LOCKED - exclusive'),
    ]) {
      const error = classifyAmqpError(cause)
      expect(error, cause.message).toBeInstanceOf(BrokerConnectionError)
      expect(error.retryable).toBe(true)
    }
  })

  it('maps a missing queue (404) to a retryable QUEUE_NOT_FOUND broker error', () => {
    const error = classifyAmqpError(closeError(404, "NOT_FOUND - no queue 'x' in vhost '/'"))
    expect(error).toBeInstanceOf(BrokerError)
    expect(error).toBeInstanceOf(QueueNotFoundError)
    expect(error.code).toBe(ErrorCode.QUEUE_NOT_FOUND)
    expect(error.retryable).toBe(true)
  })

  it('maps a queue declared with other arguments (406, Dramatiq #301) to a ConfigurationError', () => {
    const error = classifyAmqpError(
      closeError(
        406,
        "PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue 'q' in vhost '/': received '5' but current is '10'",
      ),
    )
    expect(error).toBeInstanceOf(ConfigurationError)
    expect(error.retryable).toBe(false)
    expect(error.message).toMatch(/maxPriority/)
  })

  it('maps a consumer_timeout channel close to a retryable error and an unknown delivery tag to a plain BrokerError', () => {
    const timeout = classifyAmqpError(
      closeError(
        406,
        'PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 1800000 ms.',
      ),
    )
    expect(timeout).toBeInstanceOf(BrokerConnectionError)
    expect(timeout.retryable).toBe(true)
    const tag = classifyAmqpError(closeError(406, 'PRECONDITION_FAILED - unknown delivery tag 77'))
    expect(tag).toBeInstanceOf(BrokerError)
    expect(tag).not.toBeInstanceOf(BrokerConnectionError)
    expect(tag.retryable).toBe(false)
  })

  it('maps an oversized message to MessageTooLargeError with its sizes', () => {
    const error = classifyAmqpError(
      closeError(406, 'PRECONDITION_FAILED - message size 2000 is larger than configured max size 1000'),
    )
    expect(error).toBeInstanceOf(MessageTooLargeError)
    expect((error as MessageTooLargeError).size).toBe(2000)
    expect((error as MessageTooLargeError).limit).toBe(1000)
  })

  it('maps refused credentials, a missing vhost and a bad URL to ConfigurationError', () => {
    const causes = [
      new Error(
        'Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused"',
      ),
      closeError(403, 'ACCESS_REFUSED - access to vhost denied'),
      closeError(530, 'NOT_ALLOWED - vhost nope not found'),
      new Error('Expected ConnectionOpenOk; got <ConnectionClose channel:0>'),
      new Error('Expected amqp: or amqps: as the protocol; got http:'),
    ]
    for (const cause of causes) {
      const error = classifyAmqpError(cause)
      expect(error, cause.message).toBeInstanceOf(ConfigurationError)
      expect(error.retryable).toBe(false)
    }
  })

  it('maps anything else to a non-retryable BrokerError and returns tq errors unchanged', () => {
    const other = classifyAmqpError(new Error('something odd'))
    expect(other).toBeInstanceOf(BrokerError)
    expect(other.retryable).toBe(false)
    expect(classifyAmqpError(closeError(505, 'UNEXPECTED_FRAME'))).toBeInstanceOf(BrokerError)
    expect(classifyAmqpError('a string').message).toMatch(/a string/)
    const mine = new ConnectionClosedError('already classified')
    expect(classifyAmqpError(mine)).toBe(mine)
    expect(TqError.is(classifyAmqpError(undefined))).toBe(true)
  })
})
