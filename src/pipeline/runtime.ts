/**
 * Wiring shared by every venue: settings, the instrument registry, the
 * large-trade detector and the frame handler that runs decode -> normalize ->
 * detect for one batch of frames and hands the rows to the writer queues.
 */
import { Config, Effect, Metric, Schema } from "effect"
import { LiveBookRegistry } from "../book/live.ts"
import type { SequenceRule } from "../book/sync.ts"
import { LargeTradeDetector, type LargeTradeThresholds } from "../domain/large-trades.ts"
import { InstrumentRegistry } from "../domain/instruments.ts"
import type { NormalizedRecord } from "../domain/records.ts"
import { describeRefused } from "../domain/validate.ts"
import { RowBatch } from "../domain/rows.ts"
import { ReferencePrices } from "../domain/valuation.ts"
import { barLateRecords, bookResyncs, elementsDropped, feedDecodeErrors, feedRecords, tradesUnvalued, venueFigureMismatches } from "../observability/metrics.ts"
import type { DecodeError } from "../domain/errors.ts"
import type { VenueDefinition } from "../venues/venue.ts"
import type { TradeContinuity } from "../gaps/continuity.ts"
import { defaultFreshness, type FreshnessMonitor, type FreshnessOptions } from "../feed/freshness.ts"
import { defaultBarGraceMs } from "./bars.ts"
import { RecordProcessor } from "./processor.ts"

export interface PipelineSettings {
  readonly bookDepth: number
  readonly bookIntervalMs: number
  readonly fundingSampleMs: number
  readonly openInterestIntervalMs: number
  readonly thresholds: LargeTradeThresholds
  readonly freshness: FreshnessOptions
  readonly bookAuditIntervalMs: number
  /** How long a minute bar waits after its minute for late trades (pipeline/bars.ts). */
  readonly barGraceMs: number
}

export const PipelineSettings = Config.all({
  bookAuditIntervalMs: Config.Number("BOOK_AUDIT_INTERVAL_SECONDS").pipe(Config.withDefault(600), Config.map((s) => s * 1000)),
  barGraceMs: Config.Number("BAR_GRACE_SECONDS").pipe(Config.withDefault(defaultBarGraceMs / 1000), Config.map((s) => s * 1000)),
  freshness: Config.all({
    minSamples: Config.Int("FRESHNESS_MIN_SAMPLES").pipe(Config.withDefault(defaultFreshness.minSamples)),
    factor: Config.Number("FRESHNESS_FACTOR").pipe(Config.withDefault(defaultFreshness.factor)),
    minStaleMs: Config.Number("FRESHNESS_MIN_STALE_SECONDS").pipe(
      Config.withDefault(defaultFreshness.minStaleMs / 1000),
      Config.map((s) => s * 1000)
    ),
    maxStaleMs: Config.Number("FRESHNESS_MAX_STALE_SECONDS").pipe(
      Config.withDefault(defaultFreshness.maxStaleMs / 1000),
      Config.map((s) => s * 1000)
    ),
    socketBusyMs: Config.succeed(defaultFreshness.socketBusyMs)
  }),
  bookDepth: Config.schema(Schema.Int.check(Schema.isBetween({ minimum: 10, maximum: 100 })), "ORDERBOOK_DEPTH").pipe(
    Config.withDefault(20)
  ),
  bookIntervalMs: Config.Number("ORDERBOOK_INTERVAL_SECONDS").pipe(Config.withDefault(10), Config.map((s) => s * 1000)),
  fundingSampleMs: Config.Number("FUNDING_SAMPLE_SECONDS").pipe(Config.withDefault(60), Config.map((s) => s * 1000)),
  openInterestIntervalMs: Config.Number("OPEN_INTEREST_INTERVAL_SECONDS").pipe(
    Config.withDefault(60),
    Config.map((s) => s * 1000)
  ),
  thresholds: Config.all({
    btc: Config.Number("LARGE_TRADE_THRESHOLD_BTC").pipe(Config.withDefault(100_000)),
    eth: Config.Number("LARGE_TRADE_THRESHOLD_ETH").pipe(Config.withDefault(50_000)),
    other: Config.Number("LARGE_TRADE_THRESHOLD_DEFAULT").pipe(Config.withDefault(20_000))
  }).pipe(Config.map(({ btc, eth, other }) => ({ byAsset: { BTC: btc, ETH: eth }, otherAssets: other })))
})

