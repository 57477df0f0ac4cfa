/**
 * Coinbase frames (Exchange feed and Advanced Trade feed) -> normalized records.
 *
 * Neither feed numbers its level-2 messages per product, but both deliver a
 * product's snapshot and updates in order on one connection. Each book message
 * therefore gets an ordinal from this decoder (a counter in arrival order), so
 * the shared book machinery can tell which updates are older than a snapshot.
 * Connection-level loss on Advanced Trade is caught by its `sequence_num` (see
 * live.ts); trade loss by trade ids, which are contiguous per product.
 *
 * Sides: on both feeds `side` is the maker's side (the resting order's), so
 * the taker side is its opposite. Advanced Trade's docs call it the trade's
 * side; the real session of 2026-08-09 (shared/fixtures/sessions) shows 48
 * `SELL` trades printed at or above the best ask and 23 `BUY` at or below the
 * best bid, none the other way: the label is the maker's.
 */
import { Result, Schema } from "effect"
import { DecodeError } from "../../domain/errors.ts"
import { decodeFailure, isoMillis, parseFrame, unreadable, WireFailure, withSchemaFallback } from "../../domain/frames.ts"
import type { Level, NormalizedRecord } from "../../domain/records.ts"
import {
  ExchangeHeartbeat,
  readAdvancedEnvelope,
  readAdvancedL2Event,
  readAdvancedTradesEvent,
  readExchangeL2Snapshot,
  readExchangeL2Update,
  readExchangeMatch,
  salvageAdvancedL2Snapshot,
  salvageExchangeL2Snapshot
} from "./wire.ts"

const decodeHeartbeat = Schema.decodeUnknownResult(ExchangeHeartbeat)

type Outcome = DecodeError | undefined | typeof unreadable

/** Exchange messages we do not store (ticker duplicates matches; status/subscriptions are bookkeeping). */
const ignoredExchangeTypes: ReadonlySet<string> = new Set(["subscriptions", "ticker", "ticker_batch", "status"])
const ignoredAdvancedChannels: ReadonlySet<string> = new Set(["subscriptions", "ticker", "ticker_batch", "status", "candles"])

/** Before this no Coinbase message can be dated: an earlier time is a placeholder, not a time. */
const earliestPlausible = Date.UTC(2014, 0, 1)

/** What the decoder learned besides records: heartbeats carry the venue's last trade id per product. */
export interface CoinbaseObservations {
  readonly onHeartbeat?: (product: string, lastTradeId: number, at: number) => void
  /**
   * A book message could not be read. Nothing numbers Coinbase's book messages
   * per product, so no later message would reveal the hole: the book (or every
   * book, when the product is unknown) must be rebuilt.
   */
  readonly onBookLoss?: (product: string | undefined) => void
}

const productOf = (data: unknown): string | undefined =>
  typeof data === "object" && data !== null && typeof (data as { product_id?: unknown }).product_id === "string"
    ? (data as { product_id: string }).product_id
    : undefined

/** Trades in the order they happened: by numeric trade id where every id is one, else as listed. */
const oldestFirst = <T extends { readonly trade_id: string }>(trades: ReadonlyArray<T>): ReadonlyArray<T> =>
  trades.every((t) => Number.isSafeInteger(Number(t.trade_id)))
    ? [...trades].sort((a, b) => Number(a.trade_id) - Number(b.trade_id))
    : trades

const levelsOf = (updates: ReadonlyArray<{ readonly side: "bid" | "offer"; readonly price_level: number; readonly new_quantity: number }>) => {
  const bids: Array<Level> = []
  const asks: Array<Level> = []
  for (const u of updates) (u.side === "bid" ? bids : asks).push([u.price_level, u.new_quantity])
  return { bids, asks }
}

