import { randomBytes } from 'node:crypto'
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteQueueCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SQSClient,
  SendMessageCommand,
  type Message as SqsMessage,
} from '@aws-sdk/client-sqs'
import { dqName, xqName, type Broker } from '@tq/core'
import { inject } from 'vitest'
import { SqsBroker, fromSqsBody, isQueueMissing, toSqsBody, type SqsBrokerOptions } from '../src/index.ts'

export const SQS_ENDPOINT = inject('sqsEndpoint')
export const SQS_REGION = inject('sqsRegion')
export const SQS_EXTERNAL = inject('sqsExternal')
/** Multiplier for timeouts when running against a remote SQS (`TQ_SQS_TIME_SCALE`). */
export const TIME_SCALE = Number(process.env['TQ_SQS_TIME_SCALE'] ?? (SQS_EXTERNAL ? 3 : 1))

/** Client options for the test endpoint: fauxqs takes any credentials; elsewhere the default chain. */
export function clientOptions(): {
  endpoint: string
  region: string
  credentials?: { accessKeyId: string; secretAccessKey: string }
} {
  return {
    endpoint: SQS_ENDPOINT,
    region: SQS_REGION,
    ...(SQS_EXTERNAL ? {} : { credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }),
  }
}

/** A raw SQS client for what a foreign producer or an operator would do. */
export function rawClient(): SQSClient {
  return new SQSClient(clientOptions())
}

/** A queue prefix unique to one test file run. */
export function uniquePrefix(tag: string): string {
  return `tqt-${tag}-${process.pid}-${randomBytes(3).toString('hex')}-`
}

/**
 * A broker on the test endpoint with short long polls, and a `close()` that aborts them at once
 * (the tests delete their queues right after).
 */
export function newBroker(options: SqsBrokerOptions = {}): SqsBroker {
  return new SqsBroker({ ...clientOptions(), waitTimeSeconds: 1, closeTimeout: 0, middleware: [], ...options })
}

/** Put raw bytes on a queue the way a producer would (SendMessage, base64 if the bytes are not SQS text). */
export async function putRaw(client: SQSClient, broker: Broker, queueName: string, bytes: Uint8Array): Promise<void> {
  const url = await (broker as SqsBroker).getQueueUrl(queueName)
  const body = toSqsBody(bytes)
  await client.send(
    new SendMessageCommand({
      QueueUrl: url,
      MessageBody: body.body,
      ...(body.attributes ? { MessageAttributes: body.attributes } : {}),
    }),
  )
}

/**
 * Every message visible in a queue, read and made visible again: received with a visibility
 * timeout (so one read does not see a message twice), then released.
 */
export async function peek(client: SQSClient, url: string): Promise<SqsMessage[]> {
  const seen: SqsMessage[] = []
  for (;;) {
    const out = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        VisibilityTimeout: 10,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
      }),
    )
    const messages = out.Messages ?? []
    if (messages.length === 0) break
    seen.push(...messages)
  }
  for (let i = 0; i < seen.length; i += 10) {
    await client.send(
      new ChangeMessageVisibilityBatchCommand({
        QueueUrl: url,
        Entries: seen
          .slice(i, i + 10)
          .map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle ?? '', VisibilityTimeout: 0 })),
      }),
    )
  }
  return seen
}

/** The raw bodies in `q.XQ`. */
export async function deadLetterBodies(client: SQSClient, broker: Broker, queueName: string): Promise<Uint8Array[]> {
  const url = await (broker as SqsBroker).getQueueUrl(xqName(queueName))
  return (await peek(client, url)).map((m) => fromSqsBody(m))
}

/** Delete the SQS queues (`q`, `q_DQ`, `q_XQ`) of every queue the broker declared. */
export async function deleteQueues(client: SQSClient, broker: SqsBroker): Promise<void> {
  const names = [...broker.getDeclaredQueues()].flatMap((q) => [q, dqName(q), xqName(q)])
  await Promise.all(
    names.map(async (name) => {
      try {
        const { QueueUrl } = await client.send(new GetQueueUrlCommand({ QueueName: broker.sqsQueueName(name) }))
        await client.send(new DeleteQueueCommand({ QueueUrl }))
      } catch (error) {
        if (!isQueueMissing(error)) throw error
      }
    }),
  )
}

/** A record of the commands a client sent (observed through its middleware stack, not mocked). */
export interface CommandLog {
  calls: Array<{ command: string; input: Record<string, unknown> }>
  count(command: string): number
}

export function recordCommands(client: SQSClient): CommandLog {
  const calls: CommandLog['calls'] = []
  client.middlewareStack.add(
    (next, context) => async (args) => {
      calls.push({ command: String(context.commandName), input: args.input as Record<string, unknown> })
      return next(args)
    },
    { step: 'initialize', name: `tqTestRecorder${randomBytes(3).toString('hex')}` },
  )
  return { calls, count: (command) => calls.filter((c) => c.command === command).length }
}
