import { ConfigurationError, InvalidArgumentError, createBroker, registerBroker } from '@tq/core'
import { describe, expect, it } from 'vitest'
import {
  BODY_ENCODING_ATTRIBUTE,
  SqsBroker,
  brokerPlugin,
  fromSqsBody,
  isSqsText,
  parseSqsUrl,
  sqsMessageSize,
  sqsQueueName,
  toSqsBody,
} from '../src/index.ts'

describe('sqsQueueName', () => {
  it('maps tq names to SQS names deterministically, with distinct delay and dead-letter queues', () => {
    expect(sqsQueueName('default')).toBe('default')
    expect(sqsQueueName('emails.high', 'app-')).toBe('app-emails_high')
    expect(sqsQueueName('emails.high.DQ', 'app-')).toBe('app-emails_high_DQ')
    expect(sqsQueueName('emails.high.XQ', 'app-')).toBe('app-emails_high_XQ')
    expect(sqsQueueName('a-b_c')).toBe('a-b_c')
    expect(new Set([sqsQueueName('q'), sqsQueueName('q.DQ'), sqsQueueName('q.XQ')]).size).toBe(3)
  })

  it('refuses names over 80 characters and invalid tq names', () => {
    expect(sqsQueueName('q'.repeat(77) + '.DQ')).toHaveLength(80)
    expect(() => sqsQueueName('q'.repeat(78) + '.DQ')).toThrow(InvalidArgumentError)
    expect(() => sqsQueueName('q'.repeat(78) + '.DQ')).toThrow(/80 characters|at most 80/)
    expect(() => sqsQueueName('x'.repeat(10), 'p'.repeat(71))).toThrow(/at most 80/)
    expect(() => sqsQueueName('1bad')).toThrow(InvalidArgumentError)
  })
})

describe('bodies', () => {
  it('sends SQS text as it is and other bytes as base64 with a marker', () => {
    const json = Buffer.from('{"a":"\\u00e9"}')
    expect(toSqsBody(json)).toEqual({ body: '{"a":"\\u00e9"}' })
    expect(toSqsBody(Buffer.from('héllo ✓ 😀'))).toEqual({ body: 'héllo ✓ 😀' })
    for (const bytes of [
      Buffer.from([0x7b, 0xff, 0xfe, 0x7d]),
      Buffer.from([0x00, 0x01]),
      Buffer.from([0xef, 0xbf, 0xbf]),
      Buffer.alloc(0),
    ]) {
      const body = toSqsBody(bytes)
      expect(body.attributes?.[BODY_ENCODING_ATTRIBUTE]?.StringValue).toBe('base64')
      expect(Buffer.from(fromSqsBody({ Body: body.body, MessageAttributes: body.attributes ?? {} }))).toEqual(bytes)
    }
    expect(Buffer.from(fromSqsBody({ Body: 'plain' })).toString()).toBe('plain')
  })

  it('knows the characters SQS accepts', () => {
    expect(isSqsText('tab\there\nnew\rline')).toBe(true)
    expect(isSqsText('\u0000')).toBe(false)
    expect(isSqsText('\ufffe')).toBe(false)
    expect(isSqsText('\ud83d\ude00')).toBe(true)
    expect(isSqsText('\ud83d')).toBe(false)
  })

  it('counts the body and attributes as SQS does', () => {
    expect(sqsMessageSize('héllo')).toBe(6)
    expect(sqsMessageSize('ab', { k: { DataType: 'String', StringValue: 'vv' } })).toBe(2 + 1 + 6 + 2)
  })
})

