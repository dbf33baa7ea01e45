// `tq dashboard`: the real bin of @tq/core serves this package's dashboard until SIGTERM.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

const bin = fileURLToPath(new URL('../../core/src/cli/bin.ts', import.meta.url))

function start(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@tq/source', bin, 'dashboard', ...args], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { ...process.env, TQ_BROKER_URL: 'stub://' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const line = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve)
    void exited.then((code) => reject(new Error(`tq dashboard exited (${code}): ${stderr}`)))
  })
  return { child, exited, line }
}

it('serves the dashboard on the port asked for and stops on SIGTERM with exit 0', async () => {
  const { child, exited, line } = start(['--port', '0', '--json'])
  const { url } = JSON.parse(await line) as { url: string }
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
  const page = await fetch(url)
  expect(page.status).toBe(200)
  expect(await page.text()).toContain('<html')
  child.kill('SIGTERM')
  expect(await exited).toBe(0)
}, 30_000)

it('serves a read-only dashboard under a base path, with a plain line', async () => {
  const { child, exited, line } = start(['--port', '0', '--read-only', '--base-path', '/ops'])
  const text = await line
  const url = /Dashboard on (\S+)/.exec(text)?.[1] ?? ''
  expect(url).toMatch(/\/ops\/$/)
  expect((await fetch(url)).status).toBe(200)
  child.kill('SIGTERM')
  expect(await exited).toBe(0)
}, 30_000)
