import {
  BrokerConnectionError,
  BrokerError,
  ConfigurationError,
  ConnectionClosedError,
  ConnectionFailedError,
  ErrorCode,
  MessageTooLargeError,
  TqError,
} from '@tq/core'
import { socketErrorKind } from '@tq/core/adapter'

/** AMQP 0-9-1 reply codes that RabbitMQ closes channels and connections with. */
export const AmqpReplyCode = {
  CONTENT_TOO_LARGE: 311,
  NO_ROUTE: 312,
  CONNECTION_FORCED: 320,
  INVALID_PATH: 402,
  ACCESS_REFUSED: 403,
  NOT_FOUND: 404,
  RESOURCE_LOCKED: 405,
  PRECONDITION_FAILED: 406,
  FRAME_ERROR: 501,
  SYNTAX_ERROR: 502,
  COMMAND_INVALID: 503,
  CHANNEL_ERROR: 504,
  UNEXPECTED_FRAME: 505,
  RESOURCE_ERROR: 506,
  NOT_ALLOWED: 530,
  NOT_IMPLEMENTED: 540,
  INTERNAL_ERROR: 541,
} as const

/** A RabbitMQ message-size refusal: "message size 123 is larger than configured max size 100". */
const TOO_LARGE = /message size (\d+) is larger than (?:configured )?max size (\d+)/i

/**
 * Map an error from amqplib (or the socket under it) to tq's error hierarchy. The original error
 * is kept as `cause`; a `TqError` is returned as it is.
 *
 * - The connection or channel went away (server `CONNECTION_FORCED`, `INTERNAL_ERROR`, a
 *   heartbeat timeout, a reset socket, amqplib's "Channel closed"/"Connection closed" from an
 *   operation on a dead channel, a confirm lost with its channel) → `ConnectionClosedError`
 *   (retryable).
 * - A connection could not be made (refused, DNS, connect timeout) → `ConnectionFailedError`
 *   (retryable).
 * - RabbitMQ refused a publish (`basic.nack`), ran out of a resource, or closed a channel for
 *   a delivery held past `consumer_timeout` → `BrokerConnectionError` (retryable).
 * - A queue that does not exist (404) → a `BrokerError` with code `TQ_QUEUE_NOT_FOUND`
 *   (retryable: re-declaring it fixes it).
 * - A queue declared with other arguments (406 "inequivalent arg", issue #301), bad
 *   credentials (403), a missing vhost (530), a bad URL → `ConfigurationError` (not retryable).
 * - A message over the server's `max_message_size` → `MessageTooLargeError`.
 * - Anything else (protocol errors, unknown delivery tags, bugs) → `BrokerError` (not retryable).
 */
export function classifyAmqpError(error: unknown): TqError {
  if (TqError.is(error)) return error
  const name = error instanceof Error ? error.name : ''
  const message = error instanceof Error ? error.message : String(error)
  const rawCode = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
  const options = { cause: error }

  if (typeof rawCode === 'number') {
    switch (rawCode) {
      case AmqpReplyCode.CONNECTION_FORCED:
      case AmqpReplyCode.INTERNAL_ERROR:
        return new ConnectionClosedError(`RabbitMQ closed the connection: ${message}`, options)
      case AmqpReplyCode.RESOURCE_ERROR:
      case AmqpReplyCode.RESOURCE_LOCKED:
        return new BrokerConnectionError(`RabbitMQ is temporarily unable to serve: ${message}`, undefined, options)
      case AmqpReplyCode.NOT_FOUND:
        return new BrokerError(`RabbitMQ: ${message}`, ErrorCode.QUEUE_NOT_FOUND, { ...options, retryable: true })
      case AmqpReplyCode.ACCESS_REFUSED:
        return new ConfigurationError(`RabbitMQ refused access: ${message}`, options)
      case AmqpReplyCode.NOT_ALLOWED:
      case AmqpReplyCode.INVALID_PATH:
        return new ConfigurationError(
          `RabbitMQ does not allow this (check the vhost and permissions): ${message}`,
          options,
        )
      case AmqpReplyCode.CONTENT_TOO_LARGE:
        return (
          tooLarge(message, options) ??
          new BrokerError(`RabbitMQ refused a message as too large: ${message}`, undefined, options)
        )
      case AmqpReplyCode.PRECONDITION_FAILED: {
        if (/inequivalent arg/i.test(message)) {
          return new ConfigurationError(
            `A queue already exists with other arguments (${message}). Use the same maxPriority as the code that ` +
              'declared it, or delete the queue so it can be declared again.',
            options,
          )
        }
        const large = tooLarge(message, options)
        if (large) return large
        if (/acknowledgement .*timed out|consumer_timeout|consumer ack timed out/i.test(message)) {
          return new BrokerConnectionError(
            `RabbitMQ closed a channel because a delivery stayed unacknowledged past its consumer_timeout: ${message}`,
            undefined,
            options,
          )
        }
        return new BrokerError(`RabbitMQ precondition failed: ${message}`, undefined, options)
      }
      default:
        return new BrokerError(`RabbitMQ error ${rawCode}: ${message}`, undefined, options)
    }
  }

  const socket = socketErrorKind(error)
  if (socket === 'connect-failed') {
    return new ConnectionFailedError(`Could not connect to RabbitMQ: ${message}`, options)
  }
  if (socket === 'connection-closed') {
    return new ConnectionClosedError(`RabbitMQ connection lost: ${message}`, options)
  }
  if (
    name === 'IllegalOperationError' ||
    /^channel closed$|channel (is )?(closed|closing|ended)|connection (is )?(closed|closing)|heartbeat timeout|socket closed|unexpected close/i.test(
      message,
    )
  ) {
    return new ConnectionClosedError(`RabbitMQ connection or channel closed: ${message}`, options)
  }
  if (message === 'message nacked') {
    return new BrokerConnectionError(
      'RabbitMQ refused to take a message (basic.nack); it can be published again',
      undefined,
      options,
    )
  }
  if (/as the protocol|invalid url/i.test(message)) {
    return new ConfigurationError(`Invalid RabbitMQ URL: ${message}`, options)
  }
  if (/ACCESS_REFUSED|handshake terminated by server: 403/i.test(message)) {
    return new ConfigurationError(`RabbitMQ refused access: ${message}`, options)
  }
  if (/expected ConnectionOpenOk/i.test(message)) {
    return new ConfigurationError(
      `RabbitMQ refused to open the connection (check the vhost and permissions): ${message}`,
      options,
    )
  }
  return new BrokerError(`RabbitMQ broker error: ${message}`, undefined, options)
}

function tooLarge(message: string, options: { cause: unknown }): MessageTooLargeError | undefined {
  const match = TOO_LARGE.exec(message)
  if (!match) return undefined
  const error = new MessageTooLargeError(Number(match[1]), Number(match[2]), 'RabbitMQ')
  Object.defineProperty(error, 'cause', { value: options.cause, enumerable: false, writable: true, configurable: true })
  return error
}
