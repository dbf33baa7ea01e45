/** A counting semaphore: at most `size` calls of `run()` at once; the rest wait in order. */
export class Semaphore {
  #free: number
  readonly #waiting: Array<() => void> = []

  constructor(size: number) {
    this.#free = Math.max(1, size)
  }

  /** Calls running now could start without waiting. */
  get available(): number {
    return this.#free
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--
    else await new Promise<void>((resolve) => this.#waiting.push(resolve))
    try {
      return await fn()
    } finally {
      const next = this.#waiting.shift()
      if (next) next()
      else this.#free++
    }
  }
}
