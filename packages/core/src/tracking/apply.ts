import type { MessageState, TrackedMessage, TrackingUpdate } from './backend.ts'

/**
 * A tracking record with the bookkeeping backends keep beside it: `stateAt`, the time of the
 * update that set the current state. Updates come from several processes (the producer's
 * `enqueued`, the worker's `attempt`) and may arrive out of order; a state only replaces one set
 * by an update that is not newer.
 */
export interface StoredRecord extends TrackedMessage {
  stateAt: number
}

/** How far along in a message's life a state is: on a tie of times, a state does not go back. */
const STATE_RANK: Record<MessageState, number> = {
  queued: 0,
  delayed: 0,
  running: 1,
  retrying: 2,
  succeeded: 3,
  failed: 3,
  dead: 3,
  cancelled: 3,
  skipped: 3,
}

/**
 * Apply one update to a record (or to nothing yet): the reference semantics every
 * `TrackingBackend` implements. Pure: returns the new record, leaves `record` as it was.
 * - `enqueued` fills the message's fields (the first enqueue's `enqueuedAt` stays) and, unless a
 *   newer update already set the state, its state; its options, eta and body too, and always on
 *   a record that has had no `enqueued` yet.
 * - `attempt` replaces the attempt with its number (or adds it); with a `state`, sets it (and
 *   the worker while `running`) unless a newer state is there.
 * - `state` sets the state unless a newer one is there; `progress` sets the progress.
 * - "Newer" compares the updates' `at`; of two at the same millisecond, the state further along
 *   (queued/delayed, then running, then retrying, then a final state) stays.
 * An update for a message tracking has not seen yet (the worker's, before the producer's
 * arrived) starts a partial record that a later `enqueued` completes.
 */
export function applyUpdate(record: StoredRecord | undefined, update: TrackingUpdate): StoredRecord {
  const base: StoredRecord = record
    ? { ...record, attempts: [...record.attempts] }
    : {
        messageId: update.messageId,
        actorName: '',
        queueName: '',
        state: 'queued',
        stateAt: -Infinity,
        args: undefined,
        kwargs: undefined,
        argsTruncated: false,
        options: {},
        enqueuedAt: update.at,
        updatedAt: update.at,
        attempts: [],
      }
  base.updatedAt = Math.max(base.updatedAt, update.at)
  const setState = (state: MessageState): boolean => {
    if (update.at < base.stateAt) return false
    // Two updates of the same millisecond (a producer's enqueue recorded late, after its
    // worker started the message): the one further along in a message's life wins.
    if (update.at === base.stateAt && STATE_RANK[state] < STATE_RANK[base.state]) return false
    base.state = state
    base.stateAt = update.at
    if (state !== 'running') delete base.workerId
    return true
  }
  switch (update.kind) {
    case 'enqueued': {
      const first = record === undefined || record.actorName === ''
      base.actorName = update.actorName
      base.queueName = update.queueName
      base.args = update.args
      base.kwargs = update.kwargs
      base.argsTruncated = update.argsTruncated
      if (first) base.enqueuedAt = Math.min(base.enqueuedAt, update.at)
      // A record the worker started (its updates came first) still takes the options and body.
      if (setState(update.state) || first) {
        base.options = update.options
        base.body = update.body
        if (update.eta === undefined) delete base.eta
        else base.eta = update.eta
      }
      break
    }
    case 'attempt': {
      const index = base.attempts.findIndex((a) => a.number === update.attempt.number)
      if (index >= 0) base.attempts[index] = update.attempt
      else {
        base.attempts.push(update.attempt)
        base.attempts.sort((a, b) => a.number - b.number)
      }
      if (update.state !== undefined && setState(update.state) && update.state === 'running') {
        base.workerId = update.attempt.workerId
      }
      break
    }
    case 'state':
      setState(update.state)
      break
    case 'progress':
      base.progress = update.progress
      break
  }
  return base
}

/** The record as the contract returns it (without the bookkeeping). */
export function publicRecord(record: StoredRecord): TrackedMessage {
  const { stateAt: _stateAt, ...rest } = record
  return rest
}
