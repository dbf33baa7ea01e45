/** A binary min-heap ordered by `less`. */
export class Heap<T> {
  readonly #items: T[] = []
  readonly #less: (a: T, b: T) => boolean

  constructor(less: (a: T, b: T) => boolean) {
    this.#less = less
  }

  get size(): number {
    return this.#items.length
  }

  peek(): T | undefined {
    return this.#items[0]
  }

  push(item: T): void {
    const items = this.#items
    items.push(item)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.#less(items[i] as T, items[parent] as T)) break
      ;[items[i], items[parent]] = [items[parent] as T, items[i] as T]
      i = parent
    }
  }

  pop(): T | undefined {
    const items = this.#items
    if (items.length === 0) return undefined
    const top = items[0]
    const last = items.pop() as T
    if (items.length > 0) {
      items[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < items.length && this.#less(items[l] as T, items[m] as T)) m = l
        if (r < items.length && this.#less(items[r] as T, items[m] as T)) m = r
        if (m === i) break
        ;[items[i], items[m]] = [items[m] as T, items[i] as T]
        i = m
      }
    }
    return top
  }

  /** Remove and return every item (unordered). */
  drain(): T[] {
    return this.#items.splice(0)
  }
}
