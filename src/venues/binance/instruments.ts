/** Binance metadata -> instruments, snapshots and open-interest records. */
import { Result, Schema } from "effect"
import type { Instrument } from "../../domain/instruments.ts"
import type { BookSnapshot, FundingUpdate, OpenInterestReading, Trade } from "../../domain/records.ts"
import { AggTradesPage, DepthSnapshot, ExchangeInfo, FundingInfo, OpenInterest, PremiumIndex } from "./wire.ts"

export const decodeExchangeInfo = Schema.decodeUnknownResult(ExchangeInfo)
export const decodeDepthSnapshot = Schema.decodeUnknownResult(DepthSnapshot)
export const decodeOpenInterest = Schema.decodeUnknownResult(OpenInterest)
export const decodePremiumIndex = Schema.decodeUnknownResult(PremiumIndex)
export const decodeFundingInfo = Schema.decodeUnknownResult(FundingInfo)
export const decodeAggTradesPage = Schema.decodeUnknownResult(AggTradesPage)

/** A REST aggTrade, normalized exactly as the stream's (same id, same side rule). */
export const restTradeRecord = (venue: string, symbol: string, t: (typeof AggTradesPage.Type)[number]): Trade => ({
  kind: "trade",
  venue,
  symbol,
  tradeId: String(t.a),
  sequence: t.a,
  price: t.p,
  size: t.q,
  side: t.m ? "sell" : "buy",
  timestamp: t.T,
  details: { first_trade_id: t.f, last_trade_id: t.l, fills: t.l - t.f + 1, source: "aggTrades REST (gap repair)" }
})

export const instrumentsFrom = (venue: string, info: typeof ExchangeInfo.Type): Array<Instrument> =>
  info.symbols.map((s) => ({
    venue,
    symbol: s.symbol,
    base: s.baseAsset,
    quote: s.quoteAsset,
    kind: s.contractType === undefined ? "spot" : s.contractType === "PERPETUAL" ? "perpetual" : "future",
    // USD-M contracts are linear with a size of one base unit; spot likewise.
    contractSize: 1,
    inverse: false
  }))

/** REQUEST_WEIGHT per minute as the venue states it today. */
export const weightLimitFrom = (info: typeof ExchangeInfo.Type): number | undefined =>
  info.rateLimits.find((l) => l.rateLimitType === "REQUEST_WEIGHT" && l.interval === "MINUTE" && l.intervalNum === 1)
    ?.limit

export const snapshotRecord = (
  venue: string,
  symbol: string,
  snapshot: typeof DepthSnapshot.Type,
  receivedAt: number
): BookSnapshot => ({
  kind: "book_snapshot",
  venue,
  symbol,
  sequence: snapshot.lastUpdateId,
  bids: snapshot.bids,
  asks: snapshot.asks,
  timestamp: snapshot.E ?? receivedAt
})

export const openInterestRecord = (venue: string, oi: typeof OpenInterest.Type): OpenInterestReading => ({
  kind: "open_interest",
  venue,
  symbol: oi.symbol,
  openInterest: oi.openInterest,
  timestamp: oi.time
})

export const premiumIndexRecord = (venue: string, p: typeof PremiumIndex.Type): FundingUpdate => ({
  kind: "funding",
  venue,
  symbol: p.symbol,
  rate: p.lastFundingRate,
  predictedRate: null,
  markPrice: p.markPrice,
  indexPrice: p.indexPrice,
  nextFundingTime: p.nextFundingTime,
  timestamp: p.time,
  details: { source: "premiumIndex" }
})

const knownQuotes = ["USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL", "GBP", "JPY", "USD"]

/** Splits a symbol on a known quote suffix; only for replays without exchangeInfo. */
export const guessInstrument = (venue: string, futures: boolean) => (symbol: string): Instrument | undefined => {
  const quote = knownQuotes.find((q) => symbol.endsWith(q) && symbol.length > q.length)
  if (quote === undefined) return undefined
  return {
    venue,
    symbol,
    base: symbol.slice(0, -quote.length),
    quote,
    kind: futures ? "perpetual" : "spot",
    contractSize: 1,
    inverse: false
  }
}

export const symbolOfUrl = (url: string): string | undefined => {
  try {
    return new URL(url).searchParams.get("symbol") ?? undefined
  } catch {
    return undefined
  }
}

export const resultOrUndefined = <A, E>(result: Result.Result<A, E>): A | undefined =>
  Result.isSuccess(result) ? result.success : undefined
