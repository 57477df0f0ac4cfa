/**
 * Binance's documented wire formats (spot and USD-M futures market streams and
 * the REST bodies we read). Decimal strings decode to numbers here, once.
 */
import { Schema } from "effect"
import { decimal, decimalPairs, isRecord, wireReader, DecimalString } from "../../domain/frames.ts"

const Decimal = DecimalString
const Levels = Schema.Array(Schema.Tuple([Decimal, Decimal]))

/** `<symbol>@aggTrade`: one taker order's fills at one price. `m`: the buyer was the maker. */
export const AggTrade = Schema.Struct({
  e: Schema.Literal("aggTrade"),
  E: Schema.Number,
  s: Schema.String,
  a: Schema.Number,
  p: Decimal,
  q: Decimal,
  f: Schema.Number,
  l: Schema.Number,
  T: Schema.Number,
  m: Schema.Boolean
})

export const readAggTrade = wireReader(AggTrade)((u) => {
  if (!isRecord(u) || u.e !== "aggTrade") return undefined
  const { E, s, a, f, l, T, m } = u
  const p = decimal(u.p)
  const q = decimal(u.q)
  if (
    typeof E !== "number" || typeof s !== "string" || typeof a !== "number" || typeof f !== "number" || typeof l !== "number" ||
    typeof T !== "number" || typeof m !== "boolean" || !Number.isFinite(p) || !Number.isFinite(q)
  ) return undefined
  return { e: "aggTrade", E, s, a, p, q, f, l, T, m }
})

/** REST `aggTrades?fromId=`: the same fields as the stream, without event type and symbol. */
export const AggTradesPage = Schema.Array(Schema.Struct({
  a: Schema.Number,
  p: Decimal,
  q: Decimal,
  f: Schema.Number,
  l: Schema.Number,
  T: Schema.Number,
  m: Schema.Boolean
}))

/** `<symbol>@depth@100ms`. Futures add `pu` (the previous event's `u`) and `T`. */
export const DepthUpdate = Schema.Struct({
  e: Schema.Literal("depthUpdate"),
  E: Schema.Number,
  s: Schema.String,
  U: Schema.Number,
  u: Schema.Number,
  pu: Schema.optional(Schema.Number),
  b: Levels,
  a: Levels
})

export const readDepthUpdate = wireReader(DepthUpdate)((u) => {
  if (!isRecord(u) || u.e !== "depthUpdate") return undefined
  const { E, s, U, pu } = u
  const last = u.u
  const b = decimalPairs(u.b)
  const a = decimalPairs(u.a)
  if (typeof E !== "number" || typeof s !== "string" || typeof U !== "number" || typeof last !== "number" || b === undefined || a === undefined) {
    return undefined
  }
  if (pu === undefined) return { e: "depthUpdate", E, s, U, u: last, b, a }
  return typeof pu === "number" ? { e: "depthUpdate", E, s, U, u: last, pu, b, a } : undefined
})

/** Futures `<symbol>@markPrice@1s`. `P` is the estimated settle price, not a predicted rate. */
export const MarkPriceUpdate = Schema.Struct({
  e: Schema.Literal("markPriceUpdate"),
  E: Schema.Number,
  s: Schema.String,
  p: Decimal,
  i: Decimal,
  P: Schema.optional(Decimal),
  /** The funding rate; "" on dated (delivery) contracts, which have none. */
  r: Schema.Union([Schema.Literal(""), Decimal]),
  /** The next funding time; 0 on dated contracts. */
  T: Schema.Number
})

/** Futures `<symbol>@forceOrder`: at most one (the latest) liquidation per symbol per second. */
export const ForceOrder = Schema.Struct({
  e: Schema.Literal("forceOrder"),
  E: Schema.Number,
  o: Schema.Struct({
    s: Schema.String,
    S: Schema.Literals(["BUY", "SELL"]),
    o: Schema.String,
    f: Schema.String,
    q: Decimal,
    p: Decimal,
    ap: Decimal,
    X: Schema.String,
    l: Decimal,
    z: Decimal,
    T: Schema.Number
  })
})

export const DepthSnapshot = Schema.Struct({
  lastUpdateId: Schema.Number,
  E: Schema.optional(Schema.Number),
  T: Schema.optional(Schema.Number),
  bids: Levels,
  asks: Levels
})

export const OpenInterest = Schema.Struct({
  openInterest: Decimal,
  symbol: Schema.String,
  time: Schema.Number
})

export const PremiumIndex = Schema.Struct({
  symbol: Schema.String,
  markPrice: Decimal,
  indexPrice: Decimal,
  estimatedSettlePrice: Schema.optional(Decimal),
  lastFundingRate: Decimal,
  nextFundingTime: Schema.Number,
  time: Schema.Number
})

export const FundingInfo = Schema.Array(Schema.Struct({
  symbol: Schema.String,
  fundingIntervalHours: Schema.Number
}))

export const ExchangeInfo = Schema.Struct({
  rateLimits: Schema.Array(Schema.Struct({
    rateLimitType: Schema.String,
    interval: Schema.String,
    intervalNum: Schema.Number,
    limit: Schema.Number
  })),
  symbols: Schema.Array(Schema.Struct({
    symbol: Schema.String,
    status: Schema.optional(Schema.String),
    baseAsset: Schema.String,
    quoteAsset: Schema.String,
    contractType: Schema.optional(Schema.String),
    contractSize: Schema.optional(Schema.Number)
  }))
})

/** The combined-stream envelope: `{"stream": "<name>", "data": <payload>}`. */
export const Envelope = Schema.Struct({ stream: Schema.String, data: Schema.Unknown })

/** An error pushed on the socket (e.g. an invalid request). */
export const StreamError = Schema.Struct({ error: Schema.Struct({ code: Schema.Number, msg: Schema.String }) })
