/**
 * One asset across venues, from stored readings: every perpetual's funding on
 * one basis with the open-interest-weighted average and the high-low spread;
 * open interest summed over venues, now and as a 5-minute history; the basis
 * term structure against one spot reference. Pure functions of the rows
 * storage/queries.ts reads, so the arithmetic is tested without a database.
 */
import { assetOf, expiryOf } from "./instruments.ts"
import type { FundingRateRow, OpenInterestRow } from "../domain/rows.ts"

const day = 86_400_000
const hour = 3_600_000
/** 12 significant digits: the binary noise of a product (0.0001 x 3 x 365) is not an answer. */
const clean = (x: number) => Number(x.toPrecision(12))
const iso = (ms: number) => new Date(ms).toISOString()
const ageSeconds = (now: number, at: number) => Math.round((now - at) / 1000)

/** A stored funding row as the views read it (its id aside). */
export type FundingReading = Omit<FundingRateRow, "id">

/** A stored open-interest row as the views read it (its id aside). */
export type OpenInterestReading = Omit<OpenInterestRow, "id">

export interface LeftOut {
  readonly exchange: string
  readonly symbol: string
  readonly timestamp: string
  readonly age_seconds: number
  readonly reason: string
}

const byAsset = <R extends { readonly symbol: string }>(rows: ReadonlyArray<R>, asset: string | undefined) => {
  const groups = new Map<string, Array<R>>()
  for (const row of rows) {
    const a = assetOf(row.symbol)
    if (asset !== undefined && a !== asset.toUpperCase()) continue
    const list = groups.get(a) ?? []
    list.push(row)
    groups.set(a, list)
  }
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b))
}

const instrumentKey = (r: { readonly exchange: string; readonly symbol: string }) => `${r.exchange}\u0000${r.symbol}`
const byInstrument = (a: { exchange: string; symbol: string }, b: { exchange: string; symbol: string }) =>
  a.exchange.localeCompare(b.exchange) || a.symbol.localeCompare(b.symbol)

// ---------------------------------------------------------------------------
// Funding across venues
// ---------------------------------------------------------------------------

/** The interval a funding row's rate is stated over: its metadata's interval_hours, else 8 h (as funding_rate_per_8h, migration 0014). */
export const fundingInterval = (metadata: Record<string, unknown> | null): { readonly hours: number; readonly source: string } => {
  const stated = metadata?.interval_hours
  const hours = typeof stated === "number" ? stated : typeof stated === "string" && /^[0-9]+(\.[0-9]+)?$/.test(stated) ? Number(stated) : Number.NaN
  if (Number.isFinite(hours) && hours > 0) {
    return { hours, source: typeof metadata?.interval_source === "string" ? metadata.interval_source : "metadata.interval_hours" }
  }
  return { hours: 8, source: "assumed 8 h: the row states no interval" }
}

/** rate x 8 / interval_hours: the rate over 8 hours. */
export const per8h = (rate: number, intervalHours: number) => rate * 8 / intervalHours
/** rate x 24 / interval_hours x 365: simple (not compounded) annualisation on the venue's own interval. */
export const annualized = (rate: number, intervalHours: number) => rate * 24 / intervalHours * 365

