/** A FIFO queue with O(1) push and shift (an array with a moving head, compacted now and then). */
export class Fifo<T> {
  #items: T[] = []
  #head = 0

  get length(): number {
    return this.#items.length - this.#head
  }

  push(item: T): void {
    this.#items.push(item)
  }

  /** Remove and return up to `n` items from the front. */
  take(n: number): T[] {
    const end = Math.min(this.#items.length, this.#head + n)
    const out = this.#items.slice(this.#head, end)
    this.#head = end
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
    return out
  }

  /** Remove and return everything. */
  clear(): T[] {
    const out = this.#items.slice(this.#head)
    this.#items = []
    this.#head = 0
    return out
  }
}
