/**
 * Deribit's documented JSON-RPC 2.0 formats (API v2): subscription
 * notifications for `trades.*`, `book.*`, `ticker.*` and
 * `deribit_volatility_index.*`, and the REST (`/api/v2/public/...`) results we
 * read. Numbers arrive as JSON numbers.
 */
import { Schema } from "effect"
import { isRecord, wireReader } from "../../domain/frames.ts"

/** `trades.{instrument}.100ms`: `direction` is the taker's; `liquidation` is "M", "T" or "MT" when present. */
export const DeribitTrade = Schema.Struct({
  trade_seq: Schema.Number,
  trade_id: Schema.String,
  timestamp: Schema.Number,
  price: Schema.Number,
  amount: Schema.Number,
  direction: Schema.Literals(["buy", "sell"]),
  instrument_name: Schema.String,
  index_price: Schema.Number,
  mark_price: Schema.optional(Schema.Number),
  iv: Schema.optional(Schema.Number),
  tick_direction: Schema.optional(Schema.Number),
  liquidation: Schema.optional(Schema.String),
  block_trade_id: Schema.optional(Schema.String)
})

type Trade = typeof DeribitTrade.Type
const optionalNumber = (u: unknown): boolean => u === undefined || typeof u === "number"
const optionalString = (u: unknown): boolean => u === undefined || typeof u === "string"

export const readTrades = wireReader(Schema.Array(DeribitTrade))((u) => {
  if (!Array.isArray(u)) return undefined
  const read = new Array<Trade>(u.length)
  for (let i = 0; i < u.length; i++) {
    const t = u[i]
    if (!isRecord(t)) return undefined
    const { trade_seq, trade_id, timestamp, price, amount, direction, instrument_name, index_price, mark_price, iv, tick_direction, liquidation, block_trade_id } = t
    if (
      typeof trade_seq !== "number" || typeof trade_id !== "string" || typeof timestamp !== "number" || typeof price !== "number" ||
      typeof amount !== "number" || (direction !== "buy" && direction !== "sell") || typeof instrument_name !== "string" ||
      typeof index_price !== "number" || !optionalNumber(mark_price) || !optionalNumber(iv) || !optionalNumber(tick_direction) ||
      !optionalString(liquidation) || !optionalString(block_trade_id)
    ) return undefined
    const trade: { -readonly [K in keyof Trade]: Trade[K] } = { trade_seq, trade_id, timestamp, price, amount, direction, instrument_name, index_price }
    if (mark_price !== undefined) trade.mark_price = mark_price as number
    if (iv !== undefined) trade.iv = iv as number
    if (tick_direction !== undefined) trade.tick_direction = tick_direction as number
    if (liquidation !== undefined) trade.liquidation = liquidation as string
    if (block_trade_id !== undefined) trade.block_trade_id = block_trade_id as string
    read[i] = trade
  }
  return read
})

const BookLevel = Schema.Tuple([Schema.Literals(["new", "change", "delete"]), Schema.Number, Schema.Number])

/** `book.{instrument}.100ms`: a snapshot, then changes chained by `prev_change_id`. */
export const DeribitBook = Schema.Struct({
  type: Schema.Literals(["snapshot", "change"]),
  timestamp: Schema.Number,
  instrument_name: Schema.String,
  change_id: Schema.Number,
  prev_change_id: Schema.optional(Schema.Number),
  bids: Schema.Array(BookLevel),
  asks: Schema.Array(BookLevel)
})

type Action = "new" | "change" | "delete"
const bookLevels = (u: unknown): Array<readonly [Action, number, number]> | undefined => {
  if (!Array.isArray(u)) return undefined
  const read = new Array<readonly [Action, number, number]>(u.length)
  for (let i = 0; i < u.length; i++) {
    const level = u[i]
    if (!Array.isArray(level) || level.length !== 3) return undefined
    const [action, price, amount] = level
    if ((action !== "new" && action !== "change" && action !== "delete") || typeof price !== "number" || typeof amount !== "number") return undefined
    read[i] = [action, price, amount]
  }
  return read
}

export const readBook = wireReader(DeribitBook)((u) => {
  if (!isRecord(u)) return undefined
  const { type, timestamp, instrument_name, change_id, prev_change_id } = u
  const bids = bookLevels(u.bids)
  const asks = bookLevels(u.asks)
  if (
    (type !== "snapshot" && type !== "change") || typeof timestamp !== "number" || typeof instrument_name !== "string" ||
    typeof change_id !== "number" || bids === undefined || asks === undefined
  ) return undefined
  if (prev_change_id === undefined) return { type, timestamp, instrument_name, change_id, bids, asks }
  return typeof prev_change_id === "number" ? { type, timestamp, instrument_name, change_id, prev_change_id, bids, asks } : undefined
})

