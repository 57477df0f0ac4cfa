/**
 * Rule evaluation: plain synchronous code over the pipeline's row batches
 * (market rules) and over a read-only view of feeds, books and gaps taken
 * once a second (data-quality rules). It decides that a condition holds; the
 * engine applies cooldowns and delivers. Every rule narrows what it looks at
 * with one filter (`inScope`). Windows are kept per key in event-time order,
 * with a cap on their samples and on their keys, so memory stays bounded
 * whatever the market does. A firing's id names the row that fired it, so it
 * is deterministic (the same row fires the same id) and unique.
 */
import type { BookStatus } from "../book/sync.ts"
import type { StreamFreshness } from "../feed/freshness.ts"
import type { Gap } from "../gaps/ledger.ts"
import { parQuotes, type InstrumentKind } from "../domain/instruments.ts"
import type { RowBatch } from "../domain/rows.ts"
import { type CrossCheckFindings, outlierMessage } from "./cross-venue.ts"
import type { Rule, RuleKind, RuleOf } from "./rules.ts"

/** A rule's condition met: what, where, how far past its threshold. */
export interface Firing {
  readonly id: string
  readonly rule: string
  readonly kind: RuleKind
  readonly exchange: string | null
  /** The instrument, or the asset for rules that look across instruments. */
  readonly symbol: string
  /** What the cooldown is kept per (a symbol, an asset, a feed's stream). */
  readonly key: string
  readonly value: number
  readonly threshold: number
  readonly message: string
  /** When the condition arose: the exchange's time for market rules, the observation's for data-quality rules. */
  readonly eventTime: number
  readonly details: Record<string, unknown>
}

export interface InstrumentFacts {
  readonly base: string
  readonly quote: string
  readonly kind: InstrumentKind
}
export type InstrumentLookup = (exchange: string, symbol: string) => InstrumentFacts | undefined

/** What the data-quality rules read: the live state of feeds, books and the gap ledger. */
export interface LiveView {
  readonly now: number
  readonly feeds: ReadonlyArray<{
    readonly feed: string
    readonly venue: string
    readonly state: string
    readonly lastMessageAt: number | null
    readonly books: ReadonlyArray<BookStatus>
    readonly streams: ReadonlyArray<StreamFreshness>
  }>
  readonly gaps: ReadonlyArray<Gap>
  /** The cross-venue check's last sample (cross-venue.ts), when it runs. */
  readonly crossCheck?: CrossCheckFindings
}

/** Caps that keep every window bounded. */
export const limits = { keysPerRule: 10_000, samplesPerKey: 4_096 }

/** A Map that forgets its least recently touched entries beyond `cap`. */
class BoundedMap<V> {
  private readonly map = new Map<string, V>()
  private readonly cap: number
  constructor(cap: number) {
    this.cap = cap
  }
  get(key: string): V | undefined {
    return this.map.get(key)
  }
  /** Sets and marks the key as most recently used. */
  set(key: string, value: V): void {
    this.map.delete(key)
    this.map.set(key, value)
    if (this.map.size > this.cap) this.map.delete(this.map.keys().next().value as string)
  }
  get size(): number {
    return this.map.size
  }
  values(): IterableIterator<V> {
    return this.map.values()
  }
}

interface Sample<A = undefined> {
  readonly t: number
  readonly v: number
  /** The row it came from: a firing it triggers is named after it. */
  readonly id: string
  readonly data: A
}

/**
 * Samples in arrival order, for a source that cannot go back in time (the
 * engine's own clock), at most `limits.samplesPerKey`.
 */
class ClockWindow {
  private samples: Array<Sample> = []
  private head = 0
  push(sample: Sample): void {
    this.samples.push(sample)
    if (this.samples.length - this.head > limits.samplesPerKey) this.head++
  }
  /** Forgets samples older than `from`; returns the last one forgotten (the value at the window's start). */
  prune(from: number): Sample | undefined {
    let dropped: Sample | undefined
    while (this.head < this.samples.length && this.samples[this.head]!.t < from) dropped = this.samples[this.head++]!
    if (this.head > 1024 && this.head * 2 > this.samples.length) {
      this.samples = this.samples.slice(this.head)
      this.head = 0
    }
    return dropped
  }
  get size(): number {
    return this.samples.length - this.head
  }
}

