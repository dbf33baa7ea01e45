import { statSync } from 'node:fs'
import { InvalidArgumentError } from 'commander'

/** A commander parser for an integer option from `min` (to `max`, when given). */
export function integer(min: number, what: string, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value)
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        max === Number.MAX_SAFE_INTEGER
          ? `${what} must be an integer >= ${min}.`
          : `${what} must be an integer from ${min} to ${max}.`,
      )
    }
    return n
  }
}

/** A commander parser for a TCP port option. */
export function port(what: string) {
  return (value: string): number => {
    const n = Number(value)
    if (!/^\d+$/.test(value.trim()) || n > 65535)
      throw new InvalidArgumentError(`${what} must be a port number (0 to 65535).`)
    return n
  }
}

export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}
