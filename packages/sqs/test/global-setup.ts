/**
 * Starts fauxqs (an in-process SQS emulator) on 127.0.0.1 and an OS-chosen port, and provides
 * its endpoint to the tests. fauxqs's own CLI and `startFauxqs()` bind 0.0.0.0; building the app
 * and listening on loopback keeps the tests off the network.
 *
 * With `TQ_SQS_ENDPOINT` set, no fauxqs is started and the tests run against that endpoint
 * (LocalStack, or real SQS: `https://sqs.<region>.amazonaws.com`), with the region from
 * `AWS_REGION` and the credentials from the AWS SDK's default chain.
 */
import type { TestProject } from 'vitest/node'

declare module 'vitest' {
  export interface ProvidedContext {
    /** The SQS endpoint URL the tests use. */
    sqsEndpoint: string
    /** The AWS region the tests use. */
    sqsRegion: string
    /** True when the endpoint is not the fauxqs this setup started (credentials come from the default chain). */
    sqsExternal: boolean
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const region = process.env['AWS_REGION'] ?? 'us-east-1'
  const external = process.env['TQ_SQS_ENDPOINT']
  if (external) {
    project.provide('sqsEndpoint', external)
    project.provide('sqsRegion', region)
    project.provide('sqsExternal', true)
    return async () => undefined
  }
  const { buildApp } = await import('fauxqs')
  const app = buildApp({ logger: false, defaultRegion: region })
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  project.provide('sqsEndpoint', address)
  project.provide('sqsRegion', region)
  project.provide('sqsExternal', false)
  return async () => {
    await app.close()
  }
}