export const fundingComparison = (input: {
  readonly funding: ReadonlyArray<FundingReading>
  readonly openInterest: ReadonlyArray<OpenInterestReading>
  readonly asset?: string | undefined
  readonly now: number
  readonly maxAgeMs: number
}) => {
  const { now, maxAgeMs } = input
  const oi = new Map(input.openInterest.filter((r) => now - r.timestamp <= maxAgeMs).map((r) => [instrumentKey(r), r]))
  return byAsset(input.funding, input.asset).map(([asset, rows]) => {
    const leftOut: Array<LeftOut> = []
    const venues = []
    for (const r of [...rows].sort(byInstrument)) {
      if (now - r.timestamp > maxAgeMs) {
        leftOut.push({ exchange: r.exchange, symbol: r.symbol, timestamp: iso(r.timestamp), age_seconds: ageSeconds(now, r.timestamp), reason: `stale: older than ${maxAgeMs / 60_000} minutes` })
        continue
      }
      const interval = fundingInterval(r.metadata)
      const weight = oi.get(instrumentKey(r))
      venues.push({
        exchange: r.exchange,
        symbol: r.symbol,
        rate: r.rate,
        interval_hours: interval.hours,
        interval_source: interval.source,
        rate_8h: clean(per8h(r.rate, interval.hours)),
        rate_annualized: clean(annualized(r.rate, interval.hours)),
        predicted_rate: r.predictedRate,
        predicted_rate_annualized: r.predictedRate === null ? null : clean(annualized(r.predictedRate, interval.hours)),
        timestamp: iso(r.timestamp),
        age_seconds: ageSeconds(now, r.timestamp),
        next_funding_time: r.nextFundingTime === null ? null : iso(r.nextFundingTime),
        open_interest_usd: weight === undefined ? null : weight.openInterestUsd,
        open_interest_time: weight === undefined ? null : iso(weight.timestamp)
      })
    }
    const weighted = venues.filter((v) => v.open_interest_usd !== null && v.open_interest_usd > 0)
    const weightUsd = weighted.reduce((sum, v) => sum + v.open_interest_usd!, 0)
    const weightedAnnual = weightUsd > 0 ? weighted.reduce((sum, v) => sum + v.rate_annualized * v.open_interest_usd!, 0) / weightUsd : null
    const high = venues.reduce<(typeof venues)[number] | undefined>((best, v) => (best === undefined || v.rate_annualized > best.rate_annualized ? v : best), undefined)
    const low = venues.reduce<(typeof venues)[number] | undefined>((best, v) => (best === undefined || v.rate_annualized < best.rate_annualized ? v : best), undefined)
    const simple = venues.length === 0 ? null : venues.reduce((sum, v) => sum + v.rate_annualized, 0) / venues.length
    return {
      asset,
      venues,
      open_interest_weighted: {
        // Annualised and per 8 h are one figure on two scales (x 3 x 365): the average of either is the same average.
        rate_annualized: weightedAnnual === null ? null : clean(weightedAnnual),
        rate_8h: weightedAnnual === null ? null : clean(weightedAnnual / 3 / 365),
        weight_usd: clean(weightUsd),
        weighted: weighted.map((v) => ({ exchange: v.exchange, symbol: v.symbol, open_interest_usd: v.open_interest_usd! })),
        unweighted: venues.filter((v) => !weighted.includes(v)).map((v) => ({
          exchange: v.exchange,
          symbol: v.symbol,
          reason: `no open-interest reading within ${maxAgeMs / 60_000} minutes: left out of this average, kept in simple_average and the spread`
        }))
      },
      simple_average: { rate_annualized: simple === null ? null : clean(simple), rate_8h: simple === null ? null : clean(simple / 3 / 365) },
      spread: high === undefined || low === undefined || venues.length < 2 ? null : {
        high: { exchange: high.exchange, symbol: high.symbol, rate_annualized: high.rate_annualized },
        low: { exchange: low.exchange, symbol: low.symbol, rate_annualized: low.rate_annualized },
        annualized: clean(high.rate_annualized - low.rate_annualized),
        per_8h: clean(high.rate_8h - low.rate_8h)
      },
      left_out: leftOut
    }
  })
}

// ---------------------------------------------------------------------------
// Open interest across venues
// ---------------------------------------------------------------------------

/** An instrument's last reading in one interval of the history: a raw row's 5-minute bucket, or an hour of the rollup. */
export interface IntervalReading {
  readonly exchange: string
  readonly symbol: string
  readonly at: number
  readonly usd: number
  readonly base: number | null
}

export interface HistoryPlan {
  /** Hourly points from the rollup over [hourlyFrom, fiveMinuteFrom); none when they are equal. */
  readonly hourlyFrom: number
  /** 5-minute points from raw rows over [fiveMinuteFrom, now). */
  readonly fiveMinuteFrom: number
}

const fiveMinutes = 5 * 60_000

/**
 * Where the history's resolution changes: 5-minute points from raw rows over
 * the last `fiveMinuteHours` (bounded, so a long window never reads months of
 * raw rows), hourly points from the rollup before that.
 */
export const historyPlan = (now: number, hours: number, fiveMinuteHours: number): HistoryPlan => {
  const from = now - hours * hour
  const rawFrom = Math.max(from, now - fiveMinuteHours * hour)
  if (rawFrom <= from) return { hourlyFrom: Math.floor(from / fiveMinutes) * fiveMinutes, fiveMinuteFrom: Math.floor(from / fiveMinutes) * fiveMinutes }
  // The switch falls on a whole hour, so no hour is half in each.
  const fiveMinuteFrom = Math.floor(rawFrom / hour) * hour
  return { hourlyFrom: Math.floor(from / hour) * hour, fiveMinuteFrom }
}