/**
 * One key's samples in event-time order. Samples of one key come from several
 * venues (or from a repair) whose clocks and connections do not keep step, so
 * a sample that arrives late is put where its time belongs, and a window is
 * always the samples whose event time is in it, never the ones that happened
 * to arrive together. The window ending at a sample holds it and the samples
 * ordered before it (by time, then arrival) within `span`. A sample more than
 * `span` older than the newest is too late to judge: it is refused. Samples
 * are kept for two spans behind the newest, so a sample up to one span late
 * still finds every sample of its window; at most `limits.samplesPerKey` of
 * them (the oldest go first). Running sums make a window's sum two lookups.
 */
class EventWindow<A> {
  private samples: Array<Sample<A>> = []
  /** sums[i]: the values of samples[0..i], forgotten ones included (rebased when the array is compacted). */
  private sums: Array<number> = []
  private head = 0
  private newest = -Infinity
  private readonly span: number
  constructor(span: number) {
    this.span = span
  }
  /** Puts `sample` in time order and returns its index, or undefined when it is too late to judge. */
  insert(sample: Sample<A>): number | undefined {
    if (sample.t < this.newest - this.span) return undefined
    let index = this.samples.length
    while (index > this.head && this.samples[index - 1]!.t > sample.t) index--
    this.samples.splice(index, 0, sample)
    this.sums.splice(index, 0, 0)
    for (let i = index; i < this.samples.length; i++) this.sums[i] = (i > 0 ? this.sums[i - 1]! : 0) + this.samples[i]!.v
    this.newest = Math.max(this.newest, sample.t)
    let forget = 0
    while (this.head + forget < this.samples.length &&
      (this.samples[this.head + forget]!.t < this.newest - 2 * this.span || this.samples.length - this.head - forget > limits.samplesPerKey)) forget++
    this.head += forget
    if (index < this.head) return undefined
    if (this.head > 1024 && this.head * 2 > this.samples.length) {
      index -= this.head
      this.compact()
    }
    return index
  }
  private compact(): void {
    this.samples = this.samples.slice(this.head)
    this.sums = []
    let sum = 0
    for (const s of this.samples) this.sums.push(sum += s.v)
    this.head = 0
  }
  at(index: number): Sample<A> {
    return this.samples[index]!
  }
  /** One past the last index. */
  get end(): number {
    return this.samples.length
  }
  /** The first index of the window ending at `index`. */
  start(index: number): number {
    const from = this.samples[index]!.t - this.span
    let low = this.head
    let high = index
    while (low < high) {
      const middle = (low + high) >>> 1
      if (this.samples[middle]!.t < from) low = middle + 1
      else high = middle
    }
    return low
  }
  /** The sum of the values from `first` to `last`, both included. */
  sum(first: number, last: number): number {
    return this.sums[last]! - (first > 0 ? this.sums[first - 1]! : 0)
  }
  /** The samples held. */
  get size(): number {
    return this.samples.length - this.head
  }
}

const usd = (n: number) => `$${Math.round(n).toLocaleString("en-US")}`
const pct = (n: number, digits = 2) => `${n >= 0 ? "+" : ""}${n.toFixed(digits)}%`

/**
 * The one filter of every rule kind: `exchanges`, `symbols` (native) and
 * `assets` (base, from the instrument table; an instrument the table does not
 * know has no asset, so it fails an asset filter). What a rule looks at
 * is one venue's instrument, or, for a whole connection, every instrument it
 * carries: it is in scope when its venue is listed and one of those
 * instruments passes both the symbol and the asset filter.
 */
