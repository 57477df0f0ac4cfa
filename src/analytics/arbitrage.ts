/**
 * Cross-venue arbitrage (issue 20.7), judged on every spread sample
 * (analytics/spreads.ts): the same books, the same USD prices, the same
 * rules for which books count. Plain synchronous code.
 *
 * - Candidates: for each market type (spot with spot, perpetual with
 *   perpetual), every ordered pair of books on two different venues quoted in
 *   the SAME currency: USD with USD, USDT with USDT, USDC with USDC. Buying
 *   BTC for USD and selling it for USDT leaves the trader holding USDT for
 *   USD, and converting it back is a third leg with its own price and fee: a
 *   15 bps USDT premium alone would look like an opportunity (review 20
 *   finding 12). The spread sample still compares such books at par, marked;
 *   an arbitrage never does. A book at a fiat cross rate is left out too: the
 *   rate comes from other books' mids, and a trade would pay the conversion.
 * - Edge after taker fees on both legs, in bps of the buy leg's cost:
 *   buying at the buy venue's best ask costs ask x (1 + fee_buy), selling at
 *   the sell venue's best bid brings bid x (1 - fee_sell);
 *   edge = (bid x (1 - fee_sell) - ask x (1 + fee_buy)) / (ask x (1 + fee_buy)) x 1e4.
 *   Open while edge > 0; closed at the first sample where it is not, or where
 *   either book is not usable (not live, crossed, stale: never opened by one,
 *   and an open one closes saying which book and why).
 * - Both tops current and of one moment, tighter than a spread sample needs:
 *   each book received at most ARBITRAGE_MAX_BOOK_AGE_MS (1000) before the
 *   sample, and the two receipts at most ARBITRAGE_MAX_LEG_SKEW_MS (500)
 *   apart. A spread tolerates a 5 s old top; an arbitrage would trade on it,
 *   and a stalled socket's last top is exactly a price nobody quotes any more.
 *   A pair failing either never opens, and an open one closes saying which.
 *   500 ms: BTC and ETH tops change many times a second on every venue we
 *   collect, so two live books' last receipts are normally tens of ms apart;
 *   half a sample interval still accepts a quiet live book, while two legs
 *   further apart no longer describe prices that existed together.
 * - Executable size: min(ask size, bid size) at the top of both books, in
 *   coins; its USD value at the buy price. Kept at the peak (the sample with
 *   the highest edge), with the prices of that sample.
 * - Times are sample times: an opportunity shorter than a sample interval
 *   can be missed, and open and close are known to within one interval.
 */
import type { ArbitrageRow, ExcludedBook, SpreadQuote } from "../domain/rows.ts"
import type { AssetSample } from "./spreads.ts"

export interface TakerFees {
  /** Taker fee per venue id, in bps. */
  readonly byVenue: ReadonlyMap<string, number>
  /** For a venue not listed. */
  readonly otherVenues: number
}

/**
 * Base-tier taker fees from each venue's public schedule (bps): Binance spot
 * 0.10 %; Binance USD-M futures 0.05 %; Coinbase Advanced Trade Intro 1
 * 1.20 %; OKX Lv1 spot 0.10 % (its swaps are 0.05 %: one venue id, so the
 * higher); Bybit spot 0.10 %; Bybit derivatives 0.055 %; Deribit futures and
 * perpetuals 0.05 %.
 */
export const defaultTakerFeesBps: Readonly<Record<string, number>> = {
  binance: 10,
  "binance-futures": 5,
  coinbase: 120,
  okx: 10,
  bybit: 10,
  "bybit-derivatives": 5.5,
  deribit: 5
}

/** `binance:10,coinbase:60`: the defaults, with these replaced. */
export const parseTakerFees = (text: string, otherVenues: number): TakerFees | string => {
  const byVenue = new Map(Object.entries(defaultTakerFeesBps))
  for (const part of text.split(",").map((s) => s.trim()).filter((s) => s.length > 0)) {
    const [venue, bps, extra] = part.split(":").map((s) => s.trim())
    const fee = Number(bps)
    if (venue === undefined || venue.length === 0 || extra !== undefined || bps === undefined || bps.length === 0 || !Number.isFinite(fee) || fee < 0 || fee >= 10_000) {
      return `ARBITRAGE_TAKER_FEES_BPS: expected venue:bps pairs separated by commas (bps from 0 to below 10000), got ${JSON.stringify(part)}`
    }
    byVenue.set(venue.toLowerCase(), fee)
  }
  return { byVenue, otherVenues }
}

