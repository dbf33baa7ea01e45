// The broker and the actors. Producers and workers both import this module; in production they
// are separate processes (`npx tq worker dist/tasks.js` runs the worker side).
import {
  CurrentMessage,
  actor,
  currentMessage,
  defaultMiddleware,
  setBroker,
  type RetryExhaustedInfo,
  type WireMessage,
} from '@tq/core'
import { SqsBroker } from '@tq/sqs'

export const queueName = 'orders'

const endpoint = process.env['TQ_SQS_ENDPOINT']

export const broker = new SqsBroker({
  // Region and credentials come from the AWS SDK's default chain (AWS_REGION, AWS_PROFILE, …).
  region: process.env['AWS_REGION'] ?? 'us-east-1',
  // LocalStack, fauxqs or a VPC endpoint; unset means AWS itself.
  ...(endpoint ? { endpoint } : {}),
  // Prepended to every SQS queue name: one per app and environment (`orders` is `<prefix>orders`).
  queuePrefix: process.env['SQS_QUEUE_PREFIX'] ?? 'tq-example-',
  // Long polls of 1 s keep the demo's shutdown quick; in production keep the default 20 s
  // (fewer, cheaper empty receives).
  waitTimeSeconds: 1,
  // The default stack (Retries, TimeLimit, …) plus CurrentMessage, so an actor can read its
  // own message (here: which attempt this is).
  middleware: [...defaultMiddleware(), new CurrentMessage()],
})
setBroker(broker)

let reporter: (line: string) => void = (line) => process.stdout.write(`${line}\n`)

/** Where the actors report what they did. A real app would write to its database or its logs. */
export function onReport(fn: (line: string) => void): void {
  reporter = fn
}

/** 1 for the first delivery, 2 for the first retry, … (`retries` travels in the message). */
function attempt(): number {
  return (currentMessage()?.options.retries ?? 0) + 1
}

/** Charges an order. The payment gateway times out twice, then the charge goes through. */
export const chargeCard = actor(
  'chargeCard',
  async (orderId: string, cents: number) => {
    const n = attempt()
    if (n < 3) {
      reporter(`chargeCard(${orderId}): attempt ${n} failed, will be retried`)
      throw new Error('payment gateway timed out')
    }
    reporter(`chargeCard(${orderId}): charged ${cents} cents on attempt ${n}`)
  },
  // Backoffs are tiny for the demo; the defaults are 15 s growing to 7 days.
  { queueName, maxRetries: 5, minBackoff: 100, maxBackoff: 1_000 },
)

/** Emails a receipt. The producer sends it with a delay. */
export const sendReceipt = actor(
  'sendReceipt',
  (orderId: string, sentAt: number) => {
    reporter(`sendReceipt(${orderId}): ran ${Date.now() - sentAt} ms after it was sent`)
  },
  { queueName },
)

/** Told when a message has used up its retries; gets the message as Dramatiq's wire dict. */
export const alertOps = actor(
  'alertOps',
  (message: WireMessage, info: RetryExhaustedInfo) => {
    reporter(`alertOps: ${message.actor_name}(${message.args.join(', ')}) gave up after ${info.retries} retry`)
  },
  { queueName },
)

/** Talks to a warehouse that is down: fails every time, so it ends in the dead-letter queue. */
export const syncStock = actor(
  'syncStock',
  (sku: string) => {
    reporter(`syncStock(${sku}): attempt ${attempt()} failed`)
    throw new Error('warehouse API is down')
  },
  { queueName, maxRetries: 1, minBackoff: 100, onRetryExhausted: alertOps },
)
