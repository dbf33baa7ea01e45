import type { BatchResultErrorEntry } from '@aws-sdk/client-sqs'
import {
  BrokerConnectionError,
  BrokerError,
  ConfigurationError,
  ConnectionClosedError,
  ConnectionFailedError,
  ErrorCode,
  TqError,
} from '@tq/core'
import { CONNECTION_CLOSED_CODES, CONNECT_FAILED_CODES } from '@tq/core/adapter'

/**
 * Socket codes beyond the kit's, and SDK error names, that mean an SQS request was cut off in
 * flight. `ETIMEDOUT` is here too: the kit reads it as a connect that failed, but under the SDK
 * it is a request that timed out, maybe after SQS took it.
 */
const CUT_OFF_CODES = new Set([
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
])
const CUT_OFF_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'NetworkingError'])
/** SQS and AWS error codes that ask the caller to slow down and try again. */
const THROTTLING = new Set([
  'RequestThrottled',
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'SlowDown',
  'KmsThrottled',
  'OverLimit',
  'ProvisionedThroughputExceededException',
])
/** Server-side failures: worth retrying. */
const SERVER = new Set(['InternalError', 'InternalFailure', 'ServiceUnavailable', 'ServiceUnavailableException'])
/** Credentials, signatures, permissions: retrying does not help, the setup must change. */
const CONFIGURATION = new Set([
  'CredentialsProviderError',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'InvalidSignatureException',
  'IncompleteSignature',
  'MissingAuthenticationToken',
  'AccessDenied',
  'AccessDeniedException',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidSecurity',
  'OptInRequired',
  'KmsAccessDenied',
  'KmsDisabled',
  'KmsNotFound',
  'KmsInvalidState',
  'KmsInvalidKeyUsage',
])
const QUEUE_MISSING = new Set(['QueueDoesNotExist', 'AWS.SimpleQueueService.NonExistentQueue', 'NonExistentQueue'])

/** The AWS error code of an SDK error: its `name`, or the code in `Code` / `__type`. */
export function sqsErrorCode(error: unknown): string {
  if (typeof error !== 'object' || error === null) return ''
  const e = error as { name?: unknown; Code?: unknown; __type?: unknown }
  const candidates = [e.Code, e.__type, e.name]
  for (const c of candidates) {
    if (typeof c === 'string' && c !== '' && c !== 'Error' && c !== 'SQSServiceException') {
      return c.includes('#') ? (c.split('#').pop() as string) : c
    }
  }
  return ''
}

/** Whether an error says the SQS queue does not exist (deleted under us). */
export function isQueueMissing(error: unknown): boolean {
  if (TqError.is(error)) return error.code === ErrorCode.QUEUE_NOT_FOUND
  return QUEUE_MISSING.has(sqsErrorCode(error))
}

/**
 * Map an error from `@aws-sdk/client-sqs` (or the socket under it) to tq's error hierarchy. The
 * original error is kept as `cause`; a `TqError` is returned as it is.
 *
 * - A connection could not be made (refused, DNS) → `ConnectionFailedError` (retryable).
 * - A request was cut off (reset socket, timeout) → `ConnectionClosedError` (retryable).
 * - Throttling (`RequestThrottled`, `ThrottlingException`, `OverLimit`, `KmsThrottled`, …) and
 *   server faults (5xx) → `BrokerConnectionError` (retryable).
 * - `QueueDoesNotExist` → a `BrokerError` with code `TQ_QUEUE_NOT_FOUND`, retryable: the broker
 *   creates the queue again and retries.
 * - `PurgeQueueInProgress`, `QueueDeletedRecently` → `BrokerError`, retryable (after a minute).
 * - Missing or refused credentials, a missing region, permissions → `ConfigurationError`.
 * - A message over the queue's `MaximumMessageSize` → `BrokerError` with code
 *   `TQ_MESSAGE_TOO_LARGE` (`instanceof MessageTooLargeError` holds).
 * - Anything else → `BrokerError`, retryable only if the SDK marks it so.
 */
