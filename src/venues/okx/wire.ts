/**
 * OKX's documented v5 formats (https://www.okx.com/docs-v5/en/): pushes on
 * /ws/v5/public (`{"arg": {...}, "action"?, "data": [...]}`), events
 * (`{"event": "subscribe" | "error", ...}`), and the REST answers we read
 * (`{"code": "0", "msg": "", "data": [...]}`). Numbers arrive as strings.
 */
import { Schema } from "effect"
import { decimal, FrameText, isRecord, wireReader, DecimalString } from "../../domain/frames.ts"

const Decimal = DecimalString
const Millis = DecimalString

export const Push = Schema.Struct({
  arg: Schema.Struct({ channel: Schema.String, instId: Schema.optional(Schema.String), instType: Schema.optional(Schema.String) }),
  action: Schema.optional(Schema.Literals(["snapshot", "update"])),
  data: Schema.Array(Schema.Unknown)
})

type Push = { -readonly [K in keyof typeof Push.Type]: (typeof Push.Type)[K] }
type Arg = { -readonly [K in keyof Push["arg"]]: Push["arg"][K] }

/** The hand reader of every push's envelope (test/fast-readers.test.ts holds it equal to the Schema). */
export const readPush = wireReader(Push)((u) => {
  if (!isRecord(u)) return undefined
  const { arg, action, data } = u
  if (!isRecord(arg) || !Array.isArray(data) || (action !== undefined && action !== "snapshot" && action !== "update")) return undefined
  const { channel, instId, instType } = arg
  if (typeof channel !== "string" || (instId !== undefined && typeof instId !== "string") || (instType !== undefined && typeof instType !== "string")) return undefined
  const readArg: Arg = { channel }
  if (instId !== undefined) readArg.instId = instId as string
  if (instType !== undefined) readArg.instType = instType as string
  const push: Push = { arg: readArg, data }
  if (action !== undefined) push.action = action
  return push
})

export const Event = Schema.Struct({
  event: Schema.String,
  code: Schema.optional(Schema.String),
  msg: Schema.optional(Schema.String),
  connId: Schema.optional(Schema.String)
})

/**
 * `books`: [price, size, "0" (deprecated), orders] as strings. Today's docs
 * number each message (`seqId`, and `prevSeqId`: -1 on a snapshot) and give a
 * CRC32 `checksum` of the top 25 levels; the 2022 recording has the checksum
 * but no sequence numbers.
 */
const BookLevel = Schema.Array(Schema.String)
export const BookData = Schema.Struct({
  asks: Schema.Array(BookLevel),
  bids: Schema.Array(BookLevel),
  ts: Millis,
  checksum: Schema.optional(Schema.Number),
  seqId: Schema.optional(Schema.Number),
  prevSeqId: Schema.optional(Schema.Number)
})
export type BookData = typeof BookData.Type

const stringLevels = (u: unknown): Array<Array<string>> | undefined => {
  if (!Array.isArray(u)) return undefined
  for (const level of u) {
    if (!Array.isArray(level)) return undefined
    for (const field of level) if (typeof field !== "string") return undefined
  }
  return u as Array<Array<string>>
}

/** The hand reader of `books` data (test/fast-readers.test.ts holds it equal to the Schema). */
export const readBooks = wireReader(Schema.Array(BookData))((u) => {
  if (!Array.isArray(u)) return undefined
  const out = new Array<BookData>(u.length)
  for (let i = 0; i < u.length; i++) {
    const b = u[i]
    if (!isRecord(b)) return undefined
    const asks = stringLevels(b.asks)
    const bids = stringLevels(b.bids)
    const ts = typeof b.ts === "string" ? Number(b.ts) : NaN
    const { checksum, seqId, prevSeqId } = b
    if (asks === undefined || bids === undefined || !Number.isFinite(ts) || b.ts === "" || /^\s|\s$/.test(b.ts as string)) return undefined
    if ((checksum !== undefined && typeof checksum !== "number") || (seqId !== undefined && typeof seqId !== "number") || (prevSeqId !== undefined && typeof prevSeqId !== "number")) return undefined
    const data: { -readonly [K in keyof BookData]: BookData[K] } = { asks, bids, ts }
    if (checksum !== undefined) data.checksum = checksum as number
    if (seqId !== undefined) data.seqId = seqId as number
    if (prevSeqId !== undefined) data.prevSeqId = prevSeqId as number
    out[i] = data
  }
  return out
})

/**
 * `trades`: one push per taker order and price; `count` fills aggregated (the
 * 2022 recording predates `count`: one fill), `tradeId` the last fill's id.
 */
export const Trade = Schema.Struct({
  instId: Schema.String,
  tradeId: Schema.String,
  px: Decimal,
  sz: Decimal,
  side: Schema.Literals(["buy", "sell"]),
  ts: Millis,
  count: Schema.optional(Schema.String)
})

export type Trade = { -readonly [K in keyof typeof Trade.Type]: (typeof Trade.Type)[K] }

/** One `trades` element as the Schema reads it, or undefined. */
const tradeOf = (t: unknown): Trade | undefined => {
  if (!isRecord(t)) return undefined
  const { instId, tradeId, px, sz, side, ts, count } = t
  const price = decimal(px)
  const size = decimal(sz)
  const time = decimal(ts)
  if (typeof instId !== "string" || typeof tradeId !== "string" || (side !== "buy" && side !== "sell") || Number.isNaN(price) || Number.isNaN(size) || Number.isNaN(time)) return undefined
  if (count !== undefined && typeof count !== "string") return undefined
  const trade: Trade = { instId, tradeId, px: price, sz: size, side, ts: time }
  if (count !== undefined) trade.count = count as string
  return trade
}

