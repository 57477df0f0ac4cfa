/**
 * Binance live wiring for one market (spot or USD-M futures): metadata, feeds,
 * order-book snapshots, funding and open-interest polling, all through the
 * shared machinery. The two markets differ only in the `Market` description.
 */
import { Clock, Config, Duration, Effect, Metric, Queue, Result } from "effect"
import type { SequenceRule } from "../../book/sync.ts"
import { superviseFeed, type FeedSpec } from "../../feed/connection.ts"
import { makePacer, makeResubscriber } from "../../feed/pacing.ts"
import { FreshnessMonitor } from "../../feed/freshness.ts"
import { FeedRegistry } from "../../feed/status.ts"
import { defaultGateOptions, makeRestGate, type RestGate } from "../../rest/gate.ts"
import { fetchDecoded, retryPatiently } from "../../rest/fetch.ts"
import { makeFrameHandler, makeProcessor, type VenueRuntime } from "../../pipeline/runtime.ts"
import { chunk, connectionOpened, emitRecords, makeVenueGaps, makeScopedRunner, recordResync, tickBooks, watchStaleStreams } from "../../pipeline/venue-kit.ts"
import type { RecordProcessor } from "../../pipeline/processor.ts"
import { bookAuditMismatched, bookAudits, tradesUnvalued } from "../../observability/metrics.ts"
import { makeDecoder } from "./normalize.ts"
import type { VenueDefinition } from "../venue.ts"
import type { GapChannel } from "../../gaps/ledger.ts"
import type { Trade } from "../../domain/records.ts"
import {
  decodeAggTradesPage,
  decodeDepthSnapshot,
  decodeExchangeInfo,
  decodeFundingInfo,
  decodeOpenInterest,
  decodePremiumIndex,
  instrumentsFrom,
  openInterestRecord,
  premiumIndexRecord,
  restTradeRecord,
  snapshotRecord,
  weightLimitFrom
} from "./instruments.ts"

export interface Market {
  readonly venue: string
  readonly configPrefix: string
  readonly defaultWsUrl: string
  readonly defaultRestUrl: string
  readonly restPrefix: "/api/v3" | "/fapi/v1"
  readonly defaultWeightLimit: number
  readonly sequenceRule: SequenceRule
  /** Depth snapshot weight for a given `limit`, per the venue's documented table. */
  readonly depthWeight: (limit: number) => number
  readonly aggTradesWeight: number
  /** Feeds as (name, URL path, streams of a symbol, what the ledger calls those streams). */
  readonly feeds: ReadonlyArray<{
    readonly name: string
    readonly path: string
    readonly streams: (s: string) => Array<string>
    readonly channels: ReadonlyArray<GapChannel>
  }>
  readonly derivatives: boolean
  /**
   * Messages the venue accepts from us per second on one connection (spot 5,
   * USD-M 10; pings, pongs and SUBSCRIBEs all count). We pace one under it: the
   * socket library answers the server's pings with pongs on its own.
   */
  readonly incomingMessagesPerSecond: number
  /** The stream a (channel, lower-case symbol) arrives on, to resubscribe it alone. */
  readonly streamOf: (channel: GapChannel, symbol: string) => string | undefined
}

export const defaultSymbols = "BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT,BNBUSDT,DOGEUSDT"

const marketConfig = (market: Market) =>
  Config.all({
    symbols: Config.String(`${market.configPrefix}_SYMBOLS`).pipe(
      Config.withDefault(defaultSymbols),
      Config.map((list) => [...new Set(list.split(",").map((s) => s.trim().toUpperCase()).filter((s) => s.length > 0))])
    ),
    wsUrl: Config.String(`${market.configPrefix}_WS_URL`).pipe(Config.withDefault(market.defaultWsUrl)),
    restUrl: Config.String(`${market.configPrefix}_REST_URL`).pipe(Config.withDefault(market.defaultRestUrl)),
    snapshotLimit: Config.Int(`${market.configPrefix}_SNAPSHOT_LIMIT`).pipe(Config.withDefault(1000)),
    staleAfterMs: Config.Number(`${market.configPrefix}_STALE_SECONDS`).pipe(
      Config.withDefault(30),
      Config.map((s) => s * 1000)
    ),
    maxLifetimeMs: Config.Number(`${market.configPrefix}_MAX_CONNECTION_HOURS`).pipe(
      Config.withDefault(23.5),
      Config.map((h) => h * 3_600_000)
    ),
    streamsPerConnection: Config.Int(`${market.configPrefix}_STREAMS_PER_CONNECTION`).pipe(Config.withDefault(200)),
    maxRepairTrades: Config.Int("GAP_REPAIR_MAX_TRADES").pipe(Config.withDefault(100_000))
  })


