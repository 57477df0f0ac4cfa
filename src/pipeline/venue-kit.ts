/**
 * The pieces every streaming venue wires the same way: the gap tracker with
 * trade repair through the processor, seeded from the stored cursors; the
 * resync hook that records, counts and logs a book resync; and the loops that
 * hand records to the processor and emit quiet books' periodic rows.
 */
import { Cause, Clock, Config, Duration, Effect, FiberSet, Metric, type Scope } from "effect"
import type { FreshnessMonitor } from "../feed/freshness.ts"
import type { FeedStatus } from "../feed/status.ts"
import type { GapCause, GapChannel } from "../gaps/ledger.ts"
import { streamsStale } from "../observability/metrics.ts"
import type { NormalizedRecord, Trade } from "../domain/records.ts"
import { RowBatch } from "../domain/rows.ts"
import { GapLedger, gapTradesRepaired } from "../gaps/ledger.ts"
import { causeOfSessionEnd, type GapTracker, makeGapTracker } from "../gaps/tracker.ts"
import type { RecordProcessor } from "./processor.ts"
import { countResync, reportRefused, type VenueRuntime } from "./runtime.ts"

/**
 * A gap tracker whose repaired trades go through `processor()` (created after
 * the tracker, hence a thunk), with each symbol's continuity resumed from the
 * cursor a previous run stored.
 */
export const makeVenueGaps = (options: {
  readonly venue: string
  readonly runtime: VenueRuntime
  /** Undefined for venues whose trades carry no sequence (nothing to fetch a numbered stretch by). */
  readonly fetchTrades: ((symbol: string, from: number, to: number, limit: number) => Effect.Effect<ReadonlyArray<Trade>, { readonly _tag: string }>) | undefined
  readonly maxRepairTrades: number
  readonly processor: () => RecordProcessor
}): Effect.Effect<GapTracker, never, GapLedger | Scope.Scope> =>
  Effect.gen(function*() {
    const gaps = yield* makeGapTracker({
      venue: options.venue,
      fetchTrades: options.fetchTrades,
      maxRepairTrades: options.maxRepairTrades,
      onRepaired: (trades) => emitRepaired(options.processor(), options.runtime, trades)
    })
    const ledger = yield* GapLedger
    for (const [symbol, cursor] of yield* ledger.loadCursors(options.venue, "trades")) gaps.continuity.seed(symbol, cursor)
    return gaps
  })

/**
 * Starts work from a synchronous callback (the processor's hooks run inside
 * frame handling and cannot yield) as a fiber of the venue layer.
 */
export type ScopedRunner = (what: string, effect: Effect.Effect<void, unknown>) => void

/**
 * A runner bound to the current scope and services. `Effect.runFork` would
 * start a root fiber with the default services: never interrupted when the
 * venue stops, its failures unseen, its logs past LOG_LEVEL and the service's
 * logger. Here each fiber joins a FiberSet of the calling layer's scope (closed
 * with the venue, interrupting what still runs), runs with the services
 * captured at creation (logger, minimum log level, metrics), and a failure is
 * logged with `annotations`, never thrown back into the caller.
 */
export const makeScopedRunner = (annotations: Readonly<Record<string, string>>): Effect.Effect<ScopedRunner, never, Scope.Scope> =>
  Effect.map(FiberSet.makeRuntime<never, void, never>(), (run) => (what, effect) => {
    run(
      effect.pipe(
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause)
            ? Effect.void
            : Effect.logError(`${what} failed`, Cause.pretty(cause)).pipe(Effect.annotateLogs(annotations))
        )
      )
    )
  })

/** A book resync: a gap in the ledger, a metric and a warning (the latter two on the venue's runner). */
export const recordResync = (venue: string, gaps: GapTracker, runner: ScopedRunner) => (symbol: string, reason: string, lastGoodAt: number) => {
  gaps.bookResync(symbol, reason, lastGoodAt)
  runner(
    "book resync record",
    countResync(venue, reason).pipe(
      Effect.andThen(Effect.logWarning("order book resync").pipe(Effect.annotateLogs({ venue, symbol, reason })))
    )
  )
}

