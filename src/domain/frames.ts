/**
 * The first steps of every venue decoder: one frame to a JSON value, a
 * DecodeError that quotes it briefly, and the readers that decode the hot
 * messages (trades, book updates) without the Schema machinery.
 *
 * A hand reader accepts only the exact documented shape and yields exactly what
 * the message's Schema would (test/fast-readers.test.ts holds them equal on
 * every recorded frame and on mutated ones). Anything it cannot read sends the
 * whole frame back through the Schemas, which decide and name the error; so the
 * Schema stays the definition and the reader is only a faster way to the same result.
 */
import { Result, Schema, SchemaTransformation } from "effect"
import { DecodeError } from "./errors.ts"

const sampleOf = (frame: string) => (frame.length > 200 ? `${frame.slice(0, 200)}...` : frame)

export const decodeFailure = (venue: string) => (channel: string, detail: string, frame: string) =>
  new DecodeError({ venue, channel, detail, sample: sampleOf(frame) })

/** The parsed frame, or why it is unusable ("frame is not JSON", "frame is not an object"). */
export const parseFrame = (frame: string, options: { readonly arrays: boolean }): object | string => {
  let parsed: unknown
  try {
    parsed = JSON.parse(frame)
  } catch {
    return "frame is not JSON"
  }
  if (typeof parsed !== "object" || parsed === null || (!options.arrays && Array.isArray(parsed))) return "frame is not an object"
  return parsed
}

/** Why a Schema refused a message. */
export class WireFailure {
  readonly message: string
  constructor(message: string) {
    this.message = message
  }
}

/**
 * One message type's decoder: `read(data, true)` (`wireReader(schema)(handReader)`) tries the hand reader and gives
 * undefined when it cannot read (the caller then re-reads the whole frame with
 * `fast` false); `read(data, false)` is the Schema alone.
 */
export const wireReader = <S extends Schema.Decoder<unknown>>(schema: S) => (fast: (data: unknown) => S["Type"] | undefined) => {
  const decode = Schema.decodeUnknownResult(schema)
  return (data: unknown, useFast: boolean): S["Type"] | WireFailure | undefined => {
    if (useFast) return fast(data)
    const result = decode(data)
    return Result.isFailure(result) ? new WireFailure(result.failure.message) : result.success
  }
}

/** What decoding an array element by element kept and dropped. */
export interface Salvaged<A> {
  readonly kept: Array<A>
  readonly dropped: number
  /** Why the first dropped element was refused. */
  readonly problem: string | undefined
}

/**
 * Decodes an array element by element: one unreadable element (a book level,
 * an odd instrument) is dropped and counted, never the whole message refused
 * for it. Undefined when `items` is not an array at all.
 */
export const decodeEach = <S extends Schema.Decoder<unknown>>(schema: S) => {
  const decode = Schema.decodeUnknownResult(schema)
  return (items: unknown): Salvaged<S["Type"]> | undefined => {
    if (!Array.isArray(items)) return undefined
    const kept: Array<S["Type"]> = []
    let problem: string | undefined
    for (const item of items) {
      const result = decode(item)
      if (Result.isSuccess(result)) kept.push(result.success)
      else problem ??= result.failure.message
    }
    return { kept, dropped: items.length - kept.length, problem }
  }
}

export type FrameDecoder<R> = ((frame: string, out: Array<R>) => DecodeError | undefined) & {
  /** The same decoder with the Schemas alone (tests hold the two equal). */
  readonly schemaOnly: (frame: string, out: Array<R>) => DecodeError | undefined
}

/**
 * Runs a decoder pass with the hand readers and, if any of them gave up, again
 * with the Schemas alone. `rewind` undoes what the abandoned pass counted
 * (Coinbase numbers its book messages) so the second pass numbers them the same.
 */
export const withSchemaFallback = <R>(
  decode: (frame: string, out: Array<R>, fast: boolean) => DecodeError | undefined | typeof unreadable,
  hooks: { readonly mark: () => void; readonly rewind: () => void } = { mark: () => undefined, rewind: () => undefined }
): FrameDecoder<R> => {
  const decoder = (frame: string, out: Array<R>): DecodeError | undefined => {
    const before = out.length
    hooks.mark()
    const fast = decode(frame, out, true)
    if (fast !== unreadable) return fast
    out.length = before
    hooks.rewind()
    return decode(frame, out, false) as DecodeError | undefined
  }
  return Object.assign(decoder, { schemaOnly: (frame: string, out: Array<R>) => decode(frame, out, false) as DecodeError | undefined })
}

