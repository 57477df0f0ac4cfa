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
 * Sides: on the Exchange feed `side` is the maker's side, so the taker side is
 * its opposite. Advanced Trade `market_trades` publish the taker side.
 */
import { Result, Schema } from "effect"
import type { DecodeError } from "../../domain/errors.ts"
import { decodeFailure, parseFrame } from "../../domain/frames.ts"
import type { Level, NormalizedRecord } from "../../domain/records.ts"
import {
  AdvancedEnvelope,
  AdvancedL2Event,
  AdvancedTradesEvent,
  ExchangeHeartbeat,
  ExchangeL2Snapshot,
  ExchangeL2Update,
  ExchangeMatch
} from "./wire.ts"

const decodeMatch = Schema.decodeUnknownResult(ExchangeMatch)
const decodeSnapshot = Schema.decodeUnknownResult(ExchangeL2Snapshot)
const decodeUpdate = Schema.decodeUnknownResult(ExchangeL2Update)
const decodeHeartbeat = Schema.decodeUnknownResult(ExchangeHeartbeat)
const decodeEnvelope = Schema.decodeUnknownResult(AdvancedEnvelope)
const decodeTradesEvent = Schema.decodeUnknownResult(AdvancedTradesEvent)
const decodeL2Event = Schema.decodeUnknownResult(AdvancedL2Event)

/** Exchange messages we do not store (ticker duplicates matches; status/subscriptions are bookkeeping). */
const ignoredExchangeTypes: ReadonlySet<string> = new Set(["subscriptions", "ticker", "ticker_batch", "status"])
const ignoredAdvancedChannels: ReadonlySet<string> = new Set(["subscriptions", "ticker", "ticker_batch", "status", "candles"])

const time = (iso: string): number => Date.parse(iso)

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

export const makeDecoder = (venue: string, observations: CoinbaseObservations = {}) => {
  let ordinal = 0
  const failure = decodeFailure(venue)

  const exchangeMessage = (data: Record<string, unknown>, frame: string, out: Array<NormalizedRecord>): DecodeError | undefined => {
    switch (data.type) {
      case "match":
      case "last_match": {
        const decoded = decodeMatch(data)
        if (Result.isFailure(decoded)) return failure("matches", decoded.failure.message, frame)
        const m = decoded.success
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
        const decoded = decodeSnapshot(data)
        if (Result.isFailure(decoded)) {
          observations.onBookLoss?.(productOf(data))
          return failure("level2", decoded.failure.message, frame)
        }
        const s = decoded.success
        // The Exchange snapshot carries no time: 0 (unknown) keeps stored rows' ids independent of when it was read.
        out.push({ kind: "book_snapshot", venue, symbol: s.product_id, sequence: ++ordinal, bids: s.bids, asks: s.asks, timestamp: 0 })
        return undefined
      }
      case "l2update": {
        const decoded = decodeUpdate(data)
        if (Result.isFailure(decoded)) {
          observations.onBookLoss?.(productOf(data))
          return failure("level2", decoded.failure.message, frame)
        }
        const u = decoded.success
        const bids: Array<Level> = []
        const asks: Array<Level> = []
        for (const [side, price, size] of u.changes) (side === "buy" ? bids : asks).push([price, size])
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

  const advancedMessage = (data: unknown, frame: string, out: Array<NormalizedRecord>): DecodeError | undefined => {
    const envelope = decodeEnvelope(data)
    if (Result.isFailure(envelope)) {
      if ((data as { channel?: unknown }).channel === "l2_data") observations.onBookLoss?.(undefined)
      return failure("unknown", envelope.failure.message, frame)
    }
    const { channel, events } = envelope.success
    const at = time(envelope.success.timestamp)
    switch (channel) {
      case "market_trades": {
        for (const raw of events) {
          const event = decodeTradesEvent(raw)
          if (Result.isFailure(event)) return failure(channel, event.failure.message, frame)
          for (const t of event.success.trades) {
            const id = Number(t.trade_id)
            out.push({
              kind: "trade",
              venue,
              symbol: t.product_id,
              tradeId: t.trade_id,
              ...(Number.isSafeInteger(id) ? { sequence: id } : {}),
              price: t.price,
              size: t.size,
              side: t.side === "BUY" ? "buy" : "sell",
              timestamp: time(t.time),
              details: { source: `market_trades ${event.success.type}` }
            })
          }
        }
        return undefined
      }
      case "l2_data": {
        for (const raw of events) {
          const event = decodeL2Event(raw)
          if (Result.isFailure(event)) {
            observations.onBookLoss?.(productOf(raw))
            return failure(channel, event.failure.message, frame)
          }
          const e = event.success
          const bids: Array<Level> = []
          const asks: Array<Level> = []
          for (const u of e.updates) (u.side === "bid" ? bids : asks).push([u.price_level, u.new_quantity])
          const n = ++ordinal
          out.push(
            e.type === "snapshot"
              ? { kind: "book_snapshot", venue, symbol: e.product_id, sequence: n, bids, asks, timestamp: at }
              : { kind: "book_delta", venue, symbol: e.product_id, firstSequence: n, lastSequence: n, bids, asks, timestamp: at }
          )
        }
        return undefined
      }
      case "heartbeats":
        return undefined
      default:
        return ignoredAdvancedChannels.has(channel) ? undefined : failure(channel, "unknown channel", frame)
    }
  }

  return (frame: string, out: Array<NormalizedRecord>): DecodeError | undefined => {
    const parsed = parseFrame(frame, { arrays: false })
    if (typeof parsed === "string") return failure("unknown", parsed, frame)
    if ("channel" in parsed && "events" in parsed) return advancedMessage(parsed, frame, out)
    if ("type" in parsed) return exchangeMessage(parsed as Record<string, unknown>, frame, out)
    return failure("unknown", "neither an Exchange nor an Advanced Trade message", frame)
  }
}
