import { expect, it } from 'vitest'
import { main } from '../src/main.ts'

it('runs the quickstart end to end on the StubBroker', async () => {
  const lines: string[] = []
  await main((line) => lines.push(line))
  expect(lines[0]).toBe('add(1, 2) = 3')
  expect(lines[1]).toMatch(/^Hello, later! \(after (\d+) ms\)$/)
  expect(Number(/after (\d+)/.exec(lines[1] ?? '')?.[1])).toBeGreaterThanOrEqual(200)
  expect(lines[2]).toBe('flaky(): succeeded on attempt 3')
  expect(lines[3]).toBe('pipeline 1 + 2 + 3 + 4 = 10')
  expect(lines[4]).toBe('group: Hello, Ada! Hello, Grace! Hello, Linus!')
  expect(lines.at(-1)).toBe('done')
})
