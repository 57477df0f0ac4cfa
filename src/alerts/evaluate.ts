/**
 * Rule evaluation: plain synchronous code over the pipeline's row batches
 * (market rules) and over a read-only view of feeds, books and gaps taken
 * once a second (data-quality rules). It decides that a condition holds; the
 * engine applies cooldowns and delivers. Every window is kept per key with a
 * cap on its samples and on its keys, so memory stays bounded whatever the
 * market does.
 */
import type { BookStatus } from "../book/sync.ts"
import type { StreamFreshness } from "../feed/freshness.ts"
import type { Gap } from "../gaps/ledger.ts"
import { parQuotes, type InstrumentKind } from "../domain/instruments.ts"
import type { RowBatch } from "../domain/rows.ts"
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
}

interface Sample {
  readonly t: number
  readonly v: number
}

/** Samples within a time window, oldest first, at most `limits.samplesPerKey`. */
class Window {
  private samples: Array<Sample> = []
  private head = 0
  sum = 0
  push(t: number, v: number): void {
    this.samples.push({ t, v })
    this.sum += v
    if (this.samples.length - this.head > limits.samplesPerKey) this.sum -= this.samples[this.head++]!.v
  }
  /** Forgets samples older than `from`; returns the last one forgotten (the value at the window's start). */
  prune(from: number): Sample | undefined {
    let dropped: Sample | undefined
    while (this.head < this.samples.length && this.samples[this.head]!.t < from) {
      dropped = this.samples[this.head++]!
      this.sum -= dropped.v
    }
    if (this.head > 1024 && this.head * 2 > this.samples.length) {
      this.samples = this.samples.slice(this.head)
      this.head = 0
    }
    return dropped
  }
  get count(): number {
    return this.samples.length - this.head
  }
  values(): Array<Sample> {
    return this.samples.slice(this.head)
  }
}

const usd = (n: number) => `$${Math.round(n).toLocaleString("en-US")}`
const pct = (n: number, digits = 2) => `${n >= 0 ? "+" : ""}${n.toFixed(digits)}%`

/** A rule's instrument filters. `asset` is undefined when the instrument is unknown: an asset filter then does not match. */
const matches = (rule: Rule, exchange: string | null, symbol: string | null, asset: string | undefined): boolean => {
  if (rule.exchanges !== undefined && (exchange === null || !rule.exchanges.some((e) => e.toLowerCase() === exchange))) return false
  if (rule.symbols !== undefined && (symbol === null || !rule.symbols.some((s) => s.toUpperCase() === symbol.toUpperCase()))) return false
  if (rule.assets !== undefined && (asset === undefined || !rule.assets.some((a) => a.toUpperCase() === asset))) return false
  return true
}

/** One rule's evaluator: fed batches and live views, it returns the conditions met. */
interface RuleEvaluator {
  readonly onBatch?: (batch: RowBatch, lookup: InstrumentLookup, out: Array<Firing>) => void
  readonly onTick?: (view: LiveView, out: Array<Firing>) => void
}

