/**
 * OKX v5 public pushes -> normalized records.
 *
 * - `books` (400 levels, every 100 ms): a snapshot on subscribing, then
 *   updates. Today's docs number them (`prevSeqId` must be the previous
 *   `seqId`; an update with no change repeats it) and every message carries a
 *   CRC32 `checksum` of the top 25 levels, verified here against the book kept
 *   in OKX's own strings (checksum.ts): a mismatch is a `book_invalid` record
 *   (the book resyncs and the ledger records a `checksum` gap) and the book is
 *   not checked again until its next snapshot. The 2022 recording predates
 *   `seqId`: without it, messages are numbered here in arrival order and the
 *   checksum alone guards the book.
 * - `trades`: one push per taker order and price (like Binance's aggTrade);
 *   `count` fills aggregated, `tradeId` the last fill's id, so the record
 *   covers ids tradeId - count + 1 .. tradeId (contiguous per instrument).
 * - `funding-rate`: `fundingTime` is the NEXT settlement (stored as the next
 *   funding time), `nextFundingTime` the one after; their distance is the
 *   interval. `nextFundingRate`, when it carries a value, is OKX's forecast
 *   for the following period (the predicted rate; "" under the
 *   `current_period` method). A push without `ts` is stamped at receipt (its
 *   time 0 is "not sent", domain/validate.ts).
 * - `open-interest` (contracts; `oiUsd` kept to compare ours with), at most
 *   once per `openInterestIntervalMs`; `mark-price` (values open interest).
 * - `liquidation-orders` (every instrument of a type): `side` is the order's,
 *   `posSide` the position's in hedge mode ("net" in net mode, where the
 *   order's side tells: a sell closes a long), `bkPx` the bankruptcy price; OKX shows at most
 *   one per contract per second, and repeats recent ones after subscribing
 *   (ids made of the event absorb the repeats).
 * - Text `pong` answers our `ping`; events acknowledge subscriptions or report
 *   an error (a DecodeError naming OKX's code).
 */
import { Result, Schema } from "effect"
import { DecodeError } from "../../domain/errors.ts"
import { decodeEach, decodeFailure, parseFrame, unreadable, WireFailure, withSchemaFallback } from "../../domain/frames.ts"
import type { Level, NormalizedRecord } from "../../domain/records.ts"
import { ChecksumBook } from "./checksum.ts"
import { Event, FundingRate, LiquidationOrders, MarkPrice, OpenInterest, type Push, readBooks, readPush, readTrades, readTradesFrameText, type Trade } from "./wire.ts"

const decodeEvent = Schema.decodeUnknownResult(Event)

type Outcome = DecodeError | undefined | typeof unreadable
// One push carries many instruments: an unreadable one is dropped and counted, its neighbours kept.
const decodeFunding = decodeEach(FundingRate)
const decodeOpenInterest = decodeEach(OpenInterest)
const decodeMarkPrice = Schema.decodeUnknownResult(Schema.Array(MarkPrice))
const decodeLiquidations = Schema.decodeUnknownResult(Schema.Array(LiquidationOrders))

export interface OkxDecoderOptions {
  readonly openInterestIntervalMs: number
  /** Liquidations arrive for every instrument of a type: only these are kept. */
  readonly wanted?: (instId: string) => boolean
}

interface BookCheck {
  readonly book: ChecksumBook
  /** False after a mismatch, until the next snapshot. */
  valid: boolean
  /** Our own numbering when OKX sends no seqId (the 2022 format). */
  counter: number
}

const levels = (raw: ReadonlyArray<ReadonlyArray<string>>, symbol: string): Array<Level> | string => {
  const out = new Array<Level>(raw.length)
  for (let i = 0; i < raw.length; i++) {
    const price = Number(raw[i]![0])
    const size = Number(raw[i]![1])
    if (!Number.isFinite(price) || !Number.isFinite(size) || raw[i]!.length < 2) return `unreadable level in ${symbol}`
    out[i] = [price, size]
  }
  return out
}

