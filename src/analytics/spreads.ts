/**
 * Cross-venue spreads (issue 20.6): per asset, each venue's best bid, best
 * ask and mid in USD, and the spread between every pair of books, from the
 * live books (book/live.ts) at one moment. Plain synchronous code; the
 * sampler (analytics/sampler.ts) runs it every SPREAD_SAMPLE_SECONDS.
 *
 * What is compared:
 *
 * - Spot and perpetual instruments whose base is the asset, each within its
 *   own market type (spot with spot, perpetual with perpetual). A dated
 *   future's distance to spot is its basis (the term structure), not a spread;
 *   options have no comparable mid. Neither appears in a sample.
 * - Only books that are live (BookSync's state), uncrossed, with both sides,
 *   and current: our receipt of their last update at most
 *   SPREAD_MAX_BOOK_AGE_SECONDS (5) before the sample. Receipt time, not the
 *   exchange's: a venue's clock can run ahead or behind, ours is the one the
 *   sample is taken on. Every other book of the asset is listed in `excluded`
 *   with its reason.
 * - Prices in USD. USD as it is. A USD stablecoin (USDT, USDC, ...) at par,
 *   marked (`quote_basis: "USDT at par"`): a depeg shows as a spread, which is
 *   what it is to a trader holding USD. A fiat quote (EUR, GBP) at our own
 *   cross rate, from our own books of OTHER assets: the median, over venues,
 *   of mid(X-USD) / mid(X-EUR) for every asset X other than the sampled one
 *   with both spot books live and current on the same venue. Not from the
 *   sampled asset's own books: BTC-EUR at the rate BTC-USD / BTC-EUR is the
 *   venue's BTC-USD mid by construction, and would show nothing. No such rate,
 *   no conversion: the book is excluded, saying so.
 * - Sizes in the base asset (coins): contracts and inverse USD amounts are
 *   converted as valuation.ts `baseAmount` does (inverse at the side's price).
 * - Pair spread, per market type, for each pair of books a < b (ordered by
 *   `exchange:symbol`): (mid_a - mid_b) / ((mid_a + mid_b) / 2) x 1e4 bps.
 *   Positive: a is dearer than b. Symmetric in size: the pair b, a would be
 *   the same number with the opposite sign.
 */
import type { BookView, InstrumentReader } from "../book/live.ts"
import { type Instrument, parQuotes } from "../domain/instruments.ts"
import type { ExcludedBook, PairSpread, SpreadQuote } from "../domain/rows.ts"
import { baseAmount, fiatQuotes } from "../domain/valuation.ts"

/** The middle value, or the mean of the two middle ones. */
const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

export interface SpreadSettings {
  readonly maxBookAgeMs: number
}

export interface AssetSample {
  readonly asset: string
  readonly at: number
  readonly quotes: ReadonlyArray<SpreadQuote>
  readonly pairs: ReadonlyArray<PairSpread>
  readonly excluded: ReadonlyArray<ExcludedBook>
}

type Market = "spot" | "perpetual"

interface Candidate {
  readonly view: BookView
  readonly instrument: Instrument
}

/** Why a book cannot be used now, or undefined when it can (live, uncrossed, both sides, current). */
export const unusable = (view: BookView, now: number, maxAgeMs: number): string | undefined => {
  if (view.state !== "live") return `book ${view.state}, not live`
  if (view.crossed) return `crossed book (bid ${view.bestBid} >= ask ${view.bestAsk})`
  if (view.bestBid === null || view.bestAsk === null || !(view.bestBid > 0)) return "a side of the book is empty"
  if (view.receivedAt === null) return "no receipt time for its last update"
  const age = now - view.receivedAt
  if (age > maxAgeMs) return `stale: last update received ${age} ms before the sample (limit ${maxAgeMs} ms)`
  return undefined
}

const usdStable = (quote: string) => quote === "USD" || parQuotes.has(quote)
const mid = (view: BookView) => (view.bestBid! + view.bestAsk!) / 2

