/**
 * CME: daily settlements, open interest and volume of the BTC, MBT, ETH and MET
 * futures from one `SettlementSource` (Databento when DATABENTO_API_KEY is set,
 * otherwise CME's own delayed website data), polled every CME_POLL_MINUTES for
 * the last CME_LOOKBACK_DAYS trade dates. Each new settlement also yields the
 * contract's basis to spot (Coinbase BTC-USD / ETH-USD from our own feed, as it
 * was at the 3:00 p.m. Chicago settlement when we were running then) and, per
 * product, a roll event when the next contract's open interest overtakes the
 * front's.
 */
import { Clock, Config, Duration, Effect, Metric, Option, Redacted } from "effect"
import type { NormalizedRecord } from "../../domain/records.ts"
import { FeedRegistry } from "../../feed/status.ts"
import { makeProcessor, type VenueRuntime } from "../../pipeline/runtime.ts"
import { emitRecords } from "../../pipeline/venue-kit.ts"
import { defaultGateOptions, makeRestGate } from "../../rest/gate.ts"
import type { VenueDefinition } from "../venue.ts"
import { computeBasis, detectRoll, rollState, settlementTime } from "./analytics.ts"
import { listedContracts, products } from "./contracts.ts"
import { cmeWebsiteSource, databentoSource, type Settlement, type SettlementSource, verifiedProductIds } from "./sources.ts"

const day = 86_400_000
const minute = 60_000

const sourceFailures = Metric.counter("cme_source_failures_total", { description: "Failed settlement fetches, per source and error", incremental: true })

const pairs = (raw: string) =>
  Object.fromEntries(raw.split(",").map((p) => p.trim()).filter((p) => p.includes("=") || p.includes(":")).map((p) => {
    const [key, ...rest] = p.split(/[=:]/)
    return [key!.toUpperCase(), rest.join(":")]
  }))

export const cmeConfig = Config.all({
  roots: Config.String("CME_PRODUCTS").pipe(
    Config.withDefault("BTC,MBT,ETH,MET"),
    Config.map((list) => list.split(",").map((s) => s.trim().toUpperCase()).filter((s) => products[s] !== undefined))
  ),
  websiteUrl: Config.String("CME_WEBSITE_URL").pipe(Config.withDefault("https://www.cmegroup.com")),
  productIds: Config.String("CME_PRODUCT_IDS").pipe(
    Config.withDefault(""),
    Config.map((raw) => ({ ...verifiedProductIds, ...Object.fromEntries(Object.entries(pairs(raw)).map(([k, v]) => [k, Number(v)])) }))
  ),
  databentoKey: Config.Redacted("DATABENTO_API_KEY").pipe(Config.option),
  databentoUrl: Config.String("DATABENTO_URL").pipe(Config.withDefault("https://hist.databento.com")),
  pollMs: Config.Number("CME_POLL_MINUTES").pipe(Config.withDefault(30), Config.map((m) => m * 60_000)),
  lookbackDays: Config.Int("CME_LOOKBACK_DAYS").pipe(Config.withDefault(5)),
  /** How far from the settlement moment a live spot price may be and still make a basis row. */
  spotToleranceMs: Config.Number("CME_BASIS_SPOT_TOLERANCE_MINUTES").pipe(Config.withDefault(15), Config.map((m) => m * minute)),
  /** ASSET=venue:symbol of the spot price for the basis. */
  spotSources: Config.String("CME_SPOT_SOURCES").pipe(
    Config.withDefault("BTC=coinbase:BTC-USD,ETH=coinbase:ETH-USD"),
    Config.map((raw) =>
      Object.fromEntries(raw.split(",").map((p) => p.trim()).filter((p) => p.includes("=")).map((p) => {
        const [asset, source] = p.split("=")
        const [venue, symbol] = source!.split(":")
        return [asset!.toUpperCase(), { venue: venue!, symbol: symbol! }]
      }))
    )
  )
})


/** Spot prices kept by the minute for three days, so a settlement can be compared with spot at its own moment. */
class SpotHistory {
  private readonly byMinute = new Map<string, Map<number, number>>()

