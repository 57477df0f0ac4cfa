/**
 * Lags in log-spaced buckets (about 3% wide), so a sample costs a little
 * arithmetic and no allocation: from a row's exchange timestamp to the commit
 * that stored it (the writer, per table, since start), and from a trade's
 * match time to its receipt (each feed, over the last few minutes).
 */
const exactBelowMs = 64
const growth = Math.log(1.03)
const buckets = exactBelowMs + Math.ceil(Math.log(7 * 86_400_000 / exactBelowMs) / growth) + 1

/** Negative lags (our clock behind the venue's) fall in the first bucket; week-old ones in the last. */
const bucketOf = (ms: number): number =>
  ms < exactBelowMs ? Math.max(0, Math.floor(ms)) : Math.min(buckets - 1, exactBelowMs + Math.floor(Math.log(ms / exactBelowMs) / growth))

/** The lower bound of a bucket, in milliseconds. */
const bucketFloor = (bucket: number): number =>
  bucket < exactBelowMs ? bucket : exactBelowMs * Math.exp((bucket - exactBelowMs) * growth)

export class LagHistogram {
  readonly counts = new Float64Array(buckets)
  count = 0

  add(lagMs: number): void {
    this.counts[bucketOf(lagMs)]!++
    this.count++
  }

  /** Rows without a numeric `timestamp` (cursors) are not counted. */
  record(rows: ReadonlyArray<unknown>, committedAt: number): void {
    for (let i = 0; i < rows.length; i++) {
      const timestamp = (rows[i] as { readonly timestamp?: unknown }).timestamp
      if (typeof timestamp === "number") this.add(committedAt - timestamp)
    }
  }

  /** The q-quantile in milliseconds (to the bucket's lower bound), or undefined before any sample. */
  quantile(q: number): number | undefined {
    return quantileOf([this], q)
  }

  reset(): void {
    this.counts.fill(0)
    this.count = 0
  }
}

/** The q-quantile of several histograms taken together. */
const quantileOf = (histograms: ReadonlyArray<LagHistogram>, q: number): number | undefined => {
  const count = histograms.reduce((sum, h) => sum + h.count, 0)
  if (count === 0) return undefined
  const rank = Math.max(1, Math.ceil(q * count))
  let seen = 0
  for (let bucket = 0; bucket < buckets; bucket++) {
    for (const h of histograms) seen += h.counts[bucket]!
    if (seen >= rank) return bucketFloor(bucket)
  }
  return bucketFloor(buckets - 1)
}

export interface LagSummary {
  readonly samples: number
  readonly p50_ms: number
  readonly p99_ms: number
  /** The smallest lag seen: network latency's floor plus any clock offset; below 0, our clock is behind the venue's. */
  readonly min_ms: number
}

/**
 * Lags over the last one to two windows: samples go to the current window,
 * which becomes the previous one after `windowMs`; what is older is dropped.
 */
export class RecentLag {
  private current = new LagHistogram()
  private previous = new LagHistogram()
  private currentMin = Number.POSITIVE_INFINITY
  private previousMin = Number.POSITIVE_INFINITY
  private currentStart: number | undefined
  private readonly windowMs: number

  constructor(windowMs: number) {
    this.windowMs = windowMs
  }

  add(lagMs: number, at: number): void {
    this.advance(at)
    this.current.add(lagMs)
    if (lagMs < this.currentMin) this.currentMin = lagMs
  }

  /** Null when nothing arrived in the last two windows. */
  summary(now: number): LagSummary | null {
    this.advance(now)
    const parts = [this.previous, this.current]
    const p50 = quantileOf(parts, 0.5)
    if (p50 === undefined) return null
    return {
      samples: this.previous.count + this.current.count,
      p50_ms: Math.round(p50),
      p99_ms: Math.round(quantileOf(parts, 0.99)!),
      min_ms: Math.round(Math.min(this.currentMin, this.previousMin))
    }
  }

  private advance(at: number): void {
    if (this.currentStart === undefined) {
      this.currentStart = at
      return
    }
    const elapsed = at - this.currentStart
    if (elapsed < this.windowMs) return
    if (elapsed < 2 * this.windowMs) {
      const emptied = this.previous
      this.previous = this.current
      this.previousMin = this.currentMin
      this.current = emptied
    } else {
      this.previous.reset()
      this.previousMin = Number.POSITIVE_INFINITY
    }
    this.current.reset()
    this.currentMin = Number.POSITIVE_INFINITY
    this.currentStart = at
  }
}
