/**
 * Deribit live wiring: one JSON-RPC 2.0 WebSocket carrying every channel.
 *
 * - Instruments: `public/get_instruments` per currency (futures and perpetuals).
 * - Channels (public, 100 ms: `raw` needs an authorised connection): trades of every
 *   future and option of a currency (`trades.{kind}.{currency}.100ms`), the book of
 *   each future and perpetual (`book.{instrument}.100ms`, chained by change ids),
 *   perpetual tickers for funding, and DVOL (`deribit_volatility_index.{index}`).
 * - `public/set_heartbeat`: Deribit then sends `test_request`s, answered with `public/test`.
 * - Open interest of every future from `public/get_book_summary_by_currency` (one call
 *   per currency), every OPEN_INTEREST_INTERVAL_SECONDS.
 * - An option chain snapshot per currency every DERIBIT_OPTION_CHAIN_MINUTES from
 *   one book summary call (mark, mark IV, bid/ask, open interest, underlying),
 *   greeks computed from the mark IV as Deribit does; `public/ticker` per option
 *   (Deribit's own greeks, bid/ask IV) only with DERIBIT_OPTION_TICKERS.
 * - Trades lost by `trade_seq` are fetched with `public/get_last_trades_by_instrument`.
 * - REST: 20 requests per second (Deribit's credit refill for public calls).
 */
import { Clock, Config, Duration, Effect } from "effect"
import { superviseFeed, type FeedSpec } from "../../feed/connection.ts"
import { makePacer, makeResubscriber } from "../../feed/pacing.ts"
import { FreshnessMonitor } from "../../feed/freshness.ts"
import { FeedRegistry } from "../../feed/status.ts"
import type { GapChannel } from "../../gaps/ledger.ts"
import type { NormalizedRecord, Trade } from "../../domain/records.ts"
import { makeFrameHandler, makeProcessor, reportDropped, type VenueRuntime } from "../../pipeline/runtime.ts"
import { DecodeError } from "../../domain/errors.ts"
import {
  chunk,
  connectionOpened,
  emitRecords as emitRecordsThrough,
  makeVenueGaps,
  makeScopedRunner,
  recordResync,
  tickBooks,
  watchStaleStreams
} from "../../pipeline/venue-kit.ts"
import type { RecordProcessor } from "../../pipeline/processor.ts"
import { defaultGateOptions, makeRestGate } from "../../rest/gate.ts"
import { fetchDecoded, retryPatiently } from "../../rest/fetch.ts"
import type { VenueDefinition } from "../venue.ts"
import { decodeBookSummaries, decodeInstruments, decodeTicker, decodeTradesPage, type DeribitInstrument, instrumentFrom, openInterestFrom, optionQuoteFrom, restTradeRecord } from "./instruments.ts"
import { changeIdRule } from "./rules.ts"

export const deribitConfig = Config.all({
  wsUrl: Config.String("DERIBIT_WS_URL").pipe(Config.withDefault("wss://www.deribit.com/ws/api/v2")),
  restUrl: Config.String("DERIBIT_REST_URL").pipe(Config.withDefault("https://www.deribit.com/api/v2")),
  currencies: Config.String("DERIBIT_CURRENCIES").pipe(
    Config.withDefault("BTC,ETH"),
    Config.map((list) => [...new Set(list.split(",").map((s) => s.trim().toUpperCase()).filter((s) => s.length > 0))])
  ),
  optionTrades: Config.Boolean("DERIBIT_OPTION_TRADES").pipe(Config.withDefault(true)),
  optionChainMs: Config.Number("DERIBIT_OPTION_CHAIN_MINUTES").pipe(Config.withDefault(15), Config.map((m) => m * 60_000)),
  /**
   * Opt-in: one `public/ticker` per option (about 1,200 a snapshot, against an
   * unpublished per-IP limit) for Deribit's own greeks and bid/ask IV. Without
   * it the chain is one book-summary call per currency and the greeks are
   * computed from the mark IV.
   */
  optionTickers: Config.Boolean("DERIBIT_OPTION_TICKERS").pipe(Config.withDefault(false)),
  requestsPerSecond: Config.Int("DERIBIT_REST_REQUESTS_PER_SECOND").pipe(Config.withDefault(20)),
  heartbeatSeconds: Config.Int("DERIBIT_HEARTBEAT_SECONDS").pipe(Config.withDefault(30)),
  outgoingMessagesPerSecond: Config.Int("DERIBIT_WS_MESSAGES_PER_SECOND").pipe(Config.withDefault(3)),
  staleAfterMs: Config.Number("DERIBIT_STALE_SECONDS").pipe(Config.withDefault(60), Config.map((s) => s * 1000)),
  maxRepairTrades: Config.Int("GAP_REPAIR_MAX_TRADES").pipe(Config.withDefault(100_000))
})

