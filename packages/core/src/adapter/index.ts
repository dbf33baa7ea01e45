/**
 * `@tq/core/adapter`: the kit for writing a broker. What every adapter needs and would otherwise
 * write again: backoff, a logger that follows `broker.logger`, signal combining, socket-error
 * classification, a semaphore, decode-or-dead-letter, one-warning-per-outage logging and the
 * polling behind `join()`. Semver-covered like the main entry; not re-exported from it.
 */
export { Backoff, computeBackoff, type BackoffOptions, type BackoffPolicy } from './backoff.ts'
export { decodeOrReport, type DecodeResult } from './decode.ts'
export { foreignMessageError } from './foreign.ts'
export { OutageLog } from './outage-log.ts'
export { dueMessage, redrivenMessage } from './redrive.ts'
export { pollUntilEmpty, type JoinPollOptions } from './poll.ts'
export { RelayLogger } from './relay-logger.ts'
export { Semaphore } from './semaphore.ts'
export { SignalCombiner } from './signals.ts'
export {
  CONNECT_FAILED_CODES,
  CONNECTION_CLOSED_CODES,
  socketErrorKind,
  type SocketErrorKind,
} from './socket-errors.ts'

// For tracking backends: the reference semantics of an update, and the listing helpers.
export { applyUpdate, publicRecord, type StoredRecord } from '../tracking/apply.ts'
export { decodeCursor, encodeCursor, isAfter, matches, newestFirst, pageSize, type Cursor } from '../tracking/query.ts'
