/**
 * Bybit v5 live wiring, per market: `bybit` is spot, `bybit-derivatives`
 * linear (USDT and USDC perpetuals and futures) and inverse contracts. One
 * WebSocket per category (/v5/public/spot, /linear, /inverse), carrying:
 *
 * - `orderbook.{BYBIT_BOOK_DEPTH}.{symbol}` (200 by default: every 100 ms on
 *   derivatives, 200 ms on spot; snapshot then deltas by `u`, `u` = 1 a reset);
 * - `publicTrade.{symbol}`;
 * - derivatives: `tickers.{symbol}` (funding, next funding time, mark, index,
 *   open interest: deltas merged) and `allLiquidation.{symbol}` (every
 *   liquidation; the older `liquidation` topic was a sample and is retired).
 *
 * Rules from Bybit's docs (https://bybit-exchange.github.io/docs/v5/ws/connect):
 * `{"op":"ping"}` every 20 s keeps a connection alive; spot takes at most 10
 * args per subscribe request, derivatives any number within 21,000
 * characters; a resync is an unsubscribe + subscribe of that one book (Bybit
 * sends the snapshot on subscribing). Trades carry no sequence: a reconnect's
 * missing stretch is refilled from `/v5/market/recent-trade` (1000 trades on
 * derivatives, 60 on spot) and the gap says whether that covered it. REST:
 * Bybit allows 600 requests per 5 s per IP; an IP over it gets HTTP 403 for 10
 * minutes, which the gate treats as a ban.
 */
import { Clock, Config, Duration, Effect, Result } from "effect"
import { superviseFeed, type FeedSpec } from "../../feed/connection.ts"
import { makePacer, makeResubscriber } from "../../feed/pacing.ts"
import { FreshnessMonitor } from "../../feed/freshness.ts"
import { FeedRegistry } from "../../feed/status.ts"
import { type GapChannel, GapLedger } from "../../gaps/ledger.ts"
import { causeOfSessionEnd } from "../../gaps/tracker.ts"
import { DecodeError } from "../../domain/errors.ts"
import type { Trade } from "../../domain/records.ts"
import { makeFrameHandler, makeProcessor, reportDropped, type VenueRuntime } from "../../pipeline/runtime.ts"
import { chunk, connectionOpened, emitRepaired, makeVenueGaps, makeScopedRunner, recordResync, refillRecentTrades, symbolsConfig, tickBooks, watchStaleStreams } from "../../pipeline/venue-kit.ts"
import type { RecordProcessor } from "../../pipeline/processor.ts"
import { defaultGateOptions, makeRestGate } from "../../rest/gate.ts"
import { fetchDecoded, retryPatiently } from "../../rest/fetch.ts"
import type { VenueDefinition } from "../venue.ts"
import { type Category, decodeInstrumentsPage, decodeRecentTrades, fundingHoursOf, instrumentFrom } from "./instruments.ts"
import { makeDecoder } from "./normalize.ts"
import { updateIdRule } from "./rules.ts"
import type { InstrumentInfo } from "./wire.ts"

export interface BybitMarket {
  readonly venue: string
  readonly categories: ReadonlyArray<{ readonly category: Category; readonly symbolsVariable: string; readonly defaultSymbols: string }>
}

export const bybitConfig = Config.all({
  wsUrl: Config.String("BYBIT_WS_URL").pipe(Config.withDefault("wss://stream.bybit.com")),
  restUrl: Config.String("BYBIT_REST_URL").pipe(Config.withDefault("https://api.bybit.com")),
  bookDepth: Config.Int("BYBIT_BOOK_DEPTH").pipe(Config.withDefault(200)),
  pingSeconds: Config.Number("BYBIT_PING_SECONDS").pipe(Config.withDefault(20)),
  staleAfterMs: Config.Number("BYBIT_STALE_SECONDS").pipe(Config.withDefault(30), Config.map((s) => s * 1000)),
  /** Bybit documents no cap on client messages for public streams; 10 a second keeps resync storms polite. */
  outgoingMessagesPerSecond: Config.Int("BYBIT_WS_MESSAGES_PER_SECOND").pipe(Config.withDefault(10)),
  /** 600 requests per 5 s per IP is Bybit's limit; we stay far below it. */
  requestsPerSecond: Config.Int("BYBIT_REST_REQUESTS_PER_SECOND").pipe(Config.withDefault(20)),
  refillDelayMs: Config.Number("BYBIT_REFILL_DELAY_SECONDS").pipe(Config.withDefault(2), Config.map((s) => s * 1000)),
  /** How often each symbol's stream is checked against the REST recent trades (0: never). */
  reconcileMs: Config.Number("BYBIT_RECONCILE_SECONDS").pipe(Config.withDefault(30), Config.map((s) => s * 1000))
})

