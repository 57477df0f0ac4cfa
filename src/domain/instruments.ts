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
  /**
   * What the venue's sizes count, where the venue folder states it (OKX swaps:
   * "contracts" even when one is worth one coin). Without it, sizeUnitOf
   * (valuation.ts) says: spot, options and linear contracts of one coin count
   * coins ("base"), inverse contracts of 1 USD count USD, other sizes contracts.
   */
  readonly sizeUnit?: SizeUnit | undefined
}

/** What a venue's size counts: coins of the base asset, contracts, or USD (inverse contracts of 1 USD, Deribit's amounts). */
export type SizeUnit = "base" | "contracts" | "usd"

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