const inScope = (rule: Rule, exchange: string, symbols: ReadonlyArray<string>, lookup: InstrumentLookup): boolean => {
  if (rule.exchanges !== undefined && !rule.exchanges.some((e) => e.toLowerCase() === exchange.toLowerCase())) return false
  if (rule.symbols === undefined && rule.assets === undefined) return true
  return symbols.some((symbol) => {
    if (rule.symbols !== undefined && !rule.symbols.some((s) => s.toUpperCase() === symbol.toUpperCase())) return false
    if (rule.assets === undefined) return true
    const asset = lookup(exchange, symbol)?.base.toUpperCase()
    return asset !== undefined && rule.assets.some((a) => a.toUpperCase() === asset)
  })
}

/** One rule's evaluator: fed batches and live views, it returns the conditions met. */
interface RuleEvaluator {
  readonly onBatch?: (batch: RowBatch, lookup: InstrumentLookup, out: Array<Firing>) => void
  readonly onTick?: (view: LiveView, lookup: InstrumentLookup, out: Array<Firing>) => void
  /** How much it holds: its keys, and the samples of its fullest window. */
  readonly footprint?: () => Footprint
}

export interface Footprint {
  readonly keys: number
  readonly largestWindow: number
}

const footprintOf = (windows: BoundedMap<{ readonly size: number }>): Footprint => {
  let largestWindow = 0
  for (const window of windows.values()) largestWindow = Math.max(largestWindow, window.size)
  return { keys: windows.size, largestWindow }
}

const largeTrade = (rule: RuleOf<"large_trade">): RuleEvaluator => ({
  onBatch: (batch, lookup, out) => {
    for (const r of batch.large_trades) {
      if (r.isLiquidation && rule.include_liquidations !== true) continue
      if (r.valueUsd < rule.min_value_usd) continue
      if (!inScope(rule, r.exchange, [r.symbol], lookup)) continue
      out.push({
        id: `${rule.name}_${r.id}`, rule: rule.name, kind: rule.kind, exchange: r.exchange, symbol: r.symbol, key: `${r.exchange}:${r.symbol}`,
        value: r.valueUsd, threshold: rule.min_value_usd, eventTime: r.timestamp,
        message: `${r.exchange} ${r.symbol}: ${r.isLiquidation ? "liquidation " : ""}${r.side} ${r.size} at ${r.price} = ${usd(r.valueUsd)} (at least ${usd(rule.min_value_usd)})`,
        details: { trade_id: r.tradeId, side: r.side, price: r.price, size: r.size, is_liquidation: r.isLiquidation }
      })
    }
  }
})

const liquidationCluster = (rule: RuleOf<"liquidation_cluster">): RuleEvaluator => {
  const windows = new BoundedMap<EventWindow<undefined>>(limits.keysPerRule)
  const span = rule.window_seconds * 1000
  const byAsset = (rule.group_by ?? "asset") === "asset"
  return {
    onBatch: (batch, lookup, out) => {
      for (const r of batch.large_trades) {
        if (!r.isLiquidation || !inScope(rule, r.exchange, [r.symbol], lookup)) continue
        const key = byAsset ? (lookup(r.exchange, r.symbol)?.base ?? r.symbol) : `${r.exchange}:${r.symbol}`
        const window = windows.get(key) ?? new EventWindow<undefined>(span)
        windows.set(key, window)
        const index = window.insert({ t: r.timestamp, v: r.valueUsd, id: r.id, data: undefined })
        if (index === undefined) continue
        // The window ending at this liquidation, then each later one's window it joins: a late
        // liquidation completes the cluster it would have completed had it arrived in time order.
        for (let last = index; last < window.end; last++) {
          const first = window.start(last)
          if (first > index) break
          const sum = window.sum(first, last)
          if (sum < rule.min_value_usd || (last > index && sum - r.valueUsd >= rule.min_value_usd)) continue
          const trigger = window.at(last)
          const count = last - first + 1
          out.push({
            id: `${rule.name}_${trigger.id}`, rule: rule.name, kind: rule.kind, exchange: byAsset ? null : r.exchange,
            symbol: byAsset ? key : r.symbol, key, value: sum, threshold: rule.min_value_usd, eventTime: trigger.t,
            message: `${key}: ${usd(sum)} liquidated in ${count} orders within ${rule.window_seconds} s (at least ${usd(rule.min_value_usd)})`,
            details: { count, window_seconds: rule.window_seconds, first: new Date(window.at(first).t).toISOString(), last_trade: trigger.id }
          })
        }
      }
    },
    footprint: () => footprintOf(windows)
  }
}