const feeOf = (fees: TakerFees, venue: string) => fees.byVenue.get(venue) ?? fees.otherVenues

/** The edge after both taker fees, in bps of the buy leg's cost (see the module header). */
export const edgeAfterFees = (ask: number, bid: number, buyFeeBps: number, sellFeeBps: number): number => {
  const cost = ask * (1 + buyFeeBps / 1e4)
  return (bid * (1 - sellFeeBps / 1e4) - cost) / cost * 1e4
}

interface Open {
  row: ArbitrageRow
  /** When it was last handed to the writer. */
  storedAt: number
}

/** An open opportunity is stored again at least this often, so a restart closes it near its last sight. */
const refreshMs = 10_000

const bookName = (exchange: string, symbol: string) => `${exchange} ${symbol}`
const round = (x: number, digits: number) => Number(x.toFixed(digits))
const significant = (x: number) => Number(x.toPrecision(12))

/** How current and how close in time both legs' tops must be (see the module header). */
export interface LegTiming {
  readonly maxBookAgeMs: number
  readonly maxLegSkewMs: number
}

export const defaultLegTiming: LegTiming = { maxBookAgeMs: 1_000, maxLegSkewMs: 500 }

/** The open opportunities, and the rows to store at each sample. */
export class ArbitrageTracker {
  private readonly open = new Map<string, Open>()
  private readonly fees: TakerFees
  private readonly timing: LegTiming
  constructor(fees: TakerFees, timing: LegTiming = defaultLegTiming) {
    this.fees = fees
    this.timing = timing
  }

  /** Why the two tops are not current enough or not of one moment; undefined when they are. */
  private timingProblem(buy: SpreadQuote, sell: SpreadQuote): string | undefined {
    for (const q of [buy, sell]) {
      if (q.age_ms > this.timing.maxBookAgeMs) {
        return `${bookName(q.exchange, q.symbol)} top received ${q.age_ms} ms before the sample (arbitrage limit ${this.timing.maxBookAgeMs} ms)`
      }
    }
    // Both ages are to the same sample time: their difference is the time between the two receipts.
    const skew = Math.abs(buy.age_ms - sell.age_ms)
    if (skew > this.timing.maxLegSkewMs) {
      return `legs received ${skew} ms apart (${bookName(buy.exchange, buy.symbol)} ${buy.age_ms} ms, ${bookName(sell.exchange, sell.symbol)} ${sell.age_ms} ms old; limit ${this.timing.maxLegSkewMs} ms)`
    }
    return undefined
  }

  /** The opportunities open now, as stored. */
  openRows(): Array<ArbitrageRow> {
    return [...this.open.values()].map((o) => o.row)
  }