/** The defaults of PipelineSettings, for replays and benchmarks that run without configuration. */
export const defaultPipelineSettings: PipelineSettings = {
  bookDepth: 20,
  bookIntervalMs: 10_000,
  fundingSampleMs: 60_000,
  openInterestIntervalMs: 60_000,
  thresholds: { byAsset: { BTC: 100_000, ETH: 50_000 }, otherAssets: 20_000 },
  freshness: defaultFreshness,
  bookAuditIntervalMs: 600_000,
  barGraceMs: defaultBarGraceMs
}

export interface VenueRuntime {
  readonly settings: PipelineSettings
  readonly instruments: InstrumentRegistry
  readonly detector: LargeTradeDetector
  /** Live USD prices learned from every venue's trades (valuation, basis). */
  readonly prices: ReferencePrices
  readonly emit: (batch: RowBatch) => Effect.Effect<void>
  /** Where every processor's books register for the read-only live view (book/live.ts). */
  readonly books: LiveBookRegistry
}

/** `books`: the process's LiveBooks (collectors.ts); replays and tests get a registry of their own. */
export const makeVenueRuntime = (
  settings: PipelineSettings,
  emit: (batch: RowBatch) => Effect.Effect<void>,
  books: LiveBookRegistry = new LiveBookRegistry()
): VenueRuntime => {
  const instruments = new InstrumentRegistry()
  const prices = new ReferencePrices()
  return {
    settings,
    instruments,
    detector: new LargeTradeDetector(instruments, prices, settings.thresholds),
    prices,
    emit,
    books
  }
}

export const makeProcessor = (
  runtime: VenueRuntime,
  venue: string,
  options: {
    readonly sequenceRule: SequenceRule | undefined
    readonly fundingIntervalHours?: (symbol: string) => { readonly hours: number; readonly source: string }
    readonly requestSnapshot: (symbol: string, reason: string) => void
    readonly onResync?: (symbol: string, reason: string, lastGoodAt: number) => void
    readonly onBookLive?: (symbol: string, at: number) => void
    readonly continuity?: TradeContinuity
  }
) => {
  const processor = new RecordProcessor({
    venue,
    instruments: runtime.instruments,
    detector: runtime.detector,
    sequenceRule: options.sequenceRule,
    bookDepth: runtime.settings.bookDepth,
    bookIntervalMs: runtime.settings.bookIntervalMs,
    fundingSampleMs: runtime.settings.fundingSampleMs,
    fundingIntervalHours: options.fundingIntervalHours ?? (() => ({ hours: 8, source: "default" })),
    requestSnapshot: options.requestSnapshot,
    onResync: options.onResync ?? (() => undefined),
    onBookLive: options.onBookLive,
    continuity: options.continuity,
    barGraceMs: runtime.settings.barGraceMs
  })
  const instruments = runtime.instruments
  if (processor.books !== undefined) runtime.books.register(processor.books, (v, s) => instruments.get(v, s))
  return processor
}

/**
 * The hot path for one batch of frames: plain synchronous decode and processing,
 * then one offer per table and one metric update per counter.
 */
export interface FreshnessHook {
  readonly monitor: FreshnessMonitor
  /** A stream that had been stale delivered again. */
  readonly onFresh: (channel: string, symbol: string, at: number) => void
}

const freshnessChannel = (record: NormalizedRecord): string | undefined =>
  record.kind === "trade" ? "trades" : record.kind === "book_delta" ? "book" : record.kind === "funding" || record.kind === "mark_price" ? "funding" : undefined

