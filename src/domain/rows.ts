/**
 * Rows as stored in the four tables of the original schema. Prices and sizes
 * are numbers (the tables hold DECIMAL); times are epoch milliseconds in UTC.
 */
import { Schema } from "effect"
import type { SizeUnit } from "./instruments.ts"
import type { Level, Side } from "./records.ts"

export const TableName = Schema.Literals([
  "large_trades",
  "funding_rates",
  "open_interest",
  "exchange_orderbooks",
  "volatility_index",
  "option_chain",
  "futures_settlements",
  "futures_basis",
  "futures_rolls",
  "exchange_spreads",
  "arbitrage_opportunities",
  "trade_bars"
])
export type TableName = typeof TableName.Type
export const tableNames: ReadonlyArray<TableName> = TableName.literals

export interface LargeTradeRow {
  readonly id: string
  readonly exchange: string
  readonly symbol: string
  readonly side: Side
  readonly price: number
  /** As the venue counts it: coins, contracts or USD (`sizeUnit`). */
  readonly size: number
  /** The same in the base asset (coins); null where it cannot be known. */
  readonly sizeBase: number | null
  readonly sizeUnit: SizeUnit | null
  readonly valueUsd: number
  readonly timestamp: number
  readonly tradeId: string
  readonly isLiquidation: boolean
  readonly metadata: Record<string, unknown>
}

export interface FundingRateRow {
  readonly id: string
  readonly exchange: string
  readonly symbol: string
  readonly rate: number
  readonly predictedRate: number | null
  readonly timestamp: number
  readonly nextFundingTime: number | null
  readonly metadata: Record<string, unknown> | null
}

export interface OpenInterestRow {
  readonly id: string
  readonly exchange: string
  readonly symbol: string
  /** In contracts as the venue counts them (metadata: contract_size, contract_unit). */
  readonly openInterest: number
  /** The same in the base asset (coins); null where it cannot be known (inverse without a mark price). */
  readonly openInterestBase: number | null
  readonly openInterestUsd: number
  readonly timestamp: number
  readonly metadata: Record<string, unknown> | null
}

export interface OrderBookRow {
  readonly id: string
  readonly exchange: string
  readonly symbol: string
  readonly bids: ReadonlyArray<Level>
  readonly asks: ReadonlyArray<Level>
  readonly timestamp: number
  readonly sequence: number | null
  readonly metadata: Record<string, unknown> | null
}

export interface VolatilityIndexRow {
  readonly id: string
  readonly exchange: string
  readonly indexName: string
  readonly value: number
  readonly timestamp: number
  readonly metadata: Record<string, unknown> | null
}

export interface OptionChainRow {
  readonly id: string
  readonly exchange: string
  readonly currency: string
  readonly instrument: string
  readonly expiry: number
  readonly strike: number
  readonly optionType: "call" | "put"
  readonly markPrice: number | null
  readonly markIv: number | null
  readonly bidIv: number | null
  readonly askIv: number | null
  readonly bestBid: number | null
  readonly bestAsk: number | null
  readonly delta: number | null
  readonly gamma: number | null
  readonly vega: number | null
  readonly theta: number | null
  readonly rho: number | null
  readonly openInterest: number
  readonly underlyingPrice: number | null
  readonly underlyingIndex: string | null
  readonly indexPrice: number | null
  readonly timestamp: number
  readonly metadata: Record<string, unknown> | null
}

export interface FuturesSettlementRow {
  readonly id: string
  readonly exchange: string
  readonly symbol: string
  readonly root: string
  readonly tradeDate: number
  readonly expiry: number
  readonly price: number
  readonly volume: number | null
  readonly openInterest: number | null
  readonly contractSize: number
  readonly source: string
  readonly timestamp: number
  readonly metadata: Record<string, unknown> | null
}

export interface FuturesBasisRow {
  readonly id: string
  readonly exchange: string
  readonly symbol: string
  readonly futuresPrice: number
  readonly spotPrice: number
  readonly spotSource: string
  readonly basis: number
  readonly basisPercent: number
  readonly annualizedPercent: number | null
  readonly daysToExpiry: number
  readonly timestamp: number
  readonly metadata: Record<string, unknown> | null
}

export interface FuturesRollRow {
  readonly id: string
  readonly exchange: string
  readonly root: string
  readonly fromSymbol: string
  readonly toSymbol: string
  readonly reason: string
  readonly tradeDate: number
  readonly fromOpenInterest: number | null
  readonly toOpenInterest: number | null
  readonly fromVolume: number | null
  readonly toVolume: number | null
  readonly timestamp: number
  readonly metadata: Record<string, unknown> | null
}

