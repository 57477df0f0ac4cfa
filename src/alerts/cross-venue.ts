/**
 * The live cross-venue check (issue 20.5): per asset, each venue's mid price,
 * open interest and funding rate against the cross-venue median of the same
 * moment, to catch the next unit error (a contract size, a both-sides figure,
 * a rate over the wrong interval) while it happens rather than in a review.
 *
 * A side sink of the fan-out point: `offer` only notes the newest figure of
 * each instrument (a few map writes per row, no waiting, bounded by the
 * instrument count), and a sampler fiber compares them every
 * `CROSS_CHECK_SECONDS` (10) on the layer's scope. A venue found too far away
 * is counted (`cross_venue_outlier_total{venue,field}`) and logged with its
 * figure and the median (at most once a minute per venue and field); the
 * alert engine reads the last sample's findings (the `cross_venue_outlier`
 * rule kind) as it reads the rest of the live state.
 *
 * What is compared, per field:
 *
 * - `mid`: the book's (best bid + best ask) / 2 of spot and perpetual
 *   instruments quoted in USD or a USD stablecoin (a dated future's basis is
 *   not an error). Distance: percent of the median
 *   (`CROSS_CHECK_MAX_DEVIATION_PCT_MID`, default 1).
 * - `funding`: perpetuals' rates on the 8 h basis (rate x 8 / the row's
 *   `metadata.interval_hours`, as `storage/queries.ts` and migration 0014 put
 *   them): an hourly venue's 0.0001 is 0.0008 per 8 h. Distance: absolute, in
 *   rate per 8 h (`CROSS_CHECK_MAX_DEVIATION_FUNDING`, default 0.001). The
 *   funding tracker writes a row per interval and on change, so a reading is
 *   current while its interval runs (until `nextFundingTime`) as well as
 *   within the age limit.
 * - `open_interest`: NOT the size. Venues' open interest differs honestly by
 *   ten times and more, so a median of sizes flags the big venues and the
 *   small ones. Nor the USD per contract (oi_usd / (oi x contract size)
 *   against the median mid): that catches a contract size wrong in one
 *   figure only, but the Bybit error of issue 20.1 (both sides stored as one:
 *   contracts doubled, and the USD value, from the same contracts or from
 *   Bybit's own both-sides openInterestValue, doubled with them) leaves it
 *   exactly right. What a unit error does change is the venue's open interest
 *   against itself while the market's does not: the measure is each
 *   perpetual's change between its two newest readings (newest USD / the one
 *   before, in USD so a USD-only error shows too; price moves are common to
 *   every venue of the asset and cancel in the median), against the median of
 *   the venues' changes. A figure that starts arriving doubled (a frame that
 *   drops the one-sided field, a deploy, a reconnect) is a change of x2
 *   against a market's x1.00: +100 %, flagged at the first sample after the
 *   reading. Distance: percent of the median change
 *   (`CROSS_CHECK_MAX_DEVIATION_PCT_OPEN_INTEREST`, default 25; open interest
 *   rarely moves 25 % between two readings, and never on every venue but one).
 *   Its limit: an error present from a venue's first reading and constant
 *   after never changes, so this check cannot see it (the venue-figure check,
 *   `venue_figure_mismatch_total`, and review of the sizes remain for that);
 *   and a flagged step is flagged until the venue's next reading.
 *
 * A figure counts only when fresh (`CROSS_CHECK_MAX_AGE_SECONDS`, 60, of the
 * sampler's clock; for open interest the reading before the newest must also
 * be within that age of it). An instrument's venue speaks through the median
 * of its instruments of the asset, so a venue listing many does not outvote
 * the rest. At least 3 venues are needed: with 2, the median is their middle
 * and each is as far from it as the other, so nothing says which is wrong;
 * with 3 or more, one wrong venue cannot carry the median away from the honest
 * ones.
 */
import { Clock, Config, Context, Duration, Effect, Layer, Metric, Schedule } from "effect"
import { parQuotes } from "../domain/instruments.ts"
import type { RowBatch } from "../domain/rows.ts"
import { crossVenueOutliers } from "../observability/metrics.ts"
import type { InstrumentLookup } from "./evaluate.ts"

export const crossFields = ["mid", "open_interest", "funding"] as const
export type CrossField = typeof crossFields[number]

/** A venue's figure too far from the cross-venue median, at one sample. */
export interface Outlier {
  readonly field: CrossField
  readonly asset: string
  readonly exchange: string
  readonly symbol: string
  /** The venue's figure: a mid price, an open-interest change ratio, a funding rate per 8 h. */
  readonly value: number
  readonly median: number
  /** Percent of the median (mid, open interest) or absolute per 8 h (funding). */
  readonly distance: number
  readonly maxDistance: number
  /** Venues that made the median. */
  readonly venues: number
  /** The figure's own time (the row's), and the sample's. */
  readonly figureTime: number
  readonly sampledAt: number
}

