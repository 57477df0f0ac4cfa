/**
 * Funding sampling: venues push the current rate every second or so, which is
 * noise to store. A row is stored when a new funding interval begins (the next
 * funding time moves), and otherwise when the rate has changed and at least the
 * sampling period has passed since the last stored row. Replaying the same frames
 * stores the same rows.
 */
import type { FundingUpdate } from "../domain/records.ts"
import { type FundingRateRow, timedRowId } from "../domain/rows.ts"

interface LastStored {
  readonly at: number
  readonly rate: number
  readonly nextFundingTime: number | null
}

export class FundingSampler {
  private readonly last = new Map<string, LastStored>()
  private readonly sampleMs: number
  private readonly intervalHours: (symbol: string) => { readonly hours: number; readonly source: string }

  constructor(
    sampleMs: number,
    intervalHours: (symbol: string) => { readonly hours: number; readonly source: string }
  ) {
    this.sampleMs = sampleMs
    this.intervalHours = intervalHours
  }

  observe(update: FundingUpdate, out: Array<FundingRateRow>): void {
    const previous = this.last.get(update.symbol)
    const newInterval = previous === undefined || previous.nextFundingTime !== update.nextFundingTime
    const due = previous !== undefined && update.timestamp - previous.at >= this.sampleMs && previous.rate !== update.rate
    if (!newInterval && !due) return
    this.last.set(update.symbol, { at: update.timestamp, rate: update.rate, nextFundingTime: update.nextFundingTime })
    // An interval the venue states with the reading (OKX, Bybit) wins over the configured one.
    const stated = Number(update.details.interval_hours_stated)
    const interval = Number.isFinite(stated) && stated > 0 ? { hours: stated, source: "stated by the venue with the reading" } : this.intervalHours(update.symbol)
    out.push({
      id: timedRowId(update.venue, update.symbol, update.timestamp),
      exchange: update.venue,
      symbol: update.symbol,
      rate: update.rate,
      predictedRate: update.predictedRate,
      timestamp: update.timestamp,
      nextFundingTime: update.nextFundingTime,
      metadata: {
        ...update.details,
        interval_hours: interval.hours,
        interval_source: interval.source,
        mark_price: update.markPrice,
        index_price: update.indexPrice,
        sample_reason: newInterval ? "new funding interval" : "rate changed",
        sampling: `first reading of each funding interval, then on change at most every ${this.sampleMs / 1000} s`
      }
    })
  }
}
