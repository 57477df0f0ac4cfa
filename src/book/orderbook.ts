/**
 * A price-level book kept as two sorted arrays per side. Binary search + splice
 * beats a tree at the depths exchanges send (hundreds to a few thousand levels),
 * and the top N is a slice.
 */
import type { Level } from "../domain/records.ts"

export class BookSide {
  private readonly prices: Array<number> = []
  private readonly sizes: Array<number> = []

  private readonly descending: boolean

  /** Bids sort high to low, asks low to high. */
  constructor(descending: boolean) {
    this.descending = descending
  }

  get depth(): number {
    return this.prices.length
  }

  best(): number | undefined {
    return this.prices[0]
  }

  clear(): void {
    this.prices.length = 0
    this.sizes.length = 0
  }

  /** Sets a level to an absolute size; 0 removes it. */
  set(price: number, size: number): void {
    const prices = this.prices
    let low = 0
    let high = prices.length
    while (low < high) {
      const mid = (low + high) >>> 1
      const p = prices[mid]!
      if (this.descending ? p > price : p < price) low = mid + 1
      else high = mid
    }
    const found = low < prices.length && prices[low] === price
    if (size === 0) {
      if (found) {
        prices.splice(low, 1)
        this.sizes.splice(low, 1)
      }
    } else if (found) {
      this.sizes[low] = size
    } else {
      prices.splice(low, 0, price)
      this.sizes.splice(low, 0, size)
    }
  }

  top(n: number): Array<Level> {
    const count = Math.min(n, this.prices.length)
    const out = new Array<Level>(count)
    for (let i = 0; i < count; i++) out[i] = [this.prices[i]!, this.sizes[i]!]
    return out
  }
}

export class OrderBook {
  readonly bids = new BookSide(true)
  readonly asks = new BookSide(false)

  replace(bids: ReadonlyArray<Level>, asks: ReadonlyArray<Level>): void {
    this.bids.clear()
    this.asks.clear()
    this.apply(bids, asks)
  }

  apply(bids: ReadonlyArray<Level>, asks: ReadonlyArray<Level>): void {
    for (let i = 0; i < bids.length; i++) this.bids.set(bids[i]![0], bids[i]![1])
    for (let i = 0; i < asks.length; i++) this.asks.set(asks[i]![0], asks[i]![1])
  }

  /** A crossed (or locked) book can only come from a missed or misapplied update. */
  isCrossed(): boolean {
    const bid = this.bids.best()
    const ask = this.asks.best()
    return bid !== undefined && ask !== undefined && bid >= ask
  }
}
