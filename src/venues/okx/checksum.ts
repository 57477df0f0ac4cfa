/**
 * OKX's order-book checksum: CRC32 (as a signed 32-bit integer) of the top 25
 * bids and asks interleaved, `bid1px:bid1sz:ask1px:ask1sz:bid2px:...`, using
 * the price and size strings exactly as OKX sent them (a number printed back
 * could differ: "1e-8" for "0.00000001"). So each book is also kept here as
 * the venue's strings, sorted, and every message is checked against it.
 */
import { crc32 } from "node:zlib"

interface Level {
  readonly price: number
  readonly text: string
  size: string
}

/** One side, best first: bids by descending price, asks by ascending. */
class Side {
  readonly levels: Array<Level> = []
  private readonly descending: boolean
  constructor(descending: boolean) {
    this.descending = descending
  }
  private before(a: number, b: number): boolean {
    return this.descending ? a > b : a < b
  }
  private find(price: number): number {
    let low = 0
    let high = this.levels.length
    while (low < high) {
      const mid = (low + high) >>> 1
      if (this.before(this.levels[mid]!.price, price)) low = mid + 1
      else high = mid
    }
    return low
  }
  set(priceText: string, sizeText: string): void {
    const price = Number(priceText)
    const at = this.find(price)
    const existing = this.levels[at]
    const removal = Number(sizeText) === 0
    if (existing !== undefined && existing.price === price) {
      if (removal) this.levels.splice(at, 1)
      else existing.size = sizeText
    } else if (!removal) this.levels.splice(at, 0, { price, text: priceText, size: sizeText })
  }
}

export class ChecksumBook {
  private readonly bids = new Side(true)
  private readonly asks = new Side(false)

  apply(bids: ReadonlyArray<ReadonlyArray<string>>, asks: ReadonlyArray<ReadonlyArray<string>>): void {
    for (const level of bids) this.bids.set(level[0]!, level[1]!)
    for (const level of asks) this.asks.set(level[0]!, level[1]!)
  }

  /** OKX's checksum of the book as it stands. */
  checksum(): number {
    const parts: Array<string> = []
    for (let i = 0; i < 25; i++) {
      const bid = this.bids.levels[i]
      const ask = this.asks.levels[i]
      if (bid !== undefined) parts.push(bid.text, bid.size)
      if (ask !== undefined) parts.push(ask.text, ask.size)
    }
    return crc32(parts.join(":")) | 0
  }
}