/** The hand reader of `trades` data (test/fast-readers.test.ts holds it equal to the Schema). */
export const readTrades = wireReader(Schema.Array(Trade))((u) => {
  if (!Array.isArray(u)) return undefined
  const out = new Array<Trade>(u.length)
  for (let i = 0; i < u.length; i++) {
    const trade = tradeOf(u[i])
    if (trade === undefined) return undefined
    out[i] = trade
  }
  return out
})

const tradeKeys = ['"instId":', '"tradeId":', '"px":', '"sz":', '"side":', '"ts":', '"count":']

/** One trade object of a `trades` frame's text, its keys in any order, each once; undefined for anything tradeOf would not give. */
const tradeText = (text: FrameText): Trade | undefined => {
  if (!text.skip("{")) return undefined
  const fields: Array<string | undefined> = [undefined, undefined, undefined, undefined, undefined, undefined, undefined]
  let key = -1
  do {
    key = text.key(tradeKeys, key + 1)
    if (key < 0 || fields[key] !== undefined) return undefined
    // Every value of a trade is a string.
    if ((fields[key] = text.string()) === undefined) return undefined
  } while (text.skip(","))
  if (!text.skip("}")) return undefined
  const [instId, tradeId, px, sz, side, ts, count] = fields
  const price = decimal(px)
  const size = decimal(sz)
  const time = decimal(ts)
  if (instId === undefined || tradeId === undefined || (side !== "buy" && side !== "sell") || Number.isNaN(price) || Number.isNaN(size) || Number.isNaN(time)) return undefined
  const trade: Trade = { instId, tradeId, px: price, sz: size, side, ts: time }
  if (count !== undefined) trade.count = count
  return trade
}

/**
 * A whole `trades` push read from its text (FrameText): exactly `{"arg":{"channel":"trades","instId":"…"},"data":[…]}`
 * (OKX's layout), the trades' keys in any order; the trades, or undefined (the parsed way decides).
 * test/fast-readers.test.ts holds it equal to the Schemas.
 */
export const readTradesFrameText = (frame: string): Array<Trade> | undefined => {
  const text = FrameText.of(frame)
  if (text === undefined || !text.skip('{"arg":{"channel":"trades","instId":') || text.string() === undefined || !text.skip('},"data":')) return undefined
  const trades = text.list(tradeText)
  return trades !== undefined && text.skip("}") && text.done() ? trades : undefined
}

/**
 * `funding-rate`: `fundingTime` is the next settlement, `nextFundingTime` the
 * one after it ("" when OKX states none). Every number is read strictly: a
 * value that is not a decimal (`"ts":"oops"`) refuses the message with its reason.
 */
export const FundingRate = Schema.Struct({
  instId: Schema.String,
  fundingRate: Decimal,
  fundingTime: Millis,
  nextFundingTime: Schema.optional(Schema.Union([Schema.Literal(""), Millis])),
  /** The forecast for the period after `fundingTime`; "" when OKX gives none (the `current_period` method). */
  nextFundingRate: Schema.optional(Schema.Union([Schema.Literal(""), Decimal])),
  /** Absent or "" when OKX does not say when: stamped at receipt. */
  ts: Schema.optional(Schema.Union([Schema.Literal(""), Millis])),
  method: Schema.optional(Schema.String)
})

/** `open-interest`: `oi` in contracts, `oiCcy` in coins, `oiUsd` OKX's own USD value. */
export const OpenInterest = Schema.Struct({
  instId: Schema.String,
  oi: Decimal,
  oiCcy: Schema.optional(Schema.String),
  oiUsd: Schema.optional(Schema.Union([Schema.Literal(""), Decimal])),
  ts: Millis
})

export const MarkPrice = Schema.Struct({
  instId: Schema.String,
  markPx: Decimal,
  ts: Millis
})

/**
 * `liquidation-orders` (per instType, every instrument): at most one order per
 * contract per second is shown (a sample); `side` is the liquidation order's,
 * `posSide` the position's; `bkPx` the bankruptcy price; `sz` in contracts.
 */
export const LiquidationOrders = Schema.Struct({
  instId: Schema.String,
  details: Schema.Array(Schema.Struct({
    bkPx: Decimal,
    side: Schema.Literals(["buy", "sell"]),
    posSide: Schema.optional(Schema.String),
    sz: Decimal,
    ts: Millis,
    bkLoss: Schema.optional(Schema.String)
  }))
})

// ---------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------

export const RestAnswer = Schema.Struct({ code: Schema.String, msg: Schema.optional(Schema.String), data: Schema.Array(Schema.Unknown) })

/** `/api/v5/public/instruments`: contract value `ctVal` in `ctValCcy` (a coin for linear, USD for inverse). */
export const InstrumentListing = Schema.Struct({
  instId: Schema.String,
  instType: Schema.Literals(["SPOT", "SWAP", "FUTURES", "OPTION", "MARGIN"]),
  baseCcy: Schema.optional(Schema.String),
  quoteCcy: Schema.optional(Schema.String),
  settleCcy: Schema.optional(Schema.String),
  ctVal: Schema.optional(Schema.String),
  ctMult: Schema.optional(Schema.String),
  ctValCcy: Schema.optional(Schema.String),
  ctType: Schema.optional(Schema.String),
  uly: Schema.optional(Schema.String),
  instFamily: Schema.optional(Schema.String),
  expTime: Schema.optional(Schema.String),
  state: Schema.optional(Schema.String)
})
export type InstrumentListing = typeof InstrumentListing.Type

/** `/api/v5/market/history-trades` (type=1: by trade id): single fills, newest first. */
export const HistoryTrade = Schema.Struct({
  instId: Schema.String,
  tradeId: Schema.String,
  px: Decimal,
  sz: Decimal,
  side: Schema.Literals(["buy", "sell"]),
  ts: Millis
})
