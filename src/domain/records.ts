/**
 * Normalized market records: what every venue's normalizer produces from its wire
 * format, before anything is stored. Times are epoch milliseconds (UTC).
 */
import { Schema } from "effect"

export const Side = Schema.Literals(["buy", "sell"])
export type Side = typeof Side.Type

/** [price, size] as numbers; size 0 removes a level in a delta. */
export const Level = Schema.Tuple([Schema.Number, Schema.Number])
export type Level = typeof Level.Type

export const Trade = Schema.Struct({
  kind: Schema.Literal("trade"),
  venue: Schema.String,
  symbol: Schema.String,
  tradeId: Schema.String,
  /** Contiguous per-symbol trade sequence, where the venue has one: a jump is a gap. */
  sequence: Schema.optional(Schema.Number),
  /** The first sequence this record covers, when it aggregates several (OKX `count`): `sequence` is then the last. */
  firstSequence: Schema.optional(Schema.Number),
  price: Schema.Number,
  /** In the venue's native quantity unit (base units for linear/spot, contracts otherwise). */
  size: Schema.Number,
  /** Taker side. */
  side: Side,
  timestamp: Schema.Number,
  /** The venue flags this fill as (part of) a liquidation (Deribit `liquidation`). */
  liquidation: Schema.optional(Schema.Boolean),
  /**
   * Side of the liquidated order, where the venue says which one it was
   * (Deribit "M": the maker's, the taker's opposite; "T": the taker's); "both"
   * when both orders were liquidations. A liquidation row is stored with it.
   */
  liquidatedSide: Schema.optional(Schema.Literals(["buy", "sell", "both"])),
  /** The venue's own USD rate for the quote currency at the trade (Deribit's index price for coin-quoted options). */
  quoteUsdRate: Schema.optional(Schema.Number),
  /** Venue-specific facts worth keeping (first/last fill ids, sequence). */
  details: Schema.Record(Schema.String, Schema.Unknown)
})
export type Trade = typeof Trade.Type

export const Liquidation = Schema.Struct({
  kind: Schema.Literal("liquidation"),
  venue: Schema.String,
  symbol: Schema.String,
  /** Side of the liquidation order: a sell liquidates a long position. */
  side: Side,
  price: Schema.Number,
  averagePrice: Schema.Number,
  filledSize: Schema.Number,
  timestamp: Schema.Number,
  /** The venue's own id, or one made of what identifies the event (several liquidations can share a millisecond and a side). */
  id: Schema.optional(Schema.String),
  /**
   * The venue's stream shows only a sample of its liquidations (Binance forceOrder, OKX liquidation-orders:
   * at most one per symbol per second): totals built from them (the minute bars) are lower bounds.
   */
  sampled: Schema.optional(Schema.Boolean),
  details: Schema.Record(Schema.String, Schema.Unknown)
})
export type Liquidation = typeof Liquidation.Type

export const BookDelta = Schema.Struct({
  kind: Schema.Literal("book_delta"),
  venue: Schema.String,
  symbol: Schema.String,
  /** First and last sequence number covered by this delta, and the previous delta's last (if sent). */
  firstSequence: Schema.Number,
  lastSequence: Schema.Number,
  previousSequence: Schema.optional(Schema.Number),
  bids: Schema.Array(Level),
  asks: Schema.Array(Level),
  timestamp: Schema.Number
})
export type BookDelta = typeof BookDelta.Type

export const BookSnapshot = Schema.Struct({
  kind: Schema.Literal("book_snapshot"),
  venue: Schema.String,
  symbol: Schema.String,
  sequence: Schema.Number,
  bids: Schema.Array(Level),
  asks: Schema.Array(Level),
  timestamp: Schema.Number
})
export type BookSnapshot = typeof BookSnapshot.Type

export const FundingUpdate = Schema.Struct({
  kind: Schema.Literal("funding"),
  venue: Schema.String,
  symbol: Schema.String,
  /** Fraction per funding interval (0.0001 = 0.01 %). */
  rate: Schema.Number,
  /** Only where the venue publishes one; never a price. */
  predictedRate: Schema.NullOr(Schema.Number),
  markPrice: Schema.NullOr(Schema.Number),
  indexPrice: Schema.NullOr(Schema.Number),
  nextFundingTime: Schema.NullOr(Schema.Number),
  timestamp: Schema.Number,
  details: Schema.Record(Schema.String, Schema.Unknown)
})
export type FundingUpdate = typeof FundingUpdate.Type

/** A mark price with no funding: a dated (delivery) contract's `markPrice` stream. Values open interest; stores nothing. */
export const MarkPriceReading = Schema.Struct({
  kind: Schema.Literal("mark_price"),
  venue: Schema.String,
  symbol: Schema.String,
  markPrice: Schema.Number,
  indexPrice: Schema.NullOr(Schema.Number),
  timestamp: Schema.Number
})
export type MarkPriceReading = typeof MarkPriceReading.Type

