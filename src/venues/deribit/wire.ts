/**
 * Deribit's documented JSON-RPC 2.0 formats (API v2): subscription
 * notifications for `trades.*`, `book.*`, `ticker.*` and
 * `deribit_volatility_index.*`, and the REST (`/api/v2/public/...`) results we
 * read. Numbers arrive as JSON numbers.
 */
import { Schema } from "effect"

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

/** `deribit_volatility_index.{btc_usd|eth_usd}`: DVOL. */
export const VolatilityIndex = Schema.Struct({
  index_name: Schema.String,
  volatility: Schema.Number,
  timestamp: Schema.Number
})

/** `public/get_instruments`. */
export const Instruments = Schema.Array(Schema.Struct({
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
}))

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
