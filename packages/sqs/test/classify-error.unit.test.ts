import {
  OverLimit,
  PurgeQueueInProgress,
  QueueDoesNotExist,
  ReceiptHandleIsInvalid,
  RequestThrottled,
  SQSServiceException,
} from '@aws-sdk/client-sqs'
import {
  BrokerConnectionError,
  BrokerError,
  ConfigurationError,
  ConnectionClosedError,
  ConnectionFailedError,
  ErrorCode,
  InvalidArgumentError,
  MessageTooLargeError,
} from '@tq/core'
import { describe, expect, it } from 'vitest'
import { classifySqsError, isQueueMissing, sqsErrorCode } from '../src/index.ts'

const meta = { httpStatusCode: 400, requestId: 'r', attempts: 1, totalRetryDelay: 0 }
const socketError = (code: string, message = `${code} happened`): Error => Object.assign(new Error(message), { code })
const serviceError = (name: string, message: string, fault: 'client' | 'server' = 'client', status = 400) =>
  new SQSServiceException({ name, $fault: fault, message, $metadata: { ...meta, httpStatusCode: status } })

describe('classifySqsError', () => {
  it('maps connection failures to ConnectionFailedError (retryable)', () => {
    for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH']) {
      const error = classifySqsError(socketError(code))
      expect(error, code).toBeInstanceOf(ConnectionFailedError)
      expect(error.retryable).toBe(true)
      expect(error.cause).toBeInstanceOf(Error)
    }
  })

  it('maps requests cut off in flight to ConnectionClosedError (retryable)', () => {
    const cases = [
      socketError('ECONNRESET'),
      socketError('EPIPE'),
      socketError('ETIMEDOUT'),
      Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      Object.assign(new Error('Connection timed out after 1000 ms'), { name: 'TimeoutError' }),
      Object.assign(new Error('Request aborted'), { name: 'AbortError' }),
    ]
    for (const e of cases) {
      const error = classifySqsError(e)
      expect(error, e.message).toBeInstanceOf(ConnectionClosedError)
      expect(error.retryable).toBe(true)
    }
  })

  it('maps throttling and server faults to a retryable BrokerConnectionError', () => {
    const cases = [
      new RequestThrottled({ message: 'slow down', $metadata: meta }),
      new OverLimit({ message: 'too many in flight', $metadata: meta }),
      serviceError('ThrottlingException', 'Rate exceeded'),
      serviceError('KmsThrottled', 'kms'),
      serviceError('InternalError', 'oops', 'server', 500),
      serviceError('Whatever', 'gateway', 'server', 503),
    ]
    for (const e of cases) {
      const error = classifySqsError(e)
      expect(error, e.name).toBeInstanceOf(BrokerConnectionError)
      expect(error.retryable, e.name).toBe(true)
    }
  })

  it('maps QueueDoesNotExist (JSON and query codes) to a retryable QUEUE_NOT_FOUND error', () => {
    const cases = [
      new QueueDoesNotExist({ message: 'The specified queue does not exist.', $metadata: meta }),
      Object.assign(new Error('gone'), { name: 'AWS.SimpleQueueService.NonExistentQueue' }),
      Object.assign(new Error('gone'), { __type: 'com.amazonaws.sqs#QueueDoesNotExist' }),
    ]
    for (const e of cases) {
      expect(isQueueMissing(e)).toBe(true)
      const error = classifySqsError(e)
      expect(error).toBeInstanceOf(BrokerError)
      expect(error.code).toBe(ErrorCode.QUEUE_NOT_FOUND)
      expect(error.retryable).toBe(true)
      expect(isQueueMissing(error)).toBe(true)
    }
    expect(isQueueMissing(new Error('other'))).toBe(false)
  })

  it('maps credential, signature, permission and region problems to ConfigurationError', () => {
    const cases = [
      serviceError('InvalidClientTokenId', 'The security token included in the request is invalid.', 'client', 403),
      serviceError('SignatureDoesNotMatch', 'bad signature', 'client', 403),
      serviceError('AccessDenied', 'no', 'client', 403),
      Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }),
      new Error('Region is missing'),
    ]
    for (const e of cases) {
      const error = classifySqsError(e)
      expect(error, e.message).toBeInstanceOf(ConfigurationError)
      expect(error.retryable).toBe(false)
    }
  })

  it('maps a too-large message to the MESSAGE_TOO_LARGE code', () => {
    const error = classifySqsError(
      serviceError(
        'InvalidParameterValue',
        'One or more parameters are invalid. Reason: Message must be shorter than 262144 bytes.',
      ),
    )
    expect(error).toBeInstanceOf(MessageTooLargeError)
    expect(error.retryable).toBe(false)
  })

  it('keeps other errors as non-retryable BrokerErrors, and tq errors as they are', () => {
    const purge = classifySqsError(new PurgeQueueInProgress({ message: 'wait 60 s', $metadata: meta }))
    expect(purge).toBeInstanceOf(BrokerError)
    expect(purge.retryable).toBe(true)
    const handle = classifySqsError(new ReceiptHandleIsInvalid({ message: 'bad handle', $metadata: meta }))
    expect(handle).toBeInstanceOf(BrokerError)
    expect(handle).not.toBeInstanceOf(BrokerConnectionError)
    expect(handle.retryable).toBe(false)
    expect(handle.message).toMatch(/ReceiptHandleIsInvalid: bad handle/)
    const mine = new InvalidArgumentError('x')
    expect(classifySqsError(mine)).toBe(mine)
    expect(classifySqsError('a string')).toBeInstanceOf(BrokerError)
  })

  it('reads the code from name, Code or __type', () => {
    expect(sqsErrorCode(Object.assign(new Error('x'), { name: 'QueueNameExists' }))).toBe('QueueNameExists')
    expect(sqsErrorCode({ Code: 'PurgeQueueInProgress' })).toBe('PurgeQueueInProgress')
    expect(sqsErrorCode({ __type: 'com.amazonaws.sqs#OverLimit' })).toBe('OverLimit')
    expect(sqsErrorCode(new Error('plain'))).toBe('')
    expect(sqsErrorCode(null)).toBe('')
  })
})
