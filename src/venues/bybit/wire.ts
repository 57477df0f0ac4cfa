/**
 * Bybit's documented v5 formats (https://bybit-exchange.github.io/docs/v5/):
 * public WebSocket topics on /v5/public/{spot,linear,inverse} and the REST
 * answers we read. Prices and sizes arrive as decimal strings.
 */
import { Schema } from "effect"
import { decimal, decimalPairs, FrameText, isRecord, wireReader, DecimalString } from "../../domain/frames.ts"

const Decimal = DecimalString
const Level = Schema.Tuple([Decimal, Decimal])

/** `orderbook.{depth}.{symbol}`: a snapshot, then deltas whose update id `u` rises by one; `u` = 1 is a reset (a new snapshot). */
export const OrderbookData = Schema.Struct({
  s: Schema.String,
  b: Schema.Array(Level),
  a: Schema.Array(Level),
  u: Schema.Number,
  seq: Schema.optional(Schema.Number)
})

/** `publicTrade.{symbol}`: `S` is the taker's side; `BT` a block trade; `i` the trade id (a UUID on derivatives, a number on spot). */
export const PublicTrade = Schema.Struct({
  T: Schema.Number,
  s: Schema.String,
  S: Schema.Literals(["Buy", "Sell"]),
  v: Decimal,
  p: Decimal,
  i: Schema.String,
  BT: Schema.optional(Schema.Boolean),
  RPI: Schema.optional(Schema.Boolean),
  L: Schema.optional(Schema.String),
  seq: Schema.optional(Schema.Number)
})

/**
 * `tickers.{symbol}` on linear and inverse: a snapshot with every field, then
 * deltas carrying only what changed (merged by the decoder). Empty strings
 * mean "none" (a dated future's funding rate). Bybit's field table:
 * `openInterest` / `openInterestValue` are "Open interest size / value (both
 * sides)", `singleOpenInterest` / `singleOpenInterestValue` "(single side)";
 * older frames carry only the both-sides pair.
 */
export const DerivativeTicker = Schema.Struct({
  symbol: Schema.String,
  markPrice: Schema.optional(Schema.String),
  indexPrice: Schema.optional(Schema.String),
  openInterest: Schema.optional(Schema.String),
  openInterestValue: Schema.optional(Schema.String),
  singleOpenInterest: Schema.optional(Schema.String),
  singleOpenInterestValue: Schema.optional(Schema.String),
  fundingRate: Schema.optional(Schema.String),
  nextFundingTime: Schema.optional(Schema.String),
  fundingIntervalHour: Schema.optional(Schema.String),
  bid1Price: Schema.optional(Schema.String),
  ask1Price: Schema.optional(Schema.String),
  lastPrice: Schema.optional(Schema.String),
  deliveryTime: Schema.optional(Schema.String)
})

/** `allLiquidation.{symbol}`: every liquidation (not a sample); `S` is the liquidated position's side, `p` the bankruptcy price. */
export const Liquidation = Schema.Struct({
  T: Schema.Number,
  s: Schema.String,
  S: Schema.Literals(["Buy", "Sell"]),
  v: Decimal,
  p: Decimal
})

/** Every data message: a topic, a type (snapshot or delta), the system time and the data. */
export const Envelope = Schema.Struct({
  topic: Schema.String,
  type: Schema.optional(Schema.String),
  ts: Schema.Number,
  cts: Schema.optional(Schema.Number),
  data: Schema.Unknown
})

/** The answer to subscribe, unsubscribe and ping (`op`), with `success` where it can fail. */
export const OperationAnswer = Schema.Struct({
  op: Schema.String,
  success: Schema.optional(Schema.Boolean),
  ret_msg: Schema.optional(Schema.String),
  conn_id: Schema.optional(Schema.String),
  req_id: Schema.optional(Schema.String)
})

// ---------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------

const LotSizeFilter = Schema.Struct({
  qtyStep: Schema.optional(Schema.String),
  basePrecision: Schema.optional(Schema.String)
})

