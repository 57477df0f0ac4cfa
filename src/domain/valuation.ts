/**
 * USD notional for every contract type, and the reference prices that convert a
 * non-USD quote. One place, so linear, inverse, CME and cross-quoted trades are
 * valued by the same rules.
 */
import { type Instrument, parQuotes, type SizeUnit } from "./instruments.ts"

export interface UsdValue {
  readonly usd: number
  /** How the quote currency became USD: "usd", "par" (stablecoin), or "reference:<ASSET>" at a live price. */
  readonly quoteUsdSource: string
  readonly quoteUsdRate: number
}

/** Fiat currencies valued through a cross rate; never taken at par with USD. */
export const fiatQuotes: ReadonlySet<string> = new Set(["EUR", "GBP", "JPY", "CAD", "AUD", "CHF", "SGD"])

/** Latest USD price of an asset, learned from our own USD/stablecoin-quoted spot trades. */
export class ReferencePrices {
  private readonly prices = new Map<string, { readonly price: number; readonly at: number }>()

  private readonly maxAgeMs: number

  constructor(maxAgeMs = 5 * 60_000) {
    this.maxAgeMs = maxAgeMs
  }

  // Keyed by the registry's instrument object: no key to build on the per-trade path.
  private readonly lastTrades = new Map<Instrument, { price: number; at: number }>()

  /** The latest trade price of one instrument (e.g. Coinbase BTC-USD for the CME basis). */
  lastTrade(instrument: Instrument): { readonly price: number; readonly at: number } | undefined {
    return this.lastTrades.get(instrument)
  }

  observe(instrument: Instrument, price: number, at: number): void {
    if (!(price > 0)) return
    const last = this.lastTrades.get(instrument)
    if (last === undefined) this.lastTrades.set(instrument, { price, at })
    else if (last.at <= at) {
      last.price = price
      last.at = at
    }
    if (instrument.kind !== "spot" || instrument.inverse) return
    if (instrument.quote === "USD" || parQuotes.has(instrument.quote)) return this.set(instrument.base, price, at)
    // A fiat quote (EUR, GBP) gets a live USD rate from the same asset's USD price: BTC-EUR vs BTC-USD.
    if (fiatQuotes.has(instrument.quote)) {
      const baseUsd = this.usdPrice(instrument.base, at)
      if (baseUsd !== undefined) this.set(instrument.quote, baseUsd / price, at)
    }
  }

  private set(asset: string, price: number, at: number): void {
    const previous = this.prices.get(asset)
    if (previous === undefined || previous.at <= at) this.prices.set(asset, { price, at })
  }

  usdPrice(asset: string, at: number): number | undefined {
    const entry = this.prices.get(asset)
    if (entry === undefined || Math.abs(at - entry.at) > this.maxAgeMs) return undefined
    return entry.price
  }
}

const quoteToUsd = (
  quote: string,
  at: number,
  prices: ReferencePrices
): { readonly rate: number; readonly source: string } | undefined => {
  if (quote === "USD") return { rate: 1, source: "usd" }
  if (parQuotes.has(quote)) return { rate: 1, source: "par" }
  const price = prices.usdPrice(quote, at)
  return price === undefined ? undefined : { rate: price, source: `reference:${quote}` }
}

/**
 * USD notional of `size` contracts at `price`, or undefined when the quote
 * currency has no live USD rate (the caller counts it as unvalued: never
 * silently treated as USD), or when the product overflows (finite prices and
 * sizes can multiply past any number a row can hold: no value at all).
 */
export const usdNotional = (
  instrument: Instrument,
  price: number,
  size: number,
  at: number,
  prices: ReferencePrices,
  venueQuoteRate?: number
): UsdValue | undefined => {
  const value = notional(instrument, price, size, at, prices, venueQuoteRate)
  return value === undefined || !Number.isFinite(roundUsd(value.usd)) ? undefined : value
}

const notional = (
  instrument: Instrument,
  price: number,
  size: number,
  at: number,
  prices: ReferencePrices,
  /** The venue's own USD rate for the quote currency at this trade (e.g. Deribit's index price). */
  venueQuoteRate?: number
): UsdValue | undefined => {
  const conversion = venueQuoteRate !== undefined && instrument.quote !== "USD"
    ? { rate: venueQuoteRate, source: `venue index:${instrument.quote}` }
    : quoteToUsd(instrument.quote, at, prices)
  if (instrument.inverse) {
    // Inverse contracts are worth a fixed amount of the quote currency each (e.g. 10 USD).
    if (conversion === undefined) return undefined
    return {
      usd: size * instrument.contractSize * conversion.rate,
      quoteUsdSource: conversion.source,
      quoteUsdRate: conversion.rate
    }
  }
  if (conversion === undefined) return undefined
  return {
    usd: price * size * instrument.contractSize * conversion.rate,
    quoteUsdSource: conversion.source,
    quoteUsdRate: conversion.rate
  }
}

export const roundUsd = (usd: number): number => Math.round(usd * 100) / 100

/** The unit of the venue's sizes for this instrument: its own statement, else the rule on Instrument.sizeUnit. */
export const sizeUnitOf = (instrument: Instrument): SizeUnit =>
  instrument.sizeUnit ??
    (instrument.inverse
      ? (instrument.contractSize === 1 ? "usd" : "contracts")
      : instrument.kind === "spot" || instrument.contractSize === 1 ? "base" : "contracts")

export interface BaseAmount {
  /** In the base asset (coins), or null when it cannot be known (an inverse size without a price). */
  readonly base: number | null
  readonly unit: SizeUnit
}

/** 15 significant digits: the binary noise of a product (3 x 0.01 = 0.030000000000000002) is not stored. */
const significant = (x: number) => Number(x.toPrecision(15))

/**
 * The base-asset amount of a venue size, and the unit the venue counts it in.
 * Linear contracts and spot: size x contract size (coins per contract; 1 for
 * spot). Inverse: each contract is `contractSize` of the quote (USD), so
 * size x contractSize / price coins, at the trade's price (or the mark, for
 * open interest). `contractSize` overrides the instrument's where a reading
 * says its own (Deribit's open interest counts contracts of 10 USD).
 */
export const baseAmount = (
  instrument: Instrument,
  size: number,
  price: number | undefined,
  contractSize: number = instrument.contractSize
): BaseAmount => {
  const unit = sizeUnitOf(instrument)
  const base = baseQuantity(instrument, size, price, contractSize)
  return { base: Number.isFinite(base) ? significant(base) : null, unit }
}

/**
 * baseAmount's coins as a bare number (NaN where they cannot be known), for the per-trade path of the
 * minute bars: no object, no rounding (the bar's sum is rounded once, when it is written).
 */
export const baseQuantity = (
  instrument: Instrument,
  size: number,
  price: number | undefined,
  contractSize: number = instrument.contractSize
): number =>
  instrument.inverse
    ? (price !== undefined && price > 0 ? size * contractSize / price : Number.NaN)
    : size * contractSize