/** Trade ids remembered per symbol for reconciliation (beyond REST's window they cannot be checked anyway). */
const rememberedTrades = 20_000

/**
 * What the stream delivered, per symbol: trade ids with their times, the
 * latest time, and since when the record is complete (the venue's time of the
 * first message the connection received: trades before it were never ours).
 */
class StreamTrades {
  readonly ids = new Map<string, Map<string, number>>()
  /** The time of the latest trade delivered of a symbol. */
  readonly latest = new Map<string, number>()
  /** Trades REST had and the stream had not, at the last round: still missing at the next, they are missed. */
  readonly suspects = new Map<string, Set<string>>()
  since: number | undefined
  /** A reconnect's refill is pending: the outage's trades are its business, not reconciliation's. */
  refilling = false
  has(symbol: string, id: string): boolean {
    return this.ids.get(symbol)?.has(id) === true
  }
  began(at: number): void {
    this.since ??= at
  }
  saw(symbol: string, id: string, at: number): void {
    let ids = this.ids.get(symbol)
    if (ids === undefined) this.ids.set(symbol, ids = new Map())
    ids.set(id, at)
    if (ids.size > rememberedTrades) ids.delete(ids.keys().next().value as string)
    if (at > (this.latest.get(symbol) ?? 0)) this.latest.set(symbol, at)
  }
}

/** The most `/v5/market/recent-trade` returns: 1000 on derivatives, 60 on spot. */
const recentLimit = (category: Category) => (category === "spot" ? 60 : 1000)

/** Args per subscribe request: spot takes 10; derivatives any number within 21,000 characters (50 topics stay far inside). */
const argsPerRequest = (category: Category) => (category === "spot" ? 10 : 50)

