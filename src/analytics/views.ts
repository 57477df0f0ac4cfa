/**
 * The cross-venue endpoints' answers: the stored readings (storage/queries.ts)
 * put through analytics/cross-venue.ts at the service clock's now.
 */
import { Clock, Config, Context, Effect, Layer } from "effect"
import {
  latestBasisAndSettlements,
  latestBookMids,
  latestFunding,
  latestOpenInterest,
  openInterestHistory
} from "../storage/queries.ts"
import { assetOf } from "./instruments.ts"
import {
  fundingComparison as compareFunding,
  historyPlan,
  type InstrumentPrice,
  openInterestAggregate as aggregateOpenInterest,
  termStructure as buildTermStructure
} from "./cross-venue.ts"

const minute = 60_000

/** Parses ASSET=venue:symbol pairs (CME_SPOT_SOURCES' format). */
const spotSources = (raw: string) =>
  Object.fromEntries(raw.split(",").map((p) => p.trim()).filter((p) => /^[^=]+=[^:]+:.+$/.test(p)).map((p) => {
    const [asset, source] = p.split("=") as [string, string]
    const at = source.indexOf(":")
    return [asset.toUpperCase(), { exchange: source.slice(0, at), symbol: source.slice(at + 1) }]
  }))

export const crossVenueConfig = Config.all({
  /** Readings older than this are left out (listed with their age). */
  maxAgeMinutes: Config.Number("CROSS_VENUE_MAX_AGE_MINUTES").pipe(Config.withDefault(60)),
  /** How long an instrument's last open-interest reading stands in for it in later history buckets. */
  carryForwardMinutes: Config.Number("OI_HISTORY_CARRY_FORWARD_MINUTES").pipe(Config.withDefault(15)),
  /** The last hours of the history at 5-minute resolution from raw rows; hourly from the rollup before. */
  fiveMinuteHours: Config.Number("OI_HISTORY_5M_HOURS").pipe(Config.withDefault(48)),
  /** The term structure compares a live price with the spot reference only when they are at most this far apart in time. */
  maxPriceSkewSeconds: Config.Number("TERM_STRUCTURE_MAX_PRICE_SKEW_SECONDS").pipe(Config.withDefault(120)),
  /** The spot reference per asset, as the CME basis rows take theirs (CME_SPOT_SOURCES, same default). */
  spotSources: Config.String("TERM_STRUCTURE_SPOT_SOURCES").pipe(
    Config.orElse(() => Config.String("CME_SPOT_SOURCES")),
    Config.withDefault("BTC=coinbase:BTC-USD,ETH=coinbase:ETH-USD"),
    Config.map(spotSources)
  )
})

/** The views' settings, read once at start-up (a bad value stops the service there, not each request). */
export class CrossVenueSettings extends Context.Service<CrossVenueSettings, Config.Success<typeof crossVenueConfig>>()("market-data/analytics/CrossVenueSettings") {
  static readonly layer = Layer.effect(CrossVenueSettings, Effect.map(crossVenueConfig, (config) => CrossVenueSettings.of(config)))
}

const maxAgeOf = (minutes: number | undefined, fallback: number) => (minutes ?? fallback) * minute
/** The views are per asset: an instrument's symbol (BTCUSDT) stands for its asset (BTC). */
const assetQuery = (symbol: string | undefined) => (symbol === undefined ? undefined : assetOf(symbol))

export const fundingComparison = (query: { readonly symbol?: string | undefined; readonly maxAgeMinutes?: number | undefined }) =>
  Effect.gen(function*() {
    const asset = assetQuery(query.symbol)
    const config = yield* CrossVenueSettings
    const now = yield* Clock.currentTimeMillis
    const maxAgeMs = maxAgeOf(query.maxAgeMinutes, config.maxAgeMinutes)
    const [funding, openInterest] = yield* Effect.all([
      latestFunding({ symbol: asset, now }),
      latestOpenInterest({ symbol: asset, now })
    ], { concurrency: 2 })
    return {
      max_age_minutes: maxAgeMs / minute,
      formulas: {
        rate_8h: "rate x 8 / interval_hours",
        rate_annualized: "rate x 24 / interval_hours x 365 (simple, not compounded)",
        open_interest_weighted: "sum(rate_annualized x open_interest_usd) / sum(open_interest_usd) over venues with an open-interest reading within max age",
        spread: "highest minus lowest venue, of rate_annualized and of rate_8h"
      },
      assets: compareFunding({ funding, openInterest, asset, now, maxAgeMs })
    }
  })