/** One listing of `/v5/market/instruments-info` (spot, linear or inverse; the fields we read). */
export const InstrumentInfo = Schema.Struct({
  symbol: Schema.String,
  baseCoin: Schema.String,
  quoteCoin: Schema.String,
  status: Schema.optional(Schema.String),
  /** LinearPerpetual, LinearFutures, InversePerpetual, InverseFutures; absent on spot. */
  contractType: Schema.optional(Schema.String),
  settleCoin: Schema.optional(Schema.String),
  deliveryTime: Schema.optional(Schema.String),
  /** Minutes between fundings (derivatives). */
  fundingInterval: Schema.optional(Schema.Number),
  lotSizeFilter: Schema.optional(LotSizeFilter)
})
export type InstrumentInfo = typeof InstrumentInfo.Type

export const InstrumentsPage = Schema.Struct({
  retCode: Schema.Number,
  retMsg: Schema.String,
  result: Schema.Struct({
    category: Schema.String,
    list: Schema.Array(Schema.Unknown),
    nextPageCursor: Schema.optional(Schema.String)
  })
})

/** `/v5/market/recent-trade`: the latest trades (up to 1000 on derivatives, 60 on spot), newest first. */
export const RecentTrades = Schema.Struct({
  retCode: Schema.Number,
  retMsg: Schema.String,
  result: Schema.Struct({
    category: Schema.String,
    list: Schema.Array(Schema.Struct({
      execId: Schema.String,
      symbol: Schema.String,
      price: Decimal,
      size: Decimal,
      side: Schema.Literals(["Buy", "Sell"]),
      /** Epoch ms as a decimal string, read strictly (a non-number refuses the answer). */
      time: DecimalString,
      isBlockTrade: Schema.optional(Schema.Boolean)
    }))
  })
})

// ---------------------------------------------------------------------------
// Hand readers for the hot messages (test/fast-readers.test.ts holds them equal to the Schemas)
// ---------------------------------------------------------------------------

const optional = (u: unknown, type: "number" | "string" | "boolean") => u === undefined || typeof u === type

export const readEnvelope = wireReader(Envelope)((u) => {
  if (!isRecord(u)) return undefined
  const { topic, type, ts, cts, data } = u
  if (typeof topic !== "string" || !optional(type, "string") || typeof ts !== "number" || !optional(cts, "number") || !("data" in u)) return undefined
  const out: { -readonly [K in keyof typeof Envelope.Type]: (typeof Envelope.Type)[K] } = { topic, ts, data }
  if (type !== undefined) out.type = type as string
  if (cts !== undefined) out.cts = cts as number
  return out
})

export const readOrderbook = wireReader(OrderbookData)((u) => {
  if (!isRecord(u)) return undefined
  const { s, b, a, u: id, seq } = u
  if (typeof s !== "string" || typeof id !== "number" || !optional(seq, "number")) return undefined
  const bids = decimalPairs(b)
  const asks = decimalPairs(a)
  if (bids === undefined || asks === undefined) return undefined
  return seq === undefined ? { s, b: bids, a: asks, u: id } : { s, b: bids, a: asks, u: id, seq: seq as number }
})

export type Trade = { -readonly [K in keyof typeof PublicTrade.Type]: (typeof PublicTrade.Type)[K] }

export const readTrades = wireReader(Schema.Array(PublicTrade))((u) => {
  if (!Array.isArray(u)) return undefined
  const out = new Array<Trade>(u.length)
  for (let i = 0; i < u.length; i++) {
    const t = u[i]
    if (!isRecord(t)) return undefined
    const { T, s, S, v, p, i: id, BT, RPI, L, seq } = t
    const size = decimal(v)
    const price = decimal(p)
    if (
      typeof T !== "number" || typeof s !== "string" || (S !== "Buy" && S !== "Sell") || !Number.isFinite(size) || !Number.isFinite(price) ||
      typeof id !== "string" || !optional(BT, "boolean") || !optional(RPI, "boolean") || !optional(L, "string") || !optional(seq, "number")
    ) return undefined
    const trade: Trade = { T, s, S, v: size, p: price, i: id }
    if (BT !== undefined) trade.BT = BT as boolean
    if (RPI !== undefined) trade.RPI = RPI as boolean
    if (L !== undefined) trade.L = L as string
    if (seq !== undefined) trade.seq = seq as number
    out[i] = trade
  }
  return out
})