export const runBybit = (market: BybitMarket, definition: VenueDefinition) => (runtime: VenueRuntime) =>
  Effect.gen(function*() {
    const venue = market.venue
    const config = yield* bybitConfig
    const registry = yield* FeedRegistry
    const ledger = yield* GapLedger
    const rest = config.restUrl.replace(/\/$/, "")
    const gate = yield* makeRestGate({ ...defaultGateOptions(venue, config.requestsPerSecond), windowMs: 1000, banStatuses: [403, 418], defaultRetryAfterMs: 60_000 })

    // Instruments of every category this market covers, page by page.
    const listings = new Map<string, InstrumentInfo>()
    const wanted = new Map<Category, ReadonlyArray<string>>()
    for (const { category, symbolsVariable, defaultSymbols } of market.categories) {
      const symbols = yield* symbolsConfig(symbolsVariable, defaultSymbols)
      if (symbols.length === 0) continue
      let cursor: string | undefined
      do {
        const url = `${rest}/v5/market/instruments-info?category=${category}&limit=1000${cursor === undefined ? "" : `&cursor=${encodeURIComponent(cursor)}`}`
        const page = yield* retryPatiently(
          `${venue} instruments ${category}`,
          gate.getJson(url, 1).pipe(Effect.flatMap((body) => {
            const decoded = decodeInstrumentsPage(body)
            return Result.isSuccess(decoded)
              ? Effect.succeed(decoded.success)
              : Effect.fail(new DecodeError({ venue, channel: "instruments-info", detail: String(typeof decoded.failure === "string" ? decoded.failure : decoded.failure.message), sample: JSON.stringify(body).slice(0, 200) }))
          }))
        )
        if (page.dropped > 0) {
          yield* reportDropped(new DecodeError({ venue, channel: `instruments-info ${category}`, detail: page.problem ?? "", sample: "", dropped: page.dropped }))
        }
        for (const info of page.kept) {
          runtime.instruments.add(instrumentFrom(venue, category, info))
          listings.set(info.symbol, info)
        }
        cursor = page.nextPageCursor
      } while (cursor !== undefined)
      const listed = symbols.filter((s) => listings.has(s))
      const unknown = symbols.filter((s) => !listings.has(s))
      if (unknown.length > 0) {
        yield* Effect.logError(`${symbolsVariable} names symbols Bybit does not list in ${category}; they are skipped`).pipe(Effect.annotateLogs({ venue, unknown: unknown.join(",") }))
      }
      if (listed.length > 0) wanted.set(category, listed)
    }

    const fetchRecent = (category: Category) => (symbol: string) =>
      fetchDecoded(gate, `${rest}/v5/market/recent-trade?category=${category}&symbol=${symbol}&limit=${recentLimit(category)}`, 1, decodeRecentTrades).pipe(
        Effect.map((page): ReadonlyArray<Trade> =>
          page.result.list.map((t) => ({
            kind: "trade" as const,
            venue,
            symbol: t.symbol,
            tradeId: t.execId,
            price: t.price,
            size: t.size,
            side: t.side === "Buy" ? "buy" as const : "sell" as const,
            timestamp: t.time,
            details: { source: "recent-trade", ...(t.isBlockTrade === true ? { block_trade: true } : {}) }
          }))
        )
      )

    for (const [category, symbols] of wanted) {
      const derivatives = category !== "spot"
      const name = `${venue}/${category}`
      const status = registry.register(name, venue)
      // Trades have no sequence (no continuity); books, funding and liquidations go through the tracker.
      const gaps = yield* makeVenueGaps({ venue, runtime, fetchTrades: undefined, maxRepairTrades: 0, processor: () => processor })
      const decoder = makeDecoder(venue, {
        openInterestIntervalMs: runtime.settings.openInterestIntervalMs,
        fundingHours: (symbol) => fundingHoursOf(listings.get(symbol)),
        ...(category === "spot" ? {} : { category })
      })
      // Every trade the stream delivers is remembered for reconciliation with REST.
      const delivered = new StreamTrades()
      const categoryDefinition: VenueDefinition = {
        ...definition,
        decodeFrame: (frame, out) => {
          const before = out.length
          const error = decoder(frame, out)
          for (let i = before; i < out.length; i++) {
            const record = out[i]!
            delivered.began(record.timestamp)
            if (record.kind === "trade") delivered.saw(record.symbol, record.tradeId, record.timestamp)
          }
          return error
        }
      }

      let send: ((message: string) => Effect.Effect<void>) | undefined
      const resubscriber = makeResubscriber({
        lingerMs: 100,
        maxKeys: argsPerRequest(category),
        messages: (topics) => [JSON.stringify({ op: "unsubscribe", args: topics }), JSON.stringify({ op: "subscribe", args: topics })]
      })
      const resubscribe = (topic: string) => Effect.suspend(() => (send === undefined ? Effect.void : resubscriber.request(topic, send)))
      const bookTopic = (symbol: string) => `orderbook.${config.bookDepth}.${symbol}`

      // The processor's hooks are synchronous: their work runs as fibers of this layer.
      const runner = yield* makeScopedRunner({ venue })

      const processor: RecordProcessor = makeProcessor(runtime, venue, {
        onBookLive: gaps.bookLive,
        sequenceRule: updateIdRule,
        fundingIntervalHours: (symbol) => ({ hours: fundingHoursOf(listings.get(symbol)), source: "instruments-info fundingInterval" }),
        requestSnapshot: (symbol, reason) => {
          if (reason !== "initial") runner("book resubscription", resubscribe(bookTopic(symbol)))
        },
        onResync: recordResync(venue, gaps, runner)
      })
      status.books = () => processor.books?.status() ?? []
      const monitor = new FreshnessMonitor(runtime.settings.freshness)
      status.freshness = monitor
      const handler = makeFrameHandler(categoryDefinition, processor, name, runtime.emit, {
        monitor,
        onFresh: (channel, symbol, at) => gaps.streamFresh(channel as GapChannel, symbol, at)
      })
      const topics = symbols.flatMap((s) => [
        bookTopic(s),
        `publicTrade.${s}`,
        ...(derivatives ? [`tickers.${s}`, `allLiquidation.${s}`] : [])
      ])
      const channels: Array<GapChannel> = derivatives ? ["book", "funding", "liquidations"] : ["book"]
      const watchFreshness = watchStaleStreams({
        feed: name,
        monitor,
        status,
        gaps,
        processor,
        resubscribe: (channel, symbol) =>
          channel === "book"
            ? resubscribe(bookTopic(symbol))
            : channel === "trades"
            ? resubscribe(`publicTrade.${symbol}`)
            : channel === "funding"
            ? resubscribe(`tickers.${symbol}`)
            : Effect.void
      })

      const spec: FeedSpec = {
        feed: name,
        venue,
        url: `${config.wsUrl.replace(/\/$/, "")}/v5/public/${category}`,
        subscribeMessages: [],
        staleAfterMs: config.staleAfterMs,
        maxLifetimeMs: Number.MAX_SAFE_INTEGER,
        pacer: () => makePacer({ messages: config.outgoingMessagesPerSecond, perMs: 1000 }),
        openSession: (sendOnThis) =>
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            send = sendOnThis
            const interrupted = status.reconnects > 0
            const since = status.lastMessageAt ?? status.connectedAt ?? now
            connectionOpened({ status, gaps, processor, monitor, symbols, channels, now })
            for (const batch of chunk(topics, argsPerRequest(category))) yield* sendOnThis(JSON.stringify({ op: "subscribe", args: batch }))
            // Bybit drops a connection that sends nothing for a while: a ping every BYBIT_PING_SECONDS.
            yield* sendOnThis(JSON.stringify({ op: "ping" })).pipe(
              Effect.delay(Duration.millis(config.pingSeconds * 1000)),
              Effect.forever,
              Effect.forkScoped
            )
            if (interrupted) {
              delivered.refilling = true
              // Once the trades flow again, what the outage missed comes from the recent trades.
              yield* refillRecentTrades({
                venue,
                runtime,
                processor,
                symbols,
                since: (symbol) => delivered.latest.get(symbol) ?? delivered.since ?? since,
                limit: recentLimit(category),
                cause: causeOfSessionEnd(status.lastCause),
                delivered: (symbol, id) => delivered.has(symbol, id),
                remember: (t) => delivered.saw(t.symbol, t.tradeId, t.timestamp),
                fetchRecent: fetchRecent(category)
              }).pipe(
                Effect.provideService(GapLedger, ledger),
                Effect.delay(Duration.millis(config.refillDelayMs)),
                Effect.ensuring(Effect.sync(() => {
                  delivered.refilling = false
                  delivered.suspects.clear()
                })),
                Effect.forkScoped
              )
            }
            yield* watchFreshness
            return { onFrames: (frames: ReadonlyArray<string>, receivedAt: number) => handler(frames, receivedAt) }
          })
      }
      yield* superviseFeed(spec, status).pipe(Effect.forkScoped)
      yield* tickBooks(processor, runtime)
      if (config.reconcileMs > 0) {
        yield* reconcile({ venue, runtime, processor, symbols, delivered, connected: () => status.state === "connected", fetchRecent: fetchRecent(category) }).pipe(
          Effect.provideService(GapLedger, ledger),
          Effect.delay(Duration.millis(config.reconcileMs)),
          Effect.forever,
          Effect.forkScoped
        )
      }
    }

    registry.setVenueState(venue, "running")
    yield* Effect.never
  })

