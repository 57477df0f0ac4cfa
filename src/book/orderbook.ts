/**
 * A price-level book kept as two sorted arrays per side. Binary search + splice
 * beats a tree at the depths exchanges send (hundreds to tens of thousands of
 * levels). Each side is stored worst price first, best price last: nearly
 * every update lands near the top of the book, so a splice there moves only
 * the few levels above it, not the whole side.
 */
import type { Level } from "../domain/records.ts"

export class BookSide {
  private readonly prices: Array<number> = []
  private readonly sizes: Array<number> = []

  /** Stored order: bids low to high, asks high to low (the best price last either way). */
  private readonly bestIsHighest: boolean

  /** `descending`: this side's best price is its highest (bids). */
  constructor(descending: boolean) {
    this.bestIsHighest = descending
  }

  get depth(): number {
    return this.prices.length
  }

  best(): number | undefined {
    return this.prices[this.prices.length - 1]
  }

  /** The size at the best price (undefined on an empty side). */
  bestSize(): number | undefined {
    return this.sizes[this.sizes.length - 1]
  }

  clear(): void {
    this.prices.length = 0
    this.sizes.length = 0
  }

  /**
   * Replaces the whole side in one sort (a snapshot arrives best first, which
   * level-by-level inserts would make quadratic). A repeated price keeps its
   * last size, as `set` would; zero sizes are left out.
   */
  load(levels: ReadonlyArray<Level>): void {
    const sorted = [...levels].sort(this.bestIsHighest ? (a, b) => a[0] - b[0] : (a, b) => b[0] - a[0])
    this.clear()
    for (const [price, size] of sorted) {
      const last = this.prices.length - 1
      if (last >= 0 && this.prices[last] === price) this.sizes[last] = size
      else {
        this.prices.push(price)
        this.sizes.push(size)
      }
    }
    for (let i = this.sizes.length - 1; i >= 0; i--) {
      if (this.sizes[i] === 0) {
        this.prices.splice(i, 1)
        this.sizes.splice(i, 1)
      }
    }
  }

  /** Sets a level to an absolute size; 0 removes it. */
  set(price: number, size: number): void {
    const prices = this.prices
    let low = 0
    let high = prices.length
    while (low < high) {
      const mid = (low + high) >>> 1
      const p = prices[mid]!
      if (this.bestIsHighest ? p < price : p > price) low = mid + 1
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
    const last = this.prices.length - 1
    const out = new Array<Level>(count)
    for (let i = 0; i < count; i++) out[i] = [this.prices[last - i]!, this.sizes[last - i]!]
    return out
  }
}

export class OrderBook {
  readonly bids = new BookSide(true)
  readonly asks = new BookSide(false)

  replace(bids: ReadonlyArray<Level>, asks: ReadonlyArray<Level>): void {
    this.bids.load(bids)
    this.asks.load(asks)
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