const funding = (rule: RuleOf<"funding">): RuleEvaluator => ({
  onBatch: (batch, lookup, out) => {
    for (const r of batch.funding_rates) {
      const hours = Number((r.metadata as { interval_hours?: unknown } | null)?.interval_hours ?? 8)
      const annualized = r.rate * (8760 / (hours > 0 ? hours : 8)) * 100
      if (Math.abs(annualized) <= rule.max_abs_annualized_percent) continue
      if (!inScope(rule, r.exchange, [r.symbol], lookup)) continue
      out.push({
        id: `${rule.name}_${r.id}`, rule: rule.name, kind: rule.kind, exchange: r.exchange, symbol: r.symbol, key: `${r.exchange}:${r.symbol}`,
        value: annualized, threshold: rule.max_abs_annualized_percent, eventTime: r.timestamp,
        message: `${r.exchange} ${r.symbol}: funding ${(r.rate * 100).toFixed(4)}% per ${hours} h = ${pct(annualized)} a year (beyond ±${rule.max_abs_annualized_percent}%)`,
        details: { rate: r.rate, interval_hours: hours, annualized_percent: annualized }
      })
    }
  }
})

const openInterestChange = (rule: RuleOf<"open_interest_change">): RuleEvaluator => {
  // Per instrument: open interest in contracts, with its USD value for the message.
  const windows = new BoundedMap<EventWindow<number>>(limits.keysPerRule)
  const span = rule.window_seconds * 1000
  /**
   * The move to the sample at `last` within its window, when it is large
   * enough: against the window's low (a build-up) and its high (an unwind),
   * the larger counts. `without` is left out.
   */
  const moveTo = (window: EventWindow<number>, last: number, without?: number) => {
    let low: Sample<number> | undefined
    let high: Sample<number> | undefined
    for (let i = window.start(last); i <= last; i++) {
      if (i === without) continue
      const s = window.at(i)
      if (low === undefined || s.v < low.v) low = s
      if (high === undefined || s.v > high.v) high = s
    }
    const to = window.at(last)
    if (low === undefined || high === undefined || low.v <= 0) return undefined
    const rise = (to.v - low.v) / low.v * 100
    const fall = (to.v - high.v) / high.v * 100
    const [change, from] = Math.abs(rise) >= Math.abs(fall) ? [rise, low] : [fall, high]
    return Math.abs(change) >= rule.min_change_percent ? { change, from, to } : undefined
  }
  return {
    onBatch: (batch, lookup, out) => {
      for (const r of batch.open_interest) {
        if (!inScope(rule, r.exchange, [r.symbol], lookup)) continue
        const key = `${r.exchange}:${r.symbol}`
        const window = windows.get(key) ?? new EventWindow<number>(span)
        windows.set(key, window)
        const index = window.insert({ t: r.timestamp, v: r.openInterest, id: r.id, data: r.openInterestUsd })
        if (index === undefined) continue
        // This sample against its window, then each later sample whose window it joins and whose verdict it changes.
        for (let last = index; last < window.end; last++) {
          if (window.start(last) > index) break
          const move = moveTo(window, last)
          if (move === undefined || (last > index && moveTo(window, last, index) !== undefined)) continue
          const { change, from, to } = move
          out.push({
            id: `${rule.name}_${to.id}`, rule: rule.name, kind: rule.kind, exchange: r.exchange, symbol: r.symbol, key,
            value: change, threshold: rule.min_change_percent, eventTime: to.t,
            message: `${r.exchange} ${r.symbol}: open interest ${pct(change)} (${from.v} to ${to.v} contracts) within ${rule.window_seconds} s (at least ${rule.min_change_percent}%)`,
            details: { from: from.v, to: to.v, from_time: new Date(from.t).toISOString(), open_interest_usd: to.data }
          })
        }
      }
    },
    footprint: () => footprintOf(windows)
  }
}

