/**
 * Binance frames -> normalized records. Pure and synchronous: the hot path.
 * Channels the recordings carry but we do not subscribe to (bookTicker, kline)
 * are recognised and skipped; anything else is a DecodeError.
 */
import { Result, Schema } from "effect"
import type { DecodeError } from "../../domain/errors.ts"
import { decodeFailure, parseFrame, unreadable, WireFailure, withSchemaFallback } from "../../domain/frames.ts"
import type { NormalizedRecord } from "../../domain/records.ts"
import { ForceOrder, MarkPriceUpdate, readAggTrade, readDepthUpdate } from "./wire.ts"

const decodeMarkPrice = Schema.decodeUnknownResult(MarkPriceUpdate)
const decodeForceOrder = Schema.decodeUnknownResult(ForceOrder)

const ignoredEvents: ReadonlySet<string> = new Set(["kline", "24hrTicker", "24hrMiniTicker", "bookTicker", "trade"])

/** What the decoder learned besides records. */
export interface BinanceObservations {
  /**
   * `serverShutdown` (spot, 2026): the server will close this connection soon
   * (about ten minutes); a new one should be opened at once.
   */
  readonly onServerShutdown?: () => void
}

export const makeDecoder = (venue: string, observations: BinanceObservations = {}) => {
  const failure = decodeFailure(venue)

  type Outcome = DecodeError | undefined | typeof unreadable

  const payload = (data: unknown, frame: string, out: Array<NormalizedRecord>, fast: boolean): Outcome => {
    if (Array.isArray(data)) {
      for (const item of data) {
        const error = payload(item, frame, out, fast)
        if (error !== undefined) return error
      }
      return undefined
    }
    if (typeof data !== "object" || data === null) return failure("unknown", "payload is not an object", frame)
    const event = (data as { readonly e?: unknown }).e
    switch (event) {
      case "aggTrade": {
        const t = readAggTrade(data, fast)
        if (t === undefined) return unreadable
        if (t instanceof WireFailure) return failure("aggTrade", t.message, frame)
        out.push({
          kind: "trade",
          venue,
          symbol: t.s,
          tradeId: String(t.a),
          sequence: t.a,
          price: t.p,
          size: t.q,
          side: t.m ? "sell" : "buy",
          timestamp: t.T,
          details: { first_trade_id: t.f, last_trade_id: t.l, fills: t.l - t.f + 1, source: "aggTrade" }
        })
        return undefined
      }
      case "depthUpdate": {
        const d = readDepthUpdate(data, fast)
        if (d === undefined) return unreadable
        if (d instanceof WireFailure) return failure("depth", d.message, frame)
        const delta: NormalizedRecord = d.pu === undefined
          ? { kind: "book_delta", venue, symbol: d.s, firstSequence: d.U, lastSequence: d.u, bids: d.b, asks: d.a, timestamp: d.E }
          : {
            kind: "book_delta",
            venue,
            symbol: d.s,
            firstSequence: d.U,
            lastSequence: d.u,
            previousSequence: d.pu,
            bids: d.b,
            asks: d.a,
            timestamp: d.E
          }
        out.push(delta)
        return undefined
      }
      case "markPriceUpdate": {
        const decoded = decodeMarkPrice(data)
        if (Result.isFailure(decoded)) return failure("markPrice", decoded.failure.message, frame)
        const m = decoded.success
        // Dated (delivery) contracts publish `r: ""` and `T: 0`: no funding, only a mark price.
        if (m.r === "" || m.T === 0) {
          out.push({ kind: "mark_price", venue, symbol: m.s, markPrice: m.p, indexPrice: m.i, timestamp: m.E })
          return undefined
        }
        out.push({
          kind: "funding",
          venue,
          symbol: m.s,
          rate: m.r,
          // Binance publishes no predicted rate; `P` is the estimated settle price and must not land here.
          predictedRate: null,
          markPrice: m.p,
          indexPrice: m.i,
          nextFundingTime: m.T,
          timestamp: m.E,
          details: m.P === undefined ? { source: "markPrice@1s" } : { source: "markPrice@1s", estimated_settle_price: m.P }
        })
        return undefined
      }
      case "forceOrder": {
        const decoded = decodeForceOrder(data)
        if (Result.isFailure(decoded)) return failure("forceOrder", decoded.failure.message, frame)
        const o = decoded.success.o
        out.push({
          kind: "liquidation",
          venue,
          symbol: o.s,
          side: o.S === "BUY" ? "buy" : "sell",
          price: o.p,
          averagePrice: o.ap,
          filledSize: o.z,
          timestamp: o.T,
          sampled: true,
          details: {
            source: "forceOrder",
            order_status: o.X,
            order_type: o.o,
            original_quantity: o.q,
            sampled: true,
            sample_window_ms: 1000,
            note: "Binance pushes at most one liquidation (the latest) per symbol per second; totals are lower bounds"
          }
        })
        return undefined
      }
      case "serverShutdown":
        observations.onServerShutdown?.()
        return undefined
      default:
        if (typeof event === "string" && ignoredEvents.has(event)) return undefined
        // Spot bookTicker carries no event type: recognise it by its fields.
        if (event === undefined && "u" in data && "b" in data && "a" in data && "B" in data) return undefined
        return failure(typeof event === "string" ? event : "unknown", "unknown message type", frame)
    }
  }

  return withSchemaFallback((frame: string, out: Array<NormalizedRecord>, fast: boolean): Outcome => {
    const parsed = parseFrame(frame, { arrays: true })
    if (typeof parsed === "string") return failure("unknown", parsed, frame)
    if ("stream" in parsed && "data" in parsed) return payload(parsed.data, frame, out, fast)
    if ("result" in parsed && "id" in parsed) return undefined
    if ("error" in parsed) return failure("error", `venue error: ${JSON.stringify(parsed.error)}`, frame)
    // Connection events come wrapped as {"event": {"e": "serverShutdown", "E": ...}} (documented for the WebSocket API).
    if ("event" in parsed && typeof parsed.event === "object" && parsed.event !== null) return payload(parsed.event, frame, out, fast)
    return payload(parsed, frame, out, fast)
  })
}