/**
 * USD per unit of `fiat`, from our own books of assets other than `asset`
 * (see the module header), with its description; undefined when none.
 */
export const crossRate = (
  fiat: string,
  asset: string,
  usable: ReadonlyArray<Candidate>
): { readonly rate: number; readonly basis: string } | undefined => {
  const usdBooks = new Map<string, Candidate>()
  for (const c of usable) {
    if (c.instrument.kind !== "spot" || c.instrument.inverse || !usdStable(c.instrument.quote)) continue
    const key = `${c.view.exchange}\u0000${c.instrument.base}`
    // USD itself before a stablecoin, when a venue lists both.
    if (!usdBooks.has(key) || c.instrument.quote === "USD") usdBooks.set(key, c)
  }
  const crosses: Array<{ readonly rate: number; readonly from: string }> = []
  for (const c of usable) {
    if (c.instrument.kind !== "spot" || c.instrument.quote !== fiat || c.instrument.base === asset) continue
    const usd = usdBooks.get(`${c.view.exchange}\u0000${c.instrument.base}`)
    if (usd === undefined) continue
    crosses.push({ rate: mid(usd.view) / mid(c.view), from: `${c.view.exchange} ${usd.view.symbol} mid / ${c.view.symbol} mid` })
  }
  if (crosses.length === 0) return undefined
  crosses.sort((a, b) => a.from < b.from ? -1 : 1)
  const rate = median(crosses.map((c) => c.rate))
  return { rate, basis: `${fiat} at ${Number(rate.toPrecision(8))} (median of ${crosses.length}: ${crosses.map((c) => c.from).join("; ")})` }
}

const round = (x: number, digits: number) => Number(x.toFixed(digits))
const significant = (x: number) => Number(x.toPrecision(12))

/** One asset's sample from every book now (`books`: the live view's `books()`). */
export const sampleAsset = (
  asset: string,
  books: ReadonlyArray<BookView>,
  instrument: InstrumentReader,
  now: number,
  settings: SpreadSettings
): AssetSample => {
  const candidates: Array<Candidate> = []
  const usable: Array<Candidate> = []
  const excluded: Array<ExcludedBook> = []
  for (const view of books) {
    const facts = instrument(view.exchange, view.symbol)
    if (facts === undefined) continue
    const why = unusable(view, now, settings.maxBookAgeMs)
    const candidate = { view, instrument: facts }
    if (why === undefined) usable.push(candidate)
    if (facts.base !== asset || (facts.kind !== "spot" && facts.kind !== "perpetual")) continue
    candidates.push(candidate)
    if (why !== undefined) excluded.push({ exchange: view.exchange, symbol: view.symbol, reason: why })
  }
  const rates = new Map<string, ReturnType<typeof crossRate>>()
  const quotes: Array<SpreadQuote> = []
  for (const { view, instrument: facts } of candidates) {
    if (unusable(view, now, settings.maxBookAgeMs) !== undefined) continue
    const quote = facts.quote
    let conversion: { readonly rate: number; readonly basis: string } | undefined
    if (quote === "USD") conversion = { rate: 1, basis: "USD" }
    else if (parQuotes.has(quote)) conversion = { rate: 1, basis: `${quote} at par` }
    else if (fiatQuotes.has(quote)) {
      if (!rates.has(quote)) rates.set(quote, crossRate(quote, asset, usable))
      conversion = rates.get(quote)
    }
    if (conversion === undefined) {
      excluded.push({
        exchange: view.exchange, symbol: view.symbol,
        reason: fiatQuotes.has(quote)
          ? `no ${quote} cross rate: no other asset has live ${quote} and USD spot books on one venue`
          : `quote ${quote} has no USD value here`
      })
      continue
    }
    const bid = view.bestBid!
    const ask = view.bestAsk!
    const bidSize = baseAmount(facts, view.bidSize ?? 0, bid).base
    const askSize = baseAmount(facts, view.askSize ?? 0, ask).base
    quotes.push({
      exchange: view.exchange,
      symbol: view.symbol,
      market: facts.kind as Market,
      quote,
      quote_basis: conversion.basis,
      usd_rate: significant(conversion.rate),
      bid: significant(bid * conversion.rate),
      ask: significant(ask * conversion.rate),
      mid: significant((bid + ask) / 2 * conversion.rate),
      bid_size: bidSize ?? 0,
      ask_size: askSize ?? 0,
      native_bid: bid,
      native_ask: ask,
      age_ms: Math.max(0, now - view.receivedAt!),
      exchange_time: view.exchangeTime
    })
  }
  const name = (q: SpreadQuote) => `${q.exchange}:${q.symbol}`
  quotes.sort((a, b) => (a.market === b.market ? (name(a) < name(b) ? -1 : 1) : a.market < b.market ? -1 : 1))
  excluded.sort((a, b) => (`${a.exchange}:${a.symbol}` < `${b.exchange}:${b.symbol}` ? -1 : 1))
  return { asset, at: now, quotes, pairs: pairSpreads(quotes), excluded }
}

