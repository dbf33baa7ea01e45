import { MessageProxy, type Message } from '@tq/core'

/** A delivery from PostgreSQL: the message plus the row that holds it. */
export class PostgresMessageProxy<R = unknown> extends MessageProxy<R> {
  /** The row's id in `messages` (a retry is a new row with the same `messageId`). */
  readonly rowId: string
  /** How many times the row was claimed, this delivery included (1 on the first). */
  readonly deliveries: number

  constructor(message: Message<R>, rowId: string, deliveries: number) {
    super(message)
    this.rowId = rowId
    this.deliveries = deliveries
    this.redelivered = deliveries > 1
  }
}

/** A delivery as its consumer keeps it: who received it, so only that consumer settles it. */
export class Delivery<R = unknown> extends PostgresMessageProxy<R> {
  readonly receivedBy: object

  constructor(message: Message<R>, rowId: string, deliveries: number, receivedBy: object) {
    super(message, rowId, deliveries)
    this.receivedBy = receivedBy
  }
}