/**
 * Records that came from REST (snapshots, open interest, chains) through the
 * same processor as frames, and so through the same check: a refused one is a
 * decode error of `<venue>/rest`.
 */
export const emitRecords = (processor: RecordProcessor, runtime: VenueRuntime, records: ReadonlyArray<NormalizedRecord>) =>
  Effect.gen(function*() {
    if (records.length === 0) return
    const batch = new RowBatch()
    const invalidBefore = processor.counters.invalid
    processor.process(records, yield* Clock.currentTimeMillis, batch)
    if (batch.size > 0) yield* runtime.emit(batch)
    yield* reportRefused(`${processor.venue}/rest`, processor, invalidBefore)
  })

/** Trades recovered over REST (gap repair, reconciliation): detection only, after the same check; a refused one is a decode error of `<venue>/repair`. */
export const emitRepaired = (processor: RecordProcessor, runtime: VenueRuntime, trades: ReadonlyArray<Trade>) =>
  Effect.gen(function*() {
    if (trades.length === 0) return
    const batch = new RowBatch()
    const invalidBefore = processor.counters.invalid
    processor.processRepaired(trades, yield* Clock.currentTimeMillis, batch)
    if (batch.size > 0) yield* runtime.emit(batch)
    yield* reportRefused(`${processor.venue}/repair`, processor, invalidBefore)
  })

/**
 * Every second, the periodic rows of books that received nothing new and the minute bars that came due;
 * when the venue stops, the bars still open (their last minute marked partial).
 */
export const tickBooks = (processor: RecordProcessor, runtime: VenueRuntime) =>
  Effect.addFinalizer(() =>
    Effect.gen(function*() {
      const batch = new RowBatch()
      processor.stop(yield* Clock.currentTimeMillis, batch)
      if (batch.size > 0) yield* runtime.emit(batch)
    })
  ).pipe(
    Effect.andThen(
      Effect.gen(function*() {
        const batch = new RowBatch()
        processor.tick(yield* Clock.currentTimeMillis, batch)
        if (batch.size > 0) yield* runtime.emit(batch)
      }).pipe(Effect.delay(Duration.seconds(1)), Effect.forever, Effect.forkScoped)
    )
  )

/**
 * Every second: each (channel, symbol) silent for far longer than its usual
 * pace while the socket stays busy is logged, counted, put in the ledger and,
 * for books, marked stale; then `resubscribe` asks the venue for it alone.
 */
export const watchStaleStreams = (options: {
  readonly feed: string
  readonly monitor: FreshnessMonitor
  readonly status: FeedStatus
  readonly gaps: GapTracker
  readonly processor: RecordProcessor
  readonly resubscribe: (channel: GapChannel, symbol: string, now: number) => Effect.Effect<void>
}) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    for (const stale of options.monitor.check(now, options.status.lastMessageAt)) {
      const channel = stale.channel as GapChannel
      yield* Effect.logWarning("stream stale while its socket is busy; resubscribing it alone").pipe(
        Effect.annotateLogs({ feed: options.feed, channel, symbol: stale.symbol, silentForMs: stale.silentForMs, limitMs: stale.limitMs })
      )
      yield* Metric.update(Metric.withAttributes(streamsStale, { feed: options.feed, channel }), 1)
      options.gaps.streamStale(channel, stale.symbol, stale.lastAt)
      if (channel === "book") options.processor.books?.markStale(stale.symbol)
      yield* options.resubscribe(channel, stale.symbol, now)
    }
  }).pipe(Effect.delay(Duration.seconds(1)), Effect.forever, Effect.forkScoped)