export function classifySqsError(error: unknown): TqError {
  if (TqError.is(error)) return error
  const code = sqsErrorCode(error)
  const message = error instanceof Error ? error.message : String(error)
  const rawCode = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
  const meta =
    typeof error === 'object' && error !== null
      ? (error as { $fault?: unknown; $retryable?: unknown; $metadata?: { httpStatusCode?: unknown } })
      : {}
  const status = typeof meta.$metadata?.httpStatusCode === 'number' ? meta.$metadata.httpStatusCode : undefined
  const options = { cause: error }
  const what = code && code !== message ? `${code}: ${message}` : message

  const socketCode = typeof rawCode === 'string' ? rawCode : ''
  if (CUT_OFF_CODES.has(socketCode)) {
    return new ConnectionClosedError(`SQS request was cut off: ${message}`, options)
  }
  if (CONNECT_FAILED_CODES.has(socketCode)) {
    return new ConnectionFailedError(`Could not connect to SQS: ${message}`, options)
  }
  if (CONNECTION_CLOSED_CODES.has(socketCode) || CUT_OFF_NAMES.has(code)) {
    return new ConnectionClosedError(`SQS request was cut off: ${message}`, options)
  }
  if (/socket hang up|ECONNRESET|other side closed|network socket disconnected/i.test(message)) {
    return new ConnectionClosedError(`SQS request was cut off: ${message}`, options)
  }
  if (/connect ECONNREFUSED|getaddrinfo (ENOTFOUND|EAI_AGAIN)/.test(message)) {
    return new ConnectionFailedError(`Could not connect to SQS: ${message}`, options)
  }
  if (code === 'AbortError') {
    return new ConnectionClosedError(`SQS request was aborted: ${message}`, options)
  }
  if (QUEUE_MISSING.has(code)) {
    return new BrokerError(`SQS queue does not exist: ${message}`, ErrorCode.QUEUE_NOT_FOUND, {
      ...options,
      retryable: true,
    })
  }
  if (THROTTLING.has(code) || status === 429) {
    return new BrokerConnectionError(`SQS asked to slow down (${what})`, undefined, options)
  }
  if (SERVER.has(code) || meta.$fault === 'server' || (status !== undefined && status >= 500)) {
    return new BrokerConnectionError(`SQS is temporarily unable to serve (${what})`, undefined, options)
  }
  if (CONFIGURATION.has(code) || /region is missing|could not load credentials|credential/i.test(message)) {
    return new ConfigurationError(
      `SQS refused the request or the client is not configured (check the region and credentials): ${what}`,
      options,
    )
  }
  if (code === 'PurgeQueueInProgress' || code === 'QueueDeletedRecently') {
    return new BrokerError(`SQS: ${what}`, ErrorCode.BROKER, { ...options, retryable: true })
  }
  if (/message must be shorter than|message is too long|MessageTooLong/i.test(message) || code === 'MessageTooLong') {
    return new BrokerError(`SQS refused a message as too large: ${message}`, ErrorCode.MESSAGE_TOO_LARGE, options)
  }
  return new BrokerError(`SQS error (${what})`, ErrorCode.BROKER, {
    ...options,
    retryable: meta.$retryable !== undefined && meta.$retryable !== false,
  })
}

/**
 * The error of one failed entry of a batch call (`SendMessageBatch`, `DeleteMessageBatch`, …),
 * classified as the same failure of a single call would be: its `Code` as the error name, a
 * server fault unless SQS blames the sender.
 */
export function batchEntryError(entry: BatchResultErrorEntry | undefined, message: string): TqError {
  return classifySqsError(
    Object.assign(new Error(message), {
      name: entry?.Code ?? 'Error',
      $fault: entry?.SenderFault ? 'client' : 'server',
    }),
  )
}
