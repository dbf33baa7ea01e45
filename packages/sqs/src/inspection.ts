import { GetQueueAttributesCommand, type QueueAttributeName, type SQSClient } from '@aws-sdk/client-sqs'
import { QueueNotFoundError, dqName, qName, xqName, type JoinOptions, type QueueCounts } from '@tq/core'
import { pollUntilEmpty } from '@tq/core/adapter'
import type { Topology } from './topology.ts'

export interface SqsJoinOptions extends JoinOptions {
  /** Consecutive checks that must all see the queues empty (default 3; SQS counts are approximate). */
  idleChecks?: number
  /** Milliseconds between checks (default 100). */
  interval?: number
}

/** SQS's approximate message counts for one queue. */
export interface SqsQueueCounts {
  /** `ApproximateNumberOfMessages`: ready to be received. */
  visible: number
  /** `ApproximateNumberOfMessagesNotVisible`: received, not yet deleted (in flight). */
  notVisible: number
  /** `ApproximateNumberOfMessagesDelayed`: sent with a delay that has not passed. */
  delayed: number
}

const NO_COUNTS: SqsQueueCounts = { visible: 0, notVisible: 0, delayed: 0 }

export interface InspectorOptions {
  readonly client: SQSClient
  readonly topology: Topology
  /** Whether the queues have a `q.XQ` to count. */
  readonly deadLetter: boolean
  /** Whether a canonical queue was declared on the broker. */
  isDeclared(canonical: string): boolean
}

/** Reads how many messages the SQS queues behind a tq queue hold, and waits for them to drain. */
export class Inspector {
  readonly #client: SQSClient
  readonly #topology: Topology
  readonly #deadLetter: boolean
  readonly #isDeclared: (canonical: string) => boolean

  constructor(options: InspectorOptions) {
    this.#client = options.client
    this.#topology = options.topology
    this.#deadLetter = options.deadLetter
    this.#isDeclared = (canonical) => options.isDeclared(canonical)
  }

  /** SQS's approximate counts for one queue (`q`, `q.DQ` or `q.XQ`). */
  async messageCounts(queueName: string): Promise<SqsQueueCounts> {
    const out = await this.#topology.withQueue(queueName, (url) =>
      this.#client.send(
        new GetQueueAttributesCommand({
          QueueUrl: url,
          AttributeNames: [
            'ApproximateNumberOfMessages',
            'ApproximateNumberOfMessagesNotVisible',
            'ApproximateNumberOfMessagesDelayed',
          ],
        }),
      ),
    )
    const n = (key: string): number => Number(out.Attributes?.[key as QueueAttributeName] ?? 0) || 0
    return {
      visible: n('ApproximateNumberOfMessages'),
      notVisible: n('ApproximateNumberOfMessagesNotVisible'),
      delayed: n('ApproximateNumberOfMessagesDelayed'),
    }
  }

  /**
   * The counts of a tq queue from the approximate ones of `q`, `q.DQ` and `q.XQ`: a delay-queue
   * message counts as delayed whatever its state (see `SqsBroker.queueCounts`).
   */
  async queueCounts(queueName: string): Promise<QueueCounts> {
    const canonical = qName(queueName)
    const [q, dq, xq] = await Promise.all([
      this.messageCounts(canonical),
      this.messageCounts(dqName(canonical)),
      this.#deadLetter ? this.messageCounts(xqName(canonical)) : NO_COUNTS,
    ])
    return {
      ready: q.visible,
      delayed: dq.visible + dq.notVisible + dq.delayed + q.delayed,
      running: q.notVisible,
      dead: xq.visible + xq.notVisible,
    }
  }

  /**
   * Wait until `q` and `q.DQ` hold no message (ready, in flight or delayed) for `idleChecks`
   * consecutive checks.
   */
  async join(queueName: string, options: SqsJoinOptions = {}): Promise<void> {
    const canonical = qName(queueName)
    if (!this.#isDeclared(canonical)) throw new QueueNotFoundError(canonical)
    const idleChecks = Math.max(1, options.idleChecks ?? 3)
    let idle = 0
    const isIdle = async (): Promise<boolean> => {
      const counts = await Promise.all([this.messageCounts(canonical), this.messageCounts(dqName(canonical))])
      const total = counts.reduce((sum, c) => sum + c.visible + c.notVisible + c.delayed, 0)
      idle = total === 0 ? idle + 1 : 0
      return idle >= idleChecks
    }
    await pollUntilEmpty(canonical, isIdle, {
      timeout: options.timeout,
      interval: Math.max(1, options.interval ?? 100),
    })
  }
}