  record(asset: string, price: number, at: number): void {
    const series = this.byMinute.get(asset) ?? new Map<number, number>()
    this.byMinute.set(asset, series)
    series.set(Math.floor(at / minute), price)
    const oldest = Math.floor((at - 3 * day) / minute)
    for (const key of series.keys()) {
      if (key >= oldest) break
      series.delete(key)
    }
  }

  /** The recorded price nearest to `at`, within five minutes. */
  at(asset: string, at: number): number | undefined {
    const series = this.byMinute.get(asset)
    if (series === undefined) return undefined
    const target = Math.floor(at / minute)
    for (let offset = 0; offset <= 5; offset++) {
      const price = series.get(target - offset) ?? series.get(target + offset)
      if (price !== undefined) return price
    }
    return undefined
  }
}

export const runCme = (definition: VenueDefinition) => (runtime: VenueRuntime) =>
  Effect.gen(function*() {
    const venue = definition.id
    const config = yield* cmeConfig
    const registry = yield* FeedRegistry
    const now = yield* Clock.currentTimeMillis
    for (const root of config.roots) {
      const product = products[root]!
      for (const c of listedContracts(root, now, 12)) {
        runtime.instruments.add({ venue, symbol: c.symbol, base: product.base, quote: "USD", kind: "future", contractSize: product.multiplier, inverse: false })
      }
    }
    const source: SettlementSource = Option.isSome(config.databentoKey)
      ? databentoSource(
        yield* makeRestGate({ ...defaultGateOptions(`${venue}:databento`, 60), windowMs: 60_000 }),
        config.databentoUrl.replace(/\/$/, ""),
        Redacted.value(config.databentoKey.value),
        config.roots
      )
      : cmeWebsiteSource(
        yield* makeRestGate({ ...defaultGateOptions(`${venue}:website`, 30), windowMs: 60_000 }),
        config.websiteUrl.replace(/\/$/, ""),
        Object.fromEntries(Object.entries(config.productIds).filter(([root, id]) => config.roots.includes(root) && Number.isFinite(id)))
      )
    // CME's website sits behind bot protection that refuses non-browser clients (2026: 403 "IP blocked").
    const sourceAdvice = source.name === "cme-website"
      ? ". CME's website often refuses non-browser clients; set DATABENTO_API_KEY to use Databento's documented API instead"
      : ""
    yield* Effect.logInfo("CME settlements source").pipe(Effect.annotateLogs({ venue, source: source.name, products: config.roots.join(",") }))

    const spotOf = (spotVenue: string, symbol: string) => {
      const instrument = runtime.instruments.get(spotVenue, symbol)
      return instrument === undefined ? undefined : runtime.prices.lastTrade(instrument)
    }
    const spot = new SpotHistory()
    yield* Effect.gen(function*() {
      const at = yield* Clock.currentTimeMillis
      for (const [asset, { venue: spotVenue, symbol }] of Object.entries(config.spotSources)) {
        const last = spotOf(spotVenue, symbol)
        if (last !== undefined && at - last.at < 5 * minute) spot.record(asset, last.price, last.at)
      }
    }).pipe(Effect.andThen(Effect.sleep(Duration.seconds(15))), Effect.forever, Effect.forkScoped)

    const emitted = new Set<string>()
    const withBasis = new Set<string>()
    const processor = makeProcessor(runtime, venue, { sequenceRule: undefined, requestSnapshot: () => undefined })
    const emit = (records: ReadonlyArray<NormalizedRecord>) => emitRecords(processor, runtime, records)

    const basisOf = (s: Settlement, at: number): NormalizedRecord | undefined => {
      const product = products[s.contract.root]!
      const struck = settlementTime(s.tradeDate)
      const atSettlement = spot.at(product.base, struck)
      const source = config.spotSources[product.base]
      if (source === undefined) return undefined
      const live = spotOf(source.venue, source.symbol)
      // Spot at the settlement moment when we saw it; otherwise live spot only within the configured tolerance.
      const [spotPrice, timing] = atSettlement !== undefined
        ? [atSettlement, "at settlement"]
        : live !== undefined && Math.abs(live.at - struck) <= config.spotToleranceMs
        ? [live.price, `live, ${Math.round((live.at - struck) / minute)} minutes from settlement`]
        : [undefined, ""]
      if (spotPrice === undefined) return undefined
      const b = computeBasis(s.contract, s.price, spotPrice, struck)
      return {
        kind: "basis",
        venue,
        symbol: s.contract.symbol,
        futuresPrice: b.futuresPrice,
        spotPrice: b.spotPrice,
        spotSource: `${source.venue}:${source.symbol}`,
        basis: b.basis,
        basisPercent: b.basisPercent,
        annualizedPercent: b.annualizedPercent,
        daysToExpiry: b.daysToExpiry,
        timestamp: struck,
        details: { futures_price_source: `settlement ${new Date(s.tradeDate).toISOString().slice(0, 10)} (${s.source})`, spot_timing: timing }
      }
    }

    const poll = Effect.gen(function*() {
      const failures: Array<string> = []
      const at = yield* Clock.currentTimeMillis
      const today = Math.floor(at / day) * day
      for (let back = config.lookbackDays; back >= 0; back--) {
        const tradeDate = today - back * day
        const weekday = new Date(tradeDate).getUTCDay()
        if (weekday === 0 || weekday === 6) continue
        const result = yield* Effect.result(source.fetch(tradeDate))
        if (result._tag === "Failure") {
          const error = result.failure
          const status = "status" in error && error.status !== undefined ? ` HTTP ${error.status}` : ""
          // The request URL is long and the same every day: the reason keeps what went wrong.
          const detail = "detail" in error ? error.detail.replace(/\s*\((GET|POST) [^)]*\)/, "").slice(0, 160) : ""
          failures.push(`${new Date(tradeDate).toISOString().slice(0, 10)}: ${error._tag}${status}${detail === "" ? "" : ` (${detail})`}`)
          yield* Metric.update(Metric.withAttributes(sourceFailures, { source: source.name, error: error._tag }), 1)
          yield* Effect.logWarning("CME settlements unavailable; retrying at the next poll").pipe(
            Effect.annotateLogs({ venue, source: source.name, tradeDate: new Date(tradeDate).toISOString().slice(0, 10), error: error._tag, detail: "detail" in error ? error.detail : "" })
          )
          continue
        }
        const records: Array<NormalizedRecord> = []
        // A basis needs spot at settlement; one not possible yet (no spot seen) is tried again at the next poll.
        for (const s of result.success) {
          const key = `${s.contract.symbol}_${tradeDate}`
          if (withBasis.has(key)) continue
          const basis = basisOf(s, at)
          if (basis === undefined) continue
          records.push(basis)
          withBasis.add(key)
        }
        const fresh = result.success.filter((s) => !emitted.has(`${s.contract.symbol}_${tradeDate}`))
        for (const s of fresh) {
          const product = products[s.contract.root]!
          records.push({
            kind: "settlement",
            venue,
            symbol: s.contract.symbol,
            root: s.contract.root,
            base: product.base,
            contractSize: product.multiplier,
            tradeDate: s.tradeDate,
            expiry: s.contract.expiry,
            price: s.price,
            volume: s.volume,
            openInterest: s.openInterest,
            source: s.source,
            timestamp: settlementTime(s.tradeDate)
          })
        }
        for (const root of fresh.length === 0 ? [] : config.roots) {
          const roll = detectRoll(rollState(root, result.success, settlementTime(tradeDate)))
          if (roll === undefined) continue
          records.push({
            kind: "roll",
            venue,
            symbol: root,
            fromSymbol: roll.from.contract.symbol,
            toSymbol: roll.to.contract.symbol,
            reason: roll.reason,
            tradeDate,
            fromOpenInterest: roll.from.openInterest,
            toOpenInterest: roll.to.openInterest,
            fromVolume: roll.from.volume,
            toVolume: roll.to.volume,
            timestamp: settlementTime(tradeDate)
          })
        }
        yield* emit(records)
        for (const s of fresh) emitted.add(`${s.contract.symbol}_${tradeDate}`)
      }
      // A refusing source shows in /health (state and why), not only in the log.
      if (failures.length === 0) registry.setVenueState(venue, "running")
      else registry.setVenueState(venue, "degraded", `${source.name} failing: ${failures.join("; ")}${sourceAdvice}`)
    })
    yield* poll.pipe(Effect.andThen(Effect.sleep(Duration.millis(config.pollMs))), Effect.forever)
  })
