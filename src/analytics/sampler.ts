/**
 * The cross-venue sampler: every SPREAD_SAMPLE_SECONDS (1), for each asset of
 * SPREAD_ASSETS (BTC,ETH), one spread sample from the live books
 * (analytics/spreads.ts) and the arbitrage judged on it
 * (analytics/arbitrage.ts). Its rows leave through the fan-out point
 * (collectors.ts hands `attach` the venues' `emit`): the writer stores them,
 * the stream hub sees them, like any batch. Until attached it samples nothing.
 *
 * Arbitrage storage: a row at open, at each new peak, every 10 s while open
 * and at close, under one id (an upsert; storage/inserts.ts). The API reads
 * open ones from the table (closed_at NULL), so they are served as any other
 * row. A restart cannot see an opportunity through: at a clean shutdown the
 * open ones are closed at their last sample; at start, any a previous process
 * left open (it ended without shutting down) are closed at their last stored
 * sample (at most 10 s before it ended); each with a reason saying so, never
 * left open forever nor dropped silently: the start-up close asks the
 * database again every 5 s, in the background, until it answers. One still
 * there opens again under a new id.
 */
import { Clock, Config, Context, Deferred, Duration, Effect, Layer, Option, Schedule, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { LiveBooks } from "../book/live.ts"
import { type ArbitrageRow, RowBatch } from "../domain/rows.ts"
import { openArbitrage } from "../storage/queries.ts"
import { ArbitrageTracker, closedByRestart, closedByShutdown, defaultLegTiming, parseTakerFees } from "./arbitrage.ts"
import { sampleAsset, sampleSignature, type StoredState, storedState, storeReason } from "./spreads.ts"

const positive = Schema.Finite.check(Schema.isGreaterThan(0))
const feeBps = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThan(10_000))
/** `venue:bps` pairs separated by commas (arbitrage.ts parseTakerFees). */
const feeList = Schema.String.check(Schema.isPattern(/^\s*([a-z0-9-]+\s*:\s*\d{1,4}(\.\d+)?\s*(,\s*|$))*$/i))

export const analyticsConfig = Config.all({
  assets: Config.String("SPREAD_ASSETS").pipe(
    Config.withDefault("BTC,ETH"),
    Config.map((text) => text.split(",").map((s) => s.trim().toUpperCase()).filter((s) => s.length > 0))
  ),
  sampleSeconds: Config.schema(positive, "SPREAD_SAMPLE_SECONDS").pipe(Config.withDefault(1)),
  maxBookAgeSeconds: Config.schema(positive, "SPREAD_MAX_BOOK_AGE_SECONDS").pipe(Config.withDefault(5)),
  arbitrageMaxBookAgeMs: Config.schema(positive, "ARBITRAGE_MAX_BOOK_AGE_MS").pipe(Config.withDefault(defaultLegTiming.maxBookAgeMs)),
  arbitrageMaxLegSkewMs: Config.schema(positive, "ARBITRAGE_MAX_LEG_SKEW_MS").pipe(Config.withDefault(defaultLegTiming.maxLegSkewMs)),
  storeSeconds: Config.schema(positive, "SPREAD_STORE_SECONDS").pipe(Config.withDefault(10)),
  storeChangeBps: Config.schema(positive, "SPREAD_STORE_CHANGE_BPS").pipe(Config.withDefault(1)),
  fees: Config.schema(feeList, "ARBITRAGE_TAKER_FEES_BPS").pipe(Config.withDefault("")),
  otherVenueFeeBps: Config.schema(feeBps, "ARBITRAGE_DEFAULT_TAKER_FEE_BPS").pipe(Config.withDefault(10))
})

type Emit = (batch: RowBatch) => Effect.Effect<void>

/** How often closeLeftOpen asks the database again. */
export const leftOpenRetrySpacing = Duration.seconds(5)

/**
 * Closes what a previous process left open (see the module header), asking
 * `readOpen` again every leftOpenRetrySpacing until it answers: however long
 * the database is away, the rows are closed once it is back (until then the
 * API serves them as `unconfirmed`, storage/queries.ts). Only rows opened
 * before `startedAt`: this process's own are its tracker's.
 */