export const openInterestAggregate = (input: {
  readonly latest: ReadonlyArray<OpenInterestReading>
  /** Raw 5-minute and rollup hourly readings, plus each instrument's last reading before the plan starts (its seed for carry-forward). */
  readonly history: ReadonlyArray<IntervalReading>
  readonly plan: HistoryPlan
  readonly asset?: string | undefined
  readonly now: number
  readonly maxAgeMs: number
  readonly carryForwardMs: number
}) => {
  const { now, maxAgeMs, carryForwardMs, plan } = input
  const buckets: Array<{ start: number; end: number; resolution: "1h" | "5m" }> = []
  for (let t = plan.hourlyFrom; t < plan.fiveMinuteFrom; t += hour) buckets.push({ start: t, end: t + hour, resolution: "1h" })
  for (let t = plan.fiveMinuteFrom; t < now; t += fiveMinutes) buckets.push({ start: t, end: t + fiveMinutes, resolution: "5m" })
  const histories = new Map(byAsset(input.history, input.asset))
  return byAsset(input.latest, input.asset).map(([asset, rows]) => {
    const leftOut: Array<LeftOut> = []
    const instruments = []
    for (const r of [...rows].sort(byInstrument)) {
      if (now - r.timestamp > maxAgeMs) {
        leftOut.push({ exchange: r.exchange, symbol: r.symbol, timestamp: iso(r.timestamp), age_seconds: ageSeconds(now, r.timestamp), reason: `stale: older than ${maxAgeMs / 60_000} minutes` })
        continue
      }
      instruments.push({
        exchange: r.exchange,
        symbol: r.symbol,
        open_interest: r.openInterest,
        open_interest_base: r.openInterestBase,
        open_interest_usd: r.openInterestUsd,
        timestamp: iso(r.timestamp),
        age_seconds: ageSeconds(now, r.timestamp)
      })
    }
    const exchanges = new Map<string, { exchange: string; open_interest_base: number | null; open_interest_usd: number; instruments: number }>()
    for (const i of instruments) {
      const entry = exchanges.get(i.exchange) ?? { exchange: i.exchange, open_interest_base: 0, open_interest_usd: 0, instruments: 0 }
      entry.open_interest_usd = clean(entry.open_interest_usd + i.open_interest_usd)
      // One instrument without a coin figure makes the venue's coin total unknown, not smaller.
      entry.open_interest_base = entry.open_interest_base === null || i.open_interest_base === null ? null : clean(entry.open_interest_base + i.open_interest_base)
      entry.instruments++
      exchanges.set(i.exchange, entry)
    }
    const withBase = instruments.filter((i) => i.open_interest_base !== null)
    return {
      asset,
      instruments,
      by_exchange: [...exchanges.values()],
      total: {
        open_interest_usd: clean(instruments.reduce((sum, i) => sum + i.open_interest_usd, 0)),
        // Coins over the instruments that state them; base_unknown names the others (their USD is in the USD total).
        open_interest_base: clean(withBase.reduce((sum, i) => sum + i.open_interest_base!, 0)),
        instruments: instruments.length,
        base_unknown: instruments.filter((i) => i.open_interest_base === null).map((i) => ({ exchange: i.exchange, symbol: i.symbol }))
      },
      left_out: leftOut,
      history: historyPoints(buckets, histories.get(asset) ?? [], carryForwardMs)
    }
  })
}

/**
 * Each bucket's sum over instruments of their last reading before the bucket
 * ends: a reading inside the bucket, or one carried forward from an earlier
 * bucket while it is at most `carryForwardMs` older than the bucket's end.
 */