/** `ticker.{instrument}.100ms`; perpetuals add `current_funding` and `funding_8h`, options greeks and IVs. */
export const DeribitTicker = Schema.Struct({
  instrument_name: Schema.String,
  timestamp: Schema.Number,
  mark_price: Schema.Number,
  index_price: Schema.Number,
  open_interest: Schema.Number,
  current_funding: Schema.optional(Schema.Number),
  funding_8h: Schema.optional(Schema.Number),
  estimated_delivery_price: Schema.optional(Schema.Number),
  underlying_price: Schema.optional(Schema.Number),
  underlying_index: Schema.optional(Schema.String),
  mark_iv: Schema.optional(Schema.Number),
  bid_iv: Schema.optional(Schema.Number),
  ask_iv: Schema.optional(Schema.Number),
  best_bid_price: Schema.optional(Schema.NullOr(Schema.Number)),
  best_ask_price: Schema.optional(Schema.NullOr(Schema.Number)),
  greeks: Schema.optional(Schema.Struct({
    delta: Schema.Number,
    gamma: Schema.Number,
    vega: Schema.Number,
    theta: Schema.Number,
    rho: Schema.Number
  }))
})

type Ticker = { -readonly [K in keyof typeof DeribitTicker.Type]: (typeof DeribitTicker.Type)[K] }
const tickerNumbers = ["current_funding", "funding_8h", "estimated_delivery_price", "underlying_price", "mark_iv", "bid_iv", "ask_iv"] as const

export const readTicker = wireReader(DeribitTicker)((u) => {
  if (!isRecord(u)) return undefined
  const { instrument_name, timestamp, mark_price, index_price, open_interest, underlying_index, best_bid_price, best_ask_price, greeks } = u
  if (
    typeof instrument_name !== "string" || typeof timestamp !== "number" || typeof mark_price !== "number" ||
    typeof index_price !== "number" || typeof open_interest !== "number" || !optionalString(underlying_index) ||
    !(best_bid_price === null || optionalNumber(best_bid_price)) || !(best_ask_price === null || optionalNumber(best_ask_price))
  ) return undefined
  const ticker: Ticker = { instrument_name, timestamp, mark_price, index_price, open_interest }
  for (const key of tickerNumbers) {
    const value = u[key]
    if (value === undefined) continue
    if (typeof value !== "number") return undefined
    ticker[key] = value
  }
  if (underlying_index !== undefined) ticker.underlying_index = underlying_index as string
  if (best_bid_price !== undefined) ticker.best_bid_price = best_bid_price as number | null
  if (best_ask_price !== undefined) ticker.best_ask_price = best_ask_price as number | null
  if (greeks !== undefined) {
    if (!isRecord(greeks)) return undefined
    const { delta, gamma, vega, theta, rho } = greeks
    if (typeof delta !== "number" || typeof gamma !== "number" || typeof vega !== "number" || typeof theta !== "number" || typeof rho !== "number") {
      return undefined
    }
    ticker.greeks = { delta, gamma, vega, theta, rho }
  }
  return ticker
})

/** `deribit_volatility_index.{btc_usd|eth_usd}`: DVOL. */
export const VolatilityIndex = Schema.Struct({
  index_name: Schema.String,
  volatility: Schema.Number,
  timestamp: Schema.Number
})

/** `public/get_instruments`. */
export const Instrument = Schema.Struct({
  instrument_name: Schema.String,
  kind: Schema.String,
  base_currency: Schema.String,
  quote_currency: Schema.String,
  settlement_currency: Schema.optional(Schema.String),
  counter_currency: Schema.optional(Schema.String),
  contract_size: Schema.Number,
  expiration_timestamp: Schema.Number,
  settlement_period: Schema.optional(Schema.String),
  strike: Schema.optional(Schema.Number),
  option_type: Schema.optional(Schema.Literals(["call", "put"])),
  is_active: Schema.optional(Schema.Boolean),
  instrument_type: Schema.optional(Schema.String),
  future_type: Schema.optional(Schema.String)
})
export const Instruments = Schema.Array(Instrument)

/** `public/get_book_summary_by_currency`: one entry per instrument of the currency and kind. */
export const BookSummaries = Schema.Array(Schema.Struct({
  instrument_name: Schema.String,
  open_interest: Schema.Number,
  mark_price: Schema.NullOr(Schema.Number),
  creation_timestamp: Schema.Number,
  mark_iv: Schema.optional(Schema.NullOr(Schema.Number)),
  bid_price: Schema.optional(Schema.NullOr(Schema.Number)),
  ask_price: Schema.optional(Schema.NullOr(Schema.Number)),
  underlying_price: Schema.optional(Schema.NullOr(Schema.Number)),
  underlying_index: Schema.optional(Schema.NullOr(Schema.String)),
  estimated_delivery_price: Schema.optional(Schema.NullOr(Schema.Number)),
  current_funding: Schema.optional(Schema.NullOr(Schema.Number)),
  funding_8h: Schema.optional(Schema.NullOr(Schema.Number))
}))

/** `public/get_last_trades_by_instrument`: trades by `trade_seq`, oldest first when sorted "asc". */
export const TradesPage = Schema.Struct({
  trades: Schema.Array(DeribitTrade),
  has_more: Schema.Boolean
})

/** Every JSON-RPC answer: `result`, or `error` with Deribit's code. */
export const RpcResponse = Schema.Struct({
  jsonrpc: Schema.Literal("2.0"),
  id: Schema.optional(Schema.Number),
  result: Schema.optional(Schema.Unknown),
  error: Schema.optional(Schema.Struct({ code: Schema.Number, message: Schema.String })),
  usIn: Schema.optional(Schema.Number),
  usOut: Schema.optional(Schema.Number)
})
