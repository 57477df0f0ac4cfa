/**
 * Bybit v5 public frames -> normalized records.
 *
 * - `orderbook.{depth}.{symbol}`: a snapshot (also whenever Bybit restarts its
 *   service, with `u` = 1: a reset, not a gap), then deltas numbered by `u`.
 * - `publicTrade.{symbol}`: `S` is the taker's side; block trades are flagged
 *   in the details. Trades carry no contiguous number: a lost one is invisible.
 * - `tickers.{symbol}` (derivatives): a snapshot, then deltas with only the
 *   fields that changed, merged here per symbol. Each message yields the
 *   funding reading (a dated future has none: its mark price instead) and, at
 *   most once per `openInterestIntervalMs` of exchange time, open interest.
 *   Open interest is stored ONE side, as every other venue counts it: Bybit's
 *   `singleOpenInterest` where sent (Bybit rounds it: it is not always exactly
 *   half), else half its both-sides `openInterest` (older frames), each
 *   reading saying which in `details.open_interest_sides`.
 * - `allLiquidation.{symbol}`: every liquidation. `S` is the liquidated
 *   POSITION's side, so the liquidation order is the opposite (a long
 *   liquidated is a sell); `p` is the bankruptcy price.
 * - `{"op": ...}` answers: a refused subscription is a DecodeError naming
 *   Bybit's message; pongs and acknowledgements are bookkeeping.
 */
import { Result, Schema } from "effect"
import type { DecodeError } from "../../domain/errors.ts"
import { decodeFailure, parseFrame, unreadable, WireFailure, withSchemaFallback } from "../../domain/frames.ts"
import type { Level, NormalizedRecord, Side } from "../../domain/records.ts"
import { type DerivativeTicker, type Envelope, Liquidation, OperationAnswer, readEnvelope, readOrderbook, readTicker, readTradeFrameText, readTrades, type Trade } from "./wire.ts"

type Outcome = DecodeError | undefined | typeof unreadable
const decodeLiquidations = Schema.decodeUnknownResult(Schema.Array(Liquidation))
const decodeAnswer = Schema.decodeUnknownResult(OperationAnswer)

const side = (s: "Buy" | "Sell"): Side => (s === "Buy" ? "buy" : "sell")
const opposite = (s: "Buy" | "Sell"): Side => (s === "Buy" ? "sell" : "buy")

/** A ticker field as a number; absent and "" (no value, e.g. a future's funding rate) are undefined. */
const numberOf = (s: string | undefined): number | undefined => {
  if (s === undefined || s === "") return undefined
  const n = Number(s)
  return Number.isFinite(n) ? n : undefined
}

type TickerState = { -readonly [K in keyof typeof DerivativeTicker.Type]: (typeof DerivativeTicker.Type)[K] }

export interface BybitDecoderOptions {
  /** Open interest at most this often per symbol (exchange time); the ticker sends it with every change. */
  readonly openInterestIntervalMs: number
  /** Funding interval per symbol, from the instruments (the ticker's `fundingIntervalHour` when it carries one). */
  readonly fundingHours?: (symbol: string) => number | undefined
  /**
   * The category this connection serves, when known. On linear Bybit's open
   * interest value is in the quote coin (USDT/USDC, taken as USD) and is kept
   * as the venue's figure to compare ours with; on inverse it is in coins.
   */
  readonly category?: "linear" | "inverse"
}

/** How a stored Bybit open interest was obtained: `metadata.open_interest_sides`. */
export const openInterestSides = {
  /** Bybit's `singleOpenInterest`, as sent. */
  single: "single",
  /** Half of Bybit's both-sides `openInterest`: the frame carried no single-side figure. */
  halved: "halved_from_both_sides"
} as const

/** The one-sided open interest of a merged ticker, its one-sided value where Bybit states one, and how it was obtained. */
const oneSided = (state: TickerState): { readonly openInterest: number; readonly value: number | undefined; readonly sides: string } | undefined => {
  const single = numberOf(state.singleOpenInterest)
  if (single !== undefined) return { openInterest: single, value: numberOf(state.singleOpenInterestValue), sides: openInterestSides.single }
  const both = numberOf(state.openInterest)
  if (both === undefined) return undefined
  const bothValue = numberOf(state.openInterestValue)
  return { openInterest: both / 2, value: bothValue === undefined ? undefined : bothValue / 2, sides: openInterestSides.halved }
}

