// Run with `pnpm start` (needs Redis on 127.0.0.1:6379, or REDIS_URL). Runs until Ctrl-C:
// it processes the make_thumbnail messages Python sends, and asks Python for one report.
import { requestReport, startService } from './service.ts'

const service = await startService()
const report = await requestReport(42, 'pdf')
process.stdout.write(`asked Python for build_report(42, format='pdf'): message ${report.messageId}\n`)
process.stdout.write('waiting for make_thumbnail messages from Python (Ctrl-C to stop)\n')

for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    void service.stop().then(() => process.exit(0))
  })