describe('parseSqsUrl', () => {
  it('reads a region, an endpoint, credentials and options', () => {
    expect(parseSqsUrl('sqs://')).toEqual({})
    expect(parseSqsUrl('sqs://eu-west-1')).toEqual({ region: 'eu-west-1' })
    expect(parseSqsUrl('sqs://us-gov-west-1?prefix=app-')).toEqual({ region: 'us-gov-west-1', queuePrefix: 'app-' })
    expect(parseSqsUrl('sqs://localhost:4566?region=eu-central-1&secure=false')).toEqual({
      endpoint: 'http://localhost:4566',
      region: 'eu-central-1',
    })
    expect(parseSqsUrl('sqs://sqs.ap-south-1.amazonaws.com')).toEqual({
      endpoint: 'https://sqs.ap-south-1.amazonaws.com',
      region: 'ap-south-1',
    })
    expect(
      parseSqsUrl(
        'sqs://AKIDEXAMPLE:wJal%2FK7MDENG%2Bbx@us-east-1?sessionToken=tok&visibilityTimeout=60&waitTimeSeconds=5&maxReceiveCount=3&deadLetter=false',
      ),
    ).toEqual({
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJal/K7MDENG+bx', sessionToken: 'tok' },
      visibilityTimeout: 60,
      waitTimeSeconds: 5,
      maxReceiveCount: 3,
      deadLetter: false,
    })
    expect(parseSqsUrl('sqs://eu-west-1?maxReceiveCount=none').maxReceiveCount).toBe(Infinity)
  })

  it('refuses bad URLs without showing the secret', () => {
    const bad = [
      'sqs://AKID:s3cr3t@us-east-1?nope=1',
      'sqs://AKID:s3cr3t@us-east-1?waitTimeSeconds=x',
      'sqs://AKID@us-east-1',
      'redis://AKID:s3cr3t@x',
    ]
    for (const url of bad) {
      const error = (() => {
        try {
          parseSqsUrl(url)
        } catch (e) {
          return e
        }
        return undefined
      })()
      expect(error, url).toBeInstanceOf(ConfigurationError)
      expect((error as Error).message).not.toMatch(/s3cr3t/)
    }
  })

  it('is what the brokerPlugin builds from, and checks option ranges', async () => {
    registerBroker(brokerPlugin)
    const broker = createBroker('sqs://k:s@127.0.0.1:1?secure=false&prefix=p-&visibilityTimeout=9') as SqsBroker
    expect(broker).toBeInstanceOf(SqsBroker)
    expect(broker.queuePrefix).toBe('p-')
    expect(broker.visibilityTimeout).toBe(9)
    expect(await broker.client.config.region()).toBe('us-east-1')
    await broker.close()
    expect(() => createBroker('sqs://eu-west-1?waitTimeSeconds=21')).toThrow(InvalidArgumentError)
    expect(() => new SqsBroker({ region: 'eu-west-1', visibilityTimeout: 0 })).toThrow(/visibilityTimeout/)
    expect(() => new SqsBroker({ region: 'eu-west-1', maxDelaySeconds: 901 })).toThrow(/maxDelaySeconds/)
  })

  it('fails connect() with a classified error when SQS cannot be reached', async () => {
    const broker = new SqsBroker({
      endpoint: 'http://127.0.0.1:9',
      region: 'us-east-1',
      credentials: { accessKeyId: 'k', secretAccessKey: 's' },
      clientConfig: { maxAttempts: 1 },
    })
    const error = await broker.connect().catch((e: unknown) => e)
    expect((error as { code?: string }).code).toBe('TQ_CONNECTION_FAILED')
    expect((error as { retryable?: boolean }).retryable).toBe(true)
    await broker.close()
  })
})

describe('SqsBroker.describe()', () => {
  it('names the region, the endpoint (credentials redacted) and the queue prefix', async () => {
    const broker = new SqsBroker({
      endpoint: 'http://127.0.0.1:4566',
      region: 'eu-west-1',
      queuePrefix: 'app-',
      middleware: [],
    })
    const secret = new SqsBroker({ endpoint: 'http://key:s3cret@127.0.0.1:4566', region: 'eu-west-1', middleware: [] })
    try {
      expect(broker.describe()).toEqual({ region: 'eu-west-1', endpoint: 'http://127.0.0.1:4566', queuePrefix: 'app-' })
      expect(JSON.stringify(secret.describe())).not.toContain('s3cret')
    } finally {
      await broker.close()
      await secret.close()
    }
  })
})