const basis = (rule: RuleOf<"basis">): RuleEvaluator => ({
  onBatch: (batch, lookup, out) => {
    const annualized = rule.measure === "annualized"
    for (const r of batch.futures_basis) {
      const value = annualized ? r.annualizedPercent : r.basisPercent
      if (value === null || Math.abs(value) <= rule.max_abs_percent) continue
      if (!inScope(rule, r.exchange, [r.symbol], lookup)) continue
      out.push({
        id: `${rule.name}_${r.id}`, rule: rule.name, kind: rule.kind, exchange: r.exchange, symbol: r.symbol, key: `${r.exchange}:${r.symbol}`,
        value, threshold: rule.max_abs_percent, eventTime: r.timestamp,
        message: `${r.exchange} ${r.symbol}: basis ${pct(value)}${annualized ? " annualised" : ""} (futures ${r.futuresPrice}, spot ${r.spotPrice}; beyond ±${rule.max_abs_percent}%)`,
        details: { futures_price: r.futuresPrice, spot_price: r.spotPrice, spot_source: r.spotSource, basis_percent: r.basisPercent, annualized_percent: r.annualizedPercent, days_to_expiry: r.daysToExpiry }
      })
    }
  }
})

const usdQuotes = new Set([...parQuotes, "USD"])

interface Price {
  readonly exchange: string
  readonly symbol: string
  readonly price: number
  readonly t: number
  readonly id: string
}

class AssetPrices {
  readonly prices = new Map<string, Price>()
  newest = -Infinity
  get size(): number {
    return this.prices.size
  }
}

