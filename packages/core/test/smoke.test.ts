import { describe, expect, it } from 'vitest'
import { StubBroker, Worker, actor } from '../src/index.ts'

describe('smoke', () => {
  it('runs an actor through StubBroker and Worker', async () => {
    const broker = new StubBroker()
    const seen: number[] = []
    const add = actor(
      (x: number, y: number) => {
        seen.push(x + y)
        return x + y
      },
      { broker, actorName: 'add' },
    )
    const worker = new Worker(broker, { workerTimeout: 50 })
    await worker.start()
    for (let i = 0; i < 10; i++) await add.send(i, 1)
    await add.sendWithOptions({ args: [100, 0], delay: 50 })
    await broker.join('default')
    await worker.join()
    await worker.stop()
    expect(seen.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100])
    expect(add(2, 3)).toBe(5)
  })
})