export const runMarket = (market: Market, definition: VenueDefinition) => (runtime: VenueRuntime) =>
  Effect.gen(function*() {
    const config = yield* marketConfig(market)
    const registry = yield* FeedRegistry
    const rest = config.restUrl.replace(/\/$/, "")
    const gate: RestGate = yield* makeRestGate({
      ...defaultGateOptions(market.venue, market.defaultWeightLimit),
      usedWeightHeader: "x-mbx-used-weight-1m"
    })

    const info = yield* retryPatiently(
      `${market.venue} exchangeInfo`,
      fetchDecoded(gate, `${rest}${market.restPrefix}/exchangeInfo`, market.derivatives ? 1 : 20, decodeExchangeInfo)
    )
    for (const instrument of instrumentsFrom(market.venue, info)) runtime.instruments.add(instrument)
    const limit = weightLimitFrom(info)
    if (limit !== undefined) gate.setWeightLimit(limit)
    const symbols = config.symbols.filter((symbol) => runtime.instruments.get(market.venue, symbol) !== undefined)
    const unknown = config.symbols.filter((symbol) => !symbols.includes(symbol))
    if (unknown.length > 0) {
      yield* Effect.logError("configured symbols are not listed by the venue; skipped").pipe(
        Effect.annotateLogs({ venue: market.venue, symbols: unknown.join(",") })
      )
      yield* Metric.update(Metric.withAttributes(tradesUnvalued, { venue: market.venue, reason: "unknown_symbol" }), unknown.length)
    }
    if (symbols.length === 0) {
      // Nothing to collect: stay idle rather than end (an ended venue would be restarted in a loop).
      registry.setVenueState(market.venue, "running")
      return yield* Effect.never
    }

    const intervals = new Map<string, number>()
    if (market.derivatives) {
      const fundingInfo = yield* Effect.result(
        fetchDecoded(gate, `${rest}/fapi/v1/fundingInfo`, 1, decodeFundingInfo)
      )
      if (Result.isSuccess(fundingInfo)) for (const f of fundingInfo.success) intervals.set(f.symbol, f.fundingIntervalHours)
    }

    // Snapshot requests come from the synchronous book machinery; a worker serves them one symbol at a time.
    const snapshotRequests = yield* Queue.unbounded<string>()
    const pending = new Set<string>()
    /** aggTrades pages of 1000 from `from`, until `to` or `limit` trades. */
    const fetchAggTrades = (symbol: string, from: number, to: number, limit: number) =>
      Effect.gen(function*() {
        const trades: Array<Trade> = []
        let next = from
        while (next <= to && trades.length < limit) {
          const page = yield* fetchDecoded(
            gate,
            `${rest}${market.restPrefix}/aggTrades?symbol=${symbol}&fromId=${next}&limit=1000`,
            market.aggTradesWeight,
            decodeAggTradesPage
          )
          if (page.length === 0) break
          for (const t of page) if (t.a <= to && trades.length < limit) trades.push(restTradeRecord(market.venue, symbol, t))
          next = page[page.length - 1]!.a + 1
        }
        return trades
      })
    const gaps = yield* makeVenueGaps({
      venue: market.venue,
      runtime,
      fetchTrades: fetchAggTrades,
      maxRepairTrades: config.maxRepairTrades,
      processor: () => processor
    })

    // The processor's hooks are synchronous: their work runs as fibers of this layer.
    const runner = yield* makeScopedRunner({ venue: market.venue })

    const processor: RecordProcessor = makeProcessor(runtime, market.venue, {
      continuity: gaps.continuity,
      onBookLive: gaps.bookLive,
      sequenceRule: market.sequenceRule,
      fundingIntervalHours: (symbol) => {
        const hours = intervals.get(symbol)
        return hours === undefined ? { hours: 8, source: "default (not in fundingInfo)" } : { hours, source: "fundingInfo" }
      },
      requestSnapshot: (symbol) => {
        if (pending.has(symbol)) return
        pending.add(symbol)
        Queue.offerUnsafe(snapshotRequests, symbol)
      },
      onResync: recordResync(market.venue, gaps, runner)
    })

    const fetchSnapshot = (symbol: string) =>
      retryPatiently(
        `${market.venue} depth snapshot ${symbol}`,
        fetchDecoded(
          gate,
          `${rest}${market.restPrefix}/depth?symbol=${symbol}&limit=${config.snapshotLimit}`,
          market.depthWeight(config.snapshotLimit),
          decodeDepthSnapshot
        )
      ).pipe(
        Effect.flatMap((snapshot) =>
          Effect.gen(function*() {
            pending.delete(symbol)
            const now = yield* Clock.currentTimeMillis
            yield* emitRecords(processor, runtime, [snapshotRecord(market.venue, symbol, snapshot, now)])
          })
        )
      )
    yield* Queue.take(snapshotRequests).pipe(Effect.flatMap(fetchSnapshot), Effect.forever, Effect.forkScoped)

    for (const feed of market.feeds) {
      const groups = chunk(symbols, Math.max(1, Math.floor(config.streamsPerConnection / feed.streams("x").length)))
      for (const [index, group] of groups.entries()) {
        const name = groups.length === 1 ? `${market.venue}/${feed.name}` : `${market.venue}/${feed.name}#${index}`
        const status = registry.register(name, market.venue)
        status.books = () => (processor.books?.status() ?? []).filter((b) => group.includes(b.symbol))
        const streams = group.flatMap((symbol) => feed.streams(symbol.toLowerCase()))
        const monitor = new FreshnessMonitor(runtime.settings.freshness)
        status.freshness = monitor
        const freshness = { monitor, onFresh: (channel: string, symbol: string, at: number) => gaps.streamFresh(channel as GapChannel, symbol, at) }
        /** One connection's frame handler: a `serverShutdown` on it asks for that connection to be replaced now. */
        const sessionHandler = (rotate: Effect.Effect<void>) => {
          let shutdownAnnounced = false
          const decoding: VenueDefinition = {
            ...definition,
            decodeFrame: makeDecoder(market.venue, { onServerShutdown: () => (shutdownAnnounced = true) })
          }
          const handle = makeFrameHandler(decoding, processor, name, runtime.emit, freshness)
          return (frames: ReadonlyArray<string>, receivedAt: number) =>
            Effect.andThen(handle(frames, receivedAt), Effect.suspend(() => {
              if (!shutdownAnnounced) return Effect.void
              shutdownAnnounced = false
              return Effect.logInfo("venue announced a server shutdown; replacing the connection now (make-before-break)").pipe(
                Effect.annotateLogs({ feed: name }),
                Effect.andThen(rotate)
              )
            }))
        }
        let requestId = 0
        // Stale streams found together are resubscribed together: one UNSUBSCRIBE and one SUBSCRIBE listing them.
        const resubscriber = makeResubscriber({
          lingerMs: 100,
          maxKeys: 100,
          messages: (streams) => [
            JSON.stringify({ method: "UNSUBSCRIBE", params: streams, id: ++requestId }),
            JSON.stringify({ method: "SUBSCRIBE", params: streams, id: ++requestId })
          ]
        })
        /** Every second: a stream silent for far longer than its usual pace is resubscribed alone. */
        const watchFreshness = (send: (message: string) => Effect.Effect<void>) =>
          watchStaleStreams({
            feed: name,
            monitor,
            status,
            gaps,
            processor,
            resubscribe: (channel, symbol) => {
              const stream = market.streamOf(channel, symbol.toLowerCase())
              return stream === undefined ? Effect.void : resubscriber.request(stream, send)
            }
          })
        const spec: FeedSpec = {
          feed: name,
          venue: market.venue,
          url: `${config.wsUrl.replace(/\/$/, "")}${feed.path}?streams=${streams.join("/")}`,
          subscribeMessages: [],
          staleAfterMs: config.staleAfterMs,
          maxLifetimeMs: config.maxLifetimeMs,
          pacer: () => makePacer({ messages: market.incomingMessagesPerSecond - 1, perMs: 1000 }),
          openSession: (send, { handover, rotate }) =>
            Effect.gen(function*() {
              const now = yield* Clock.currentTimeMillis
              yield* watchFreshness(send)
              const onFrames = sessionHandler(rotate)
              // A make-before-break rotation: the old connection is still delivering; overlapping
              // frames are dropped by the trade and book sequence checks. Nothing to repair or resync.
              if (handover) return { onFrames }
              connectionOpened({ status, gaps, processor, monitor, symbols: group, channels: feed.channels, now })
              return { onFrames }
            })
        }
        yield* superviseFeed(spec, status).pipe(Effect.forkScoped)
      }
    }

    // Every book is checked against the venue's own snapshot now and then; a diverged book resyncs.
    const auditLimit = 100
    const audit = Effect.gen(function*() {
      for (const symbol of processor.books?.liveSymbols() ?? []) {
        const snapshot = yield* fetchDecoded(
          gate,
          `${rest}${market.restPrefix}/depth?symbol=${symbol}&limit=${auditLimit}`,
          market.depthWeight(auditLimit),
          decodeDepthSnapshot
        )
        const now = yield* Clock.currentTimeMillis
        const result = processor.books!.audit(snapshotRecord(market.venue, symbol, snapshot, now), runtime.settings.bookDepth)
        yield* Metric.update(Metric.withAttributes(bookAudits, { venue: market.venue, outcome: result.outcome }), 1)
        if (result.outcome !== "skipped") {
          yield* Metric.update(Metric.withAttributes(bookAuditMismatched, { venue: market.venue, symbol }), result.mismatched)
        }
        if (result.outcome === "diverged") {
          yield* Effect.logWarning("order book diverged from the venue's snapshot; resyncing").pipe(
            Effect.annotateLogs({ venue: market.venue, symbol, mismatched: result.mismatched, compared: result.compared, detail: result.detail })
          )
        }
      }
    }).pipe(Effect.catch((error) => Effect.logWarning("book audit failed").pipe(Effect.annotateLogs({ venue: market.venue, error: error._tag }))))
    yield* audit.pipe(Effect.delay(Duration.millis(runtime.settings.bookAuditIntervalMs)), Effect.forever, Effect.forkScoped)

    yield* tickBooks(processor, runtime)

    if (market.derivatives) {
      const pollOpenInterest = Effect.forEach(symbols, (symbol) =>
        Effect.gen(function*() {
          if (processor.markPrice(symbol) === undefined) {
            const premium = yield* fetchDecoded(gate, `${rest}/fapi/v1/premiumIndex?symbol=${symbol}`, 1, decodePremiumIndex)
            yield* emitRecords(processor, runtime, [premiumIndexRecord(market.venue, premium)])
          }
          const oi = yield* fetchDecoded(gate, `${rest}/fapi/v1/openInterest?symbol=${symbol}`, 1, decodeOpenInterest)
          yield* emitRecords(processor, runtime, [openInterestRecord(market.venue, oi)])
        }).pipe(
          Effect.catch((error) =>
            Effect.logWarning("open interest poll failed").pipe(
              Effect.annotateLogs({ venue: market.venue, symbol, error: error._tag })
            )
          )
        ), { discard: true })
      yield* pollOpenInterest.pipe(
        Effect.andThen(Effect.sleep(Duration.millis(runtime.settings.openInterestIntervalMs))),
        Effect.forever,
        Effect.forkScoped
      )
    }
    registry.setVenueState(market.venue, "running")
    yield* Effect.never
  })