const historyPoints = (
  buckets: ReadonlyArray<{ start: number; end: number; resolution: "1h" | "5m" }>,
  readings: ReadonlyArray<IntervalReading>,
  carryForwardMs: number
) => {
  const series = new Map<string, Array<IntervalReading>>()
  for (const r of readings) {
    const list = series.get(instrumentKey(r)) ?? []
    list.push(r)
    series.set(instrumentKey(r), list)
  }
  const cursors = [...series.values()].map((list) => ({ list: list.sort((a, b) => a.at - b.at), next: 0, last: undefined as IntervalReading | undefined }))
  return buckets.map((bucket) => {
    let usd = 0
    let base: number | null = 0
    let contributed = 0
    let carried = 0
    for (const cursor of cursors) {
      while (cursor.next < cursor.list.length && cursor.list[cursor.next]!.at < bucket.end) cursor.last = cursor.list[cursor.next++]
      const last = cursor.last
      if (last === undefined) continue
      const inside = last.at >= bucket.start
      if (!inside && bucket.end - last.at > carryForwardMs) continue
      contributed++
      if (!inside) carried++
      usd += last.usd
      base = base === null || last.base === null ? null : base + last.base
    }
    return {
      time: iso(bucket.start),
      resolution: bucket.resolution,
      open_interest_usd: contributed === 0 ? null : clean(usd),
      // Hourly points come from the rollup, which keeps USD only: coins there are null.
      open_interest_base: contributed === 0 || base === null ? null : clean(base),
      instruments: contributed,
      carried_forward: carried
    }
  })
}

// ---------------------------------------------------------------------------
// Basis term structure
// ---------------------------------------------------------------------------

export interface SpotReference {
  readonly exchange: string
  readonly symbol: string
  readonly price: number
  readonly at: number
  readonly source: string
}

export interface StoredBasis {
  readonly exchange: string
  readonly symbol: string
  readonly futuresPrice: number
  readonly spotPrice: number
  readonly spotSource: string
  readonly daysToExpiry: number
  readonly timestamp: number
  readonly metadata: Record<string, unknown> | null
}

export interface StoredSettlement {
  readonly exchange: string
  readonly symbol: string
  readonly tradeDate: string
  readonly expiry: string
  readonly settlementPrice: number
  readonly timestamp: number
}

/** A venue's price of an instrument at a moment: a book's mid or a mark. */
export interface InstrumentPrice {
  readonly exchange: string
  readonly symbol: string
  readonly price: number
  readonly at: number
  readonly source: string
}

/** basis% x 365 / days: simple annualisation to expiry; none within a day of it (as the CME basis rows, analytics.ts of that venue). */
export const annualizedBasis = (basisPercent: number, days: number) => (days >= 1 ? basisPercent * 365 / days : null)