const priceDivergence = (rule: RuleOf<"price_divergence">): RuleEvaluator => {
  // Per asset, the latest price of each instrument that prices it, and the newest event time of any of them: a
  // price is fresh when it is at most max_age_seconds older than that, so a venue whose prices arrive late is
  // compared with the others' prices of the same moment, never with ones from its future.
  const latest = new BoundedMap<AssetPrices>(limits.keysPerRule)
  const maxAge = (rule.max_age_seconds ?? 30) * 1000
  const kinds = new Set<string>(rule.instrument_kinds ?? ["spot", "perpetual"])
  const touched = new Set<string>()
  // The same two prices found apart again (another batch touched the asset) are the same condition: fired once.
  const firstTime = onceEach()
  const observe = (exchange: string, symbol: string, price: number, t: number, id: string, lookup: InstrumentLookup) => {
    const facts = lookup(exchange, symbol)
    if (facts === undefined || !kinds.has(facts.kind) || !usdQuotes.has(facts.quote) || !(price > 0)) return
    if (!inScope(rule, exchange, [symbol], lookup)) return
    const entry = latest.get(facts.base) ?? new AssetPrices()
    latest.set(facts.base, entry)
    const previous = entry.prices.get(`${exchange}:${symbol}`)
    if (previous !== undefined && previous.t > t) return
    entry.prices.set(`${exchange}:${symbol}`, { exchange, symbol, price, t, id })
    entry.newest = Math.max(entry.newest, t)
    touched.add(facts.base)
  }
  return {
    onBatch: (batch, lookup, out) => {
      for (const r of batch.exchange_orderbooks) {
        let bid = -Infinity
        let ask = Infinity
        for (const [p] of r.bids) bid = Math.max(bid, p)
        for (const [p] of r.asks) ask = Math.min(ask, p)
        if (Number.isFinite(bid) && Number.isFinite(ask)) observe(r.exchange, r.symbol, (bid + ask) / 2, r.timestamp, r.id, lookup)
      }
      for (const r of batch.large_trades) if (!r.isLiquidation) observe(r.exchange, r.symbol, r.price, r.timestamp, r.id, lookup)
      for (const asset of touched) {
        const entry = latest.get(asset)
        if (entry === undefined) continue
        const now = entry.newest
        const fresh = [...entry.prices.values()].filter((p) => now - p.t <= maxAge)
        // The widest gap between two different venues.
        let best: { high: typeof fresh[number]; low: typeof fresh[number]; bps: number } | undefined
        for (const high of fresh) {
          for (const low of fresh) {
            if (high.exchange === low.exchange || high.price <= low.price) continue
            const bps = (high.price - low.price) / low.price * 10_000
            if (best === undefined || bps > best.bps) best = { high, low, bps }
          }
        }
        if (best === undefined || best.bps <= rule.max_bps) continue
        // Named after the two prices compared (their rows), not the time: two findings within a millisecond stay two.
        const id = `${rule.name}_${best.high.id}_${best.low.id}`
        if (!firstTime(asset, id)) continue
        out.push({
          id, rule: rule.name, kind: rule.kind, exchange: null, symbol: asset, key: asset,
          value: best.bps, threshold: rule.max_bps, eventTime: now,
          message: `${asset}: ${best.high.exchange} ${best.high.symbol} at ${best.high.price} is ${best.bps.toFixed(1)} bps above ${best.low.exchange} ${best.low.symbol} at ${best.low.price} (beyond ${rule.max_bps} bps)`,
          details: {
            high: { exchange: best.high.exchange, symbol: best.high.symbol, price: best.high.price, time: new Date(best.high.t).toISOString() },
            low: { exchange: best.low.exchange, symbol: best.low.symbol, price: best.low.price, time: new Date(best.low.t).toISOString() }
          }
        })
      }
      touched.clear()
    },
    footprint: () => footprintOf(latest)
  }
}

/**
 * A condition that lasts (a silent feed, an open gap) fires once per episode:
 * the key remembers the episode it fired for.
 */
const onceEach = () => {
  const fired = new BoundedMap<string>(limits.keysPerRule)
  return (key: string, episode: string): boolean => {
    if (fired.get(key) === episode) return false
    fired.set(key, episode)
    return true
  }
}

const staleFeed = (rule: RuleOf<"stale_feed">): RuleEvaluator => {
  const limit = rule.seconds * 1000
  const firstEpisode = onceEach()
  return {
    onTick: (view, lookup, out) => {
      for (const feed of view.feeds) {
        // A whole connection's silence concerns every instrument it carries (its books and the streams it has
        // delivered): a rule watching any of them hears of it.
        const carried = [...new Set([...feed.books.map((b) => b.symbol), ...feed.streams.map((s) => s.symbol)])]
        const silentMs = feed.lastMessageAt === null ? null : view.now - feed.lastMessageAt
        if (feed.state !== "stopped" && silentMs !== null && silentMs >= limit && inScope(rule, feed.venue, carried, lookup) &&
          firstEpisode(feed.feed, String(feed.lastMessageAt))) {
          out.push({
            id: `${rule.name}_${feed.feed}_${feed.lastMessageAt}`, rule: rule.name, kind: rule.kind, exchange: feed.venue, symbol: feed.feed,
            key: feed.feed, value: silentMs / 1000, threshold: rule.seconds, eventTime: view.now,
            message: `${feed.feed}: no message for ${Math.round(silentMs / 1000)} s (state ${feed.state}; limit ${rule.seconds} s)`,
            details: { feed: feed.feed, state: feed.state, last_message: new Date(feed.lastMessageAt!).toISOString() }
          })
        }
        for (const stream of feed.streams) {
          if (!stream.stale || stream.age_ms < limit || !inScope(rule, feed.venue, [stream.symbol], lookup)) continue
          const key = `${feed.feed}:${stream.channel}:${stream.symbol}`
          const since = view.now - stream.age_ms
          // The silence began at a fixed time; a second or so of jitter in age_ms must not make it a new episode.
          const episode = String(Math.round(since / 5000))
          if (!firstEpisode(key, episode)) continue
          out.push({
            id: `${rule.name}_${key}_${episode}`, rule: rule.name, kind: rule.kind, exchange: feed.venue, symbol: stream.symbol, key,
            value: stream.age_ms / 1000, threshold: rule.seconds, eventTime: view.now,
            message: `${feed.venue} ${stream.symbol} ${stream.channel}: silent for ${Math.round(stream.age_ms / 1000)} s while its connection delivers (usual interval ${stream.usual_interval_ms ?? "?"} ms; limit ${rule.seconds} s)`,
            details: { feed: feed.feed, channel: stream.channel, usual_interval_ms: stream.usual_interval_ms }
          })
        }
      }
    }
  }
}

