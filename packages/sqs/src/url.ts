import { ConfigurationError, redactUrl } from '@tq/core'
import type { SqsBrokerOptions } from './options.ts'

/** An AWS region name: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-4`, `cn-north-1`. */
const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/

const BOOLEAN: Record<string, boolean> = { true: true, '1': true, yes: true, false: false, '0': false, no: false }

/**
 * Options for an SqsBroker from an `sqs://` URL:
 *
 * - `sqs://` — AWS, with the region and credentials from the AWS SDK's default chain.
 * - `sqs://<region>` — AWS in that region, e.g. `sqs://eu-west-1`.
 * - `sqs://<host>:<port>` — an endpoint (LocalStack, fauxqs, a VPC endpoint), over HTTPS
 *   unless `secure=false`; the region comes from `region=`, else `AWS_REGION`, else `us-east-1`.
 * - `sqs://<accessKeyId>:<secretAccessKey>@…` — static credentials (percent-encode `/` and `+`
 *   in the secret); `sessionToken=` adds a session token.
 *
 * Query parameters: `region`, `secure` (default true), `prefix` (`queuePrefix`),
 * `visibilityTimeout`, `waitTimeSeconds`, `maxReceiveCount`, `deadLetter`, `sessionToken`.
 * Secrets never appear in error messages (the URL is redacted).
 */
export function parseSqsUrl(url: string): SqsBrokerOptions {
  const shown = redactUrl(url)
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch (error) {
    throw new ConfigurationError(`Invalid SQS URL ${JSON.stringify(shown)}`, { cause: error })
  }
  if (parsed.protocol !== 'sqs:') {
    throw new ConfigurationError(`SQS URLs start with sqs:// (got ${JSON.stringify(shown)})`)
  }
  const options: SqsBrokerOptions = {}
  const params = parsed.searchParams
  let secure = true
  let region: string | undefined
  for (const [key, value] of params) {
    const integer = (): number => {
      const n = Number(value)
      if (value === '' || !Number.isInteger(n)) {
        throw new ConfigurationError(`SQS URL parameter ${key} must be an integer (in ${shown})`)
      }
      return n
    }
    const bool = (): boolean => {
      const b = BOOLEAN[value.toLowerCase()]
      if (b === undefined) throw new ConfigurationError(`SQS URL parameter ${key} must be true or false (in ${shown})`)
      return b
    }
    switch (key) {
      case 'region':
        region = value
        break
      case 'secure':
        secure = bool()
        break
      case 'prefix':
      case 'queuePrefix':
        options.queuePrefix = value
        break
      case 'visibilityTimeout':
        options.visibilityTimeout = integer()
        break
      case 'waitTimeSeconds':
        options.waitTimeSeconds = integer()
        break
      case 'maxReceiveCount':
        options.maxReceiveCount = value === 'Infinity' || value === 'none' ? Infinity : integer()
        break
      case 'deadLetter':
        options.deadLetter = bool()
        break
      case 'sessionToken':
        break
      default:
        throw new ConfigurationError(
          `Unknown SQS URL parameter ${JSON.stringify(key)} in ${shown} (known: region, secure, prefix, ` +
            'visibilityTimeout, waitTimeSeconds, maxReceiveCount, deadLetter, sessionToken)',
        )
    }
  }
  const host = parsed.hostname
  if (host !== '' && parsed.port === '' && REGION.test(host)) {
    region ??= host
  } else if (host !== '') {
    options.endpoint = `${secure ? 'https' : 'http'}://${parsed.host}`
    region ??= /^sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(host)?.[1] ?? process.env['AWS_REGION'] ?? 'us-east-1'
  }
  if (region !== undefined) options.region = region
  if (parsed.username !== '' || parsed.password !== '') {
    if (parsed.username === '' || parsed.password === '') {
      throw new ConfigurationError(`SQS URL credentials need both an access key id and a secret (in ${shown})`)
    }
    const token = params.get('sessionToken')
    options.credentials = {
      accessKeyId: decodeURIComponent(parsed.username),
      secretAccessKey: decodeURIComponent(parsed.password),
      ...(token ? { sessionToken: token } : {}),
    }
  }
  return options
}
