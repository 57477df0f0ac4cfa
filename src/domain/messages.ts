/**
 * What the service publishes to the broker, as plain data: routing key
 * `<kind>.<venue>.<symbol>`, body the API's row shape plus `kind` and
 * `schema_version`, message id deterministic (the row's id; a gap's id and
 * state) so a consumer drops the duplicates of at-least-once delivery by it.
 * Pure: storage stages these in the outbox and the publisher sends them, and
 * neither depends on the other.
 */
import type { CursorRow, FundingRateRow, LargeTradeRow, OpenInterestRow, OrderBookRow, TableName } from "./rows.ts"

export const schemaVersion = 1

export interface OutboundMessage {
  readonly id: string
  readonly kind: string
  readonly routingKey: string
  /** The JSON body, exactly as published. */
  readonly body: string
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())
/** Topic words are dot-separated: a dot inside a symbol must not split it. */
export const word = (s: string) => s.replace(/[.#*\s]/g, "_")

const message = (kind: string, routingKey: string, id: string, row: object): OutboundMessage => ({
  kind,
  id,
  routingKey,
  body: JSON.stringify({ kind, schema_version: schemaVersion, ...row })
})

const rowMessage = (kind: string, exchange: string, symbol: string, id: string, row: object) =>
  message(kind, `${kind}.${word(exchange)}.${word(symbol)}`, id, row)

const largeTrade = (r: LargeTradeRow) =>
  rowMessage(r.isLiquidation ? "liquidation" : "large_trade", r.exchange, r.symbol, r.id, {
    exchange: r.exchange,
    symbol: r.symbol,
    side: r.side,
    price: r.price,
    size: r.size,
    size_base: r.sizeBase ?? null,
    size_unit: r.sizeUnit ?? null,
    value_usd: r.valueUsd,
    timestamp: iso(r.timestamp),
    trade_id: r.tradeId,
    is_liquidation: r.isLiquidation,
    metadata: r.metadata
  })

const funding = (r: FundingRateRow) =>
  rowMessage("funding", r.exchange, r.symbol, r.id, {
    exchange: r.exchange, symbol: r.symbol, rate: r.rate, predicted_rate: r.predictedRate, timestamp: iso(r.timestamp),
    next_funding_time: iso(r.nextFundingTime), metadata: r.metadata
  })

const openInterest = (r: OpenInterestRow) =>
  rowMessage("open_interest", r.exchange, r.symbol, r.id, {
    exchange: r.exchange, symbol: r.symbol, open_interest: r.openInterest, open_interest_base: r.openInterestBase ?? null, open_interest_usd: r.openInterestUsd,
    timestamp: iso(r.timestamp), metadata: r.metadata
  })

const orderBook = (r: OrderBookRow) =>
  rowMessage("orderbook", r.exchange, r.symbol, r.id, {
    exchange: r.exchange, symbol: r.symbol, bids: r.bids, asks: r.asks, timestamp: iso(r.timestamp), sequence: r.sequence,
    metadata: r.metadata
  })

/**
 * The messages for rows of one table: large trades and liquidations, funding,
 * open interest, and order books when `orderBooks`; none for the other tables.
 * The large_trades queue also carries stream cursors (`"kind" in row`): skipped.
 */
export const rowMessages = (
  table: TableName,
  rows: ReadonlyArray<unknown>,
  options: { readonly orderBooks: boolean }
): Array<OutboundMessage> => {
  switch (table) {
    case "large_trades":
      return (rows as ReadonlyArray<LargeTradeRow | CursorRow>).flatMap((r) => ("kind" in r ? [] : [largeTrade(r)]))
    case "funding_rates":
      return (rows as ReadonlyArray<FundingRateRow>).map(funding)
    case "open_interest":
      return (rows as ReadonlyArray<OpenInterestRow>).map(openInterest)
    case "exchange_orderbooks":
      return options.orderBooks ? (rows as ReadonlyArray<OrderBookRow>).map(orderBook) : []
    default:
      return []
  }
}

/** A gap as the ledger persists it (the fields published). */
export interface GapFacts {
  readonly id: string
  readonly exchange: string
  readonly channel: string
  readonly symbol: string
  readonly start: number
  readonly end: number | null
  readonly cause: string
  readonly estimatedMissing: number | null
  readonly status: string
  readonly repairedCount: number
  readonly metadata: Record<string, unknown>
}

/**
 * A gap on `gap.<venue>.<symbol>`, in the API's gap shape. The ledger reports
 * a gap again as it changes (closed, repaired), so the message id names the
 * state: a consumer dropping duplicates keeps every change.
 */
export const gapMessage = (gap: GapFacts): OutboundMessage =>
  message("gap", `gap.${word(gap.exchange)}.${word(gap.symbol)}`, `${gap.id}:${gap.status}:${gap.end ?? "open"}:${gap.repairedCount}`, {
    id: gap.id,
    exchange: gap.exchange,
    channel: gap.channel,
    symbol: gap.symbol,
    start: iso(gap.start),
    end: iso(gap.end),
    cause: gap.cause,
    estimated_missing: gap.estimatedMissing,
    repair_status: gap.status,
    repaired_count: gap.repairedCount,
    metadata: gap.metadata
  })

/** An alert that fired (the fields published and POSTed). */
export interface AlertFacts {
  readonly id: string
  readonly rule: string
  readonly kind: string
  readonly exchange: string | null
  readonly symbol: string
  readonly value: number
  readonly threshold: number
  readonly message: string
  readonly eventTime: number
  readonly firedAt: number
  readonly details: Record<string, unknown>
}

/** The API's, the broker's and the webhooks' shape of an alert. */
export const alertJson = (alert: AlertFacts) => ({
  id: alert.id,
  rule: alert.rule,
  rule_kind: alert.kind,
  exchange: alert.exchange,
  symbol: alert.symbol,
  value: alert.value,
  threshold: alert.threshold,
  message: alert.message,
  event_time: new Date(alert.eventTime).toISOString(),
  fired_at: new Date(alert.firedAt).toISOString(),
  details: alert.details
})

/** An alert on `alert.<rule>.<symbol>`; its body is also what a webhook gets. */
export const alertMessage = (alert: AlertFacts): OutboundMessage =>
  message("alert", `alert.${word(alert.rule)}.${word(alert.symbol)}`, alert.id, alertJson(alert))
