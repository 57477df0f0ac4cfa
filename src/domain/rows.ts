/**
 * Rows as stored in the four tables of the original schema. Prices and sizes
 * are numbers (the tables hold DECIMAL); times are epoch milliseconds in UTC.
 */
import { Schema } from "effect"
import type { Level, Side } from "./records.ts"

export const TableName = Schema.Literals(["large_trades", "funding_rates", "open_interest", "exchange_orderbooks"])
export type TableName = typeof TableName.Type
export const tableNames: ReadonlyArray<TableName> = TableName.literals

export interface LargeTradeRow {
  readonly id: string
  readonly exchange: string
  readonly symbol: string
  readonly side: Side
  readonly price: number
  readonly size: number
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
  readonly openInterest: number
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
}

/** Rows produced while handling one batch of frames, flushed to the writer queues together. */
export class RowBatch {
  readonly large_trades: Array<LargeTradeRow> = []
  readonly funding_rates: Array<FundingRateRow> = []
  readonly open_interest: Array<OpenInterestRow> = []
  readonly exchange_orderbooks: Array<OrderBookRow> = []
  readonly cursors: Array<CursorRow> = []

  get size(): number {
    return this.large_trades.length + this.funding_rates.length + this.open_interest.length +
      this.exchange_orderbooks.length + this.cursors.length
  }
}

/** `{exchange}_{symbol}_{trade_id}` as the contract fixes it. */
export const tradeRowId = (exchange: string, symbol: string, tradeId: string) => `${exchange}_${symbol}_${tradeId}`
/** `{exchange}_{symbol}_{timestamp}` with the timestamp in epoch milliseconds. */
export const timedRowId = (exchange: string, symbol: string, timestamp: number) => `${exchange}_${symbol}_${timestamp}`