export const termStructure = (input: {
  readonly asset: string
  readonly spot: SpotReference | undefined
  readonly basis: ReadonlyArray<StoredBasis>
  readonly settlements: ReadonlyArray<StoredSettlement>
  /** Perpetuals' marks (funding rows) and books' mids, newest per instrument first wins. */
  readonly perpetualPrices: ReadonlyArray<InstrumentPrice>
  /** Every other instrument's price (book mids, open-interest marks): the dated futures are those with an expiry in their symbol. */
  readonly otherPrices: ReadonlyArray<InstrumentPrice>
  readonly now: number
  readonly maxAgeMs: number
  /** A live price and the spot reference further apart in time than this are not compared: each may be fresh, yet of two moments. */
  readonly maxPriceSkewMs: number
}) => {
  const { now, maxAgeMs, maxPriceSkewMs, spot } = input
  const mine = <R extends { readonly symbol: string }>(rows: ReadonlyArray<R>) => rows.filter((r) => assetOf(r.symbol) === input.asset)
  const spotFresh = spot !== undefined && now - spot.at <= maxAgeMs ? spot : undefined
  const leftOut: Array<{ exchange: string; symbol: string; reason: string; price_time?: string; spot_time?: string }> = []
  const curve: Array<{
    exchange: string
    symbol: string
    kind: "perpetual" | "future"
    expiry: string | null
    days_to_expiry: number | null
    futures_price: number
    price_source: string
    price_time: string
    spot_price: number
    spot_source: string
    spot_time: string
    basis: number
    basis_percent: number
    annualized_basis_percent: number | null
  }> = []
  const against = (futures: InstrumentPrice, kind: "perpetual" | "future", expiry: number | null, reference: { price: number; at: number; source: string }, daysAt = now) => {
    const basis = futures.price - reference.price
    const basisPercent = basis / reference.price * 100
    const days = expiry === null ? null : (expiry - daysAt) / day
    curve.push({
      exchange: futures.exchange,
      symbol: futures.symbol,
      kind,
      expiry: expiry === null ? null : iso(expiry),
      days_to_expiry: days === null ? null : clean(days),
      futures_price: futures.price,
      price_source: futures.source,
      price_time: iso(futures.at),
      spot_price: reference.price,
      spot_source: reference.source,
      spot_time: iso(reference.at),
      basis: clean(basis),
      basis_percent: clean(basisPercent),
      annualized_basis_percent: days === null ? null : (annualizedBasis(basisPercent, days) === null ? null : clean(annualizedBasis(basisPercent, days)!))
    })
  }
  const seen = new Set<string>()
  // Stored basis rows (CME's, at their settlement with the spot of that moment): as they were computed.
  for (const b of mine(input.basis)) {
    seen.add(instrumentKey(b))
    const expiry = b.timestamp + b.daysToExpiry * day
    if (expiry <= now) continue
    against({ exchange: b.exchange, symbol: b.symbol, price: b.futuresPrice, at: b.timestamp, source: `futures_basis row (${String(b.metadata?.futures_price_source ?? "stored")})` }, "future", expiry,
      { price: b.spotPrice, at: b.timestamp, source: `${b.spotSource} (stored with the basis row)` }, b.timestamp)
  }
  // Settlements with no basis row: the settlement price against the current spot reference.
  for (const s of mine(input.settlements)) {
    if (seen.has(instrumentKey(s))) continue
    seen.add(instrumentKey(s))
    // Days counted to 00:00 UTC of the expiry date, as the CME basis rows count them.
    const expiry = Date.parse(`${s.expiry}T00:00:00Z`)
    if (expiry + day <= now) continue
    if (spotFresh === undefined) {
      leftOut.push({ exchange: s.exchange, symbol: s.symbol, reason: "no fresh spot reference" })
      continue
    }
    against({ exchange: s.exchange, symbol: s.symbol, price: s.settlementPrice, at: s.timestamp, source: `settlement ${s.tradeDate}` }, "future", expiry, spotFresh)
  }
  const newest = (prices: ReadonlyArray<InstrumentPrice>) => {
    const out = new Map<string, InstrumentPrice>()
    for (const p of mine(prices)) {
      const seenPrice = out.get(instrumentKey(p))
      if (seenPrice === undefined || p.at > seenPrice.at) out.set(instrumentKey(p), p)
    }
    return [...out.values()].sort(byInstrument)
  }
  const live = (p: InstrumentPrice, kind: "perpetual" | "future", expiry: number | null) => {
    if (now - p.at > maxAgeMs) leftOut.push({ exchange: p.exchange, symbol: p.symbol, reason: `price stale: ${ageSeconds(now, p.at)} s old` })
    else if (spotFresh === undefined) leftOut.push({ exchange: p.exchange, symbol: p.symbol, reason: "no fresh spot reference" })
    else if (Math.abs(p.at - spotFresh.at) > maxPriceSkewMs) {
      leftOut.push({
        exchange: p.exchange, symbol: p.symbol,
        reason: `price and spot reference ${ageSeconds(Math.max(p.at, spotFresh.at), Math.min(p.at, spotFresh.at))} s apart (limit ${maxPriceSkewMs / 1000} s)`,
        price_time: iso(p.at), spot_time: iso(spotFresh.at)
      })
    } else against(p, kind, expiry, spotFresh)
  }
  for (const p of newest(input.perpetualPrices)) {
    seen.add(instrumentKey(p))
    live(p, "perpetual", null)
  }
  for (const p of newest(input.otherPrices)) {
    if (seen.has(instrumentKey(p))) continue
    const expiry = expiryOf(p.symbol)
    if (expiry === undefined || expiry <= now) continue
    live(p, "future", expiry)
  }
  curve.sort((a, b) =>
    (a.expiry === null ? 0 : 1) - (b.expiry === null ? 0 : 1) || (a.expiry ?? "").localeCompare(b.expiry ?? "") || byInstrument(a, b)
  )
  return {
    asset: input.asset,
    spot: spot === undefined ? null : {
      exchange: spot.exchange,
      symbol: spot.symbol,
      price: spot.price,
      source: spot.source,
      timestamp: iso(spot.at),
      age_seconds: ageSeconds(now, spot.at),
      fresh: spotFresh !== undefined
    },
    curve,
    // Both times on every entry (null but for a price too far in time from the spot): one shape for every reader.
    left_out: leftOut.map((l) => ({ exchange: l.exchange, symbol: l.symbol, reason: l.reason, price_time: l.price_time ?? null, spot_time: l.spot_time ?? null }))
  }
}
