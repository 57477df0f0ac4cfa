/**
 * The same recorded frames through the peers' normalizers, driven offline and
 * fed fairly: each gets its own JSON.parse, its book state and the REST or
 * in-stream snapshot in its own form, and does its own book apply.
 *  - tardis-dev: the public mapper factories (normalizeTrades, normalizeBookChanges,
 *    normalizeOptionsSummary) and its OrderBook.
 *  - ccxt (pro): the exchange class's message handlers (handleMessage), with a
 *    stand-in WebSocket client (resolve() is where ccxt wakes its watchers; here it
 *    does nothing) and, for Binance, the order book seeded from the REST snapshot the
 *    way watchOrderBook seeds it.
 * A peer that has no mapper for a channel gets no figure (undefined).
 */
import { createRequire } from "node:module"

const require = createRequire(import.meta.url)
const tardis = require("tardis-dev")
const ccxt = require("ccxt")

/** A prepared consumer: a fresh peer state with the setup applied; call it per frame. */
export type FrameConsumer = (frame: string) => void

export interface PeerCase {
  /** tardis-dev exchange id and mapper kind, or undefined where tardis-dev has none. */
  readonly tardis?: {
    readonly exchange: string
    readonly kind: "trades" | "book" | "options"
    /** tardis-dev's Bybit v5 book mapper for another depth than its default 50 (the recorded session is orderbook.200). */
    readonly bybitBookDepth?: number
  }
  /** ccxt pro exchange class and the client URL its handlers look at. */
  readonly ccxt?: {
    readonly exchange: string
    readonly url: string
    readonly binanceSnapshots?: boolean
    /** Spot markets for handlers that need loaded markets (loadMarkets would fetch them over REST). */
    readonly spotMarkets?: ReadonlyArray<{ readonly id: string; readonly base: string; readonly quote: string }>
  }
  /** Frames applied before timing (in-stream snapshots), and REST snapshots for Binance books. */
  readonly setup: ReadonlyArray<string>
  readonly restSnapshots: ReadonlyArray<{ readonly symbol: string; readonly body: string }>
}

const tardisFactories = {
  trades: tardis.normalizeTrades,
  book: tardis.normalizeBookChanges,
  options: tardis.normalizeOptionsSummary
} as const

export const tardisConsumer = (peer: PeerCase): (() => FrameConsumer) | undefined => {
  const spec = peer.tardis
  if (spec === undefined) return undefined
  return () => {
    const mapper = spec.bybitBookDepth === undefined
      ? tardisFactories[spec.kind](spec.exchange, new Date())
      : new (require("tardis-dev/dist/mappers/bybit").BybitV5BookChangeMapper)(spec.exchange, spec.bybitBookDepth)
    const books = new Map<string, any>()
    const consume = (message: any) => {
      if (!mapper.canHandle(message)) return
      for (const normalized of mapper.map(message, new Date())) {
        if (spec.kind !== "book") continue
        let book = books.get(normalized.symbol)
        if (book === undefined) books.set(normalized.symbol, (book = new tardis.OrderBook()))
        book.update(normalized)
      }
    }
    // tardis-dev's recorded Binance data carries the REST snapshot as a generated `<symbol>@depthSnapshot` message.
    for (const snapshot of peer.restSnapshots) {
      consume({ stream: `${snapshot.symbol.toLowerCase()}@depthSnapshot`, generated: true, data: JSON.parse(snapshot.body) })
    }
    for (const frame of peer.setup) consume(JSON.parse(frame))
    return (frame) => consume(JSON.parse(frame))
  }
}

const quietClient = (url: string) => ({
  url,
  subscriptions: {} as Record<string, unknown>,
  futures: {} as Record<string, unknown>,
  rejections: {} as Record<string, unknown>,
  resolve: () => undefined,
  reject: () => undefined,
  send: () => Promise.resolve(),
  reset: () => undefined
})

export const ccxtConsumer = (peer: PeerCase): (() => FrameConsumer) | undefined => {
  const spec = peer.ccxt
  if (spec === undefined) return undefined
  // Constructing a ccxt exchange costs milliseconds; each pass resets its caches instead.
  const exchange = new ccxt.pro[spec.exchange]({ enableRateLimit: false })
  if (spec.spotMarkets !== undefined) {
    exchange.setMarkets(spec.spotMarkets.map(({ base, id, quote }) => ({
      id, base, quote, symbol: `${base}/${quote}`, baseId: base, quoteId: quote, type: "spot", spot: true, active: true
    })))
  }
  return () => {
    exchange.orderbooks = {}
    exchange.trades = {}
    exchange.tickers = {}
    const client = quietClient(spec.url)
    if (spec.binanceSnapshots === true) {
      for (const snapshot of peer.restSnapshots) {
        // What watchOrderBook does with fetchOrderBook's answer: a book at the snapshot's lastUpdateId.
        const body = JSON.parse(snapshot.body)
        const market = exchange.safeMarket(snapshot.symbol, undefined, undefined, spec.url.includes("fstream") ? "swap" : "spot")
        const book = exchange.orderBook({}, 1000)
        const parsed = exchange.parseOrderBook(body, market.symbol, undefined, "bids", "asks")
        book.reset(parsed)
        book.nonce = body.lastUpdateId
        exchange.orderbooks[market.symbol] = book
      }
    }
    for (const frame of peer.setup) exchange.handleMessage(client, JSON.parse(frame))
    return (frame) => exchange.handleMessage(client, JSON.parse(frame))
  }
}
