/**
 * Freshness per (channel, symbol): each stream's usual pace is learned (an
 * exponentially weighted mean of the gaps between its messages), and a stream
 * is stale when it has been silent for many times that pace while its socket
 * keeps delivering other streams. A dead socket is the connection's business;
 * this catches the one symbol that quietly stops.
 *
 * It also measures how late trades arrive: from the venue's match time to
 * their receipt, over the last few minutes (network and venue delay, plus any
 * offset between the venue's clock and ours).
 */
import { type LagSummary, RecentLag } from "../observability/lag.ts"

export interface FreshnessOptions {
  /** Messages needed before a stream's pace is trusted. */
  readonly minSamples: number
  /** Silent for this many usual intervals means stale... */
  readonly factor: number
  /** ...but never sooner than this, nor later than this. */
  readonly minStaleMs: number
  readonly maxStaleMs: number
  /** The socket counts as busy if anything arrived this recently. */
  readonly socketBusyMs: number
}

export const defaultFreshness: FreshnessOptions = {
  minSamples: 20,
  factor: 20,
  minStaleMs: 5_000,
  maxStaleMs: 120_000,
  socketBusyMs: 2_000
}

interface StreamPace {
  readonly channel: string
  readonly symbol: string
  lastAt: number
  meanIntervalMs: number
  samples: number
  stale: boolean
  staleSince: number | null
}

export interface StaleStream {
  readonly channel: string
  readonly symbol: string
  readonly lastAt: number
  readonly silentForMs: number
  readonly limitMs: number
}

export interface StreamFreshness {
  readonly channel: string
  readonly symbol: string
  readonly age_ms: number
  readonly usual_interval_ms: number | null
  readonly stale: boolean
}

/** Trade lags are summarised over the last 5 to 10 minutes. */
const lagWindowMs = 5 * 60_000

export class FreshnessMonitor {
  private readonly streams = new Map<string, StreamPace>()
  private readonly options: FreshnessOptions
  private readonly tradeLag = new RecentLag(lagWindowMs)

  constructor(options: FreshnessOptions = defaultFreshness) {
    this.options = options
  }

  /**
   * A message of this stream arrived at `at` (a trade matched at `exchangeTime`).
   * Returns true when it ends a stale period.
   */
  observe(channel: string, symbol: string, at: number, exchangeTime?: number): boolean {
    if (exchangeTime !== undefined && exchangeTime > 0) this.tradeLag.add(at - exchangeTime, at)
    const key = `${channel}\u0000${symbol}`
    const pace = this.streams.get(key)
    if (pace === undefined) {
      this.streams.set(key, { channel, symbol, lastAt: at, meanIntervalMs: 0, samples: 0, stale: false, staleSince: null })
      return false
    }
    const interval = at - pace.lastAt
    if (interval > 0) {
      // Intervals spanning a stale period would teach it that silence is normal.
      if (!pace.stale) {
        pace.meanIntervalMs = pace.samples === 0 ? interval : pace.meanIntervalMs * 0.95 + interval * 0.05
        pace.samples++
      }
      pace.lastAt = at
    }
    if (pace.stale) {
      pace.stale = false
      pace.staleSince = null
      return true
    }
    return false
  }

  limitFor(pace: StreamPace): number {
    return Math.min(this.options.maxStaleMs, Math.max(this.options.minStaleMs, pace.meanIntervalMs * this.options.factor))
  }

  /** Streams that have just become stale (each reported once per stale period). */
  check(now: number, socketLastMessageAt: number | null): Array<StaleStream> {
    if (socketLastMessageAt === null || now - socketLastMessageAt > this.options.socketBusyMs) return []
    const out: Array<StaleStream> = []
    for (const pace of this.streams.values()) {
      if (pace.stale || pace.samples < this.options.minSamples) continue
      const limit = this.limitFor(pace)
      const silent = now - pace.lastAt
      if (silent > limit) {
        pace.stale = true
        pace.staleSince = now
        out.push({ channel: pace.channel, symbol: pace.symbol, lastAt: pace.lastAt, silentForMs: silent, limitMs: limit })
      }
    }
    return out
  }

  /** A new connection: nothing is late yet, but the learned paces stay. */
  restart(now: number): void {
    for (const pace of this.streams.values()) {
      pace.lastAt = now
      pace.stale = false
      pace.staleSince = null
    }
  }

  /** How late trades arrived over the last few minutes, or null if none did. */
  exchangeLag(now: number): LagSummary | null {
    return this.tradeLag.summary(now)
  }

  status(now: number): Array<StreamFreshness> {
    return [...this.streams.values()].map((pace) => ({
      channel: pace.channel,
      symbol: pace.symbol,
      age_ms: now - pace.lastAt,
      usual_interval_ms: pace.samples >= this.options.minSamples ? Math.round(pace.meanIntervalMs) : null,
      stale: pace.stale
    }))
  }
}