/** A hand reader gave up on this frame: read it again through the Schemas. */
export const unreadable: unique symbol = Symbol("unreadable")

export const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * A number written as a string, as venues send prices, sizes and times.
 * Schema.FiniteFromString reads "" and "  " as 0 (JavaScript's `Number`), and
 * a venue's empty field means "none", never zero: a rate-less funding reading
 * would be stored as 0. So a blank string is refused here.
 */
export const DecimalString = Schema.String.check(Schema.isPattern(/\S/)).pipe(
  Schema.decodeTo(Schema.Finite, SchemaTransformation.numberFromString)
)

/** DecimalString's rule (`Number(s)`, finite, not blank), NaN when it would fail ("Infinity" too). */
export const decimal = (u: unknown): number => {
  if (typeof u !== "string") return NaN
  const value = Number(u)
  // Only a blank string reads as 0 without a digit; checked only then, off the hot path.
  if (value === 0) return /\d/.test(u) ? value : NaN
  return Number.isFinite(value) ? value : NaN
}

/** A JSON number (Schema.Number), NaN otherwise. */
export const numeric = (u: unknown): number => (typeof u === "number" ? u : NaN)

/** An array of [decimal string, decimal string] as numbers (Binance, Coinbase Exchange snapshot levels), or undefined. */
export const decimalPairs = (u: unknown): Array<[number, number]> | undefined => {
  if (!Array.isArray(u)) return undefined
  const out = new Array<[number, number]>(u.length)
  for (let i = 0; i < u.length; i++) {
    const level = u[i]
    if (!Array.isArray(level) || level.length !== 2) return undefined
    const price = decimal(level[0])
    const size = decimal(level[1])
    if (!Number.isFinite(price) || !Number.isFinite(size)) return undefined
    out[i] = [price, size]
  }
  return out
}

const monthDays = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
const daysIn = (year: number, month: number): number =>
  month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : monthDays[month - 1]!

const digits = (s: string, from: number, count: number): number => {
  let n = 0
  for (let i = from; i < from + count; i++) {
    const d = s.charCodeAt(i) - 48
    if (d < 0 || d > 9) return NaN
    n = n * 10 + d
  }
  return n
}

/**
 * `YYYY-MM-DDTHH:MM:SS[.fraction]Z` to epoch ms as `Date.parse` gives it (the
 * fraction truncated to ms), without its general-purpose parser; any other
 * form goes to `Date.parse`.
 */
export const isoMillis = (s: string): number => {
  const n = s.length
  if (n < 20 || s.charCodeAt(n - 1) !== 90 /* Z */ || s[4] !== "-" || s[7] !== "-" || s[10] !== "T" || s[13] !== ":" || s[16] !== ":") {
    return Date.parse(s)
  }
  let ms = 0
  if (n > 20) {
    if (s[19] !== ".") return Date.parse(s)
    const fraction = n - 21
    if (fraction < 1 || fraction > 9) return Date.parse(s)
    const take = Math.min(3, fraction)
    ms = digits(s, 20, take) * (take === 1 ? 100 : take === 2 ? 10 : 1)
    if (fraction > 3 && Number.isNaN(digits(s, 23, fraction - 3))) return Date.parse(s)
  }
  const month = digits(s, 5, 2)
  const day = digits(s, 8, 2)
  const hour = digits(s, 11, 2)
  const minute = digits(s, 14, 2)
  const second = digits(s, 17, 2)
  if (!(month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 24 && minute <= 59 && second <= 59) || Number.isNaN(ms)) return Date.parse(s)
  const year = digits(s, 0, 4)
  // Date.parse accepts 24:00:00 only exactly, and rejects impossible days (Feb 30): leave those to it.
  // Date.UTC reads years 0-99 as 1900-1999 (Coinbase's "0001-01-01T00:00:00Z" would be 1901): leave those too.
  if (hour === 24 || day > daysIn(year, month) || year < 100 || Number.isNaN(year)) return Date.parse(s)
  return Date.UTC(year, month - 1, day, hour, minute, second, ms)
}

/**
 * A reader of a frame's own text, for the hottest messages, which venues write
 * in one compact layout with their keys in one order: it reads the values it
 * needs straight from the string, skipping JSON.parse's objects and the
 * readers above. It accepts only the exact layout the venue reader spells
 * (no whitespace, no escape, keys in that order, nothing after the end), so
 * what it accepts is valid JSON that JSON.parse would read to the same values;
 * on anything else a method gives false, undefined or NaN and the venue reader
 * gives up (`unreadable`), and the frame goes the parsed way.
 */
export class FrameText {
  readonly text: string
  at = 0
  private constructor(text: string) {
    this.text = text
  }

  /**
   * A reader of `frame`, or undefined when it holds a backslash or a control character anywhere: then some string
   * would need JSON's unescaping or be refused by it, and the parsed way reads it. Checked once here, so that
   * `string` only looks for its closing quote.
   */
  static of(frame: string): FrameText | undefined {
    return plainText.test(frame) ? undefined : new FrameText(frame)
  }

  /** Steps over `literal` (punctuation and keys, e.g. `,"ts":`) when it comes next. */
  skip(literal: string): boolean {
    if (!this.text.startsWith(literal, this.at)) return false
    this.at += literal.length
    return true
  }

  /** A JSON array next, each element read by `element`; undefined when it is not one or an element is unreadable. */
  list<T>(element: (text: FrameText) => T | undefined): Array<T> | undefined {
    if (!this.skip("[")) return undefined
    const out: Array<T> = []
    if (this.skip("]")) return out
    do {
      const value = element(this)
      if (value === undefined) return undefined
      out.push(value)
    } while (this.skip(","))
    return this.skip("]") ? out : undefined
  }

  /**
   * Which of `keys` (each written `"name":`) comes next, stepped over; -1 for none. `expected` is tried first:
   * venues write their keys in one order, so a reader passing the one after the last rarely tries another.
   */
  key(keys: ReadonlyArray<string>, expected: number): number {
    if (expected < keys.length && this.skip(keys[expected]!)) return expected
    for (let k = 0; k < keys.length; k++) if (k !== expected && this.skip(keys[k]!)) return k
    return -1
  }

  /** A string (the frame has no escape: see `of`), or undefined. */
  string(): string | undefined {
    const text = this.text
    if (text.charCodeAt(this.at) !== 34 /* " */) return undefined
    const from = this.at + 1
    const end = text.indexOf('"', from)
    if (end < 0) return undefined
    this.at = end + 1
    return text.slice(from, end)
  }

  /** A JSON number (`-?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?`) as JSON.parse reads it, or NaN. */
  number(): number {
    const text = this.text
    const from = this.at
    let i = from
    if (text.charCodeAt(i) === 45 /* - */) i++
    const first = text.charCodeAt(i)
    // Integers of up to 15 digits (times, ids) are summed exactly here; anything longer or with a fraction goes to Number.
    let integer = 0
    if (first === 48 /* 0 */) i++
    else if (first >= 49 && first <= 57) {
      for (let d = text.charCodeAt(i) - 48; d >= 0 && d <= 9; d = text.charCodeAt(++i) - 48) integer = integer * 10 + d
    } else return NaN
    const next = text.charCodeAt(i)
    if (next !== 46 && next !== 101 && next !== 69 && i - from <= 15) {
      this.at = i
      // "-0" is -0, as JSON.parse reads it.
      return text.charCodeAt(from) === 45 ? -integer : integer
    }
    if (next === 46 /* . */) {
      i++
      if (!isDigit(text.charCodeAt(i))) return NaN
      while (isDigit(text.charCodeAt(i))) i++
    }
    const e = text.charCodeAt(i)
    if (e === 101 || e === 69 /* e E */) {
      i++
      const sign = text.charCodeAt(i)
      if (sign === 43 || sign === 45) i++
      if (!isDigit(text.charCodeAt(i))) return NaN
      while (isDigit(text.charCodeAt(i))) i++
    }
    this.at = i
    return Number(text.slice(from, i))
  }

  /** `true` or `false`, or undefined. */
  boolean(): boolean | undefined {
    if (this.skip("true")) return true
    if (this.skip("false")) return false
    return undefined
  }

  /** True when the whole text has been read. */
  done(): boolean {
    return this.at === this.text.length
  }
}

const isDigit = (c: number) => c >= 48 && c <= 57
const plainText = /[\\\u0000-\u001f]/