export const makeDecoder = (venue: string, options: OkxDecoderOptions = { openInterestIntervalMs: 60_000 }) => {
  const failure = decodeFailure(venue)
  const dropped = (channel: string, salvaged: { readonly dropped: number; readonly problem: string | undefined }, frame: string) =>
    new DecodeError({ venue, channel, detail: `dropped ${salvaged.dropped} unreadable element(s), kept the rest: ${salvaged.problem ?? ""}`, sample: frame.slice(0, 200), dropped: salvaged.dropped })
  const books = new Map<string, BookCheck>()
  const openInterestAt = new Map<string, number>()

  const book = (instId: string, action: "snapshot" | "update" | undefined, data: unknown, frame: string, out: Array<NormalizedRecord>, fast: boolean): Outcome => {
    const decoded = readBooks(data, fast)
    // Read whole before any state changes: a reader that gives up leaves the checksum books untouched.
    if (decoded === undefined) return unreadable
    if (decoded instanceof WireFailure) return failure("books", decoded.message, frame)
    for (const b of decoded) {
      const bids = levels(b.bids, instId)
      const asks = levels(b.asks, instId)
      if (typeof bids === "string" || typeof asks === "string") return failure("books", typeof bids === "string" ? bids : asks as string, frame)
      let check = books.get(instId)
      if (action === "snapshot" || check === undefined) {
        check = { book: new ChecksumBook(), valid: action === "snapshot", counter: 0 }
        books.set(instId, check)
      }
      if (check.valid) check.book.apply(b.bids, b.asks)
      if (action === "snapshot") {
        out.push({ kind: "book_snapshot", venue, symbol: instId, sequence: b.seqId ?? 0, bids, asks, timestamp: b.ts })
      } else {
        const previous = b.prevSeqId ?? check.counter
        const sequence = b.seqId ?? ++check.counter
        out.push({ kind: "book_delta", venue, symbol: instId, firstSequence: sequence, lastSequence: sequence, previousSequence: previous, bids, asks, timestamp: b.ts })
      }
      if (check.valid && b.checksum !== undefined) {
        const ours = check.book.checksum()
        if (ours !== b.checksum) {
          check.valid = false
          // A stable reason: it labels the resync metric and the gap.
          out.push({ kind: "book_invalid", venue, symbol: instId, reason: "checksum mismatch", timestamp: b.ts })
        }
      }
    }
    return undefined
  }

  const pushTrades = (trades: ReadonlyArray<Trade>, out: Array<NormalizedRecord>) => {
    for (const t of trades) {
      const id = Number(t.tradeId)
      const count = t.count === undefined ? 1 : Number(t.count)
      const numbered = Number.isSafeInteger(id) && Number.isSafeInteger(count) && count >= 1
      out.push({
        kind: "trade",
        venue,
        symbol: t.instId,
        tradeId: t.tradeId,
        ...(numbered ? { sequence: id, ...(count > 1 ? { firstSequence: id - count + 1 } : {}) } : {}),
        price: t.px,
        size: t.sz,
        side: t.side,
        timestamp: t.ts,
        details: { source: "trades", ...(t.count === undefined ? {} : { fills: count }) }
      })
    }
  }

  const push = (message: typeof Push.Type, frame: string, out: Array<NormalizedRecord>, fast: boolean): Outcome => {
    const { channel, instId } = message.arg
    switch (channel) {
      case "books":
        if (instId === undefined) return failure("books", "no instId", frame)
        return book(instId, message.action, message.data, frame, out, fast)
      case "trades": {
        const decoded = readTrades(message.data, fast)
        if (decoded === undefined) return unreadable
        if (decoded instanceof WireFailure) return failure("trades", decoded.message, frame)
        pushTrades(decoded, out)
        return undefined
      }
      case "funding-rate": {
        const decoded = decodeFunding(message.data)
        if (decoded === undefined) return failure("funding-rate", "data is not an array", frame)
        if (decoded.kept.length === 0 && decoded.dropped > 0) return failure("funding-rate", decoded.problem ?? "", frame)
        for (const f of decoded.kept) {
          const next = f.fundingTime
          const after = f.nextFundingTime === undefined || f.nextFundingTime === "" ? undefined : f.nextFundingTime
          out.push({
            kind: "funding",
            venue,
            symbol: f.instId,
            rate: f.fundingRate,
            predictedRate: f.nextFundingRate === undefined || f.nextFundingRate === "" ? null : f.nextFundingRate,
            markPrice: null,
            indexPrice: null,
            nextFundingTime: next,
            // "" or absent: not sent, stamped at receipt by the shared check (domain/validate.ts).
            timestamp: f.ts === undefined || f.ts === "" ? 0 : f.ts,
            details: {
              source: "funding-rate",
              ...(after === undefined ? {} : { following_funding_time: after, interval_hours_stated: (after - next) / 3_600_000 }),
              ...(f.method === undefined ? {} : { method: f.method })
            }
          })
        }
        return decoded.dropped > 0 ? dropped("funding-rate", decoded, frame) : undefined
      }
      case "open-interest": {
        const decoded = decodeOpenInterest(message.data)
        if (decoded === undefined) return failure("open-interest", "data is not an array", frame)
        if (decoded.kept.length === 0 && decoded.dropped > 0) return failure("open-interest", decoded.problem ?? "", frame)
        for (const o of decoded.kept) {
          const last = openInterestAt.get(o.instId)
          if (last !== undefined && o.ts - last < options.openInterestIntervalMs) continue
          openInterestAt.set(o.instId, o.ts)
          const venueUsd = o.oiUsd === undefined || o.oiUsd === "" ? undefined : o.oiUsd
          out.push({ kind: "open_interest", venue, symbol: o.instId, openInterest: o.oi, timestamp: o.ts, ...(venueUsd === undefined ? {} : { venueValueUsd: venueUsd }) })
        }
        return decoded.dropped > 0 ? dropped("open-interest", decoded, frame) : undefined
      }
      case "mark-price": {
        const decoded = decodeMarkPrice(message.data)
        if (Result.isFailure(decoded)) return failure("mark-price", decoded.failure.message, frame)
        for (const m of decoded.success) out.push({ kind: "mark_price", venue, symbol: m.instId, markPrice: m.markPx, indexPrice: null, timestamp: m.ts })
        return undefined
      }
      case "liquidation-orders": {
        const decoded = decodeLiquidations(message.data)
        if (Result.isFailure(decoded)) return failure("liquidation-orders", decoded.failure.message, frame)
        for (const l of decoded.success) {
          if (options.wanted !== undefined && !options.wanted(l.instId)) continue
          for (const d of l.details) {
            out.push({
              kind: "liquidation",
              venue,
              symbol: l.instId,
              side: d.side,
              price: d.bkPx,
              averagePrice: d.bkPx,
              filledSize: d.sz,
              timestamp: d.ts,
              // OKX gives no id, and repeats recent liquidations after a subscription: an id made of the event.
              id: `${d.ts}-${d.side}-${d.bkPx}-${d.sz}`,
              sampled: true,
              details: {
                // Hedge mode names the position; net mode ("net") and older pushes leave it to the order: a sell closes a long.
                position_side: d.posSide === "long" || d.posSide === "short" ? d.posSide : d.side === "sell" ? "long" : "short",
                ...(d.posSide === "net" ? { position_mode: "net" } : {}),
                price_kind: "bankruptcy",
                sampling: "a sample: OKX shows at most one liquidation order per contract per second",
                ...(d.bkLoss === undefined ? {} : { bankruptcy_loss: d.bkLoss })
              }
            })
          }
        }
        return undefined
      }
      case "tickers":
        return undefined
      default:
        return failure(channel, "unknown channel", frame)
    }
  }

  return withSchemaFallback((frame: string, out: Array<NormalizedRecord>, fast: boolean): Outcome => {
    if (frame === "pong") return undefined
    // The hottest push straight from its text; anything else, or any surprise in it, the parsed way.
    if (fast && frame.startsWith('{"arg":{"channel":"trades",')) {
      const trades = readTradesFrameText(frame)
      if (trades !== undefined) {
        pushTrades(trades, out)
        return undefined
      }
    }
    const parsed = parseFrame(frame, { arrays: false })
    if (typeof parsed === "string") return failure("unknown", parsed, frame)
    if ("event" in parsed) {
      const event = decodeEvent(parsed)
      if (Result.isFailure(event)) return failure("event", event.failure.message, frame)
      if (event.success.event === "error") return failure("error", `venue error ${event.success.code ?? "?"}: ${event.success.msg ?? ""}`, frame)
      return undefined
    }
    const message = readPush(parsed, fast)
    if (message === undefined) return unreadable
    if (message instanceof WireFailure) return failure("unknown", message.message, frame)
    return push(message, frame, out, fast)
  })
}