const largeTrade = (rule: RuleOf<"large_trade">): RuleEvaluator => ({
  onBatch: (batch, lookup, out) => {
    for (const r of batch.large_trades) {
      if (r.isLiquidation && rule.include_liquidations !== true) continue
      if (r.valueUsd < rule.min_value_usd) continue
      if (!matches(rule, r.exchange, r.symbol, lookup(r.exchange, r.symbol)?.base)) continue
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
  const windows = new BoundedMap<{ window: Window; venues: Map<string, number> }>(limits.keysPerRule)
  const span = rule.window_seconds * 1000
  const byAsset = (rule.group_by ?? "asset") === "asset"
  return {
    onBatch: (batch, lookup, out) => {
      for (const r of batch.large_trades) {
        if (!r.isLiquidation) continue
        const asset = lookup(r.exchange, r.symbol)?.base
        if (!matches(rule, r.exchange, r.symbol, asset)) continue
        const key = byAsset ? (asset ?? r.symbol) : `${r.exchange}:${r.symbol}`
        const entry = windows.get(key) ?? { window: new Window(), venues: new Map<string, number>() }
        windows.set(key, entry)
        entry.window.push(r.timestamp, r.valueUsd)
        entry.window.prune(r.timestamp - span)
        if (entry.window.sum < rule.min_value_usd) continue
        const samples = entry.window.values()
        out.push({
          id: `${rule.name}_${key}_${r.timestamp}`, rule: rule.name, kind: rule.kind, exchange: byAsset ? null : r.exchange,
          symbol: byAsset ? key : r.symbol, key, value: entry.window.sum, threshold: rule.min_value_usd, eventTime: r.timestamp,
          message: `${key}: ${usd(entry.window.sum)} liquidated in ${entry.window.count} orders within ${rule.window_seconds} s (at least ${usd(rule.min_value_usd)})`,
          details: { count: entry.window.count, window_seconds: rule.window_seconds, first: new Date(samples[0]!.t).toISOString(), last_trade: `${r.exchange}_${r.symbol}_${r.tradeId}` }
        })
      }
    }
  }
}

const funding = (rule: RuleOf<"funding">): RuleEvaluator => ({
  onBatch: (batch, lookup, out) => {
    for (const r of batch.funding_rates) {
      const hours = Number((r.metadata as { interval_hours?: unknown } | null)?.interval_hours ?? 8)
      const annualized = r.rate * (8760 / (hours > 0 ? hours : 8)) * 100
      if (Math.abs(annualized) <= rule.max_abs_annualized_percent) continue
      if (!matches(rule, r.exchange, r.symbol, lookup(r.exchange, r.symbol)?.base)) continue
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
  const windows = new BoundedMap<Window>(limits.keysPerRule)
  const span = rule.window_seconds * 1000
  return {
    onBatch: (batch, lookup, out) => {
      for (const r of batch.open_interest) {
        if (!matches(rule, r.exchange, r.symbol, lookup(r.exchange, r.symbol)?.base)) continue
        const key = `${r.exchange}:${r.symbol}`
        const window = windows.get(key) ?? new Window()
        windows.set(key, window)
        window.push(r.timestamp, r.openInterest)
        window.prune(r.timestamp - span)
        // Against the window's low (a build-up) and its high (an unwind): the larger move counts.
        let low: Sample | undefined
        let high: Sample | undefined
        for (const s of window.values()) {
          if (low === undefined || s.v < low.v) low = s
          if (high === undefined || s.v > high.v) high = s
        }
        if (low === undefined || high === undefined || low.v <= 0) continue
        const rise = (r.openInterest - low.v) / low.v * 100
        const fall = (r.openInterest - high.v) / high.v * 100
        const [change, from] = Math.abs(rise) >= Math.abs(fall) ? [rise, low] : [fall, high]
        if (Math.abs(change) < rule.min_change_percent) continue
        out.push({
          id: `${rule.name}_${r.id}`, rule: rule.name, kind: rule.kind, exchange: r.exchange, symbol: r.symbol, key,
          value: change, threshold: rule.min_change_percent, eventTime: r.timestamp,
          message: `${r.exchange} ${r.symbol}: open interest ${pct(change)} (${from.v} to ${r.openInterest} contracts) within ${rule.window_seconds} s (at least ${rule.min_change_percent}%)`,
          details: { from: from.v, to: r.openInterest, from_time: new Date(from.t).toISOString(), open_interest_usd: r.openInterestUsd }
        })
      }
    }
  }
}

const basis = (rule: RuleOf<"basis">): RuleEvaluator => ({
  onBatch: (batch, lookup, out) => {
    const annualized = rule.measure === "annualized"
    for (const r of batch.futures_basis) {
      const value = annualized ? r.annualizedPercent : r.basisPercent
      if (value === null || Math.abs(value) <= rule.max_abs_percent) continue
      if (!matches(rule, r.exchange, r.symbol, lookup(r.exchange, r.symbol)?.base)) continue
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

const priceDivergence = (rule: RuleOf<"price_divergence">): RuleEvaluator => {
  // Per asset, the latest price of each instrument that prices it.
  const latest = new BoundedMap<Map<string, { exchange: string; symbol: string; price: number; t: number }>>(limits.keysPerRule)
  const maxAge = (rule.max_age_seconds ?? 30) * 1000
  const kinds = new Set<string>(rule.instrument_kinds ?? ["spot", "perpetual"])
  const touched = new Map<string, number>()
  const observe = (exchange: string, symbol: string, price: number, t: number, lookup: InstrumentLookup) => {
    const facts = lookup(exchange, symbol)
    if (facts === undefined || !kinds.has(facts.kind) || !usdQuotes.has(facts.quote) || !(price > 0)) return
    if (!matches(rule, exchange, symbol, facts.base)) return
    const prices = latest.get(facts.base) ?? new Map()
    latest.set(facts.base, prices)
    const previous = prices.get(`${exchange}:${symbol}`)
    if (previous !== undefined && previous.t > t) return
    prices.set(`${exchange}:${symbol}`, { exchange, symbol, price, t })
    touched.set(facts.base, Math.max(t, touched.get(facts.base) ?? 0))
  }
  return {
    onBatch: (batch, lookup, out) => {
      for (const r of batch.exchange_orderbooks) {
        let bid = -Infinity
        let ask = Infinity
        for (const [p] of r.bids) bid = Math.max(bid, p)
        for (const [p] of r.asks) ask = Math.min(ask, p)
        if (Number.isFinite(bid) && Number.isFinite(ask)) observe(r.exchange, r.symbol, (bid + ask) / 2, r.timestamp, lookup)
      }
      for (const r of batch.large_trades) if (!r.isLiquidation) observe(r.exchange, r.symbol, r.price, r.timestamp, lookup)
      for (const [asset, now] of touched) {
        const fresh = [...(latest.get(asset)?.values() ?? [])].filter((p) => now - p.t <= maxAge)
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
        out.push({
          id: `${rule.name}_${asset}_${now}`, rule: rule.name, kind: rule.kind, exchange: null, symbol: asset, key: asset,
          value: best.bps, threshold: rule.max_bps, eventTime: now,
          message: `${asset}: ${best.high.exchange} ${best.high.symbol} at ${best.high.price} is ${best.bps.toFixed(1)} bps above ${best.low.exchange} ${best.low.symbol} at ${best.low.price} (beyond ${rule.max_bps} bps)`,
          details: {
            high: { exchange: best.high.exchange, symbol: best.high.symbol, price: best.high.price, time: new Date(best.high.t).toISOString() },
            low: { exchange: best.low.exchange, symbol: best.low.symbol, price: best.low.price, time: new Date(best.low.t).toISOString() }
          }
        })
      }
      touched.clear()
    }
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
    onTick: (view, out) => {
      for (const feed of view.feeds) {
        if (rule.exchanges !== undefined && !rule.exchanges.some((e) => e.toLowerCase() === feed.venue)) continue
        // A whole connection's silence concerns every symbol on it: only rules without a symbol or asset filter watch it.
        const silentMs = feed.lastMessageAt === null ? null : view.now - feed.lastMessageAt
        if (rule.symbols === undefined && rule.assets === undefined && feed.state !== "stopped" && silentMs !== null && silentMs >= limit &&
          firstEpisode(feed.feed, String(feed.lastMessageAt))) {
          out.push({
            id: `${rule.name}_${feed.feed}_${feed.lastMessageAt}`, rule: rule.name, kind: rule.kind, exchange: feed.venue, symbol: feed.feed,
            key: feed.feed, value: silentMs / 1000, threshold: rule.seconds, eventTime: view.now,
            message: `${feed.feed}: no message for ${Math.round(silentMs / 1000)} s (state ${feed.state}; limit ${rule.seconds} s)`,
            details: { feed: feed.feed, state: feed.state, last_message: new Date(feed.lastMessageAt!).toISOString() }
          })
        }
        for (const stream of feed.streams) {
          if (!stream.stale || stream.age_ms < limit) continue
          if (rule.symbols !== undefined && !rule.symbols.some((s) => s.toUpperCase() === stream.symbol.toUpperCase())) continue
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
    onTick: (view, out) => {
      for (const gap of view.gaps) {
        if (gap.status === "verified") continue
        if (rule.channels !== undefined && !rule.channels.includes(gap.channel)) continue
        if (!matches(rule, gap.exchange, gap.symbol, undefined) && rule.assets === undefined) continue
        const final = gap.status === "unrecoverable" || gap.status === "partial"
        const age = view.now - gap.start
        if (!final && age < after) continue
        if (!once(gap.id, gap.status === "partial" || gap.status === "unrecoverable" ? "final" : "open")) continue
        out.push({
          id: `${rule.name}_${gap.id}`, rule: rule.name, kind: rule.kind, exchange: gap.exchange, symbol: gap.symbol, key: `${gap.exchange}:${gap.channel}:${gap.symbol}`,
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
  const books = new BoundedMap<{ window: Window; baseline: number; last: number }>(limits.keysPerRule)
  const span = rule.window_seconds * 1000
  return {
    onTick: (view, out) => {
      for (const feed of view.feeds) {
        for (const book of feed.books) {
          if (!matches(rule, feed.venue, book.symbol, undefined) && rule.assets === undefined) continue
          const key = `${feed.venue}:${book.symbol}`
          let entry = books.get(key)
          // A counter lower than before belongs to a book built anew: count from there.
          if (entry === undefined || book.resyncs < entry.last) entry = { window: new Window(), baseline: book.resyncs, last: book.resyncs }
          books.set(key, entry)
          if (book.resyncs > entry.last) entry.window.push(view.now, book.resyncs)
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
  book_resyncs: bookResyncs
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
  onTick(view: LiveView): Array<Firing> {
    const out: Array<Firing> = []
    for (const e of this.entries) e.onTick?.(view, out)
    return out
  }
}
