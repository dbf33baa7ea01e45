// Run with `pnpm start` (needs Redis on 127.0.0.1:6379, or REDIS_URL).
// One process plays both sides so the demo is self-contained.
import { ResultFailureError, Worker, group, pipeline } from '@tq/core'
import {
  broker,
  countWords,
  fetchPage,
  label,
  onReport,
  queueName,
  rateLimiterBackend,
  resultBackend,
  siteCounted,
} from './tasks.ts'

export async function main(log: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<void> {
  onReport(log)
  const worker = new Worker(broker, { concurrency: 8, workerTimeout: 100 })
  await worker.start()
  try {
    // One message, one result. getResult() reads from the broker's Results backend.
    const one = await countWords.send('hello from tq')
    log(`countWords('hello from tq') = ${await one.getResult({ block: true, timeout: 10_000 })}`)

    // A pipeline: each step's result is appended to the next step's arguments.
    // fetchPage('/about') → countWords(text) → label('/about', words)
    const about = await pipeline([fetchPage.message('/about'), countWords.message(), label.message('/about')]).run()
    log(`pipeline: ${await about.getResult({ block: true, timeout: 10_000 })}`)

    // A group of pipelines, run in parallel, with a callback once all of them have succeeded.
    const paths = ['/', '/about', '/contact']
    const site = group(
      paths.map((path) => pipeline([fetchPage.message(path), countWords.message(), label.message(path)])),
    )
    site.addCompletionCallback(siteCounted.message('docs', paths.length))
    await site.run()
    // Results come back in the order of the children, whatever order they finished in.
    const counts = await site.collectResults({ block: true, timeout: 10_000 })
    log(`group: ${counts.join(', ')}`)

    // A failure is stored too: reading it rejects with ResultFailureError.
    const missing = await fetchPage.send('/missing')
    try {
      await missing.getResult({ block: true, timeout: 10_000 })
    } catch (error) {
      if (!(error instanceof ResultFailureError)) throw error
      log(`fetchPage('/missing') failed: ${error.message}`)
    }

    // Let the completion callback (and anything else) finish.
    await broker.join(queueName, { timeout: 10_000 })
  } finally {
    await worker.stop()
    await Promise.all([broker.close(), resultBackend.close(), rateLimiterBackend.close()])
  }
  log('done')
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main()
}