type Ticker = { -readonly [K in keyof typeof DerivativeTicker.Type]: (typeof DerivativeTicker.Type)[K] }
const tickerFields = ["markPrice", "indexPrice", "openInterest", "openInterestValue", "singleOpenInterest", "singleOpenInterestValue",
  "fundingRate", "nextFundingTime", "fundingIntervalHour", "bid1Price", "ask1Price", "lastPrice", "deliveryTime"] as const

export const readTicker = wireReader(DerivativeTicker)((u) => {
  if (!isRecord(u) || typeof u.symbol !== "string") return undefined
  const out: Ticker = { symbol: u.symbol }
  for (const field of tickerFields) {
    const value = u[field]
    if (value === undefined) continue
    if (typeof value !== "string") return undefined
    out[field] = value
  }
  return out
})

/** One trade object of a `publicTrade` frame's text, its keys in any order; undefined for anything readTrades would not give. */
const tradeText = (text: FrameText): Trade | undefined => {
  if (!text.skip("{")) return undefined
  let T = NaN, s: string | undefined, S: string | undefined, v: string | undefined, p: string | undefined, id: string | undefined
  let BT: boolean | undefined, RPI: boolean | undefined, L: string | undefined, seq: number | undefined
  let seen = 0, key = -1
  do {
    key = text.key(tradeKeys, key + 1)
    // Each key once (JSON.parse would keep the last of two; the parsed way decides then), and no other.
    if (key < 0 || (seen & (1 << key)) !== 0) return undefined
    seen |= 1 << key
    switch (key) {
      case 0: T = text.number(); break
      case 1: s = text.string(); break
      case 2: S = text.string(); break
      case 3: v = text.string(); break
      case 4: p = text.string(); break
      case 5: if ((L = text.string()) === undefined) return undefined; break
      case 6: id = text.string(); break
      case 7: if ((BT = text.boolean()) === undefined) return undefined; break
      case 8: if ((RPI = text.boolean()) === undefined) return undefined; break
      case 9: if (Number.isNaN(seq = text.number())) return undefined; break
    }
  } while (text.skip(","))
  if (!text.skip("}")) return undefined
  const size = decimal(v)
  const price = decimal(p)
  if (Number.isNaN(T) || s === undefined || (S !== "Buy" && S !== "Sell") || !Number.isFinite(size) || !Number.isFinite(price) || id === undefined) return undefined
  const trade: Trade = { T, s, S, v: size, p: price, i: id }
  if (BT !== undefined) trade.BT = BT
  if (RPI !== undefined) trade.RPI = RPI
  if (L !== undefined) trade.L = L
  if (seq !== undefined) trade.seq = seq
  return trade
}
// In the order Bybit writes them on linear (spot writes another: any order reads).
const tradeKeys = ['"T":', '"s":', '"S":', '"v":', '"p":', '"L":', '"i":', '"BT":', '"RPI":', '"seq":']

/**
 * A whole `publicTrade` frame read from its text (FrameText): `{"topic":"publicTrade.…"` first, then `type`, `ts`,
 * `cts` and `data` in any order, each once and nothing else; the trades, or undefined (the parsed way decides).
 * test/fast-readers.test.ts holds it equal to the Schemas.
 */
export const readTradeFrameText = (frame: string): Array<Trade> | undefined => {
  const text = FrameText.of(frame)
  if (text === undefined || !text.skip('{"topic":')) return undefined
  const topic = text.string()
  if (topic === undefined || !topic.startsWith("publicTrade.")) return undefined
  let trades: Array<Trade> | undefined
  let ts = NaN, seen = 0, key = -1
  while (text.skip(",")) {
    key = text.key(envelopeKeys, key + 1)
    if (key < 0 || (seen & (1 << key)) !== 0) return undefined
    seen |= 1 << key
    if (key === 3) {
      if ((trades = text.list(tradeText)) === undefined) return undefined
    } else if (key === 0) {
      if (text.string() === undefined) return undefined
    } else if (Number.isNaN(key === 1 ? (ts = text.number()) : text.number())) return undefined
  }
  return text.skip("}") && text.done() && !Number.isNaN(ts) ? trades : undefined
}
const envelopeKeys = ['"type":', '"ts":', '"cts":', '"data":']