/**
 * Bybit's trades carry no sequence, so a trade lost in transit is invisible on
 * the stream. Each round compares the REST recent trades with what the stream
 * delivered since its record is complete. A trade REST has and the stream has
 * not may still be on its way; if it still has not come a round later (30 s
 * by default) it is stored then and recorded as a `missed` trades gap,
 * repaired (verified).
 */
const reconcile = (options: {
  readonly venue: string
  readonly runtime: VenueRuntime
  readonly processor: RecordProcessor
  readonly symbols: ReadonlyArray<string>
  readonly delivered: StreamTrades
  /** While the connection is down, an outage's trades are the refill's business. */
  readonly connected: () => boolean
  readonly fetchRecent: (symbol: string) => Effect.Effect<ReadonlyArray<Trade>, { readonly _tag: string }>
}) =>
  Effect.gen(function*() {
    const ledger = yield* GapLedger
    if (options.delivered.refilling || !options.connected()) {
      options.delivered.suspects.clear()
      return
    }
    for (const symbol of options.symbols) {
      const since = options.delivered.since
      if (since === undefined) return
      const recent = yield* Effect.result(options.fetchRecent(symbol))
      if (recent._tag === "Failure") {
        yield* Effect.logWarning("trade reconciliation skipped: recent trades unavailable").pipe(Effect.annotateLogs({ venue: options.venue, symbol, error: recent.failure._tag }))
        continue
      }
      const seen = options.delivered.ids.get(symbol)
      const unseen = recent.success.filter((t) => t.timestamp >= since && seen?.has(t.tradeId) !== true)
      const suspects = options.delivered.suspects.get(symbol)
      const missing = unseen.filter((t) => suspects?.has(t.tradeId) === true)
      options.delivered.suspects.set(symbol, new Set(unseen.filter((t) => suspects?.has(t.tradeId) !== true).map((t) => t.tradeId)))
      if (missing.length === 0) continue
      for (const t of missing) options.delivered.saw(symbol, t.tradeId, t.timestamp)
      yield* emitRepaired(options.processor, options.runtime, missing)
      const times = missing.map((t) => t.timestamp)
      ledger.open({
        exchange: options.venue,
        channel: "trades",
        symbol,
        start: Math.min(...times),
        end: Math.max(...times),
        cause: "missed",
        estimatedMissing: missing.length,
        status: "verified",
        repairedCount: missing.length,
        metadata: { found_by: "reconciliation of the stream with /v5/market/recent-trade", trade_ids: missing.slice(0, 20).map((t) => t.tradeId) }
      })
      yield* Effect.logWarning("trades the stream never delivered were found over REST and stored").pipe(
        Effect.annotateLogs({ venue: options.venue, symbol, missing: missing.length })
      )
    }
  })
