// The actors. Nothing here names a broker: TQ_BROKER_URL picks it per environment.
//   stub://                                   tests and local runs: in memory, no server
//   redis://127.0.0.1:6379/0                  a developer's machine, or production on Redis
//   amqp://user:pass@rabbitmq:5672/vhost      production on RabbitMQ
//   sqs://eu-west-1?prefix=myapp-prod-        production on SQS
import './brokers.ts'
import { actor, createBroker, setBroker } from '@tq/core'

export const broker = createBroker(process.env['TQ_BROKER_URL'] ?? 'stub://')
setBroker(broker) // actors below (and `tq worker`) use it

/** The queue; overridable so several copies can share one server (the test uses a unique one). */
export const queueName = process.env['APP_QUEUE'] ?? 'images'

let reporter: (line: string) => void = (line) => process.stdout.write(`${line}\n`)

/** Where the actors report what they did. A real app would write to its database or its logs. */
export function onReport(fn: (line: string) => void): void {
  reporter = fn
}

export const resize = actor(
  'resize',
  (image: string, width: number) => {
    reporter(`resize(${image}, ${width}) done`)
  },
  { queueName },
)

const attempts = new Map<string, number>()

/** Publishing fails once (the CDN is busy), then works: Retries runs it again. */
export const publish = actor(
  'publish',
  (image: string) => {
    const attempt = (attempts.get(image) ?? 0) + 1
    attempts.set(image, attempt)
    if (attempt === 1) throw new Error('CDN busy')
    reporter(`publish(${image}) done on attempt ${attempt}`)
  },
  { queueName, maxRetries: 3, minBackoff: 50, maxBackoff: 200 },
)
