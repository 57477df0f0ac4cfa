/**
 * The flood venue's frames (bench/flood-exchange.ts), apart from its server so
 * the end-to-end bench can time JSON.parse alone on the very frames it sends.
 */
const levelsPerSide = 200

/** A synthetic book: level i of each side at a fixed price, sizes moved by the diffs; it never crosses. */
export class FloodSymbol {
  readonly stream: string
  readonly bidSizes = new Float64Array(levelsPerSide).fill(1)
  readonly askSizes = new Float64Array(levelsPerSide).fill(1)
  updateId = 1_000_000
  tradeId = 5_000_000
  turn = 0
  readonly symbol: string
  readonly mid: number
  constructor(symbol: string, mid: number) {
    this.symbol = symbol
    this.mid = mid
    this.stream = symbol.toLowerCase()
  }
  bidPrice(i: number) {
    return (this.mid - 0.01 * (i + 1)).toFixed(2)
  }
  askPrice(i: number) {
    return (this.mid + 0.01 * (i + 1)).toFixed(2)
  }
  next(now: number): string {
    this.turn++
    if (this.turn % 2 === 0) {
      const id = ++this.tradeId
      const price = this.bidPrice(0)
      return `{"stream":"${this.stream}@aggTrade","data":{"e":"aggTrade","E":${now},"s":"${this.symbol}","a":${id},"p":"${price}","q":"3.50000000","f":${id},"l":${id},"T":${now},"m":${id % 3 === 0},"M":true}}`
    }
    const first = this.updateId + 1
    const bids: Array<string> = []
    const asks: Array<string> = []
    for (let k = 0; k < 3; k++) {
      const i = (this.turn * 7 + k * 13) % levelsPerSide
      const size = ((this.turn + k) % 50) + 1
      this.bidSizes[i] = size
      this.askSizes[(i + 5) % levelsPerSide] = size
      bids.push(`["${this.bidPrice(i)}","${size.toFixed(8)}"]`)
      asks.push(`["${this.askPrice((i + 5) % levelsPerSide)}","${size.toFixed(8)}"]`)
    }
    this.updateId = first + 2
    return `{"stream":"${this.stream}@depth@100ms","data":{"e":"depthUpdate","E":${now},"s":"${this.symbol}","U":${first},"u":${this.updateId},"b":[${bids.join(",")}],"a":[${asks.join(",")}]}}`
  }
  snapshot(limit: number): string {
    const count = Math.min(limit, levelsPerSide)
    const bids = Array.from({ length: count }, (_, i) => [this.bidPrice(i), this.bidSizes[i]!.toFixed(8)])
    const asks = Array.from({ length: count }, (_, i) => [this.askPrice(i), this.askSizes[i]!.toFixed(8)])
    return JSON.stringify({ lastUpdateId: this.updateId, bids, asks })
  }
}

/** `count` frames as the flood sends them: round-robin over `symbols`, each symbol alternating a depth diff and a trade. */
export const floodFrames = (symbols: ReadonlyArray<string>, count: number): Array<string> => {
  const floods = symbols.map((symbol, i) => new FloodSymbol(symbol, 1000 + 100 * i))
  const now = Date.now()
  return Array.from({ length: count }, (_, i) => floods[i % floods.length]!.next(now))
}