/** One venue's book in a spread sample, its prices in USD (analytics/spreads.ts). */
export interface SpreadQuote {
  readonly exchange: string
  readonly symbol: string
  readonly market: "spot" | "perpetual"
  readonly quote: string
  /** How the quote currency became USD: "USD", "USDT at par", "EUR at 1.08 (coinbase BTC-EUR mid / BTC-USD mid)". */
  readonly quote_basis: string
  readonly usd_rate: number
  readonly bid: number
  readonly ask: number
  readonly mid: number
  readonly bid_size: number
  readonly ask_size: number
  /** The book's own prices, in its quote currency. */
  readonly native_bid: number
  readonly native_ask: number
  /** Sample time minus our receipt of the book's last update. */
  readonly age_ms: number
  readonly exchange_time: number | null
}

/** The spread between two venues' mids of one market type, (mid_a - mid_b) / ((mid_a + mid_b) / 2) x 1e4. */
export interface PairSpread {
  readonly market: "spot" | "perpetual"
  readonly a: string
  readonly b: string
  readonly spread_bps: number
}

/** A book of the asset left out of a sample, and why. */
export interface ExcludedBook {
  readonly exchange: string
  readonly symbol: string
  readonly reason: string
}

/** One sample of an asset across venues: `{asset}_{sample epoch ms}`. */
export interface SpreadRow {
  readonly id: string
  readonly asset: string
  readonly timestamp: number
  readonly quotes: ReadonlyArray<SpreadQuote>
  readonly pairs: ReadonlyArray<PairSpread>
  readonly excluded: ReadonlyArray<ExcludedBook>
  /** Some price or the set of books differs from the asset's previous sample (only those are streamed). */
  readonly changed: boolean
  /**
   * Whether the writer stores it (analytics/sampler.ts: the books used changed, a mid moved by
   * SPREAD_STORE_CHANGE_BPS since the last stored sample, or SPREAD_STORE_SECONDS passed); every
   * sample is judged for arbitrage and seen by the stream. Absent: stored.
   */
  readonly stored?: boolean
  readonly metadata: Record<string, unknown> | null
}

/**
 * A cross-venue arbitrage (analytics/arbitrage.ts), stored at its open, at
 * each new peak and at its close under one id:
 * `{asset}_{buy venue}_{buy symbol}_{sell venue}_{sell symbol}_{open ms}`.
 */
export interface ArbitrageRow {
  readonly id: string
  readonly asset: string
  readonly market: "spot" | "perpetual"
  readonly buyExchange: string
  readonly buySymbol: string
  readonly sellExchange: string
  readonly sellSymbol: string
  readonly openedAt: number
  readonly closedAt: number | null
  readonly closeReason: string | null
  /** The last sample that saw it open (or closed it). */
  readonly lastSeenAt: number
  /** After both taker fees, in bps of the buy leg's cost. */
  readonly openEdgeBps: number
  readonly peakEdgeBps: number
  readonly peakAt: number
  /** At the peak: buy ask and sell bid in USD, min(ask size, bid size) in coins, its USD value at the ask. */
  readonly buyPrice: number
  readonly sellPrice: number
  readonly sizeBase: number
  readonly sizeUsd: number
  readonly buyFeeBps: number
  readonly sellFeeBps: number
  readonly metadata: Record<string, unknown> | null
}

/**
 * One venue's trades and liquidations of one symbol in one minute (pipeline/bars.ts), or a correction to
 * it: trades that arrived after the minute was written, merged into the stored row (storage/inserts.ts).
 */