export const makeFrameHandler = (
  venue: VenueDefinition,
  processor: RecordProcessor,
  feed: string,
  emit: (batch: RowBatch) => Effect.Effect<void>,
  freshness?: FreshnessHook
) => {
  const decodeErrors = Metric.withAttributes(feedDecodeErrors, { feed })
  const records = Metric.withAttributes(feedRecords, { feed })
  const unvalued = Metric.withAttributes(tradesUnvalued, { venue: venue.id })
  let loggedErrors = 0
  return (frames: ReadonlyArray<string>, now: number) =>
    Effect.suspend(() => {
      const normalized: Array<NormalizedRecord> = []
      let errors = 0
      let firstError: string | undefined
      let partial: DecodeError | undefined
      for (const frame of frames) {
        const error = venue.decodeFrame(frame, normalized)
        if (error === undefined) continue
        // A message read but for a few unreadable elements: its records are kept, the elements counted.
        if (error.dropped !== undefined) partial = error
        else {
          errors++
          firstError ??= `${error.channel}: ${error.detail} | ${error.sample}`
        }
      }
      const batch = new RowBatch()
      const before = processor.counters.unvalued + processor.counters.unknownInstrument
      const mismatchesBefore = processor.counters.venueFigureMismatch
      const invalidBefore = processor.counters.invalid
      const lateBefore = processor.bars.lateTrades
      // The shared check runs inside the processor: `admitted` is what passed it.
      const admitted = processor.process(normalized, now, batch)
      const skipped = processor.counters.unvalued + processor.counters.unknownInstrument - before
      const mismatches = processor.counters.venueFigureMismatch - mismatchesBefore
      const refused = processor.counters.invalid - invalidBefore
      const late = processor.bars.lateTrades - lateBefore
      if (refused > 0) {
        // A record no venue could have meant (a NaN, a time before 2009 or a day ahead): a decode error like an unreadable frame.
        errors += refused
        firstError ??= `refused record: ${describeRefused(processor.lastRefused!)}`
      }
      if (freshness !== undefined) {
        for (const record of admitted) {
          const channel = freshnessChannel(record)
          const matchedAt = record.kind === "trade" ? record.timestamp : undefined
          if (channel !== undefined && freshness.monitor.observe(channel, record.symbol, now, matchedAt)) {
            freshness.onFresh(channel, record.symbol, now)
          }
        }
      }
      return Effect.gen(function*() {
        if (batch.size > 0) yield* emit(batch)
        if (admitted.length > 0) yield* Metric.update(records, admitted.length)
        if (skipped > 0) yield* Metric.update(unvalued, skipped)
        if (late > 0) yield* Metric.update(Metric.withAttributes(barLateRecords, { venue: venue.id }), late)
        if (mismatches > 0) {
          yield* Metric.update(Metric.withAttributes(venueFigureMismatches, { venue: venue.id }), mismatches)
          yield* Effect.logWarning("our USD value differs from the venue's own by more than 0.1 %").pipe(Effect.annotateLogs({ feed, readings: mismatches }))
        }
        if (partial !== undefined) yield* reportDropped(partial)
        if (errors > 0) {
          yield* Metric.update(decodeErrors, errors)
          // Log the first few and then one in a hundred, so a broken feed cannot flood the log.
          if (loggedErrors++ < 5 || loggedErrors % 100 === 0) {
            yield* Effect.logWarning("undecodable frame").pipe(Effect.annotateLogs({ feed, error: firstError }))
          }
        }
      })
    })
}

/**
 * Records the shared check refused outside the frame handler (REST answers,
 * repaired trades), counted since `invalidBefore`: decode errors of `feed`,
 * and a warning for the first few and then one in a hundred.
 */
export const reportRefused = (feed: string, processor: RecordProcessor, invalidBefore: number) =>
  Effect.gen(function*() {
    const refused = processor.counters.invalid - invalidBefore
    if (refused <= 0) return
    yield* Metric.update(Metric.withAttributes(feedDecodeErrors, { feed }), refused)
    const total = processor.counters.invalid
    if (total <= 5 || Math.floor(total / 100) > Math.floor(invalidBefore / 100)) {
      yield* Effect.logWarning("record refused: a non-finite number or an impossible time").pipe(
        Effect.annotateLogs({ feed, refused, error: describeRefused(processor.lastRefused!) })
      )
    }
  })

/** Elements left out of a message that was otherwise kept: a metric and a warning saying what and why. */
export const reportDropped = (error: DecodeError) =>
  Effect.gen(function*() {
    yield* Metric.update(Metric.withAttributes(elementsDropped, { venue: error.venue, source: error.channel }), error.dropped ?? 0)
    yield* Effect.logWarning("unreadable elements dropped; the rest of the message was kept").pipe(
      Effect.annotateLogs({ venue: error.venue, source: error.channel, dropped: error.dropped, detail: error.detail })
    )
  })

export const countResync = (venue: string, reason: string) =>
  Metric.update(Metric.withAttributes(bookResyncs, { venue, reason }), 1)
