import {
  BrokerError,
  ConfigurationError,
  ConnectionClosedError,
  ConnectionFailedError,
  TqError,
  errorMessage,
} from '@tq/core'
import { socketErrorKind } from '@tq/core/adapter'

/** SQLSTATEs of a server going away or refusing for now: retry once it is back. */
const SERVER_GONE = new Set(['57P01', '57P02', '57P03', '57P05', '08000', '08003', '08006', '08001', '08004'])
/** SQLSTATEs of a login the setup must fix (password, role, database). */
const LOGIN = new Set(['28000', '28P01', '3D000'])
/** node-postgres's own messages for a connection that died under a query. */
const PG_CLOSED =
  /Connection terminated|Client has encountered a connection error|Client was closed|connection is closed|Cannot use a pool after calling end/i
const PG_CONNECT_TIMEOUT = /timeout exceeded when trying to connect|Connection terminated due to connection timeout/i

/** The SQLSTATE of a server error, if `error` is one. */
export function sqlState(error: unknown): string | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/**
 * Map what node-postgres throws to tq's errors: a connection that could not be made or went away
 * (retryable `BrokerConnectionError`s), a login or a missing table the setup must fix
 * (`ConfigurationError`), anything else a `BrokerError` with the server's message and SQLSTATE.
 */
export function classifyPgError(error: unknown): TqError {
  if (TqError.is(error)) return error
  const message = errorMessage(error)
  const state = sqlState(error)
  if (state !== undefined) {
    if (SERVER_GONE.has(state)) {
      return new ConnectionClosedError(`PostgreSQL closed the connection (${state}): ${message}`, {
        cause: error,
        retryable: true,
      })
    }
    if (state === '53300' || state === '53400') {
      return new ConnectionFailedError(`PostgreSQL refused the connection (${state}): ${message}`, {
        cause: error,
        retryable: true,
      })
    }
    if (LOGIN.has(state)) {
      return new ConnectionFailedError(`PostgreSQL refused the login (${state}): ${message}`, {
        cause: error,
        retryable: false,
      })
    }
    if (state === '42P01' || state === '3F000') {
      return new ConfigurationError(
        `A tq table is missing (${state}: ${message}): run \`tq postgres migrate\`, or leave the migrate option on`,
        { cause: error },
      )
    }
    if (state === '42501') {
      return new ConfigurationError(`PostgreSQL denied a tq statement (${state}): ${message}`, { cause: error })
    }
    return new BrokerError(`PostgreSQL error ${state}: ${message}`, undefined, { cause: error })
  }
  const kind = socketErrorKind(error)
  if (kind === 'connect-failed' || PG_CONNECT_TIMEOUT.test(message)) {
    return new ConnectionFailedError(`Could not connect to PostgreSQL: ${message}`, { cause: error, retryable: true })
  }
  if (kind === 'connection-closed' || PG_CLOSED.test(message)) {
    return new ConnectionClosedError(`The PostgreSQL connection was lost: ${message}`, {
      cause: error,
      retryable: true,
    })
  }
  return new BrokerError(`PostgreSQL: ${message}`, undefined, { cause: error })
}