export interface CrossCheckSettings {
  readonly maxAgeMs: number
  readonly maxDeviation: { readonly mid: number; readonly open_interest: number; readonly funding: number }
}

/** Fewer venues than this make no median to judge by (see the module header). */
export const minVenues = 3

export const crossCheckConfig = Config.all({
  seconds: Config.Number("CROSS_CHECK_SECONDS").pipe(Config.withDefault(10)),
  maxAgeSeconds: Config.Number("CROSS_CHECK_MAX_AGE_SECONDS").pipe(Config.withDefault(60)),
  mid: Config.Number("CROSS_CHECK_MAX_DEVIATION_PCT_MID").pipe(Config.withDefault(1)),
  openInterest: Config.Number("CROSS_CHECK_MAX_DEVIATION_PCT_OPEN_INTEREST").pipe(Config.withDefault(25)),
  funding: Config.Number("CROSS_CHECK_MAX_DEVIATION_FUNDING").pipe(Config.withDefault(0.001))
})

export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

interface Figure {
  readonly asset: string
  readonly exchange: string
  readonly symbol: string
  readonly value: number
  readonly t: number
}

/**
 * The participants' figures against the median of their venues' figures (each
 * venue's the median of its instruments'); `distance` measures one against it.
 */
export const outliersOf = (
  field: CrossField,
  figures: ReadonlyArray<Figure>,
  distance: (value: number, median: number) => number,
  maxDistance: number,
  sampledAt: number
): Array<Outlier> => {
  const byAsset = new Map<string, Array<Figure>>()
  for (const f of figures) {
    const list = byAsset.get(f.asset) ?? []
    list.push(f)
    byAsset.set(f.asset, list)
  }
  const out: Array<Outlier> = []
  for (const [asset, list] of byAsset) {
    const byVenue = new Map<string, Array<number>>()
    for (const f of list) byVenue.set(f.exchange, [...(byVenue.get(f.exchange) ?? []), f.value])
    if (byVenue.size < minVenues) continue
    const middle = median([...byVenue.values()].map(median))
    for (const f of list) {
      const d = distance(f.value, middle)
      if (!(d > maxDistance)) continue
      out.push({
        field, asset, exchange: f.exchange, symbol: f.symbol, value: f.value, median: middle, distance: d, maxDistance,
        venues: byVenue.size, figureTime: f.t, sampledAt
      })
    }
  }
  return out
}

const percentOf = (value: number, middle: number) => Math.abs(value - middle) / Math.abs(middle) * 100
const absolute = (value: number, middle: number) => Math.abs(value - middle)
const usdQuotes = new Set([...parQuotes, "USD"])
/** Instruments remembered per field; beyond it the least recently updated is forgotten. */
const maxInstruments = 20_000

class Latest<V> {
  private readonly map = new Map<string, V>()
  set(key: string, value: V): void {
    this.map.delete(key)
    this.map.set(key, value)
    if (this.map.size > maxInstruments) this.map.delete(this.map.keys().next().value as string)
  }
  get(key: string): V | undefined {
    return this.map.get(key)
  }
  values(): IterableIterator<V> {
    return this.map.values()
  }
}

interface Reading {
  readonly asset: string
  readonly exchange: string
  readonly symbol: string
  readonly t: number
}

/** The newest figures of every instrument, and the comparison of a moment. Plain synchronous code. */
export class CrossVenueState {
  private readonly mids = new Latest<Reading & { readonly mid: number }>()
  private readonly funding = new Latest<Reading & { readonly per8h: number; readonly until: number | null }>()
  private readonly openInterest = new Latest<Reading & { readonly usd: number; readonly previous: { readonly t: number; readonly usd: number } | undefined }>()
  private readonly settings: CrossCheckSettings
  constructor(settings: CrossCheckSettings) {
    this.settings = settings
  }

  observe(batch: RowBatch, lookup: InstrumentLookup): void {
    for (const r of batch.exchange_orderbooks) {
      const facts = lookup(r.exchange, r.symbol)
      if (facts === undefined || (facts.kind !== "spot" && facts.kind !== "perpetual") || !usdQuotes.has(facts.quote)) continue
      let bid = -Infinity
      let ask = Infinity
      for (const [p] of r.bids) bid = Math.max(bid, p)
      for (const [p] of r.asks) ask = Math.min(ask, p)
      const key = `${r.exchange}:${r.symbol}`
      if (!Number.isFinite(bid) || !Number.isFinite(ask) || !(bid > 0) || (this.mids.get(key)?.t ?? -Infinity) > r.timestamp) continue
      this.mids.set(key, { asset: facts.base, exchange: r.exchange, symbol: r.symbol, t: r.timestamp, mid: (bid + ask) / 2 })
    }
    for (const r of batch.funding_rates) {
      const facts = lookup(r.exchange, r.symbol)
      if (facts === undefined || facts.kind !== "perpetual" || !Number.isFinite(r.rate)) continue
      const hours = Number((r.metadata as { interval_hours?: unknown } | null)?.interval_hours ?? 8)
      const key = `${r.exchange}:${r.symbol}`
      if (!(hours > 0) || (this.funding.get(key)?.t ?? -Infinity) > r.timestamp) continue
      this.funding.set(key, { asset: facts.base, exchange: r.exchange, symbol: r.symbol, t: r.timestamp, per8h: r.rate * 8 / hours, until: r.nextFundingTime })
    }
    for (const r of batch.open_interest) {
      const facts = lookup(r.exchange, r.symbol)
      if (facts === undefined || facts.kind !== "perpetual" || !(r.openInterestUsd > 0)) continue
      const key = `${r.exchange}:${r.symbol}`
      const last = this.openInterest.get(key)
      if (last !== undefined && last.t >= r.timestamp) continue
      this.openInterest.set(key, {
        asset: facts.base, exchange: r.exchange, symbol: r.symbol, t: r.timestamp, usd: r.openInterestUsd,
        previous: last === undefined ? undefined : { t: last.t, usd: last.usd }
      })
    }
  }