export const OpenInterestReading = Schema.Struct({
  kind: Schema.Literal("open_interest"),
  venue: Schema.String,
  symbol: Schema.String,
  /** In contracts as the venue counts them. */
  openInterest: Schema.Number,
  timestamp: Schema.Number,
  /** USD value when the venue states it (Deribit inverse: OI is counted in USD); otherwise contracts x size x mark. */
  valueUsd: Schema.optional(Schema.Number),
  /** The venue's own USD figure when we value it ourselves (OKX `oiUsd`): kept beside ours, and compared. */
  venueValueUsd: Schema.optional(Schema.Number),
  contractSize: Schema.optional(Schema.Number),
  contractUnit: Schema.optional(Schema.String),
  /** The mark price the venue sent with the reading (Deribit's book summary): turns an inverse count into coins. */
  markPrice: Schema.optional(Schema.Number),
  /** Venue-specific facts about the reading, kept in the row's metadata (Bybit: which side count it is). */
  details: Schema.optional(Schema.Record(Schema.String, Schema.Unknown))
})
export type OpenInterestReading = typeof OpenInterestReading.Type

/** A volatility index value (Deribit DVOL), annualised percent. */
export const VolatilityIndexReading = Schema.Struct({
  kind: Schema.Literal("volatility_index"),
  venue: Schema.String,
  /** The index name (btc_usd, eth_usd). */
  symbol: Schema.String,
  value: Schema.Number,
  timestamp: Schema.Number
})
export type VolatilityIndexReading = typeof VolatilityIndexReading.Type

const Greeks = Schema.Struct({ delta: Schema.Number, gamma: Schema.Number, vega: Schema.Number, theta: Schema.Number, rho: Schema.Number })

/** One option of a chain snapshot: prices in the underlying coin, IVs in percent. */
export const OptionQuote = Schema.Struct({
  kind: Schema.Literal("option_quote"),
  venue: Schema.String,
  symbol: Schema.String,
  currency: Schema.String,
  expiry: Schema.Number,
  strike: Schema.Number,
  optionType: Schema.Literals(["call", "put"]),
  markPrice: Schema.NullOr(Schema.Number),
  markIv: Schema.NullOr(Schema.Number),
  bidIv: Schema.NullOr(Schema.Number),
  askIv: Schema.NullOr(Schema.Number),
  bestBid: Schema.NullOr(Schema.Number),
  bestAsk: Schema.NullOr(Schema.Number),
  greeks: Schema.NullOr(Greeks),
  /** "venue": the venue's own figures; "computed": Black-Scholes on the forward with the mark IV (domain/black-scholes.ts). */
  greeksSource: Schema.optional(Schema.Literals(["venue", "computed"])),
  openInterest: Schema.Number,
  underlyingPrice: Schema.NullOr(Schema.Number),
  underlyingIndex: Schema.NullOr(Schema.String),
  indexPrice: Schema.NullOr(Schema.Number),
  timestamp: Schema.Number
})
export type OptionQuote = typeof OptionQuote.Type

/** A dated future's daily settlement (CME), with that day's volume and open interest in contracts. */
export const FuturesSettlement = Schema.Struct({
  kind: Schema.Literal("settlement"),
  venue: Schema.String,
  symbol: Schema.String,
  root: Schema.String,
  base: Schema.String,
  /** Coins per contract. */
  contractSize: Schema.Number,
  tradeDate: Schema.Number,
  expiry: Schema.Number,
  price: Schema.Number,
  volume: Schema.NullOr(Schema.Number),
  openInterest: Schema.NullOr(Schema.Number),
  source: Schema.String,
  /** When the settlement price was struck. */
  timestamp: Schema.Number
})
export type FuturesSettlement = typeof FuturesSettlement.Type

export const FuturesBasis = Schema.Struct({
  kind: Schema.Literal("basis"),
  venue: Schema.String,
  symbol: Schema.String,
  futuresPrice: Schema.Number,
  spotPrice: Schema.Number,
  spotSource: Schema.String,
  basis: Schema.Number,
  basisPercent: Schema.Number,
  annualizedPercent: Schema.NullOr(Schema.Number),
  daysToExpiry: Schema.Number,
  timestamp: Schema.Number,
  details: Schema.Record(Schema.String, Schema.Unknown)
})
export type FuturesBasis = typeof FuturesBasis.Type

export const FuturesRoll = Schema.Struct({
  kind: Schema.Literal("roll"),
  venue: Schema.String,
  /** The product root (BTC, MBT, ETH, MET). */
  symbol: Schema.String,
  fromSymbol: Schema.String,
  toSymbol: Schema.String,
  reason: Schema.Literals(["open_interest", "volume"]),
  tradeDate: Schema.Number,
  fromOpenInterest: Schema.NullOr(Schema.Number),
  toOpenInterest: Schema.NullOr(Schema.Number),
  fromVolume: Schema.NullOr(Schema.Number),
  toVolume: Schema.NullOr(Schema.Number),
  timestamp: Schema.Number
})
export type FuturesRoll = typeof FuturesRoll.Type

/**
 * A venue's own integrity check failed for a book (OKX's checksum): the book
 * is wrong although its sequence looked fine, and must be rebuilt.
 */
export const BookInvalid = Schema.Struct({
  kind: Schema.Literal("book_invalid"),
  venue: Schema.String,
  symbol: Schema.String,
  reason: Schema.String,
  timestamp: Schema.Number
})
export type BookInvalid = typeof BookInvalid.Type

export const NormalizedRecord = Schema.Union([
  BookInvalid,
  Trade,
  Liquidation,
  BookDelta,
  BookSnapshot,
  FundingUpdate,
  MarkPriceReading,
  OpenInterestReading,
  VolatilityIndexReading,
  OptionQuote,
  FuturesSettlement,
  FuturesBasis,
  FuturesRoll
])
export type NormalizedRecord = typeof NormalizedRecord.Type
