/**
 * Coinbase's documented wire formats: the Exchange feed (ws-feed.exchange.coinbase.com:
 * `matches`, `level2`/`level2_batch`, `heartbeat`), the Advanced Trade feed
 * (advanced-trade-ws.coinbase.com: `market_trades`, `level2` received as `l2_data`,
 * `heartbeats`), and the Exchange REST bodies we read. Decimal strings decode to
 * numbers here, once.
 */
import { Schema } from "effect"
import { decimal, decimalPairs, decodeEach, isRecord, wireReader, DecimalString } from "../../domain/frames.ts"

const Decimal = DecimalString
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

export const readExchangeMatch = wireReader(ExchangeMatch)((u) => {
  if (!isRecord(u)) return undefined
  const { type, trade_id, sequence, product_id, side, time } = u
  const price = decimal(u.price)
  const size = decimal(u.size)
  if (
    (type !== "match" && type !== "last_match") || typeof trade_id !== "number" || typeof product_id !== "string" ||
    (side !== "buy" && side !== "sell") || typeof time !== "string" || !Number.isFinite(price) || !Number.isFinite(size)
  ) return undefined
  if (sequence === undefined) return { type, trade_id, product_id, price, size, side, time }
  return typeof sequence === "number" ? { type, trade_id, sequence, product_id, price, size, side, time } : undefined
})

/** Exchange `level2` (and `level2_batch`, same schema): the first message per product. */
export const ExchangeL2Snapshot = Schema.Struct({
  type: Schema.Literal("snapshot"),
  product_id: Schema.String,
  bids: Schema.Array(Schema.Tuple([Decimal, Decimal])),
  asks: Schema.Array(Schema.Tuple([Decimal, Decimal]))
})

export const readExchangeL2Snapshot = wireReader(ExchangeL2Snapshot)((u) => {
  if (!isRecord(u) || u.type !== "snapshot" || typeof u.product_id !== "string") return undefined
  const bids = decimalPairs(u.bids)
  const asks = decimalPairs(u.asks)
  return bids === undefined || asks === undefined ? undefined : { type: "snapshot", product_id: u.product_id, bids, asks }
})

const eachLevel = decodeEach(Schema.Tuple([Decimal, Decimal]))

/**
 * A snapshot the Schema refused, read level by level: the readable levels and
 * how many were not. Refusing it whole would resubscribe for ever if Coinbase
 * kept serving the same odd level.
 */
export const salvageExchangeL2Snapshot = (u: unknown) => {
  if (!isRecord(u) || u.type !== "snapshot" || typeof u.product_id !== "string") return undefined
  const bids = eachLevel(u.bids)
  const asks = eachLevel(u.asks)
  if (bids === undefined || asks === undefined) return undefined
  return { product_id: u.product_id, bids: bids.kept, asks: asks.kept, dropped: bids.dropped + asks.dropped, problem: bids.problem ?? asks.problem }
}

/** Exchange `l2update`: [side, price, new size]; a size of 0 removes the level. */
export const ExchangeL2Update = Schema.Struct({
  type: Schema.Literal("l2update"),
  product_id: Schema.String,
  changes: Schema.Array(Schema.Tuple([Schema.Literals(["buy", "sell"]), Decimal, Decimal])),
  time: IsoTime
})

export const readExchangeL2Update = wireReader(ExchangeL2Update)((u) => {
  if (!isRecord(u) || u.type !== "l2update") return undefined
  const { product_id, changes, time } = u
  if (typeof product_id !== "string" || typeof time !== "string" || !Array.isArray(changes)) return undefined
  const read = new Array<readonly ["buy" | "sell", number, number]>(changes.length)
  for (let i = 0; i < changes.length; i++) {
    const change = changes[i]
    if (!Array.isArray(change) || change.length !== 3) return undefined
    const side = change[0]
    const price = decimal(change[1])
    const size = decimal(change[2])
    if ((side !== "buy" && side !== "sell") || !Number.isFinite(price) || !Number.isFinite(size)) return undefined
    read[i] = [side, price, size]
  }
  return { type: "l2update", product_id, changes: read, time }
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

export const readAdvancedTradesEvent = wireReader(AdvancedTradesEvent)((u) => {
  if (!isRecord(u)) return undefined
  const { type, trades } = u
  if ((type !== "snapshot" && type !== "update") || !Array.isArray(trades)) return undefined
  const read = new Array<typeof AdvancedTrade.Type>(trades.length)
  for (let i = 0; i < trades.length; i++) {
    const t = trades[i]
    if (!isRecord(t)) return undefined
    const { trade_id, product_id, side, time } = t
    const price = decimal(t.price)
    const size = decimal(t.size)
    if (
      typeof trade_id !== "string" || typeof product_id !== "string" || (side !== "BUY" && side !== "SELL") || typeof time !== "string" ||
      !Number.isFinite(price) || !Number.isFinite(size)
    ) return undefined
    read[i] = { trade_id, product_id, price, size, side, time }
  }
  return { type, trades: read }
})

const AdvancedL2Update = Schema.Struct({
  side: Schema.Literals(["bid", "offer"]),
  event_time: IsoTime,
  price_level: Decimal,
  new_quantity: Decimal
})

/** Advanced Trade `l2_data` event: `new_quantity` is the level's new size (0 removes it), not a delta. */
export const AdvancedL2Event = Schema.Struct({
  type: Schema.Literals(["snapshot", "update"]),
  product_id: Schema.String,
  updates: Schema.Array(AdvancedL2Update)
})

const eachAdvancedUpdate = decodeEach(AdvancedL2Update)

/** An Advanced Trade snapshot event the Schema refused, read level by level (updates are never salvaged: a lost change corrupts the book). */
export const salvageAdvancedL2Snapshot = (u: unknown) => {
  if (!isRecord(u) || u.type !== "snapshot" || typeof u.product_id !== "string") return undefined
  const updates = eachAdvancedUpdate(u.updates)
  return updates === undefined ? undefined : { product_id: u.product_id, updates: updates.kept, dropped: updates.dropped, problem: updates.problem }
}

export const readAdvancedL2Event = wireReader(AdvancedL2Event)((u) => {
  if (!isRecord(u)) return undefined
  const { type, product_id, updates } = u
  if ((type !== "snapshot" && type !== "update") || typeof product_id !== "string" || !Array.isArray(updates)) return undefined
  const read = new Array<typeof AdvancedL2Event.Type["updates"][number]>(updates.length)
  for (let i = 0; i < updates.length; i++) {
    const update = updates[i]
    if (!isRecord(update)) return undefined
    const { side, event_time } = update
    const price_level = decimal(update.price_level)
    const new_quantity = decimal(update.new_quantity)
    if ((side !== "bid" && side !== "offer") || typeof event_time !== "string" || !Number.isFinite(price_level) || !Number.isFinite(new_quantity)) {
      return undefined
    }
    read[i] = { side, event_time, price_level, new_quantity }
  }
  return { type, product_id, updates: read }
})

/** Every Advanced Trade message: one envelope, `sequence_num` counting every message of the connection. */
export const AdvancedEnvelope = Schema.Struct({
  channel: Schema.String,
  timestamp: IsoTime,
  sequence_num: Schema.Number,
  events: Schema.Array(Schema.Unknown)
})

export const readAdvancedEnvelope = wireReader(AdvancedEnvelope)((u) => {
  if (!isRecord(u)) return undefined
  const { channel, timestamp, sequence_num, events } = u
  if (typeof channel !== "string" || typeof timestamp !== "string" || typeof sequence_num !== "number" || !Array.isArray(events)) return undefined
  return { channel, timestamp, sequence_num, events }
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
