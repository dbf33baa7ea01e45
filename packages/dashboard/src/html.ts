/**
 * The one way markup is built here: `h` is a tagged template whose every interpolation is
 * escaped unless it is itself markup made by `h` (or `trusted`). Arrays are joined; `undefined`,
 * `null` and `false` render as nothing. Values from messages (arguments, names, errors) can
 * therefore only ever become text, in element content and in quoted attributes alike.
 */

/** Markup that is safe to insert as it is. */
export class Html {
  readonly #text: string
  constructor(text: string) {
    this.#text = text
  }
  toString(): string {
    return this.#text
  }
}

/** A value that may be interpolated into `h`. */
export type Renderable = Html | string | number | bigint | boolean | null | undefined | readonly Renderable[]

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
}

/** Text with `& < > " '` replaced by entities: safe in element content and in quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ESCAPES[char] ?? char)
}

function render(value: Renderable): string {
  if (value === undefined || value === null || value === false) return ''
  if (value instanceof Html) return value.toString()
  if (Array.isArray(value)) return (value as readonly Renderable[]).map(render).join('')
  return escapeHtml(String(value))
}

/** Build markup: interpolations are escaped (see the module comment). */
export function h(strings: TemplateStringsArray, ...values: Renderable[]): Html {
  let out = strings[0] ?? ''
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] ?? '')
  return new Html(out)
}

/** Markup written by this package itself (never a value from a message). */
export function trusted(markup: string): Html {
  return new Html(markup)
}
