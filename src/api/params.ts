/**
 * Query parameters of every endpoint, declared once: the same table validates
 * requests (a bad value is a 400 naming the parameter) and documents them in
 * the OpenAPI document.
 */
import { Schema } from "effect"

export class BadParameter extends Schema.TaggedError<BadParameter>()("BadParameter", {
  parameter: Schema.String,
  message: Schema.String
}) {}

const bad = (parameter: string, message: string) => new BadParameter({ parameter, message })

export interface ParamSpec<A> {
  readonly description: string
  readonly schema: Record<string, unknown>
  readonly parse: (raw: string, name: string) => A | BadParameter
}

const numberIn = (min: number, max: number, options: { readonly integer: boolean; readonly exclusiveMin: boolean }) =>
(raw: string, name: string): number | BadParameter => {
  const trimmed = raw.trim()
  const value = trimmed === "" ? Number.NaN : Number(trimmed)
  const kind = options.integer ? "an integer" : "a number"
  if (!Number.isFinite(value) || (options.integer && !Number.isInteger(value))) {
    return bad(name, `${name} must be ${kind}, got ${JSON.stringify(raw)}`)
  }
  if ((options.exclusiveMin ? value <= min : value < min) || value > max) {
    return bad(
      name,
      `${name} must be ${options.exclusiveMin ? "greater than" : "at least"} ${min} and at most ${max}, got ${raw}`
    )
  }
  return value
}

const pattern = (regex: RegExp, what: string) => (raw: string, name: string): string | BadParameter =>
  regex.test(raw) ? raw : bad(name, `${name} must be ${what}, got ${JSON.stringify(raw.slice(0, 60))}`)

const oneOf = <const L extends string>(values: ReadonlyArray<L>) => (raw: string, name: string): L | BadParameter =>
  (values as ReadonlyArray<string>).includes(raw.toLowerCase())
    ? (raw.toLowerCase() as L)
    : bad(name, `${name} must be one of ${values.join(", ")}, got ${JSON.stringify(raw.slice(0, 60))}`)

