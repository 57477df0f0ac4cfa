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
  price: Schema.Number,
  /** In the venue's native quantity unit (base units for linear/spot, contracts otherwise). */
  size: Schema.Number,
  /** Taker side. */
  side: Side,
  timestamp: Schema.Number,
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

export const OpenInterestReading = Schema.Struct({
  kind: Schema.Literal("open_interest"),
  venue: Schema.String,
  symbol: Schema.String,
  /** In contracts as the venue counts them. */
  openInterest: Schema.Number,
  timestamp: Schema.Number
})
export type OpenInterestReading = typeof OpenInterestReading.Type

export const NormalizedRecord = Schema.Union([Trade, Liquidation, BookDelta, BookSnapshot, FundingUpdate, OpenInterestReading])
export type NormalizedRecord = typeof NormalizedRecord.Type