export const makeDecoder = (venue: string, options: BybitDecoderOptions = { openInterestIntervalMs: 60_000 }) => {
  const failure = decodeFailure(venue)
  const tickers = new Map<string, TickerState>()
  const openInterestAt = new Map<string, number>()

  const levels = (raw: ReadonlyArray<readonly [number, number]>): Array<Level> => raw.map(([p, q]) => [p, q])

  const ticker = (data: unknown, ts: number, type: string | undefined, frame: string, out: Array<NormalizedRecord>, fast: boolean): Outcome => {
    const update = readTicker(data, fast)
    if (update === undefined) return unreadable
    if (update instanceof WireFailure) return failure("tickers", update.message, frame)
    // A snapshot replaces what we knew; a delta changes only the fields it carries.
    const state: TickerState = type === "snapshot" ? { ...update } : { ...(tickers.get(update.symbol) ?? {}), ...update }
    // A both-sides figure that changed without its single-side one leaves the single one stale: halve the new one instead.
    if (update.openInterest !== undefined && update.singleOpenInterest === undefined) delete state.singleOpenInterest
    if (update.openInterestValue !== undefined && update.singleOpenInterestValue === undefined) delete state.singleOpenInterestValue
    tickers.set(update.symbol, state)
    const symbol = update.symbol
    const mark = numberOf(state.markPrice)
    const index = numberOf(state.indexPrice)
    const rate = numberOf(state.fundingRate)
    if (rate !== undefined) {
      const hours = numberOf(state.fundingIntervalHour) ?? options.fundingHours?.(symbol)
      out.push({
        kind: "funding",
        venue,
        symbol,
        rate,
        predictedRate: null,
        markPrice: mark ?? null,
        indexPrice: index ?? null,
        nextFundingTime: numberOf(state.nextFundingTime) ?? null,
        timestamp: ts,
        details: { source: "tickers", ...(hours === undefined ? {} : { interval_hours_stated: hours }) }
      })
    } else if (mark !== undefined) {
      // A dated future: no funding, but its mark price values its open interest.
      out.push({ kind: "mark_price", venue, symbol, markPrice: mark, indexPrice: index ?? null, timestamp: ts })
    }
    const oi = oneSided(state)
    const last = openInterestAt.get(symbol)
    if (oi !== undefined && mark !== undefined && (last === undefined || ts - last >= options.openInterestIntervalMs)) {
      openInterestAt.set(symbol, ts)
      // Bybit's own one-sided USD figure (linear only: inverse values are coins) is compared with ours by the processor.
      const venueValue = options.category === "linear" ? oi.value : undefined
      out.push({
        kind: "open_interest",
        venue,
        symbol,
        openInterest: oi.openInterest,
        timestamp: ts,
        ...(venueValue === undefined ? {} : { venueValueUsd: venueValue }),
        details: { open_interest_sides: oi.sides }
      })
    }
    return undefined
  }

  const pushTrades = (trades: ReadonlyArray<Trade>, out: Array<NormalizedRecord>) => {
    for (const t of trades) {
      out.push({
        kind: "trade",
        venue,
        symbol: t.s,
        tradeId: t.i,
        price: t.p,
        size: t.v,
        side: side(t.S),
        timestamp: t.T,
        details: {
          ...(t.BT === true ? { block_trade: true } : {}),
          ...(t.RPI === true ? { rpi: true } : {}),
          ...(t.seq === undefined ? {} : { seq: t.seq })
        }
      })
    }
  }

  const data = (topic: string, message: typeof Envelope.Type, frame: string, out: Array<NormalizedRecord>, fast: boolean): Outcome => {
    const channel = topic.slice(0, topic.indexOf("."))
    switch (channel) {
      case "orderbook": {
        const b = readOrderbook(message.data, fast)
        if (b === undefined) return unreadable
        if (b instanceof WireFailure) return failure("orderbook", b.message, frame)
        // The matching engine's time when Bybit gives it, else the message's.
        const timestamp = message.cts ?? message.ts
        if (message.type === "snapshot") {
          out.push({ kind: "book_snapshot", venue, symbol: b.s, sequence: b.u, bids: levels(b.b), asks: levels(b.a), timestamp })
        } else if (message.type === "delta") {
          out.push({ kind: "book_delta", venue, symbol: b.s, firstSequence: b.u, lastSequence: b.u, bids: levels(b.b), asks: levels(b.a), timestamp })
        } else return failure("orderbook", `unknown type ${String(message.type)}`, frame)
        return undefined
      }
      case "publicTrade": {
        const trades = readTrades(message.data, fast)
        if (trades === undefined) return unreadable
        if (trades instanceof WireFailure) return failure("publicTrade", trades.message, frame)
        pushTrades(trades, out)
        return undefined
      }
      case "tickers":
        return ticker(message.data, message.ts, message.type, frame, out, fast)
      case "allLiquidation": {
        const decoded = decodeLiquidations(message.data)
        if (Result.isFailure(decoded)) return failure("allLiquidation", decoded.failure.message, frame)
        for (const l of decoded.success) {
          out.push({
            kind: "liquidation",
            venue,
            symbol: l.s,
            side: opposite(l.S),
            price: l.p,
            averagePrice: l.p,
            filledSize: l.v,
            timestamp: l.T,
            // Bybit gives no id: what the event is made of (several can share a millisecond and a side).
            id: `${l.T}-${l.S}-${l.p}-${l.v}`,
            details: {
              position_side: l.S === "Buy" ? "long" : "short",
              price_kind: "bankruptcy",
              sampling: "every liquidation (allLiquidation, pushed every 500 ms)"
            }
          })
        }
        return undefined
      }
      case "kline":
        return undefined
      default:
        return failure(channel, "unknown topic", frame)
    }
  }

  return withSchemaFallback((frame: string, out: Array<NormalizedRecord>, fast: boolean): Outcome => {
    // The hottest frame straight from its text; anything else, or any surprise in it, the parsed way.
    if (fast && frame.startsWith('{"topic":"publicTrade.')) {
      const trades = readTradeFrameText(frame)
      if (trades !== undefined) {
        pushTrades(trades, out)
        return undefined
      }
    }
    const parsed = parseFrame(frame, { arrays: false })
    if (typeof parsed === "string") return failure("unknown", parsed, frame)
    if ("topic" in parsed) {
      const envelope = readEnvelope(parsed, fast)
      if (envelope === undefined) return unreadable
      if (envelope instanceof WireFailure) return failure("unknown", envelope.message, frame)
      return data(envelope.topic, envelope, frame, out, fast)
    }
    const answer = decodeAnswer(parsed)
    if (Result.isFailure(answer)) return failure("unknown", "neither a topic message nor an operation answer", frame)
    if (answer.success.success === false) return failure(answer.success.op, `venue refused: ${answer.success.ret_msg ?? "no reason given"}`, frame)
    return undefined
  })
}