  /** The figures fresh at `now` compared with their cross-venue medians. */
  sample(now: number): Array<Outlier> {
    const { maxAgeMs, maxDeviation } = this.settings
    const fresh = (t: number) => t <= now && now - t <= maxAgeMs
    const mids: Array<Figure> = []
    for (const m of this.mids.values()) if (fresh(m.t)) mids.push({ ...m, value: m.mid })
    const funding: Array<Figure> = []
    for (const f of this.funding.values()) {
      if (fresh(f.t) || (f.until !== null && f.t <= now && now < f.until)) funding.push({ ...f, value: f.per8h })
    }
    const changes: Array<Figure> = []
    for (const o of this.openInterest.values()) {
      if (o.previous === undefined || !fresh(o.t) || o.t - o.previous.t > maxAgeMs) continue
      changes.push({ ...o, value: o.usd / o.previous.usd })
    }
    return [
      ...outliersOf("mid", mids, percentOf, maxDeviation.mid, now),
      ...outliersOf("open_interest", changes, percentOf, maxDeviation.open_interest, now),
      ...outliersOf("funding", funding, absolute, maxDeviation.funding, now)
    ]
  }
}

const describeFigure = (o: Outlier): string =>
  o.field === "mid"
    ? `mid ${o.value} against the median ${o.median} (${o.distance.toFixed(2)}% away, more than ${o.maxDistance}%)`
    : o.field === "funding"
    ? `funding ${o.value} per 8 h against the median ${o.median} (${o.distance.toPrecision(3)} away, more than ${o.maxDistance})`
    : `open interest changed x${o.value.toFixed(4)} between its last two readings against the median x${o.median.toFixed(4)} (${o.distance.toFixed(1)}% away, more than ${o.maxDistance}%)`

/** One line per finding: what the alert and the log say. */
export const outlierMessage = (o: Outlier): string => `${o.exchange} ${o.symbol} (${o.asset}, ${o.venues} venues): ${describeFigure(o)}`

export interface CrossCheckFindings {
  /** When the last sample was taken (null before the first). */
  readonly sampledAt: number | null
  readonly outliers: ReadonlyArray<Outlier>
}

export class CrossCheck extends Context.Service<CrossCheck, {
  /** Notes a batch's figures; never waits. */
  readonly offer: (batch: RowBatch, lookup: InstrumentLookup) => void
  /** The last sample's findings. */
  readonly findings: () => CrossCheckFindings
}>()("market-data/alerts/CrossCheck") {
  static readonly layer = Layer.effect(CrossCheck, Effect.gen(function*() {
    const config = yield* crossCheckConfig
    const state = new CrossVenueState({
      maxAgeMs: config.maxAgeSeconds * 1000,
      maxDeviation: { mid: config.mid, open_interest: config.openInterest, funding: config.funding }
    })
    let findings: CrossCheckFindings = { sampledAt: null, outliers: [] }
    const loggedAt = new Map<string, number>()
    const sample = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const outliers = state.sample(now)
      findings = { sampledAt: now, outliers }
      for (const o of outliers) {
        yield* Metric.update(Metric.withAttributes(crossVenueOutliers, { venue: o.exchange, field: o.field }), 1)
        const key = `${o.exchange}\u0000${o.field}`
        if (now - (loggedAt.get(key) ?? -Infinity) < 60_000) continue
        loggedAt.set(key, now)
        yield* Effect.logWarning(`cross-venue outlier: ${outlierMessage(o)}`).pipe(Effect.annotateLogs({
          venue: o.exchange, symbol: o.symbol, field: o.field, value: o.value, median: o.median, venues: o.venues
        }))
      }
    })
    yield* Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(Duration.seconds(config.seconds))))
    return CrossCheck.of({
      offer: (batch, lookup) => state.observe(batch, lookup),
      findings: () => findings
    })
  }))
}