export const params = {
  symbol: {
    description: "Exact native symbol (BTCUSDT, BTC-USD, BTC-PERPETUAL) or a base asset (BTC) matching every instrument on it",
    schema: { type: "string", pattern: "^[A-Za-z0-9._/-]{1,50}$" },
    parse: pattern(/^[A-Za-z0-9._/-]{1,50}$/, "a symbol of letters, digits and . _ / - (at most 50)")
  } satisfies ParamSpec<string>,
  exchange: {
    description: "Venue id: binance, binance-futures, coinbase, deribit",
    schema: { type: "string", pattern: "^[A-Za-z0-9-]{1,50}$" },
    parse: (raw: string, name: string) => {
      const value = pattern(/^[A-Za-z0-9-]{1,50}$/, "a venue id such as binance or binance-futures")(raw, name)
      return typeof value === "string" ? value.toLowerCase() : value
    }
  } satisfies ParamSpec<string>,
  hours: {
    description: "Window ending now, in hours (default 24, >0, at most 8760)",
    schema: { type: "number", exclusiveMinimum: 0, maximum: 8760, default: 24 },
    parse: numberIn(0, 8760, { integer: false, exclusiveMin: true })
  } satisfies ParamSpec<number>,
  min_value_usd: {
    description: "Only trades worth at least this many USD",
    schema: { type: "number", minimum: 0 },
    parse: numberIn(0, 1e18, { integer: false, exclusiveMin: false })
  } satisfies ParamSpec<number>,
  only_liquidations: {
    description: "true: liquidations only; false: everything",
    schema: { type: "boolean" },
    parse: (raw: string, name: string) => {
      const value = oneOf(["true", "false"] as const)(raw, name)
      return value instanceof BadParameter ? value : value === "true"
    }
  } satisfies ParamSpec<boolean>,
  side: {
    description: "Taker side (for liquidations: the liquidation order's side)",
    schema: { type: "string", enum: ["buy", "sell"] },
    parse: oneOf(["buy", "sell"] as const)
  } satisfies ParamSpec<"buy" | "sell">,
  limit: {
    description: "Rows returned (default 100, at most 1000)",
    schema: { type: "integer", minimum: 1, maximum: 1000, default: 100 },
    parse: numberIn(1, 1000, { integer: true, exclusiveMin: false })
  } satisfies ParamSpec<number>,
  channel: {
    description: "Gap channel: trades, book, liquidations, funding",
    schema: { type: "string", enum: ["trades", "book", "liquidations", "funding"] },
    parse: oneOf(["trades", "book", "liquidations", "funding"] as const)
  } satisfies ParamSpec<"trades" | "book" | "liquidations" | "funding">,
  status: {
    description: "Gap repair status: open, repairing, verified, partial, unrecoverable",
    schema: { type: "string", enum: ["open", "repairing", "verified", "partial", "unrecoverable"] },
    parse: oneOf(["open", "repairing", "verified", "partial", "unrecoverable"] as const)
  } satisfies ParamSpec<"open" | "repairing" | "verified" | "partial" | "unrecoverable">,
  index: {
    description: "Volatility index name: btc_usd, eth_usd",
    schema: { type: "string", pattern: "^[a-z0-9_]{1,30}$" },
    parse: (raw: string, name: string) => {
      const value = pattern(/^[A-Za-z0-9_]{1,30}$/, "an index name such as btc_usd")(raw, name)
      return typeof value === "string" ? value.toLowerCase() : value
    }
  } satisfies ParamSpec<string>,
  root: {
    description: "Futures product root: BTC, MBT, ETH, MET",
    schema: { type: "string", pattern: "^[A-Z]{2,5}$" },
    parse: (raw: string, name: string) => {
      const value = pattern(/^[A-Za-z]{2,5}$/, "a product root such as BTC or MBT")(raw, name)
      return typeof value === "string" ? value.toUpperCase() : value
    }
  } satisfies ParamSpec<string>,
  currency: {
    description: "Underlying currency of an option chain: BTC, ETH",
    schema: { type: "string", pattern: "^[A-Z]{2,10}$" },
    parse: (raw: string, name: string) => {
      const value = pattern(/^[A-Za-z]{2,10}$/, "a currency code such as BTC")(raw, name)
      return typeof value === "string" ? value.toUpperCase() : value
    }
  } satisfies ParamSpec<string>,
  expiry: {
    description: "Expiry date (UTC) of the options: YYYY-MM-DD",
    schema: { type: "string", format: "date" },
    parse: (raw: string, name: string) => {
      const valid = /^\d{4}-\d{2}-\d{2}$/.test(raw) && !Number.isNaN(Date.parse(`${raw}T00:00:00Z`)) &&
        new Date(`${raw}T00:00:00Z`).toISOString().startsWith(raw)
      return valid ? raw : bad(name, `${name} must be a date as YYYY-MM-DD, got ${JSON.stringify(raw.slice(0, 60))}`)
    }
  } satisfies ParamSpec<string>,
  depth: {
    description: "Levels per side (default: all stored, at most 100)",
    schema: { type: "integer", minimum: 1, maximum: 100 },
    parse: numberIn(1, 100, { integer: true, exclusiveMin: false })
  } satisfies ParamSpec<number>
}

export type ParamName = keyof typeof params
type ParamValue<N extends ParamName> = (typeof params)[N] extends ParamSpec<infer A> ? A : never
export type Parsed<N extends ParamName> = { -readonly [K in N]?: ParamValue<K> }

/** Parses the query string against the endpoint's allowed parameters; unknown or repeated ones are errors too. */
export const parseQuery = <N extends ParamName>(
  search: URLSearchParams,
  allowed: ReadonlyArray<N>
): Parsed<N> | BadParameter => {
  const out: Record<string, unknown> = {}
  const seen = new Set<string>()
  for (const [name, raw] of search) {
    if (!(allowed as ReadonlyArray<string>).includes(name)) {
      return bad(name, `unknown parameter ${JSON.stringify(name.slice(0, 60))}; allowed: ${allowed.join(", ")}`)
    }
    if (seen.has(name)) return bad(name, `${name} is given more than once`)
    seen.add(name)
    const value = (params[name as ParamName] as ParamSpec<unknown>).parse(raw, name)
    if (value instanceof BadParameter) return value
    out[name] = value
  }
  return out as Parsed<N>
}