export interface TradeBarRow {
  /** `{exchange}_{symbol}_{minute start epoch ms}`: a correction has its bar's id. */
  readonly id: string
  readonly exchange: string
  readonly symbol: string
  /** The instrument's base asset: the aggregate's series. */
  readonly base: string
  /** spot, perpetual, future or option: an option's premium is no price of its asset, so the aggregate leaves it out. */
  readonly instrumentKind: string
  /** Start of the minute (epoch ms). */
  readonly timestamp: number
  /** Null when the minute (or correction) holds liquidations but no trade. */
  readonly open: number | null
  readonly high: number | null
  readonly low: number | null
  readonly close: number | null
  /** Exchange time of the trades that gave open and close (a merge keeps the earliest and the latest). */
  readonly openTime: number | null
  readonly closeTime: number | null
  /** Coins, by size_base's rule (valuation.ts baseQuantity). */
  readonly volumeBase: number
  readonly volumeUsd: number
  /** Taker buys and taker sells in USD: their difference is the volume delta. */
  readonly buyVolumeUsd: number
  readonly sellVolumeUsd: number
  readonly tradeCount: number
  /** Long positions liquidated (sell orders) and short ones (buy orders), in USD. */
  readonly longLiquidationsUsd: number
  readonly shortLiquidationsUsd: number
  readonly liquidationCount: number
  /** The processor watched the stream from before the minute began until after it ended. */
  readonly observedWhole: boolean
  readonly partialReason: string | null
  /**
   * Trades and liquidations of the minute the detector could not value (no USD price yet): left out, the bar
   * partial (`partialReason` says how many; column `unvalued_count`, migration 0021). Absent: none.
   */
  readonly unvaluedCount?: number | undefined
  /**
   * Its liquidations come from a stream the venue samples (Binance, OKX: at most one per symbol per second):
   * the liquidation totals are lower bounds. It says nothing of the trades: `complete` is the trades'. Absent: false.
   */
  readonly liquidationsSampled?: boolean | undefined
  /** `{run}|{earliest ms}|{latest ms}|{records}|{first id}|{last id}`: which trades it holds (pipeline/bars.ts contributionId; the merge's rule in storage/inserts.ts). */
  readonly contribution: string
  /**
   * True for trades that came after the bar was written (late, or repaired over REST), and for a bar of a
   * minute not watched from its start (the first after a start or reconnect: a previous process may have
   * written the rest): the stream's clients add it to what they hold rather than replace.
   */
  readonly correction: boolean
}

/**
 * How far a stream has been processed. It travels through the writer in the same
 * queue as the large-trade rows, behind the rows it covers, so a stored cursor
 * never claims more than what is durably stored.
 */
export interface CursorRow {
  readonly kind: "cursor"
  readonly exchange: string
  readonly channel: string
  readonly symbol: string
  readonly sequence: number
  readonly time: number
}

export interface RowsByTable {
  readonly large_trades: LargeTradeRow
  readonly funding_rates: FundingRateRow
  readonly open_interest: OpenInterestRow
  readonly exchange_orderbooks: OrderBookRow
  readonly volatility_index: VolatilityIndexRow
  readonly option_chain: OptionChainRow
  readonly futures_settlements: FuturesSettlementRow
  readonly futures_basis: FuturesBasisRow
  readonly futures_rolls: FuturesRollRow
  readonly trade_bars: TradeBarRow
  readonly exchange_spreads: SpreadRow
  readonly arbitrage_opportunities: ArbitrageRow
}

/** Rows produced while handling one batch of frames, flushed to the writer queues together. */
export class RowBatch {
  readonly large_trades: Array<LargeTradeRow> = []
  readonly funding_rates: Array<FundingRateRow> = []
  readonly open_interest: Array<OpenInterestRow> = []
  readonly exchange_orderbooks: Array<OrderBookRow> = []
  readonly volatility_index: Array<VolatilityIndexRow> = []
  readonly option_chain: Array<OptionChainRow> = []
  readonly futures_settlements: Array<FuturesSettlementRow> = []
  readonly futures_basis: Array<FuturesBasisRow> = []
  readonly futures_rolls: Array<FuturesRollRow> = []
  readonly exchange_spreads: Array<SpreadRow> = []
  readonly arbitrage_opportunities: Array<ArbitrageRow> = []
  readonly trade_bars: Array<TradeBarRow> = []
  readonly cursors: Array<CursorRow> = []

  get size(): number {
    return this.large_trades.length + this.funding_rates.length + this.open_interest.length +
      this.exchange_orderbooks.length + this.volatility_index.length + this.option_chain.length +
      this.futures_settlements.length + this.futures_basis.length + this.futures_rolls.length + this.cursors.length +
      this.exchange_spreads.length + this.arbitrage_opportunities.length + this.trade_bars.length
  }
}

/** `{exchange}_{symbol}_{trade_id}` as the contract fixes it. */
export const tradeRowId = (exchange: string, symbol: string, tradeId: string) => `${exchange}_${symbol}_${tradeId}`
/** `{exchange}_{symbol}_{timestamp}` with the timestamp in epoch milliseconds. */
export const timedRowId = (exchange: string, symbol: string, timestamp: number) => `${exchange}_${symbol}_${timestamp}`