export const makeDecoder = (venue: string, observations: CoinbaseObservations = {}) => {
  let ordinal = 0
  let ordinalAtFrame = 0
  const failure = decodeFailure(venue)
  const dropped = (channel: string, salvaged: { readonly dropped: number; readonly problem: string | undefined }, frame: string) =>
    new DecodeError({ venue, channel, detail: `dropped ${salvaged.dropped} unreadable level(s), kept the rest: ${salvaged.problem ?? ""}`, sample: frame.slice(0, 200), dropped: salvaged.dropped })
  /**
   * A message's time as stated. Some Exchange l2updates carry
   * "0001-01-01T00:00:00.000000Z" (unknown): they take the previous message's
   * time instead, or 0 (unknown: the book keeps its last known time) when none
   * came before.
   */
  let lastKnownTime = 0
  const time = (stated: string): number => {
    const at = isoMillis(stated)
    if (at >= earliestPlausible) {
      lastKnownTime = at
      return at
    }
    return lastKnownTime
  }

  const exchangeMessage = (data: Record<string, unknown>, frame: string, out: Array<NormalizedRecord>, fast: boolean): Outcome => {
    switch (data.type) {
      case "match":
      case "last_match": {
        const m = readExchangeMatch(data, fast)
        if (m === undefined) return unreadable
        if (m instanceof WireFailure) return failure("matches", m.message, frame)
        out.push({
          kind: "trade",
          venue,
          symbol: m.product_id,
          tradeId: String(m.trade_id),
          sequence: m.trade_id,
          price: m.price,
          size: m.size,
          side: m.side === "buy" ? "sell" : "buy",
          timestamp: time(m.time),
          details: { source: m.type, maker_side: m.side, ...(m.sequence === undefined ? {} : { feed_sequence: m.sequence }) }
        })
        return undefined
      }
      case "snapshot": {
        const s = readExchangeL2Snapshot(data, fast)
        if (s === undefined) return unreadable
        if (s instanceof WireFailure) {
          const salvaged = salvageExchangeL2Snapshot(data)
          if (salvaged === undefined || salvaged.bids.length + salvaged.asks.length === 0) {
            observations.onBookLoss?.(productOf(data))
            return failure("level2", s.message, frame)
          }
          out.push({ kind: "book_snapshot", venue, symbol: salvaged.product_id, sequence: ++ordinal, bids: salvaged.bids, asks: salvaged.asks, timestamp: 0 })
          return dropped("level2", salvaged, frame)
        }
        // The Exchange snapshot carries no time: 0 (unknown) keeps stored rows' ids independent of when it was read.
        out.push({ kind: "book_snapshot", venue, symbol: s.product_id, sequence: ++ordinal, bids: s.bids, asks: s.asks, timestamp: 0 })
        return undefined
      }
      case "l2update": {
        const u = readExchangeL2Update(data, fast)
        if (u === undefined) return unreadable
        if (u instanceof WireFailure) {
          observations.onBookLoss?.(productOf(data))
          return failure("level2", u.message, frame)
        }
        const bids: Array<Level> = []
        const asks: Array<Level> = []
        for (let i = 0; i < u.changes.length; i++) {
          const change = u.changes[i]!
          ;(change[0] === "buy" ? bids : asks).push([change[1], change[2]])
        }
        const n = ++ordinal
        out.push({ kind: "book_delta", venue, symbol: u.product_id, firstSequence: n, lastSequence: n, bids, asks, timestamp: time(u.time) })
        return undefined
      }
      case "heartbeat": {
        const decoded = decodeHeartbeat(data)
        if (Result.isFailure(decoded)) return failure("heartbeat", decoded.failure.message, frame)
        observations.onHeartbeat?.(decoded.success.product_id, decoded.success.last_trade_id, time(decoded.success.time))
        return undefined
      }
      case "error":
        return failure("error", `venue error: ${String(data.message)} ${String(data.reason ?? "")}`.trim(), frame)
      default:
        if (typeof data.type === "string" && ignoredExchangeTypes.has(data.type)) return undefined
        return failure(typeof data.type === "string" ? data.type : "unknown", "unknown message type", frame)
    }
  }

  const advancedMessage = (data: unknown, frame: string, out: Array<NormalizedRecord>, fast: boolean): Outcome => {
    const envelope = readAdvancedEnvelope(data, fast)
    if (envelope === undefined) return unreadable
    if (envelope instanceof WireFailure) {
      if ((data as { channel?: unknown }).channel === "l2_data") observations.onBookLoss?.(undefined)
      return failure("unknown", envelope.message, frame)
    }
    const { channel, events } = envelope
    const at = time(envelope.timestamp)
    switch (channel) {
      case "market_trades": {
        for (const raw of events) {
          const event = readAdvancedTradesEvent(raw, fast)
          if (event === undefined) return unreadable
          if (event instanceof WireFailure) return failure(channel, event.message, frame)
          // Coinbase lists an event's trades newest first (the 2026 session: every snapshot and every
          // multi-trade update): emitted oldest first, as they happened, so the id continuity check sees a sequence.
          const trades = event.trades.length > 1 ? oldestFirst(event.trades) : event.trades
          for (const t of trades) {
            const id = Number(t.trade_id)
            out.push({
              kind: "trade",
              venue,
              symbol: t.product_id,
              tradeId: t.trade_id,
              ...(Number.isSafeInteger(id) ? { sequence: id } : {}),
              price: t.price,
              size: t.size,
              side: t.side === "BUY" ? "sell" : "buy",
              timestamp: time(t.time),
              details: { source: event.type === "update" ? "market_trades update" : "market_trades snapshot", maker_side: t.side === "BUY" ? "buy" : "sell" }
            })
          }
        }
        return undefined
      }
      case "l2_data": {
        let partial: DecodeError | undefined
        for (const raw of events) {
          const e = readAdvancedL2Event(raw, fast)
          if (e === undefined) return unreadable
          if (e instanceof WireFailure) {
            const salvaged = salvageAdvancedL2Snapshot(raw)
            if (salvaged === undefined || salvaged.updates.length === 0) {
              observations.onBookLoss?.(productOf(raw))
              return failure(channel, e.message, frame)
            }
            // A snapshot short of a few unreadable levels is still the book; the rest of the message is read on.
            partial = dropped(channel, salvaged, frame)
            const n = ++ordinal
            out.push({ kind: "book_snapshot", venue, symbol: salvaged.product_id, sequence: n, ...levelsOf(salvaged.updates), timestamp: at })
            continue
          }
          const n = ++ordinal
          out.push(
            e.type === "snapshot"
              ? { kind: "book_snapshot", venue, symbol: e.product_id, sequence: n, ...levelsOf(e.updates), timestamp: at }
              : { kind: "book_delta", venue, symbol: e.product_id, firstSequence: n, lastSequence: n, ...levelsOf(e.updates), timestamp: at }
          )
        }
        return partial
      }
      case "heartbeats":
        return undefined
      default:
        return ignoredAdvancedChannels.has(channel) ? undefined : failure(channel, "unknown channel", frame)
    }
  }

  const decode = withSchemaFallback((frame: string, out: Array<NormalizedRecord>, fast: boolean): Outcome => {
    const parsed = parseFrame(frame, { arrays: false })
    if (typeof parsed === "string") return failure("unknown", parsed, frame)
    if ("channel" in parsed && "events" in parsed) return advancedMessage(parsed, frame, out, fast)
    if ("type" in parsed) return exchangeMessage(parsed as Record<string, unknown>, frame, out, fast)
    return failure("unknown", "neither an Exchange nor an Advanced Trade message", frame)
  }, {
    mark: () => {
      ordinalAtFrame = ordinal
    },
    rewind: () => {
      ordinal = ordinalAtFrame
    }
  })
  return decode
}