export const openInterestAggregate = (query: { readonly symbol?: string | undefined; readonly hours: number; readonly maxAgeMinutes?: number | undefined }) =>
  Effect.gen(function*() {
    const asset = assetQuery(query.symbol)
    const config = yield* CrossVenueSettings
    const now = yield* Clock.currentTimeMillis
    const maxAgeMs = maxAgeOf(query.maxAgeMinutes, config.maxAgeMinutes)
    const carryForwardMs = config.carryForwardMinutes * minute
    const plan = historyPlan(now, query.hours, config.fiveMinuteHours)
    const hourlyFrom = Math.floor((plan.hourlyFrom - carryForwardMs) / 3_600_000) * 3_600_000
    const [latest, history] = yield* Effect.all([
      latestOpenInterest({ symbol: asset, now }),
      openInterestHistory({
        symbol: asset,
        // Each series starts from its last reading before the plan (within the carry-forward).
        rawFrom: plan.fiveMinuteFrom - carryForwardMs,
        hourlyFrom: plan.hourlyFrom < plan.fiveMinuteFrom ? hourlyFrom : plan.fiveMinuteFrom,
        hourlyUntil: plan.fiveMinuteFrom,
        now
      })
    ], { concurrency: 2 })
    return {
      hours: query.hours,
      max_age_minutes: maxAgeMs / minute,
      carry_forward_minutes: config.carryForwardMinutes,
      five_minute_from: new Date(plan.fiveMinuteFrom).toISOString(),
      assets: aggregateOpenInterest({ latest, history, plan, asset, now, maxAgeMs, carryForwardMs })
    }
  })

export const termStructure = (query: { readonly symbol?: string | undefined; readonly hours: number; readonly maxAgeMinutes?: number | undefined }) =>
  Effect.gen(function*() {
    const config = yield* CrossVenueSettings
    const now = yield* Clock.currentTimeMillis
    const maxAgeMs = maxAgeOf(query.maxAgeMinutes, config.maxAgeMinutes)
    const assets = query.symbol === undefined ? ["BTC", "ETH"] : [assetOf(query.symbol)]
    const answers = yield* Effect.forEach(assets, (asset) =>
      Effect.gen(function*() {
        const source = config.spotSources[asset]
        const [stored, books, funding, openInterest, spotBooks] = yield* Effect.all([
          latestBasisAndSettlements({ symbol: asset, hours: query.hours, now }),
          latestBookMids({ symbol: asset }),
          latestFunding({ symbol: asset, now }),
          latestOpenInterest({ symbol: asset, now }),
          source === undefined ? Effect.succeed([]) : latestBookMids({ exchange: source.exchange, symbol: source.symbol })
        ], { concurrency: 3 })
        const spot = spotBooks.find((b) => source !== undefined && b.symbol === source.symbol)
        const perpetual = new Set(funding.map((f) => `${f.exchange}\u0000${f.symbol}`))
        const isPerpetual = (p: { exchange: string; symbol: string }) => perpetual.has(`${p.exchange}\u0000${p.symbol}`)
        const markOf = (r: { exchange: string; symbol: string; timestamp: number; metadata: Record<string, unknown> | null }, what: string): Array<InstrumentPrice> => {
          const mark = r.metadata?.mark_price
          return typeof mark === "number" && mark > 0 ? [{ exchange: r.exchange, symbol: r.symbol, price: mark, at: r.timestamp, source: what }] : []
        }
        return buildTermStructure({
          asset,
          spot: spot === undefined ? undefined : { ...spot, source: `${spot.exchange}:${spot.symbol} latest stored book mid` },
          basis: stored.basis,
          settlements: stored.settlements,
          perpetualPrices: [...funding.flatMap((f) => markOf(f, "mark price of the latest funding row")), ...books.filter(isPerpetual)],
          otherPrices: [...openInterest.filter((o) => !isPerpetual(o)).flatMap((o) => markOf(o, "mark price of the latest open-interest row")), ...books.filter((b) => !isPerpetual(b))],
          now,
          maxAgeMs,
          maxPriceSkewMs: config.maxPriceSkewSeconds * 1000
        })
      }))
    return {
      max_age_minutes: maxAgeMs / minute,
      max_price_skew_seconds: config.maxPriceSkewSeconds,
      formulas: {
        basis: "futures_price - spot_price",
        basis_percent: "basis / spot_price x 100",
        annualized_basis_percent: "basis_percent x 365 / days_to_expiry (none within a day of expiry, none for perpetuals)"
      },
      assets: answers
    }
  })