/**
 * The pair spreads of quotes sorted as a sample sorts them (see the module
 * header); also how the stored samples' pairs are derived at read
 * (storage/queries.ts), since they are not stored.
 */
export const pairSpreads = (quotes: ReadonlyArray<SpreadQuote>): Array<PairSpread> => {
  const name = (q: SpreadQuote) => `${q.exchange}:${q.symbol}`
  const pairs: Array<PairSpread> = []
  for (let i = 0; i < quotes.length; i++) {
    for (let j = i + 1; j < quotes.length; j++) {
      const a = quotes[i]!
      const b = quotes[j]!
      if (a.market !== b.market) continue
      pairs.push({ market: a.market, a: name(a), b: name(b), spread_bps: round((a.mid - b.mid) / ((a.mid + b.mid) / 2) * 1e4, 4) })
    }
  }
  return pairs
}

/** Whether a sample is stored (see the sampler): what the last stored one of its asset looked like. */
export interface StoredState {
  readonly at: number
  readonly books: string
  readonly mids: ReadonlyMap<string, number>
}

/**
 * Why `sample` is stored, or undefined when it is not: the first, the set of
 * books used or left out changed, a book's USD mid moved by at least
 * `changeBps` since `last`, or `everyMs` passed since `last`.
 */
export const storeReason = (sample: AssetSample, last: StoredState | undefined, changeBps: number, everyMs: number): string | undefined => {
  if (last === undefined) return "first sample"
  if (booksOf(sample) !== last.books) return "books changed"
  for (const q of sample.quotes) {
    const before = last.mids.get(`${q.exchange}:${q.symbol}`)!
    if (Math.abs(q.mid - before) / before * 1e4 >= changeBps) return `${q.exchange}:${q.symbol} mid moved`
  }
  return sample.at - last.at >= everyMs ? "interval" : undefined
}

const booksOf = (sample: AssetSample) =>
  sample.quotes.map((q) => `${q.exchange}:${q.symbol}`).join("|") + "#" + sample.excluded.map((e) => `${e.exchange}:${e.symbol}`).join("|")

export const storedState = (sample: AssetSample): StoredState => ({
  at: sample.at,
  books: booksOf(sample),
  mids: new Map(sample.quotes.map((q) => [`${q.exchange}:${q.symbol}`, q.mid]))
})

/** What makes two samples of an asset the same to a reader: the books used and their prices. */
export const sampleSignature = (sample: AssetSample): string =>
  sample.quotes.map((q) => `${q.exchange}:${q.symbol}:${q.bid}:${q.ask}:${q.bid_size}:${q.ask_size}`).join("|") + "#" +
  sample.excluded.map((e) => `${e.exchange}:${e.symbol}`).join("|")