export const closeLeftOpen = <E>(readOpen: Effect.Effect<ReadonlyArray<ArbitrageRow>, E>, emit: Emit, startedAt: number) =>
  readOpen.pipe(
    Effect.tapCause((cause) => Effect.logWarning("could not read the arbitrage opportunities left open by a previous run; asking again", cause)),
    Effect.retry(Schedule.spaced(leftOpenRetrySpacing)),
    Effect.flatMap((stored) => {
      const rows = stored.filter((row) => row.openedAt < startedAt)
      if (rows.length === 0) return Effect.void
      const batch = new RowBatch()
      batch.arbitrage_opportunities.push(...rows.map(closedByRestart))
      return Effect.andThen(
        emit(batch),
        Effect.logWarning(`closed ${rows.length} arbitrage opportunities a previous run left open, at their last stored sample`)
      )
    })
  )

export class CrossVenueAnalytics extends Context.Service<CrossVenueAnalytics, {
  /** Hands the sampler the fan-out point; sampling starts then. */
  readonly attach: (emit: Emit) => Effect.Effect<void>
}>()("market-data/analytics/CrossVenueAnalytics") {
  static readonly layer = Layer.effect(CrossVenueAnalytics, Effect.gen(function*() {
    const config = yield* analyticsConfig
    const fees = parseTakerFees(config.fees, config.otherVenueFeeBps)
    if (typeof fees === "string") return yield* Effect.die(new Error(fees))
    const books = yield* LiveBooks
    const sql = yield* Effect.serviceOption(SqlClient.SqlClient)
    const attached = yield* Deferred.make<Emit>()
    const tracker = new ArbitrageTracker(fees, { maxBookAgeMs: config.arbitrageMaxBookAgeMs, maxLegSkewMs: config.arbitrageMaxLegSkewMs })
    const signatures = new Map<string, string>()
    const lastStored = new Map<string, StoredState>()
    const settings = { maxBookAgeMs: config.maxBookAgeSeconds * 1000 }

    const sample = (emit: Emit) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const views = books.books()
        const lookup = (venue: string, symbol: string) => books.instrument(venue, symbol)
        const batch = new RowBatch()
        for (const asset of config.assets) {
          const s = sampleAsset(asset, views, lookup, now, settings)
          const signature = sampleSignature(s)
          const changed = signatures.get(asset) !== signature
          signatures.set(asset, signature)
          const why = storeReason(s, lastStored.get(asset), config.storeChangeBps, config.storeSeconds * 1000)
          if (why !== undefined) lastStored.set(asset, storedState(s))
          batch.exchange_spreads.push({
            id: `${asset}_${now}`, asset, timestamp: now, quotes: s.quotes, pairs: s.pairs, excluded: s.excluded, changed, stored: why !== undefined,
            metadata: { max_book_age_ms: settings.maxBookAgeMs, pair_spread: "(mid_a - mid_b) / ((mid_a + mid_b) / 2) x 1e4", ...(why === undefined ? {} : { stored_because: why }) }
          })
          batch.arbitrage_opportunities.push(...tracker.observe(s))
        }
        yield* emit(batch)
      })


    // At a clean shutdown, after the sampler stopped (finalizers run last first) and before the writer
    // drains (main.ts), the open ones are closed at their last sample.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const open = tracker.openRows()
        if (!Deferred.isDoneUnsafe(attached) || open.length === 0) return
        const emit = yield* Deferred.await(attached)
        const batch = new RowBatch()
        batch.arbitrage_opportunities.push(...open.map(closedByShutdown))
        yield* emit(batch)
      })
    )
    yield* Effect.forkScoped(Effect.gen(function*() {
      const emit = yield* Deferred.await(attached)
      const startedAt = yield* Clock.currentTimeMillis
      // In the background: sampling does not wait for a database that does not answer.
      if (Option.isSome(sql)) {
        yield* Effect.forkScoped(closeLeftOpen(openArbitrage.pipe(Effect.provideService(SqlClient.SqlClient, sql.value)), emit, startedAt))
      }
      yield* Effect.repeat(
        sample(emit).pipe(Effect.catchCause((cause) => Effect.logError("cross-venue sample failed", cause))),
        Schedule.spaced(Duration.seconds(config.sampleSeconds))
      )
    }))
    return CrossVenueAnalytics.of({ attach: (emit) => Deferred.succeed(attached, emit).pipe(Effect.asVoid) })
  }))
}
