/**
 * Row lag: from a row's exchange timestamp to the commit that stored it, kept
 * per table in log-spaced buckets (about 3% wide) so a batch costs one loop of
 * arithmetic and no allocation. Since start, not windowed.
 */
const exactBelowMs = 64
const growth = Math.log(1.03)
const buckets = exactBelowMs + Math.ceil(Math.log(7 * 86_400_000 / exactBelowMs) / growth) + 1

const bucketOf = (ms: number): number =>
  ms < exactBelowMs ? Math.max(0, Math.floor(ms)) : Math.min(buckets - 1, exactBelowMs + Math.floor(Math.log(ms / exactBelowMs) / growth))

/** The lower bound of a bucket, in milliseconds. */
const bucketFloor = (bucket: number): number =>
  bucket < exactBelowMs ? bucket : exactBelowMs * Math.exp((bucket - exactBelowMs) * growth)

export class RowLag {
  private readonly counts = new Float64Array(buckets)
  count = 0

  /** Rows without a numeric `timestamp` (cursors) are not counted. */
  record(rows: ReadonlyArray<unknown>, committedAt: number): void {
    for (let i = 0; i < rows.length; i++) {
      const timestamp = (rows[i] as { readonly timestamp?: unknown }).timestamp
      if (typeof timestamp !== "number") continue
      this.counts[bucketOf(committedAt - timestamp)]!++
      this.count++
    }
  }

  /** The q-quantile in milliseconds (to the bucket's lower bound), or undefined before any row. */
  quantile(q: number): number | undefined {
    if (this.count === 0) return undefined
    const rank = Math.max(1, Math.ceil(q * this.count))
    let seen = 0
    for (let bucket = 0; bucket < buckets; bucket++) {
      seen += this.counts[bucket]!
      if (seen >= rank) return bucketFloor(bucket)
    }
    return bucketFloor(buckets - 1)
  }

  reset(): void {
    this.counts.fill(0)
    this.count = 0
  }
}
