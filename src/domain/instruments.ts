/**
 * What the service knows about each instrument: enough to turn a price and a size
 * into USD for any contract type. Filled from each venue's metadata endpoint.
 */
export type InstrumentKind = "spot" | "perpetual" | "future" | "option"

export interface Instrument {
  readonly venue: string
  readonly symbol: string
  readonly base: string
  readonly quote: string
  readonly kind: InstrumentKind
  /**
   * Linear: base units per contract (1 for spot and Binance USD-M; 5 for CME BTC).
   * Inverse: quote (USD) value of one contract.
   */
  readonly contractSize: number
  readonly inverse: boolean
}

/** Stablecoins taken at par with USD; the row's metadata says so. */
export const parQuotes: ReadonlySet<string> = new Set(["USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI", "USD1"])

export class InstrumentRegistry {
  private readonly byKey = new Map<string, Instrument>()

  static key(venue: string, symbol: string): string {
    return `${venue}\u0000${symbol}`
  }

  add(instrument: Instrument): void {
    this.byKey.set(InstrumentRegistry.key(instrument.venue, instrument.symbol), instrument)
  }

  get(venue: string, symbol: string): Instrument | undefined {
    return this.byKey.get(InstrumentRegistry.key(venue, symbol))
  }

  get size(): number {
    return this.byKey.size
  }
}
