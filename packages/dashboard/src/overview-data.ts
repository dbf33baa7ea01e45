import { type Admin, ConfigurationError, type Logger, errorMessage } from '@tq/core'
import { maskSecrets } from './format.ts'
import { minuteTotals } from './views/chart.ts'
import type { OverviewData, QueueRow } from './views/overview.ts'

/**
 * What the overview shows, read from the admin: queue counts, the last hour's throughput per
 * queue and minute, the workers online. Tracking that is off (no backend) is shown as such;
 * another failure of tracking is logged and its figures left out.
 */
export async function overviewData(admin: Admin, now: number, logger: Logger): Promise<OverviewData> {
  const [queues, workers, throughput] = await Promise.allSettled([
    admin.queues(),
    admin.workers(),
    admin.throughput({ minutes: 60 }),
  ])
  const trackingOff = (result: PromiseSettledResult<unknown>): boolean =>
    result.status === 'rejected' && result.reason instanceof ConfigurationError
  for (const result of [workers, throughput]) {
    if (result.status === 'rejected' && !trackingOff(result)) {
      logger.warn('dashboard could not read tracking', { error: errorMessage(result.reason) })
    }
  }
  const counts = throughput.status === 'fulfilled' ? throughput.value : undefined
  const perQueue = new Map<string, { processed: number; failed: number }>()
  for (const count of counts ?? []) {
    const entry = perQueue.get(count.queue) ?? { processed: 0, failed: 0 }
    entry.processed += count.processed
    entry.failed += count.failed
    perQueue.set(count.queue, entry)
  }
  const rows: QueueRow[] =
    queues.status === 'fulfilled'
      ? queues.value.map((q) => ({
          name: q.name,
          ready: q.ready,
          delayed: q.delayed,
          running: q.running,
          dead: q.dead,
          processed: counts ? (perQueue.get(q.name)?.processed ?? 0) : undefined,
          failed: counts ? (perQueue.get(q.name)?.failed ?? 0) : undefined,
        }))
      : []
  return {
    queues: rows,
    queueError: queues.status === 'rejected' ? maskSecrets(errorMessage(queues.reason)) : undefined,
    workers: workers.status === 'fulfilled' ? workers.value.length : undefined,
    tracking: !trackingOff(workers) && !trackingOff(throughput),
    minutes: counts ? minuteTotals(counts, now) : undefined,
  }
}