/** Splits a list into runs of at most `size` (symbols per connection, channels per request). */
export const chunk = <A>(items: ReadonlyArray<A>, size: number): Array<Array<A>> => {
  const out: Array<Array<A>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/**
 * A connection (re)opened, not as a make-before-break handover: after a
 * reconnect everything it carried is missing since its last frame (a ledger
 * gap per symbol and channel), its books start over, and freshness relearns.
 */
export const connectionOpened = (options: {
  readonly status: FeedStatus
  readonly gaps: GapTracker
  readonly processor: RecordProcessor
  readonly monitor: FreshnessMonitor
  readonly symbols: ReadonlyArray<string>
  readonly channels: ReadonlyArray<GapChannel>
  readonly now: number
}): void => {
  const { status, now } = options
  // What the connection carries: coverage follows these streams from now on (gaps/coverage.ts).
  status.carries = { channels: options.channels, symbols: options.symbols }
  if (status.reconnects > 0) {
    options.gaps.connectionInterrupted({
      cause: causeOfSessionEnd(status.lastCause),
      since: status.lastMessageAt ?? status.connectedAt ?? now,
      now,
      symbols: options.symbols,
      channels: options.channels
    })
  }
  if (options.channels.includes("book")) options.processor.books?.resetAll(options.symbols)
  // Minute bars: this minute was not watched from its start; after a reconnect, the open ones not to their end.
  // Whatever gap channels the venue lists (Bybit lists no "trades": its trades have no sequence to check):
  // a connection that opens carries its trades from now on, and one that broke lost them.
  options.processor.bars.resumed(options.symbols, now, status.reconnects > 0)
  options.monitor.restart(now)
}

/**
 * For venues whose trades carry no contiguous number (Bybit): after a
 * reconnect, each symbol's missing stretch (from the last trade the stream
 * delivered, in the venue's time) is a trades gap, refilled from the venue's
 * most recent trades over REST: those the stream never delivered are stored.
 * The gap is `verified` when the oldest trade returned is at or before the
 * stretch's start, or the answer was not full (either way the window covered
 * it all), `partial` when the stretch is older than what REST keeps,
 * `unrecoverable` when REST fails.
 */
export const refillRecentTrades = (options: {
  readonly venue: string
  readonly runtime: VenueRuntime
  readonly processor: RecordProcessor
  readonly symbols: ReadonlyArray<string>
  /** Where the stretch starts: the last delivered trade's time, or when the connection last heard anything. */
  readonly since: (symbol: string) => number
  /** The most trades one REST answer holds: an answer with fewer holds everything the venue has in its window. */
  readonly limit: number
  readonly cause: GapCause
  readonly delivered: (symbol: string, tradeId: string) => boolean
  readonly remember: (trade: Trade) => void
  readonly fetchRecent: (symbol: string) => Effect.Effect<ReadonlyArray<Trade>, { readonly _tag: string }>
}) =>
  Effect.gen(function*() {
    const ledger = yield* GapLedger
    for (const symbol of options.symbols) {
      const since = options.since(symbol)
      const gap = ledger.open({
        exchange: options.venue,
        channel: "trades",
        symbol,
        start: since,
        end: yield* Clock.currentTimeMillis,
        cause: options.cause,
        estimatedMissing: null,
        status: "repairing",
        metadata: { repair: "the venue's most recent trades over REST (its trades carry no sequence to detect a loss by)" }
      })
      const result = yield* Effect.result(options.fetchRecent(symbol))
      if (result._tag === "Failure") {
        gap.status = "unrecoverable"
        gap.metadata = { ...gap.metadata, error: result.failure._tag }
        ledger.update(gap)
        continue
      }
      const trades = result.success
      const missing = trades.filter((t) => t.timestamp >= since && !options.delivered(symbol, t.tradeId))
      if (missing.length > 0) {
        for (const t of missing) options.remember(t)
        yield* emitRepaired(options.processor, options.runtime, missing)
        yield* Metric.update(Metric.withAttributes(gapTradesRepaired, { exchange: options.venue }), missing.length)
      }
      gap.repairedCount = missing.length
      gap.estimatedMissing = missing.length
      gap.status = trades.length < options.limit || trades.some((t) => t.timestamp <= since) ? "verified" : "partial"
      gap.metadata = { ...gap.metadata, oldest_returned: trades.length === 0 ? null : new Date(Math.min(...trades.map((t) => t.timestamp))).toISOString() }
      ledger.update(gap)
    }
  })

/** A comma-separated list of symbols from `name` (upper-cased, deduplicated; `none` for none), or `fallback`. */
export const symbolsConfig = (name: string, fallback: string) =>
  Config.String(name).pipe(
    Config.withDefault(fallback),
    Config.map((list) => [...new Set(list.split(",").map((s) => s.trim().toUpperCase()).filter((s) => s.length > 0 && s !== "NONE"))])
  )
