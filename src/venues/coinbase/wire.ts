/**
 * Coinbase's documented wire formats: the Exchange feed (ws-feed.exchange.coinbase.com:
 * `matches`, `level2`/`level2_batch`, `heartbeat`), the Advanced Trade feed
 * (advanced-trade-ws.coinbase.com: `market_trades`, `level2` received as `l2_data`,
 * `heartbeats`), and the Exchange REST bodies we read. Decimal strings decode to
 * numbers here, once.
 */
import { Schema } from "effect"

const Decimal = Schema.FiniteFromString
const IsoTime = Schema.String

/** Exchange `match` / `last_match`. `side` is the MAKER order's side (a sell maker = an up-tick). */
export const ExchangeMatch = Schema.Struct({
  type: Schema.Literals(["match", "last_match"]),
  trade_id: Schema.Number,
  sequence: Schema.optional(Schema.Number),
  product_id: Schema.String,
  price: Decimal,
  size: Decimal,
  side: Schema.Literals(["buy", "sell"]),
  time: IsoTime
})

/** Exchange `level2` (and `level2_batch`, same schema): the first message per product. */
export const ExchangeL2Snapshot = Schema.Struct({
  type: Schema.Literal("snapshot"),
  product_id: Schema.String,
  bids: Schema.Array(Schema.Tuple([Decimal, Decimal])),
  asks: Schema.Array(Schema.Tuple([Decimal, Decimal]))
})

/** Exchange `l2update`: [side, price, new size]; a size of 0 removes the level. */
export const ExchangeL2Update = Schema.Struct({
  type: Schema.Literal("l2update"),
  product_id: Schema.String,
  changes: Schema.Array(Schema.Tuple([Schema.Literals(["buy", "sell"]), Decimal, Decimal])),
  time: IsoTime
})

/** Exchange `heartbeat`: per product, every second, with the last trade id. */
export const ExchangeHeartbeat = Schema.Struct({
  type: Schema.Literal("heartbeat"),
  product_id: Schema.String,
  sequence: Schema.Number,
  last_trade_id: Schema.Number,
  time: IsoTime
})

/** Advanced Trade `market_trades` trade. `side` as published (see normalize.ts on which side it is). */
export const AdvancedTrade = Schema.Struct({
  trade_id: Schema.String,
  product_id: Schema.String,
  price: Decimal,
  size: Decimal,
  side: Schema.Literals(["BUY", "SELL"]),
  time: IsoTime
})

export const AdvancedTradesEvent = Schema.Struct({
  type: Schema.Literals(["snapshot", "update"]),
  trades: Schema.Array(AdvancedTrade)
})

/** Advanced Trade `l2_data` event: `new_quantity` is the level's new size (0 removes it), not a delta. */
export const AdvancedL2Event = Schema.Struct({
  type: Schema.Literals(["snapshot", "update"]),
  product_id: Schema.String,
  updates: Schema.Array(Schema.Struct({
    side: Schema.Literals(["bid", "offer"]),
    event_time: IsoTime,
    price_level: Decimal,
    new_quantity: Decimal
  }))
})

/** Every Advanced Trade message: one envelope, `sequence_num` counting every message of the connection. */
export const AdvancedEnvelope = Schema.Struct({
  channel: Schema.String,
  timestamp: IsoTime,
  sequence_num: Schema.Number,
  events: Schema.Array(Schema.Unknown)
})

/** REST `GET /products`. */
export const Products = Schema.Array(Schema.Struct({
  id: Schema.String,
  base_currency: Schema.String,
  quote_currency: Schema.String,
  status: Schema.optional(Schema.String),
  trading_disabled: Schema.optional(Schema.Boolean)
}))

/** REST `GET /products/{id}/trades`: newest first; `side` is the maker side, as on the feed. */
export const TradesPage = Schema.Array(Schema.Struct({
  trade_id: Schema.Number,
  price: Decimal,
  size: Decimal,
  side: Schema.Literals(["buy", "sell"]),
  time: IsoTime
}))

/** REST `GET /products/{id}/book?level=2`: [price, size, order count]. */
export const ProductBook = Schema.Struct({
  sequence: Schema.Number,
  bids: Schema.Array(Schema.Tuple([Decimal, Decimal, Schema.Number])),
  asks: Schema.Array(Schema.Tuple([Decimal, Decimal, Schema.Number]))
})