  /** Judges one asset's sample; returns the rows to store (opened, new peaks, closed). */
  observe(sample: AssetSample): Array<ArbitrageRow> {
    const now = sample.at
    const out: Array<ArbitrageRow> = []
    const direct = sample.quotes.filter((q) => q.quote_basis === "USD" || q.quote_basis.endsWith(" at par"))
    const seen = new Set<string>()
    for (const buy of direct) {
      for (const sell of direct) {
        if (buy.market !== sell.market || buy.exchange === sell.exchange || buy.quote !== sell.quote) continue
        const buyFee = feeOf(this.fees, buy.exchange)
        const sellFee = feeOf(this.fees, sell.exchange)
        const edge = edgeAfterFees(buy.ask, sell.bid, buyFee, sellFee)
        const key = `${sample.asset}\u0000${buy.exchange}\u0000${buy.symbol}\u0000${sell.exchange}\u0000${sell.symbol}`
        const current = this.open.get(key)
        const untimely = this.timingProblem(buy, sell)
        if (untimely !== undefined) {
          if (current !== undefined) out.push(this.close(key, current, now, untimely))
          continue
        }
        if (!(edge > 0)) {
          if (current !== undefined) {
            out.push(this.close(key, current, now, `edge gone: ${round(edge, 4)} bps after fees (bid ${sell.bid} on ${bookName(sell.exchange, sell.symbol)}, ask ${buy.ask} on ${bookName(buy.exchange, buy.symbol)})`))
          }
          continue
        }
        seen.add(key)
        if (current === undefined) {
          const row = this.opened(sample.asset, buy, sell, buyFee, sellFee, edge, now)
          this.open.set(key, { row, storedAt: now })
          out.push(row)
        } else if (edge > current.row.peakEdgeBps) {
          current.row = { ...current.row, ...this.top(buy, sell, edge, now), lastSeenAt: now }
          current.storedAt = now
          out.push(current.row)
        } else {
          // Still open, no new peak: stored again only every refreshMs.
          current.row = { ...current.row, lastSeenAt: now }
          if (now - current.storedAt >= refreshMs) {
            current.storedAt = now
            out.push(current.row)
          }
        }
      }
    }
    // Open ones of this asset whose books are no longer both usable.
    for (const [key, current] of this.open) {
      if (current.row.asset !== sample.asset || seen.has(key)) continue
      const reason = this.missingReason(current.row, direct, sample.excluded)
      if (reason !== undefined) out.push(this.close(key, current, now, reason))
    }
    return out
  }

  private missingReason(row: ArbitrageRow, direct: ReadonlyArray<SpreadQuote>, excluded: ReadonlyArray<ExcludedBook>): string | undefined {
    const reasons: Array<string> = []
    for (const [exchange, symbol] of [[row.buyExchange, row.buySymbol], [row.sellExchange, row.sellSymbol]] as const) {
      if (direct.some((q) => q.exchange === exchange && q.symbol === symbol)) continue
      const why = excluded.find((e) => e.exchange === exchange && e.symbol === symbol)?.reason ?? "no longer in the live books"
      reasons.push(`${bookName(exchange, symbol)} not usable: ${why}`)
    }
    return reasons.length === 0 ? undefined : reasons.join("; ")
  }

  private top(buy: SpreadQuote, sell: SpreadQuote, edge: number, now: number) {
    const size = Math.min(buy.ask_size, sell.bid_size)
    return {
      peakEdgeBps: round(edge, 4),
      peakAt: now,
      buyPrice: buy.ask,
      sellPrice: sell.bid,
      sizeBase: significant(size),
      sizeUsd: round(size * buy.ask, 2),
      metadata: { buy_quote_basis: buy.quote_basis, sell_quote_basis: sell.quote_basis, buy_age_ms: buy.age_ms, sell_age_ms: sell.age_ms }
    }
  }

  private opened(asset: string, buy: SpreadQuote, sell: SpreadQuote, buyFee: number, sellFee: number, edge: number, now: number): ArbitrageRow {
    return {
      id: `${asset}_${buy.exchange}_${buy.symbol}_${sell.exchange}_${sell.symbol}_${now}`,
      asset,
      market: buy.market,
      buyExchange: buy.exchange,
      buySymbol: buy.symbol,
      sellExchange: sell.exchange,
      sellSymbol: sell.symbol,
      openedAt: now,
      closedAt: null,
      closeReason: null,
      lastSeenAt: now,
      openEdgeBps: round(edge, 4),
      buyFeeBps: buyFee,
      sellFeeBps: sellFee,
      ...this.top(buy, sell, edge, now)
    }
  }

  private close(key: string, current: Open, now: number, reason: string): ArbitrageRow {
    this.open.delete(key)
    return { ...current.row, closedAt: now, closeReason: reason, lastSeenAt: now }
  }
}

/** An opportunity open at a clean shutdown: closed at the last sample that saw it, saying so. */
export const closedByShutdown = (row: ArbitrageRow): ArbitrageRow => ({
  ...row,
  closedAt: row.lastSeenAt,
  closeReason: "the service shut down while it was open: not observed after its last sample"
})

/** An opportunity a process left stored open (it ended without shutting down): closed at its last stored sample on restart. */
export const closedByRestart = (row: ArbitrageRow): ArbitrageRow => ({
  ...row,
  closedAt: row.lastSeenAt,
  closeReason: "the service stopped while it was open: not observed after its last stored sample (closed at that time on restart)"
})