const unrepairedGap = (rule: RuleOf<"unrepaired_gap">): RuleEvaluator => {
  const after = (rule.after_seconds ?? 300) * 1000
  const once = onceEach()
  return {
    onTick: (view, lookup, out) => {
      for (const gap of view.gaps) {
        if (gap.status === "verified") continue
        if (rule.channels !== undefined && !(rule.channels as ReadonlyArray<string>).includes(gap.channel)) continue
        if (!inScope(rule, gap.exchange, [gap.symbol], lookup)) continue
        const final = gap.status === "unrecoverable" || gap.status === "partial"
        const age = view.now - gap.start
        if (!final && age < after) continue
        // A gap fires when it has been open too long and again when it is known final: two alerts, two ids.
        const episode = final ? "final" : "open"
        if (!once(gap.id, episode)) continue
        out.push({
          id: `${rule.name}_${gap.id}_${episode}`, rule: rule.name, kind: rule.kind, exchange: gap.exchange, symbol: gap.symbol, key: `${gap.exchange}:${gap.channel}:${gap.symbol}`,
          value: age / 1000, threshold: after / 1000, eventTime: gap.start,
          message: `${gap.exchange} ${gap.symbol} ${gap.channel}: gap (${gap.cause}) since ${new Date(gap.start).toISOString()} is ${gap.status}${gap.estimatedMissing === null ? "" : `, about ${gap.estimatedMissing} missing`}${gap.repairedCount > 0 ? `, ${gap.repairedCount} repaired` : ""}`,
          details: { gap_id: gap.id, channel: gap.channel, cause: gap.cause, status: gap.status, start: new Date(gap.start).toISOString(), end: gap.end === null ? null : new Date(gap.end).toISOString(), estimated_missing: gap.estimatedMissing, repaired_count: gap.repairedCount }
        })
      }
    }
  }
}

const bookResyncs = (rule: RuleOf<"book_resyncs">): RuleEvaluator => {
  // Per book: the resync counter's changes within the window, and its value at the window's start.
  const books = new BoundedMap<{ readonly window: ClockWindow; baseline: number; last: number; readonly size: number }>(limits.keysPerRule)
  const span = rule.window_seconds * 1000
  return {
    onTick: (view, lookup, out) => {
      for (const feed of view.feeds) {
        for (const book of feed.books) {
          if (!inScope(rule, feed.venue, [book.symbol], lookup)) continue
          const key = `${feed.venue}:${book.symbol}`
          let entry = books.get(key)
          // A counter lower than before belongs to a book built anew: count from there.
          if (entry === undefined || book.resyncs < entry.last) {
            const window = new ClockWindow()
            entry = { window, baseline: book.resyncs, last: book.resyncs, get size() { return window.size } }
          }
          books.set(key, entry)
          if (book.resyncs > entry.last) entry.window.push({ t: view.now, v: book.resyncs, id: key, data: undefined })
          entry.last = book.resyncs
          const forgotten = entry.window.prune(view.now - span)
          if (forgotten !== undefined) entry.baseline = forgotten.v
          const count = book.resyncs - entry.baseline
          if (count <= rule.max_resyncs) continue
          out.push({
            id: `${rule.name}_${key}_${view.now}`, rule: rule.name, kind: rule.kind, exchange: feed.venue, symbol: book.symbol, key,
            value: count, threshold: rule.max_resyncs, eventTime: view.now,
            message: `${feed.venue} ${book.symbol}: the book resynced ${count} times within ${rule.window_seconds} s (more than ${rule.max_resyncs}; state ${book.state})`,
            details: { resyncs_total: book.resyncs, state: book.state, feed: feed.feed }
          })
        }
      }
    },
    footprint: () => footprintOf(books)
  }
}

