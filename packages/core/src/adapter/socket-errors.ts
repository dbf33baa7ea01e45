/** Socket error codes that mean a connection could not be made. */
export const CONNECT_FAILED_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EADDRNOTAVAIL',
])

/** Socket error codes that mean an established connection went away. */
export const CONNECTION_CLOSED_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'ERR_STREAM_DESTROYED',
  'ERR_STREAM_WRITE_AFTER_END',
])

/** What a socket-level error says about the connection. */
export type SocketErrorKind = 'connect-failed' | 'connection-closed'

/**
 * Whether `error` is a socket error, and which: a connection that could not be made (refused,
 * DNS, connect timeout) or one that went away (reset, broken pipe). Reads the error's `code`,
 * then Node's `connect ECONNREFUSED …` message form (errors re-thrown without their code).
 * `undefined` for everything else: the client library's own errors are the adapter's to read.
 */
export function socketErrorKind(error: unknown): SocketErrorKind | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
  if (typeof code === 'string') {
    if (CONNECT_FAILED_CODES.has(code)) return 'connect-failed'
    if (CONNECTION_CLOSED_CODES.has(code)) return 'connection-closed'
  }
  const message = error instanceof Error ? error.message : typeof error === 'string' ? error : ''
  if (/^connect (ETIMEDOUT|ECONNREFUSED)|getaddrinfo (ENOTFOUND|EAI_AGAIN)/.test(message)) return 'connect-failed'
  return undefined
}