const volatilityIndex = (currency: string) => `${currency.toLowerCase()}_usd`

export const runDeribit = (definition: VenueDefinition) => (runtime: VenueRuntime) =>
  Effect.gen(function*() {
    const venue = definition.id
    const config = yield* deribitConfig
    const registry = yield* FeedRegistry
    const rest = config.restUrl.replace(/\/$/, "")
    const gate = yield* makeRestGate({ ...defaultGateOptions(venue, config.requestsPerSecond), windowMs: 1000 })

    const futures = new Map<string, DeribitInstrument>()
    const options = new Map<string, DeribitInstrument>()
    for (const currency of config.currencies) {
      for (const kind of ["future", "option"] as const) {
        const listed = yield* retryPatiently(
          `${venue} instruments ${currency} ${kind}`,
          fetchDecoded(gate, `${rest}/public/get_instruments?currency=${currency}&kind=${kind}&expired=false`, 1, decodeInstruments)
        )
        if (listed.dropped > 0) {
          yield* reportDropped(new DecodeError({ venue, channel: `get_instruments ${currency} ${kind}`, detail: listed.problem ?? "", sample: "", dropped: listed.dropped }))
        }
        for (const i of listed.kept) {
          runtime.instruments.add(instrumentFrom(venue, i))
          ;(kind === "future" ? futures : options).set(i.instrument_name, i)
        }
      }
    }
    const bookSymbols = [...futures.keys()]
    const perpetuals = [...futures.values()].filter((i) => i.settlement_period === "perpetual").map((i) => i.instrument_name)

    const fetchTrades = (instrument: string, from: number, to: number, limit: number) =>
      Effect.gen(function*() {
        const trades: Array<Trade> = []
        let next = from
        while (next <= to && trades.length < limit) {
          const page = yield* fetchDecoded(
            gate,
            `${rest}/public/get_last_trades_by_instrument?instrument_name=${instrument}&start_seq=${next}&end_seq=${to}&count=1000&sorting=asc`,
            1,
            decodeTradesPage
          )
          if (page.result.trades.length === 0) break
          for (const t of page.result.trades) if (t.trade_seq <= to && trades.length < limit) trades.push(restTradeRecord(venue, t))
          next = page.result.trades[page.result.trades.length - 1]!.trade_seq + 1
          if (!page.result.has_more) break
        }
        return trades
      })

    const gaps = yield* makeVenueGaps({ venue, runtime, fetchTrades, maxRepairTrades: config.maxRepairTrades, processor: () => processor })

    let send: ((message: string) => Effect.Effect<void>) | undefined
    let requestId = 0
    const rpc = (method: string, params: Record<string, unknown>) =>
      JSON.stringify({ jsonrpc: "2.0", id: ++requestId, method, params })
    // Resubscriptions gather while they wait and go out as one unsubscribe and one subscribe listing them.
    const resubscriber = makeResubscriber({
      lingerMs: 100,
      maxKeys: 100,
      messages: (channels) => [rpc("public/unsubscribe", { channels }), rpc("public/subscribe", { channels })]
    })
    const resubscribe = (channel: string) => Effect.suspend(() => (send === undefined ? Effect.void : resubscriber.request(channel, send)))

    // The processor's hooks are synchronous: their work runs as fibers of this layer.
    const runner = yield* makeScopedRunner({ venue })

    const processor: RecordProcessor = makeProcessor(runtime, venue, {
      continuity: gaps.continuity,
      onBookLive: gaps.bookLive,
      sequenceRule: changeIdRule,
      fundingIntervalHours: () => ({ hours: 8, source: "funding_8h (Deribit funds continuously)" }),
      requestSnapshot: (symbol, reason) => {
        if (reason !== "initial") runner("book resubscription", resubscribe(`book.${symbol}.100ms`))
      },
      onResync: recordResync(venue, gaps, runner)
    })
    const emitRecords = (records: ReadonlyArray<NormalizedRecord>) => emitRecordsThrough(processor, runtime, records)

    const channels = [
      ...config.currencies.map((c) => `trades.future.${c}.100ms`),
      ...(config.optionTrades ? config.currencies.map((c) => `trades.option.${c}.100ms`) : []),
      ...bookSymbols.map((s) => `book.${s}.100ms`),
      ...perpetuals.map((s) => `ticker.${s}.100ms`),
      ...config.currencies.map((c) => `deribit_volatility_index.${volatilityIndex(c)}`)
    ]
    const name = `${venue}/ws`
    const status = registry.register(name, venue)
    status.books = () => processor.books?.status() ?? []
    const monitor = new FreshnessMonitor(runtime.settings.freshness)
    status.freshness = monitor
    const handler = makeFrameHandler(definition, processor, name, runtime.emit, {
      monitor,
      onFresh: (channel, symbol, at) => gaps.streamFresh(channel as GapChannel, symbol, at)
    })
    const watchFreshness = watchStaleStreams({
      feed: name,
      monitor,
      status,
      gaps,
      processor,
      // Trades arrive per currency, not per instrument: a quiet instrument's trades are not resubscribed alone.
      resubscribe: (channel, symbol) =>
        channel === "book"
          ? resubscribe(`book.${symbol}.100ms`)
          : channel === "funding"
          ? resubscribe(`ticker.${symbol}.100ms`)
          : Effect.void
    })

    const spec: FeedSpec = {
      feed: name,
      venue,
      url: config.wsUrl,
      subscribeMessages: [],
      staleAfterMs: config.staleAfterMs,
      maxLifetimeMs: Number.MAX_SAFE_INTEGER,
      // Deribit takes about 3.3 public/subscribe a second (its error 10028 ends the session): 3 messages a second.
      pacer: () => makePacer({ messages: config.outgoingMessagesPerSecond, perMs: 1000 }),
      openSession: (sendOnThis) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          send = sendOnThis
          connectionOpened({ status, gaps, processor, monitor, symbols: bookSymbols, channels: ["trades", "book", "funding"], now })
          yield* sendOnThis(rpc("public/set_heartbeat", { interval: config.heartbeatSeconds }))
          // Deribit accepts long channel lists; batches keep each request small.
          for (const batch of chunk(channels, 100)) yield* sendOnThis(rpc("public/subscribe", { channels: batch }))
          yield* watchFreshness
          return {
            onFrames: (frames: ReadonlyArray<string>, receivedAt: number) =>
              Effect.gen(function*() {
                // A heartbeat `test_request` must be answered, or Deribit closes the connection.
                for (const frame of frames) {
                  if (frame.length < 200 && frame.includes("test_request")) yield* sendOnThis(rpc("public/test", {}))
                }
                yield* handler(frames, receivedAt)
              })
          }
        })
    }
    yield* superviseFeed(spec, status).pipe(Effect.forkScoped)

    const pollOpenInterest = Effect.forEach(config.currencies, (currency) =>
      fetchDecoded(gate, `${rest}/public/get_book_summary_by_currency?currency=${currency}&kind=future`, 1, decodeBookSummaries).pipe(
        Effect.flatMap((summaries) =>
          emitRecords(summaries.result.flatMap((s) => {
            const instrument = futures.get(s.instrument_name)
            return instrument === undefined ? [] : [openInterestFrom(venue, instrument, s)]
          }))
        ),
        Effect.catch((error) => Effect.logWarning("open interest poll failed").pipe(Effect.annotateLogs({ venue, currency, error: error._tag })))
      ), { discard: true })
    yield* pollOpenInterest.pipe(
      Effect.andThen(Effect.sleep(Duration.millis(runtime.settings.openInterestIntervalMs))),
      Effect.forever,
      Effect.forkScoped
    )

    const chainSnapshot = Effect.forEach(config.currencies, (currency) =>
      Effect.gen(function*() {
        const summaries = yield* fetchDecoded(gate, `${rest}/public/get_book_summary_by_currency?currency=${currency}&kind=option`, 1, decodeBookSummaries)
        const at = yield* Clock.currentTimeMillis
        const quotes: Array<NormalizedRecord> = []
        for (const summary of summaries.result) {
          const instrument = options.get(summary.instrument_name)
          if (instrument === undefined) continue
          const ticker = config.optionTickers
            ? yield* fetchDecoded(gate, `${rest}/public/ticker?instrument_name=${summary.instrument_name}`, 1, decodeTicker).pipe(
              Effect.map((t) => t.result),
              Effect.catch(() => Effect.succeed(undefined))
            )
            : undefined
          const quote = optionQuoteFrom(venue, summary, ticker, at)
          if (quote !== undefined) quotes.push(quote)
        }
        yield* emitRecords(quotes)
        yield* Effect.logInfo("option chain snapshot stored").pipe(Effect.annotateLogs({ venue, currency, options: quotes.length }))
      }).pipe(
        Effect.catch((error) => Effect.logWarning("option chain snapshot failed").pipe(Effect.annotateLogs({ venue, currency, error: error._tag })))
      ), { discard: true })
    yield* chainSnapshot.pipe(Effect.andThen(Effect.sleep(Duration.millis(config.optionChainMs))), Effect.forever, Effect.forkScoped)

    yield* tickBooks(processor, runtime)

    registry.setVenueState(venue, "running")
    yield* Effect.never
  })
