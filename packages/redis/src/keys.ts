import { qName, xqName } from '@tq/core'

/** The keys of one consumed queue (`q` or `q.DQ`), computed once per consumer. */
export interface QueueKeys {
  /** `<ns>:<queue>`: the list of message ids. */
  readonly queue: string
  /** `<ns>:<queue>.msgs`: the hash of payloads. */
  readonly msgs: string
  /** `<ns>:__acks__.<brokerId>.<queue>`: this broker's ack set. */
  readonly acks: string
  /** `<ns>:<canonical>.XQ` and its payloads: the dead letters (the canonical queue's, also for `.DQ`). */
  readonly xq: string
  readonly xqMsgs: string
  /** The wake-up channel scripts publish to ('' with wake-ups off). */
  readonly channel: string
}

/**
 * Dramatiq's key layout under a namespace, plus tq's wake-up channels:
 * `<ns>:<queue>` (list of ids), `<ns>:<queue>.msgs` (payloads), `<ns>:__acks__.<broker>.<queue>`
 * (ids a broker fetched and has not acked), `<ns>:<q>.XQ` (+ `.msgs`, dead letters),
 * `<ns>:__heartbeats__` (brokers by last command) and `<ns>:__wakeup__.<queue>` (channels).
 */
export class RedisKeys {
  readonly namespace: string
  readonly brokerId: string
  readonly wakeups: boolean
  /** `<ns>:__heartbeats__` */
  readonly heartbeats: string
  /** What every wake-up channel starts with. */
  readonly wakeupPrefix: string

  constructor(namespace: string, brokerId: string, wakeups: boolean) {
    this.namespace = namespace
    this.brokerId = brokerId
    this.wakeups = wakeups
    this.heartbeats = `${namespace}:__heartbeats__`
    this.wakeupPrefix = `${namespace}:__wakeup__.`
  }

  /** `<ns>:<name>` */
  key(name: string): string {
    return `${this.namespace}:${name}`
  }

  /** `<ns>:<queue>.msgs` */
  msgs(queueName: string): string {
    return `${this.namespace}:${queueName}.msgs`
  }

  /** `<ns>:__acks__.<brokerId>.<queue>` */
  acks(queueName: string): string {
    return `${this.namespace}:__acks__.${this.brokerId}.${queueName}`
  }

  /** The channel wake-ups for a queue are published on (a tq addition; Dramatiq ignores it). */
  wakeupChannel(queueName: string): string {
    return `${this.wakeupPrefix}${queueName}`
  }

  /** The channel argument of the scripts that publish wake-ups: '' when wake-ups are off. */
  channel(queueName: string): string {
    return this.wakeups ? this.wakeupChannel(queueName) : ''
  }

  /** Every key a consumer of `queueName` (`q` or `q.DQ`) uses. */
  queueKeys(queueName: string): QueueKeys {
    const xq = xqName(qName(queueName))
    return {
      queue: this.key(queueName),
      msgs: this.msgs(queueName),
      acks: this.acks(queueName),
      xq: this.key(xq),
      xqMsgs: this.msgs(xq),
      channel: this.channel(queueName),
    }
  }
}