const crossVenueOutlier = (rule: RuleOf<"cross_venue_outlier">): RuleEvaluator => {
  const fields = new Set<string>(rule.fields ?? ["mid", "open_interest", "funding"])
  // The engine looks every tick; a sample's findings fire once (the next sample's, again, for the cooldown to judge).
  const once = onceEach()
  return {
    onTick: (view, lookup, out) => {
      const findings = view.crossCheck
      if (findings === undefined || findings.sampledAt === null) return
      for (const o of findings.outliers) {
        if (!fields.has(o.field) || !inScope(rule, o.exchange, [o.symbol], lookup)) continue
        const key = `${o.exchange}:${o.symbol}:${o.field}`
        if (!once(key, String(o.sampledAt))) continue
        out.push({
          id: `${rule.name}_${o.exchange}_${o.symbol}_${o.field}_${o.sampledAt}`, rule: rule.name, kind: rule.kind, exchange: o.exchange,
          symbol: o.symbol, key, value: o.value, threshold: o.maxDistance, eventTime: o.sampledAt,
          message: outlierMessage(o),
          details: {
            field: o.field, asset: o.asset, value: o.value, median: o.median, distance: o.distance, max_distance: o.maxDistance,
            venues: o.venues, figure_time: new Date(o.figureTime).toISOString()
          }
        })
      }
    }
  }
}

const evaluators: { readonly [K in RuleKind]: (rule: RuleOf<K>) => RuleEvaluator } = {
  large_trade: largeTrade,
  liquidation_cluster: liquidationCluster,
  funding,
  open_interest_change: openInterestChange,
  basis,
  price_divergence: priceDivergence,
  stale_feed: staleFeed,
  unrepaired_gap: unrepairedGap,
  book_resyncs: bookResyncs,
  cross_venue_outlier: crossVenueOutlier
}

/** Every rule's evaluator; feed it batches and views, collect the conditions met. */
export class RuleSet {
  private readonly entries: ReadonlyArray<RuleEvaluator>
  readonly rules: ReadonlyArray<Rule>
  constructor(rules: ReadonlyArray<Rule>) {
    this.rules = rules
    this.entries = rules.map((rule) => (evaluators[rule.kind] as (r: Rule) => RuleEvaluator)(rule))
  }
  onBatch(batch: RowBatch, lookup: InstrumentLookup): Array<Firing> {
    const out: Array<Firing> = []
    for (const e of this.entries) e.onBatch?.(batch, lookup, out)
    return out
  }
  /** `lookup` gives the instruments' assets, for the asset filters. */
  onTick(view: LiveView, lookup: InstrumentLookup): Array<Firing> {
    const out: Array<Firing> = []
    for (const e of this.entries) e.onTick?.(view, lookup, out)
    return out
  }
  /** Per rule, what its windows hold (its keys, and the samples of its fullest window). */
  footprint(): ReadonlyArray<Footprint & { readonly rule: string }> {
    return this.rules.flatMap((rule, i) => {
      const footprint = this.entries[i]!.footprint?.()
      return footprint === undefined ? [] : [{ rule: rule.name, ...footprint }]
    })
  }
}
