/**
 * Read side for the HTTP API. Every filter is a plain column predicate so the
 * original indexes serve it; `count` and `summary` cover every matching row,
 * not just the page.
 */
import { Clock, Config, Effect } from "effect"
import { SqlClient, type Statement } from "effect/sql"
import { parQuotes } from "../domain/instruments.ts"
import { defaultBarGraceMs } from "../pipeline/bars.ts"
import type { ExcludedBook, PairSpread, SpreadQuote } from "../domain/rows.ts"
import { pairSpreads } from "../analytics/spreads.ts"

export interface WindowFilter {
  readonly symbol?: string | undefined
  readonly exchange?: string | undefined
  readonly hours: number
  readonly limit: number
}

export interface LargeTradeFilter extends WindowFilter {
  readonly minValueUsd?: number | undefined
  readonly onlyLiquidations?: boolean | undefined
  readonly side?: "buy" | "sell" | undefined
}

const quoteSuffixes = [...parQuotes, "USD", "BTC", "ETH", "BNB", "EUR", "GBP", "TRY", "BRL", "JPY"]
const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")

/**
 * The regex a base asset matches: spot/linear pairs with or without a separator
 * (BTCUSDT, BTC-USD), perpetuals and dated futures (BTC-PERPETUAL, BTC-27DEC24,
 * BTCUSDT_251226, BTC-USDT-SWAP, BTC-USD-251226, BTCUSDZ26, BTCPERP) and CME
 * month codes (BTCZ25).
 */
export const baseAssetPattern = (base: string): string => {
  const b = escapeRegex(base.toUpperCase())
  // CME's micro contracts carry their own roots: MBT for bitcoin, MET for ether.
  const micro = microRoots[base.toUpperCase()]
  const cme = micro === undefined ? "" : `|^${micro}[FGHJKMNQUVXZ][0-9]{1,2}$`
  // After the quote: Binance's _YYMMDD, OKX's -YYMMDD and -SWAP, Bybit's inverse month code (BTCUSDZ26); Bybit's USDC perpetual is BTCPERP.
  return `^${b}([-_/]?(${quoteSuffixes.join("|")})(_[0-9]{6}|-[0-9]{6}|-SWAP|[FGHJKMNQUVXZ][0-9]{2})?|PERP|-PERPETUAL|-[0-9]{1,2}[A-Z]{3}[0-9]{2}.*|[FGHJKMNQUVXZ][0-9]{1,2})$${cme}`
}

const microRoots: Record<string, string> = { BTC: "MBT", ETH: "MET" }

const hourMs = 3_600_000
/** The start of a window of `hours` ending at `now` (the Effect Clock's time, so a test can pin the date). */
const cutoffMs = (hours: number, now: number) => now - hours * hourMs

const toNumber = (value: unknown): number => (value === null || value === undefined ? 0 : Number(value))
const toNumberOrNull = (value: unknown): number | null => (value === null || value === undefined ? null : Number(value))
const toIso = (value: unknown): string => (value instanceof Date ? value.toISOString() : new Date(String(value)).toISOString())
const toIsoOrNull = (value: unknown): string | null => (value === null || value === undefined ? null : toIso(value))
const toStrings = (value: unknown): Array<string> =>
  Array.isArray(value) ? value.filter((v): v is string => typeof v === "string").sort() : []

/** Tables whose first index column is `symbol` (their original indexes). */
type SymbolIndexed = "large_trades" | "funding_rates" | "open_interest" | "futures_settlements" | "futures_basis" | "exchange_orderbooks" | "trade_bars"

/** `symbol` is the exact native symbol or an instrument on that base asset. */
const symbolMatches = (sql: SqlClient.SqlClient, symbol: string) => sql`(symbol = ${symbol} OR symbol ~ ${baseAssetPattern(symbol)})`

/**
 * A symbol filter as `symbol = ANY(the table's symbols that match)`. The
 * distinct symbols come from a loose index scan of the symbol index (one probe
 * per instrument), so the base-asset regex runs once per instrument instead of
 * once per row, and the symbol index can serve the filter.
 */
const symbolCondition = (sql: SqlClient.SqlClient, table: SymbolIndexed, symbol: string) => {
  const from = sql.literal(table)
  return sql`symbol = ANY(ARRAY(
    WITH RECURSIVE known(symbol) AS (
      (SELECT symbol FROM ${from} ORDER BY symbol LIMIT 1)
      UNION ALL
      SELECT (SELECT s.symbol FROM ${from} AS s WHERE s.symbol > known.symbol ORDER BY s.symbol LIMIT 1)
      FROM known WHERE known.symbol IS NOT NULL
    )
    SELECT symbol FROM known WHERE symbol IS NOT NULL AND ${symbolMatches(sql, symbol)}))`
}

const instrumentConditions = (sql: SqlClient.SqlClient, table: SymbolIndexed, filter: WindowFilter): Array<Statement.Fragment> => {
  const conditions: Array<Statement.Fragment> = []
  if (filter.exchange !== undefined) conditions.push(sql`exchange = ${filter.exchange}`)
  if (filter.symbol !== undefined) conditions.push(symbolCondition(sql, table, filter.symbol))
  return conditions
}

const utcTimestamp = (sql: SqlClient.SqlClient, ms: number) => sql`(${new Date(ms).toISOString()}::timestamptz AT TIME ZONE 'UTC')`

/**
 * A `timestamp` column (UTC wall-clock time) as the ISO-8601 text the API
 * writes, formatted by PostgreSQL: milliseconds truncated, as the driver's
 * Date decoding truncates them. Saves a Date and a toISOString per value.
 */
const isoText = (column: string) => `to_char(${column}, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`

/**
 * One page of rows as a single JSON array built by PostgreSQL, each element
 * already the API's object (its keys in the contract's order; numeric columns
 * as JSON numbers, so JSON.parse reads the same doubles Number() did). The
 * driver parses it in one native JSON.parse instead of decoding every column
 * of every row and mapping it in JavaScript.
 */
const jsonPage = (sql: SqlClient.SqlClient, element: string, order: string, page: Statement.Fragment) =>
  sql`(SELECT COALESCE(json_agg(${sql.literal(element)} ORDER BY ${sql.literal(order)}), '[]'::json) FROM (${page}) AS page)`

/**
 * `column >= from`, closed above by 'infinity' (which excludes no row). With
 * statistics taken before a bulk load (or none), PostgreSQL guesses a third of
 * the table for a one-sided range and scans a rollup whole (30 ms on 184k
 * hourly rows), but 0.5 % for a two-sided one and takes the index (0.1 ms);
 * with current statistics the upper bound costs nothing.
 */
const fromOnwards = (sql: SqlClient.SqlClient, column: "timestamp" | "hour", from: number): Array<Statement.Fragment> => [
  sql`${sql.literal(column)} >= ${utcTimestamp(sql, from)}`,
  sql`${sql.literal(column)} <= 'infinity'::timestamp`
]

const windowConditions = (
  sql: SqlClient.SqlClient,
  table: SymbolIndexed,
  filter: WindowFilter,
  from: number
): Array<Statement.Fragment> => [
  ...fromOnwards(sql, "timestamp", from),
  ...instrumentConditions(sql, table, filter)
]

/**
 * The large-trades summary from the hourly rollup (migration 0006) for the
 * window's whole hours, plus the raw trades of its first, partial hour. Only
 * filters the rollup carries (exchange, symbol) can take this path.
 */
const largeTradesSummaryFromRollup = (sql: SqlClient.SqlClient, filter: LargeTradeFilter, from: number) => {
  const firstWholeHour = Math.ceil(from / hourMs) * hourMs
  const instruments = instrumentConditions(sql, "large_trades", filter)
  return sql`SELECT sum(n) AS count, sum(total) AS total, sum(liquidations) AS liquidations,
      array_agg(DISTINCT exchange) AS exchanges, array_agg(DISTINCT symbol) AS symbols
    FROM (
      SELECT exchange, symbol, trades AS n, total_value_usd AS total, liquidations FROM large_trades_hourly
      WHERE ${sql.and([...fromOnwards(sql, "hour", firstWholeHour), ...instruments])}
      UNION ALL
      SELECT exchange, symbol, count(*), sum(value_usd), count(*) FILTER (WHERE is_liquidation) FROM large_trades
      WHERE ${sql.and([sql`timestamp >= ${utcTimestamp(sql, from)}`, sql`timestamp < ${utcTimestamp(sql, firstWholeHour)}`, ...instruments])}
      GROUP BY exchange, symbol
    ) AS parts`
}

/** The statements behind each endpoint, exported so the bench can EXPLAIN exactly what the API runs. */
const largeTradeJson = `json_build_object('exchange', exchange, 'symbol', symbol, 'side', side, 'price', price, 'size', size,
  'size_base', size_base, 'size_unit', size_unit, 'value_usd', value_usd, 'timestamp', ${isoText("timestamp")}, 'trade_id', trade_id,
  'is_liquidation', is_liquidation IS TRUE, 'metadata', COALESCE(metadata, '{}'::jsonb))`

/**
 * The statement behind each endpoint (one round trip: the page as JSON beside
 * the summary's single row), exported so the bench can EXPLAIN exactly what the API runs.
 */
export const largeTradesStatements = (sql: SqlClient.SqlClient, filter: LargeTradeFilter, now: number) => {
  const from = cutoffMs(filter.hours, now)
  const conditions = windowConditions(sql, "large_trades", filter, from)
  if (filter.minValueUsd !== undefined) conditions.push(sql`value_usd >= ${String(filter.minValueUsd)}::numeric`)
  if (filter.onlyLiquidations === true) conditions.push(sql`is_liquidation = TRUE`)
  if (filter.side !== undefined) conditions.push(sql`side = ${filter.side}`)
  const where = sql.and(conditions)
  const page = sql`SELECT id, exchange, symbol, side, price, size, size_base, size_unit, value_usd, timestamp, trade_id, is_liquidation, metadata
        FROM large_trades WHERE ${where} ORDER BY timestamp DESC, id DESC LIMIT ${filter.limit}`
  const summary = filter.minValueUsd === undefined && filter.onlyLiquidations !== true && filter.side === undefined
    ? largeTradesSummaryFromRollup(sql, filter, from)
    // Grouped per instrument first: a hash aggregate over the window, then DISTINCT over a few dozen groups.
    : sql`SELECT sum(n) AS count, sum(total) AS total, sum(liquidations) AS liquidations,
          array_agg(DISTINCT exchange) AS exchanges, array_agg(DISTINCT symbol) AS symbols
        FROM (SELECT exchange, symbol, count(*) AS n, sum(value_usd) AS total, count(*) FILTER (WHERE is_liquidation) AS liquidations
          FROM large_trades WHERE ${where} GROUP BY exchange, symbol) AS per_instrument`
  return [
    sql`SELECT ${jsonPage(sql, largeTradeJson, "timestamp DESC, id DESC", page)} AS trades, summary.* FROM (${summary}) AS summary`
  ] as const
}

/** The endpoint's data from its statement's row (also read from withCoverage's combined row). */
export const readLargeTrades = (summary: Record<string, unknown>) => {
  return {
    count: toNumber(summary.count),
    trades: summary.trades as Array<{
      exchange: string
      symbol: string
      side: string
      price: number
      size: number
      size_base: number | null
      size_unit: "base" | "contracts" | "usd" | null
      value_usd: number
      timestamp: string
      trade_id: string | null
      is_liquidation: boolean
      metadata: unknown
    }>,
    summary: {
      total_value_usd: toNumber(summary.total),
      liquidation_count: toNumber(summary.liquidations),
      exchanges: toStrings(summary.exchanges),
      symbols: toStrings(summary.symbols)
    }
  }
}

export const largeTrades = (filter: LargeTradeFilter) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const [statement] = largeTradesStatements(sql, filter, yield* Clock.currentTimeMillis)
      return readLargeTrades((yield* statement)[0] ?? {})
    })
  )

const fundingRateJson = `json_build_object('exchange', exchange, 'symbol', symbol, 'rate', rate, 'predicted_rate', predicted_rate,
  'timestamp', ${isoText("timestamp")}, 'next_funding_time', ${isoText("next_funding_time")}, 'metadata', metadata)`

export const fundingRatesStatements = (sql: SqlClient.SqlClient, filter: WindowFilter, now: number) => {
  const from = cutoffMs(filter.hours, now)
  const firstWholeHour = Math.ceil(from / hourMs) * hourMs
  const instruments = instrumentConditions(sql, "funding_rates", filter)
  const where = sql.and(windowConditions(sql, "funding_rates", filter, from))
  const page = sql`SELECT id, exchange, symbol, rate, predicted_rate, timestamp, next_funding_time, metadata
        FROM funding_rates WHERE ${where} ORDER BY timestamp DESC, id DESC LIMIT ${filter.limit}`
  // The window's whole hours from the hourly rollup (migration 0007), its partial first hour from raw rows.
  // Each rate on an 8-hour basis first (funding_rate_per_8h, migration 0014): venues state rates over 1, 4 or 8 h.
  const summary = sql`SELECT sum(n) AS count, sum(rates) / sum(n) AS average, array_agg(DISTINCT exchange) AS exchanges,
          array_agg(DISTINCT symbol) AS symbols
        FROM (
          SELECT exchange, symbol, readings AS n, rate_8h_sum AS rates FROM funding_rates_hourly
          WHERE ${sql.and([...fromOnwards(sql, "hour", firstWholeHour), ...instruments])}
          UNION ALL
          SELECT exchange, symbol, count(*), sum(funding_rate_per_8h(rate, metadata)) FROM funding_rates
          WHERE ${sql.and([sql`timestamp >= ${utcTimestamp(sql, from)}`, sql`timestamp < ${utcTimestamp(sql, firstWholeHour)}`, ...instruments])}
          GROUP BY exchange, symbol
        ) AS parts`
  return [
    sql`SELECT ${jsonPage(sql, fundingRateJson, "timestamp DESC, id DESC", page)} AS funding_rates, summary.* FROM (${summary}) AS summary`
  ] as const
}

/** The endpoint's data from its statement's row (also read from withCoverage's combined row). */
export const readFundingRates = (summary: Record<string, unknown>) => {
  const average = toNumber(summary.average)
  return {
    count: toNumber(summary.count),
    funding_rates: summary.funding_rates as Array<{
      exchange: string
      symbol: string
      rate: number
      predicted_rate: number | null
      timestamp: string
      next_funding_time: string | null
      metadata: unknown
    }>,
    summary: {
      // Per 8 hours whatever each venue's interval (rate x 8 / interval_hours), then annualised (x 3 x 365).
      average_rate: average,
      average_rate_percent: average * 100,
      average_rate_basis: "8h" as const,
      average_rate_annualized: average * 3 * 365,
      exchanges: toStrings(summary.exchanges),
      symbols: toStrings(summary.symbols)
    }
  }
}

export const fundingRates = (filter: WindowFilter) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const [statement] = fundingRatesStatements(sql, filter, yield* Clock.currentTimeMillis)
      return readFundingRates((yield* statement)[0] ?? {})
    })
  )

const openInterestJson = `json_build_object('exchange', exchange, 'symbol', symbol, 'open_interest', open_interest,
  'open_interest_base', open_interest_base, 'open_interest_usd', open_interest_usd, 'timestamp', ${isoText("timestamp")}, 'metadata', metadata)`

export const openInterestStatements = (sql: SqlClient.SqlClient, filter: WindowFilter, now: number) => {
  const from = cutoffMs(filter.hours, now)
  const firstWholeHour = Math.ceil(from / hourMs) * hourMs
  const instruments = instrumentConditions(sql, "open_interest", filter)
  const where = sql.and(windowConditions(sql, "open_interest", filter, from))
  const page = sql`SELECT id, exchange, symbol, open_interest, open_interest_base, open_interest_usd, timestamp, metadata
        FROM open_interest WHERE ${where} ORDER BY timestamp DESC, id DESC LIMIT ${filter.limit}`
  // Per instrument: its count, and its latest reading in the window (the greatest [epoch, usd] pair);
  // summing the whole series would count the same contracts many times. Whole hours from the hourly
  // rollup (migration 0007), the partial first hour from raw rows.
  const summary = sql`SELECT sum(n) AS count, array_agg(DISTINCT exchange) AS exchanges, array_agg(DISTINCT symbol) AS symbols, sum(latest[2]) AS total
        FROM (
          SELECT exchange, symbol, sum(n) AS n, max(latest) AS latest FROM (
            SELECT exchange, symbol, readings AS n, latest FROM open_interest_hourly
            WHERE ${sql.and([...fromOnwards(sql, "hour", firstWholeHour), ...instruments])}
            UNION ALL
            SELECT exchange, symbol, count(*), max(ARRAY[extract(epoch FROM timestamp), open_interest_usd]) FROM open_interest
            WHERE ${sql.and([sql`timestamp >= ${utcTimestamp(sql, from)}`, sql`timestamp < ${utcTimestamp(sql, firstWholeHour)}`, ...instruments])}
            GROUP BY exchange, symbol
          ) AS parts GROUP BY exchange, symbol
        ) AS per_instrument`
  return [
    sql`SELECT ${jsonPage(sql, openInterestJson, "timestamp DESC, id DESC", page)} AS open_interest, summary.* FROM (${summary}) AS summary`
  ] as const
}

/** The endpoint's data from its statement's row (also read from withCoverage's combined row). */
export const readOpenInterest = (summary: Record<string, unknown>) => {
  return {
    count: toNumber(summary.count),
    open_interest: summary.open_interest as Array<{
      exchange: string
      symbol: string
      open_interest: number
      open_interest_base: number | null
      open_interest_usd: number
      timestamp: string
      metadata: unknown
    }>,
    summary: {
      total_oi_usd: toNumber(summary.total),
      exchanges: toStrings(summary.exchanges),
      symbols: toStrings(summary.symbols)
    }
  }
}

export const openInterest = (filter: WindowFilter) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const [statement] = openInterestStatements(sql, filter, yield* Clock.currentTimeMillis)
      return readOpenInterest((yield* statement)[0] ?? {})
    })
  )

type Level = readonly [number, number]

export interface OrderBookFilter {
  readonly exchange?: string | undefined
  readonly symbol?: string | undefined
  readonly depth?: number | undefined
}

/**
 * The newest book per instrument without reading the (never pruned) history,
 * by a loose index scan of (exchange, symbol, timestamp DESC) (migration
 * 0010): in that order the first entry past an instrument is the next
 * instrument's newest book, so each step is one index probe that yields the
 * instrument and its latest time together. The symbol filter then runs once
 * per instrument, and each book is fetched by its full key. (A separate
 * "newest of this instrument" probe would let the planner pick the timestamp
 * index with a filter, which reads back through everything written since an
 * instrument went quiet.) Exported so the bench can EXPLAIN what the API runs.
 */
export const latestOrderBooksStatement = (sql: SqlClient.SqlClient, filter: OrderBookFilter) => {
  const first = filter.exchange === undefined
    ? sql`SELECT o.exchange, o.symbol, o.timestamp FROM exchange_orderbooks AS o ORDER BY o.exchange, o.symbol, o.timestamp DESC LIMIT 1`
    : sql`SELECT o.exchange, o.symbol, o.timestamp FROM exchange_orderbooks AS o WHERE o.exchange = ${filter.exchange} ORDER BY o.symbol, o.timestamp DESC LIMIT 1`
  // Within one venue the next symbol is a plain range on the index's second column (a row comparison
  // beside an equality on the first would not bound the scan's start, and would walk the venue's rows).
  const next = filter.exchange === undefined
    ? sql`SELECT o.exchange, o.symbol, o.timestamp FROM exchange_orderbooks AS o
        WHERE (o.exchange, o.symbol) > (newest.exchange, newest.symbol) ORDER BY o.exchange, o.symbol, o.timestamp DESC LIMIT 1`
    : sql`SELECT o.exchange, o.symbol, o.timestamp FROM exchange_orderbooks AS o
        WHERE o.exchange = ${filter.exchange} AND o.symbol > newest.symbol ORDER BY o.symbol, o.timestamp DESC LIMIT 1`
  const instrument = filter.symbol === undefined ? sql`TRUE` : symbolMatches(sql, filter.symbol)
  return sql`WITH RECURSIVE newest(exchange, symbol, timestamp) AS (
      (${first})
      UNION ALL
      SELECT following.exchange, following.symbol, following.timestamp FROM newest, LATERAL (${next}) AS following
    )
    SELECT book.exchange, book.symbol, book.bids, book.asks, book.timestamp, book.sequence, book.metadata
    FROM (SELECT exchange, symbol, timestamp FROM newest WHERE ${instrument}) AS matching, LATERAL (
      SELECT b.exchange, b.symbol, b.bids, b.asks, b.timestamp, b.sequence, b.metadata FROM exchange_orderbooks AS b
      WHERE b.exchange = matching.exchange AND b.symbol = matching.symbol AND b.timestamp = matching.timestamp LIMIT 1) AS book
    ORDER BY book.exchange, book.symbol`
}

export const latestOrderBooks = (filter: OrderBookFilter) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const rows = yield* latestOrderBooksStatement(sql, filter)
      const cut = (levels: unknown) =>
        (Array.isArray(levels) ? (levels as Array<Level>) : []).slice(0, filter.depth ?? Number.POSITIVE_INFINITY)
      return {
        count: rows.length,
        orderbooks: rows.map((r) => ({
          exchange: r.exchange as string,
          symbol: r.symbol as string,
          bids: cut(r.bids),
          asks: cut(r.asks),
          timestamp: toIso(r.timestamp),
          sequence: toNumberOrNull(r.sequence),
          metadata: (r.metadata as unknown) ?? null
        }))
      }
    })
  )

export interface GapFilter {
  readonly exchange?: string | undefined
  readonly symbol?: string | undefined
  readonly hours: number
  readonly limit: number
  readonly channels?: ReadonlyArray<string> | undefined
  readonly status?: string | undefined
}

const gapConditions = (sql: SqlClient.SqlClient, filter: GapFilter, now: number): Array<Statement.Fragment> => {
  // A gap overlaps the window if it ends inside it or is still open.
  const conditions = [sql`(gap_end IS NULL OR gap_end >= ${utcTimestamp(sql, cutoffMs(filter.hours, now))})`]
  if (filter.exchange !== undefined) conditions.push(sql`exchange = ${filter.exchange}`)
  // The gap ledger is small and has no symbol-first index: the predicate runs per row.
  if (filter.symbol !== undefined) conditions.push(symbolMatches(sql, filter.symbol))
  if (filter.channels !== undefined) conditions.push(sql`channel IN ${sql.in(filter.channels)}`)
  if (filter.status !== undefined) conditions.push(sql`repair_status = ${filter.status}`)
  return conditions
}

const gapJson = (r: Record<string, unknown>) => ({
  exchange: r.exchange as string,
  channel: r.channel as string,
  symbol: r.symbol as string,
  start: toIso(r.gap_start),
  end: toIsoOrNull(r.gap_end),
  cause: r.cause as string,
  estimated_missing: toNumberOrNull(r.estimated_missing),
  repair_status: r.repair_status as string,
  repaired_count: toNumber(r.repaired_count),
  metadata: (r.metadata as unknown) ?? null
})

/** gapJson's object, built by PostgreSQL (coverage reads the gaps of its window in its one statement). */
const gapJsonSql = `json_build_object('exchange', exchange, 'channel', channel, 'symbol', symbol, 'start', ${isoText("gap_start")},
  'end', ${isoText("gap_end")}, 'cause', cause, 'estimated_missing', estimated_missing, 'repair_status', repair_status,
  'repaired_count', COALESCE(repaired_count, 0), 'metadata', metadata)`

export const gaps = (filter: GapFilter) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const where = sql.and(gapConditions(sql, filter, yield* Clock.currentTimeMillis))
      const [rows, counts] = yield* Effect.all([
        sql`SELECT exchange, channel, symbol, gap_start, gap_end, cause, estimated_missing, repair_status, repaired_count, metadata
            FROM data_gaps WHERE ${where} ORDER BY gap_start DESC, id DESC LIMIT ${filter.limit}`,
        sql`SELECT count(*) AS count, count(*) FILTER (WHERE repair_status <> 'verified') AS unrepaired FROM data_gaps WHERE ${where}`
      ], { concurrency: 2 })
      return {
        count: toNumber(counts[0]?.count),
        unrepaired: toNumber(counts[0]?.unrepaired),
        gaps: rows.map(gapJson)
      }
    })
  )

export interface CoverageRun {
  readonly id: string
  readonly start: number
  readonly end: number
  readonly venues: ReadonlyArray<string>
}

export interface CoverageRow {
  readonly id: string
  readonly runId: string
  readonly exchange: string
  readonly channel: string
  readonly symbol: string
  readonly state: string
  readonly detail: string | null
  readonly since: number
  readonly until: number
}

export type NotCollectedReason =
  | "before_first_run"
  | "service_stopped"
  | "venue_starting"
  | "venue_failing"
  | "disconnected"
  | "not_configured"

export interface NotCollected {
  /** Null for the whole service (before its first run, while it was stopped). */
  readonly exchange: string | null
  readonly channel: string | null
  readonly symbol: string | null
  readonly start: string
  readonly end: string
  readonly reason: NotCollectedReason
  /** The last error where one is known (e.g. "failing: ... getaddrinfo ENOTFOUND ..."). */
  readonly detail: string | null
}

export interface CoverageAssessment {
  readonly streams: Array<{ readonly exchange: string; readonly channel: string; readonly symbol: string; readonly complete: boolean }>
  readonly notCollected: Array<NotCollected>
}

type Span = readonly [number, number]

/** `span` minus `cuts` (each clipped to it), in order. */
const subtract = (span: Span, cuts: ReadonlyArray<Span>): Array<Span> => {
  const out: Array<Span> = []
  let cursor = span[0]
  for (const [a, b] of [...cuts].sort((x, y) => x[0] - y[0])) {
    if (b <= cursor || a >= span[1]) continue
    if (a > cursor) out.push([cursor, a])
    cursor = Math.max(cursor, b)
    if (cursor >= span[1]) break
  }
  if (cursor < span[1]) out.push([cursor, span[1]])
  return out
}

const venueWide = "*"
const notCollectedLimit = 200
const streamsLimit = 500

/**
 * Positive evidence over [from, now]: which streams the window asks about
 * (per run, those of its configured venues that carry the channels and the
 * symbol; a venue whose streams are unknown is asked about as a whole), and
 * every period one of them was not live, with why. Time no run covers is
 * `before_first_run` or `service_stopped`. Exported for unit tests.
 */
export const assessCoverage = (input: {
  readonly from: number
  readonly now: number
  readonly symbol?: string | undefined
  readonly exchange?: string | undefined
  readonly firstRunAt: number | null
  readonly runs: ReadonlyArray<CoverageRun>
  readonly rows: ReadonlyArray<CoverageRow>
}): CoverageAssessment => {
  const { from, now } = input
  const iso = (ms: number) => new Date(ms).toISOString()
  const pattern = input.symbol === undefined ? undefined : new RegExp(baseAssetPattern(input.symbol))
  const symbolAsked = (symbol: string) =>
    symbol === venueWide || input.symbol === undefined || symbol === input.symbol || pattern!.test(symbol)
  const notCollected: Array<NotCollected> = []
  const push = (exchange: string | null, channel: string | null, symbol: string | null, [a, b]: Span, reason: NotCollectedReason, detail: string | null) => {
    const last = notCollected.at(-1)
    // Adjacent periods of one stream with the same reason are one.
    if (last !== undefined && last.exchange === exchange && last.channel === channel && last.symbol === symbol && last.reason === reason &&
      last.detail === detail && Date.parse(last.end) >= a) {
      notCollected[notCollected.length - 1] = { ...last, end: iso(Math.max(b, Date.parse(last.end))) }
      return
    }
    notCollected.push({ exchange, channel, symbol, start: iso(a), end: iso(b), reason, detail })
  }

  // The whole service: before it first ran, and while it was stopped.
  const runSpans = input.runs.map((r) => [Math.max(r.start, from), Math.min(r.end, now)] as const).filter(([a, b]) => b > a)
  for (const [a, b] of subtract([from, now], runSpans)) {
    const first = input.firstRunAt
    if (first === null || b <= first) push(null, null, null, [a, b], "before_first_run", null)
    else if (a < first) {
      push(null, null, null, [a, first], "before_first_run", null)
      push(null, null, null, [first, b], "service_stopped", null)
    } else push(null, null, null, [a, b], "service_stopped", null)
  }

  const asked = new Map<string, { exchange: string; channel: string; symbol: string; complete: boolean }>()
  const rowsByRun = new Map<string, Array<CoverageRow>>()
  for (const row of input.rows) {
    const list = rowsByRun.get(row.runId) ?? []
    list.push(row)
    rowsByRun.set(row.runId, list)
  }
  const streamPush = (key: string, exchange: string, channel: string, symbol: string, span: Span, reason: NotCollectedReason, detail: string | null) => {
    push(exchange, channel, symbol, span, reason, detail)
    asked.get(key)!.complete = false
  }
  let anyRunAsked = false
  for (const run of [...input.runs].sort((a, b) => a.start - b.start)) {
    const span: Span = [Math.max(run.start, from), Math.min(run.end, now)]
    if (span[1] <= span[0]) continue
    const rows = rowsByRun.get(run.id) ?? []
    for (const venue of run.venues) {
      if (input.exchange !== undefined && venue !== input.exchange) continue
      const own = rows.filter((r) => r.exchange === venue)
      const streamKeys = new Map<string, { channel: string; symbol: string }>()
      for (const r of own) if (r.channel !== venueWide) streamKeys.set(`${r.channel}\u0000${r.symbol}`, { channel: r.channel, symbol: r.symbol })
      const matching = [...streamKeys.values()].filter((k) => symbolAsked(k.symbol))
      // Streams known but none on this symbol: the venue does not carry it. None known: the venue as a whole.
      if (streamKeys.size > 0 && matching.length === 0) continue
      anyRunAsked = true
      let venueDown: Array<Span> = []
      for (const stream of [{ channel: venueWide, symbol: venueWide }, ...matching]) {
        const key = `${venue}\u0000${stream.channel}\u0000${stream.symbol}`
        if (!asked.has(key)) asked.set(key, { exchange: venue, ...stream, complete: true })
        const mine = own.filter((r) => r.channel === stream.channel && r.symbol === stream.symbol)
        const live = mine.filter((r) => r.state === "live").map((r) => [r.since, r.until] as const)
        // A stream's time while its whole venue was down is said once, for the venue.
        const down = subtract(span, stream.channel === venueWide ? live : [...live, ...venueDown])
        if (stream.channel === venueWide) venueDown = down
        for (const piece of down) {
          const explained = mine.filter((r) => r.state !== "live" && r.until > piece[0] && r.since < piece[1])
            .map((r) => ({ span: [Math.max(r.since, piece[0]), Math.min(r.until, piece[1])] as const, r }))
          const pieces = [
            ...explained.map(({ span, r }) => ({ span, reason: r.state as NotCollectedReason, detail: r.detail })),
            ...subtract(piece, explained.map((e) => e.span)).map((s) => ({ span: s, reason: "venue_starting" as const, detail: null }))
          ].sort((a, b) => a.span[0] - b.span[0])
          for (const p of pieces) if (p.span[1] > p.span[0]) streamPush(key, venue, stream.channel, stream.symbol, p.span, p.reason, p.detail)
        }
      }
    }
  }
  if (input.runs.length > 0 && !anyRunAsked) {
    push(null, null, null, [from, now], "not_configured", `no configured venue carries ${input.symbol ?? "these channels"}${input.exchange === undefined ? "" : ` on ${input.exchange}`}`)
  }
  notCollected.sort((a, b) => a.start.localeCompare(b.start))
  return { streams: [...asked.values()], notCollected }
}

/** This run, as the recorder has it (open intervals up to now); stored rows fill in what it has let go. */
export interface CoverageCurrentRun {
  readonly runId: string
  readonly startedAt: number
  readonly venues: ReadonlyArray<string>
  readonly intervals: ReadonlyArray<{
    readonly id: string
    readonly exchange: string
    readonly channel: string
    readonly symbol: string
    readonly state: string
    readonly detail: string | null
    readonly since: number
    readonly until: number
  }>
  readonly now: number
}

const epochMs = (column: string) => `(extract(epoch FROM ${column}) * 1000)::float8`

/** Coverage's evidence in one statement (exported so the bench can EXPLAIN it). */
export const coverageStatement = (sql: SqlClient.SqlClient, filter: Omit<GapFilter, "limit" | "status">, from: number, now: number) => {
    const streamConditions = [
      sql`until >= ${utcTimestamp(sql, from)}`,
      sql`since <= ${utcTimestamp(sql, now)}`,
      sql`(channel = '*' OR channel IN ${sql.in(filter.channels ?? ["trades"])})`
    ]
    if (filter.exchange !== undefined) streamConditions.push(sql`exchange = ${filter.exchange}`)
    // One round trip: the window's gaps (a page and the counts), runs and stream intervals, each as JSON.
    const gapWhere = sql.and(gapConditions(sql, { ...filter, limit: 100 }, now))
    return sql`SELECT
        ${jsonPage(sql, gapJsonSql, "gap_start DESC, id DESC", sql`SELECT * FROM data_gaps WHERE ${gapWhere} ORDER BY gap_start DESC, id DESC LIMIT 100`)} AS gaps,
        (SELECT count(*) FROM data_gaps WHERE ${gapWhere}) AS gap_count,
        (SELECT count(*) FILTER (WHERE repair_status <> 'verified') FROM data_gaps WHERE ${gapWhere}) AS unrepaired,
        (SELECT COALESCE(json_agg(json_build_object('id', id, 'start_ms', ${sql.literal(epochMs("started_at"))},
            'end_ms', ${sql.literal(epochMs("COALESCE(stopped_at, last_seen_at)"))}, 'venues', venues)), '[]'::json)
          FROM service_runs WHERE started_at <= ${utcTimestamp(sql, now)} AND COALESCE(stopped_at, last_seen_at) >= ${utcTimestamp(sql, from)}) AS runs,
        (SELECT ${sql.literal(epochMs("min(started_at)"))} FROM service_runs) AS first_ms,
        (SELECT COALESCE(json_agg(json_build_object('id', id, 'run_id', run_id, 'exchange', exchange, 'channel', channel, 'symbol', symbol,
            'state', state, 'detail', detail, 'since_ms', ${sql.literal(epochMs("since"))}, 'until_ms', ${sql.literal(epochMs("until"))})), '[]'::json)
          FROM stream_coverage WHERE ${sql.and(streamConditions)}) AS streams`
}

/**
 * What a query's answer covers. `complete` only when every stream the window
 * asks about was live over all of it and no gap overlapping it is unrepaired;
 * otherwise `not_collected` says which periods, and why, and the gaps what
 * was lost inside live time.
 */
export const coverage = (filter: Omit<GapFilter, "limit" | "status">, current?: CoverageCurrentRun) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const now = current?.now ?? (yield* Clock.currentTimeMillis)
      const from = cutoffMs(filter.hours, now)
      const [evidence] = yield* coverageStatement(sql, filter, from, now)
      return coverageOf(filter, evidence, current, from, now)
    })
  )

/**
 * An endpoint's statement (one row: its data) and its window's coverage
 * evidence in one round trip, on one clock reading: a request on a large table
 * then costs one statement, not two.
 */
export const withCoverage = <A>(
  filter: Omit<GapFilter, "limit" | "status">,
  current: CoverageCurrentRun | undefined,
  data: (sql: SqlClient.SqlClient, now: number) => Statement.Statement<Record<string, unknown>>,
  read: (row: Record<string, unknown>) => A
) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const now = current?.now ?? (yield* Clock.currentTimeMillis)
      const from = cutoffMs(filter.hours, now)
      const [row = {}] = yield* sql<Record<string, unknown>>`SELECT data.*, evidence.*
        FROM (${data(sql, now)}) AS data, (${coverageStatement(sql, filter, from, now)}) AS evidence`
      return { data: read(row), coverage: coverageOf(filter, row, current, from, now) }
    })
  )

/** The coverage answer from coverageStatement's row. */
const coverageOf = (
  filter: Omit<GapFilter, "limit" | "status">,
  evidence: Record<string, unknown> | undefined,
  current: CoverageCurrentRun | undefined,
  from: number,
  now: number
) => {
  const found = {
    count: toNumber(evidence?.gap_count),
    unrepaired: toNumber(evidence?.unrepaired),
    gaps: (evidence?.gaps ?? []) as Array<ReturnType<typeof gapJson>>
  }
  const runs = (evidence?.runs ?? []) as Array<Record<string, unknown>>
  const first = [{ first_ms: evidence?.first_ms }]
  const rows = (evidence?.streams ?? []) as Array<Record<string, unknown>>
  const byRun = new Map<string, CoverageRun>(runs.map((r) => [r.id as string, {
    id: r.id as string,
    start: Number(r.start_ms),
    end: Number(r.end_ms),
    venues: String(r.venues ?? "").split(",").filter((v) => v.length > 0)
  }]))
  const byId = new Map<string, CoverageRow>(rows.map((r) => [r.id as string, {
    id: r.id as string,
    runId: r.run_id as string,
    exchange: r.exchange as string,
    channel: r.channel as string,
    symbol: r.symbol as string,
    state: r.state as string,
    detail: (r.detail as string | null) ?? null,
    since: Number(r.since_ms),
    until: Number(r.until_ms)
  }]))
  let firstRunAt = first[0]?.first_ms === null || first[0]?.first_ms === undefined ? null : Number(first[0].first_ms)
  if (current !== undefined) {
    // The running service is its own evidence up to now; its heartbeat row may be a period behind.
    byRun.set(current.runId, { id: current.runId, start: current.startedAt, end: now, venues: current.venues })
    firstRunAt = Math.min(firstRunAt ?? current.startedAt, current.startedAt)
    const channels = new Set(filter.channels ?? ["trades"])
    for (const i of current.intervals) {
      if (i.until < from || i.since > now) continue
      if (i.channel !== "*" && !channels.has(i.channel)) continue
      if (filter.exchange !== undefined && i.exchange !== filter.exchange) continue
      byId.set(i.id, { ...i, runId: current.runId })
    }
  }
  const assessed = assessCoverage({
    from,
    now,
    symbol: filter.symbol,
    exchange: filter.exchange,
    firstRunAt,
    runs: [...byRun.values()],
    rows: [...byId.values()]
  })
  return {
    complete: assessed.streams.length > 0 && assessed.notCollected.length === 0 && found.unrepaired === 0,
    gap_count: found.count,
    unrepaired_gap_count: found.unrepaired,
    gaps: found.gaps,
    window: { start: new Date(from).toISOString(), end: new Date(now).toISOString() },
    streams: assessed.streams.slice(0, streamsLimit),
    not_collected_count: assessed.notCollected.length,
    not_collected: assessed.notCollected.slice(0, notCollectedLimit)
  }
}

export interface VolatilityFilter {
  readonly index?: string | undefined
  readonly exchange?: string | undefined
  readonly hours: number
  readonly limit: number
}

export const volatilityIndex = (filter: VolatilityFilter) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const conditions = [sql`timestamp >= ${utcTimestamp(sql, cutoffMs(filter.hours, yield* Clock.currentTimeMillis))}`]
      if (filter.index !== undefined) conditions.push(sql`index_name = ${filter.index}`)
      if (filter.exchange !== undefined) conditions.push(sql`exchange = ${filter.exchange}`)
      const where = sql.and(conditions)
      const [rows, summaries] = yield* Effect.all([
        sql`SELECT exchange, index_name, value, timestamp FROM volatility_index WHERE ${where}
            ORDER BY timestamp DESC, id DESC LIMIT ${filter.limit}`,
        sql`SELECT count(*) AS count, min(value) AS min, max(value) AS max, avg(value) AS average,
              array_agg(DISTINCT index_name) AS indexes FROM volatility_index WHERE ${where}`
      ], { concurrency: 2 })
      const summary = summaries[0] ?? {}
      return {
        count: toNumber(summary.count),
        values: rows.map((r) => ({ exchange: r.exchange as string, index: r.index_name as string, value: toNumber(r.value), timestamp: toIso(r.timestamp) })),
        summary: {
          latest: rows[0] === undefined ? null : toNumber(rows[0].value),
          min: toNumberOrNull(summary.min),
          max: toNumberOrNull(summary.max),
          average: toNumberOrNull(summary.average),
          indexes: toStrings(summary.indexes)
        }
      }
    })
  )

export interface OptionChainFilter {
  readonly currency?: string | undefined
  readonly expiry?: string | undefined
  readonly exchange?: string | undefined
  readonly limit: number
}

/** The newest snapshot of each currency's chain (one snapshot time per exchange and currency), by expiry and strike. */
export const optionChain = (filter: OptionChainFilter) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const scope = [sql`TRUE`]
      if (filter.currency !== undefined) scope.push(sql`currency = ${filter.currency}`)
      if (filter.exchange !== undefined) scope.push(sql`exchange = ${filter.exchange}`)
      const conditions = [...scope, sql`(exchange, currency, timestamp) IN (
        SELECT exchange, currency, max(timestamp) FROM option_chain WHERE ${sql.and(scope)} GROUP BY exchange, currency)`]
      if (filter.expiry !== undefined) {
        conditions.push(sql`expiry >= ${`${filter.expiry}T00:00:00Z`}::timestamptz AT TIME ZONE 'UTC'`)
        conditions.push(sql`expiry < (${`${filter.expiry}T00:00:00Z`}::timestamptz AT TIME ZONE 'UTC') + INTERVAL '1 day'`)
      }
      const where = sql.and(conditions)
      const [rows, summaries] = yield* Effect.all([
        sql`SELECT * FROM option_chain WHERE ${where} ORDER BY currency, expiry, strike, option_type LIMIT ${filter.limit}`,
        sql`SELECT count(*) AS count, count(*) FILTER (WHERE option_type = 'call') AS calls,
              count(*) FILTER (WHERE option_type = 'put') AS puts, sum(open_interest) AS open_interest,
              array_agg(DISTINCT to_char(expiry, 'YYYY-MM-DD')) AS expiries,
              jsonb_object_agg(currency, timestamp) AS snapshot_times
            FROM option_chain WHERE ${where}`
      ], { concurrency: 2 })
      const summary = summaries[0] ?? {}
      return {
        count: toNumber(summary.count),
        options: rows.map((r) => ({
          exchange: r.exchange as string,
          currency: r.currency as string,
          instrument: r.instrument as string,
          expiry: toIso(r.expiry),
          strike: toNumber(r.strike),
          option_type: r.option_type as string,
          mark_price: toNumberOrNull(r.mark_price),
          mark_iv: toNumberOrNull(r.mark_iv),
          bid_iv: toNumberOrNull(r.bid_iv),
          ask_iv: toNumberOrNull(r.ask_iv),
          best_bid: toNumberOrNull(r.best_bid),
          best_ask: toNumberOrNull(r.best_ask),
          greeks: r.delta === null ? null : {
            delta: toNumber(r.delta),
            gamma: toNumber(r.gamma),
            vega: toNumber(r.vega),
            theta: toNumber(r.theta),
            rho: toNumber(r.rho)
          },
          open_interest: toNumber(r.open_interest),
          underlying_price: toNumberOrNull(r.underlying_price),
          underlying_index: (r.underlying_index as string | null) ?? null,
          index_price: toNumberOrNull(r.index_price),
          timestamp: toIso(r.timestamp)
        })),
        summary: {
          snapshot_times: (summary.snapshot_times as Record<string, string> | null) ?? {},
          expiries: toStrings(summary.expiries),
          calls: toNumber(summary.calls),
          puts: toNumber(summary.puts),
          total_open_interest: toNumber(summary.open_interest)
        }
      }
    })
  )

const toDate = (value: unknown): string => (value instanceof Date ? value.toISOString().slice(0, 10) : String(value).slice(0, 10))

export const settlements = (filter: WindowFilter) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const where = sql.and(windowConditions(sql, "futures_settlements", filter, cutoffMs(filter.hours, yield* Clock.currentTimeMillis)))
      const [rows, summaries] = yield* Effect.all([
        sql`SELECT * FROM futures_settlements WHERE ${where} ORDER BY trade_date DESC, expiry, symbol LIMIT ${filter.limit}`,
        sql`SELECT count(*) AS count, array_agg(DISTINCT symbol) AS symbols, max(trade_date) AS latest FROM futures_settlements WHERE ${where}`
      ], { concurrency: 2 })
      const summary = summaries[0] ?? {}
      return {
        count: toNumber(summary.count),
        settlements: rows.map((r) => ({
          exchange: r.exchange as string,
          symbol: r.symbol as string,
          root: r.root as string,
          trade_date: toDate(r.trade_date),
          expiry: toDate(r.expiry),
          settlement_price: toNumber(r.settlement_price),
          volume: toNumberOrNull(r.volume),
          open_interest: toNumberOrNull(r.open_interest),
          contract_size: toNumber(r.contract_size),
          source: r.source as string,
          timestamp: toIso(r.timestamp)
        })),
        summary: { latest_trade_date: summary.latest === null || summary.latest === undefined ? null : toDate(summary.latest), symbols: toStrings(summary.symbols) }
      }
    })
  )

export const basis = (filter: WindowFilter) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const where = sql.and(windowConditions(sql, "futures_basis", filter, cutoffMs(filter.hours, yield* Clock.currentTimeMillis)))
      const [rows, summaries] = yield* Effect.all([
        sql`SELECT * FROM futures_basis WHERE ${where} ORDER BY timestamp DESC, symbol LIMIT ${filter.limit}`,
        sql`SELECT count(*) AS count, avg(annualized_percent) AS average, array_agg(DISTINCT symbol) AS symbols FROM futures_basis WHERE ${where}`
      ], { concurrency: 2 })
      const summary = summaries[0] ?? {}
      return {
        count: toNumber(summary.count),
        basis: rows.map((r) => ({
          exchange: r.exchange as string,
          symbol: r.symbol as string,
          futures_price: toNumber(r.futures_price),
          spot_price: toNumber(r.spot_price),
          spot_source: r.spot_source as string,
          basis: toNumber(r.basis),
          basis_percent: toNumber(r.basis_percent),
          annualized_percent: toNumberOrNull(r.annualized_percent),
          days_to_expiry: toNumber(r.days_to_expiry),
          timestamp: toIso(r.timestamp),
          metadata: (r.metadata as unknown) ?? null
        })),
        summary: { average_annualized_percent: toNumberOrNull(summary.average), symbols: toStrings(summary.symbols) }
      }
    })
  )

/** Roll events in the window, and each product's front and most-held contract on its latest trade date. */
export const rolls = (filter: Omit<WindowFilter, "symbol"> & { readonly root?: string | undefined }) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const conditions = [sql`timestamp >= ${utcTimestamp(sql, cutoffMs(filter.hours, yield* Clock.currentTimeMillis))}`]
      if (filter.exchange !== undefined) conditions.push(sql`exchange = ${filter.exchange}`)
      if (filter.root !== undefined) conditions.push(sql`root = ${filter.root}`)
      const where = sql.and(conditions)
      const scope = [sql`TRUE`]
      if (filter.exchange !== undefined) scope.push(sql`exchange = ${filter.exchange}`)
      if (filter.root !== undefined) scope.push(sql`root = ${filter.root}`)
      const [events, latest] = yield* Effect.all([
        sql`SELECT * FROM futures_rolls WHERE ${where} ORDER BY trade_date DESC, root LIMIT ${filter.limit}`,
        sql`SELECT s.exchange, s.root, s.symbol, s.expiry, s.open_interest, s.volume, s.trade_date FROM futures_settlements s
            JOIN (SELECT exchange, root, max(trade_date) AS trade_date FROM futures_settlements WHERE ${sql.and(scope)} GROUP BY exchange, root) l
              ON s.exchange = l.exchange AND s.root = l.root AND s.trade_date = l.trade_date
            WHERE s.expiry >= s.trade_date ORDER BY s.exchange, s.root, s.expiry`
      ], { concurrency: 2 })
      const fronts = new Map<string, { exchange: string; root: string; trade_date: string; front: string; next: string | null; active: string; active_open_interest: number | null }>()
      for (const r of latest) {
        const key = `${r.exchange}_${r.root}`
        const entry = fronts.get(key)
        const oi = toNumberOrNull(r.open_interest)
        if (entry === undefined) {
          fronts.set(key, { exchange: r.exchange as string, root: r.root as string, trade_date: toDate(r.trade_date), front: r.symbol as string, next: null, active: r.symbol as string, active_open_interest: oi })
          continue
        }
        entry.next ??= r.symbol as string
        if ((oi ?? -1) > (entry.active_open_interest ?? -1)) {
          entry.active = r.symbol as string
          entry.active_open_interest = oi
        }
      }
      return {
        count: events.length,
        rolls: events.map((r) => ({
          exchange: r.exchange as string,
          root: r.root as string,
          from_symbol: r.from_symbol as string,
          to_symbol: r.to_symbol as string,
          reason: r.reason as string,
          trade_date: toDate(r.trade_date),
          from_open_interest: toNumberOrNull(r.from_open_interest),
          to_open_interest: toNumberOrNull(r.to_open_interest),
          from_volume: toNumberOrNull(r.from_volume),
          to_volume: toNumberOrNull(r.to_volume),
          timestamp: toIso(r.timestamp)
        })),
        front_months: [...fronts.values()]
      }
    })
  )

export interface AlertFilter {
  readonly symbol?: string | undefined
  readonly exchange?: string | undefined
  readonly rule?: string | undefined
  readonly kind?: string | undefined
  readonly hours: number
  readonly limit: number
}

/** Alert firings of the window, newest first; the count and per-rule tally cover every match. */
export const alerts = (filter: AlertFilter) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const conditions = [sql`fired_at >= ${utcTimestamp(sql, cutoffMs(filter.hours, yield* Clock.currentTimeMillis))}`]
      if (filter.exchange !== undefined) conditions.push(sql`exchange = ${filter.exchange}`)
      // The alerts table is small and has no symbol index: the predicate runs per row.
      if (filter.symbol !== undefined) conditions.push(symbolMatches(sql, filter.symbol))
      if (filter.rule !== undefined) conditions.push(sql`rule = ${filter.rule}`)
      if (filter.kind !== undefined) conditions.push(sql`kind = ${filter.kind}`)
      const where = sql.and(conditions)
      const [rows, tally] = yield* Effect.all([
        sql`SELECT id, rule, kind, exchange, symbol, value, threshold, message, event_time, fired_at, details
            FROM alerts WHERE ${where} ORDER BY fired_at DESC, id DESC LIMIT ${filter.limit}`,
        sql`SELECT rule, count(*) AS count FROM alerts WHERE ${where} GROUP BY rule ORDER BY rule`
      ], { concurrency: 2 })
      return {
        count: tally.reduce((sum, r) => sum + toNumber(r.count), 0),
        alerts: rows.map((r) => ({
          id: r.id as string,
          rule: r.rule as string,
          rule_kind: r.kind as string,
          exchange: (r.exchange as string | null) ?? null,
          symbol: r.symbol as string,
          value: toNumber(r.value),
          threshold: toNumber(r.threshold),
          message: r.message as string,
          event_time: toIso(r.event_time),
          fired_at: toIso(r.fired_at),
          details: (r.details as unknown) ?? null
        })),
        summary: { by_rule: Object.fromEntries(tally.map((r) => [r.rule as string, toNumber(r.count)])) }
      }
    })
  )

/** Where a stream replay starts on the insert-time axis (`created_at`, each table's insert time). */
export type ReplayStart =
  /** Rows inserted at or after this time (ms). */
  | { readonly _tag: "InsertedSince"; readonly ms: number }
  /** Rows after this one in replay order: (insert time, table, id). */
  | { readonly _tag: "After"; readonly insertedMicros: bigint; readonly kind: string; readonly rowId: string }

export interface StreamReplayFilter {
  readonly start: ReplayStart
  /** Rows inserted after this (ms, the service clock when the client subscribed) come live instead. */
  readonly until: number
  /** Rows whose exchange time is before this (ms) are not read: it bounds the scan so the time indexes serve it. */
  readonly earliest: number
  readonly kinds: ReadonlySet<string>
  readonly exchange?: string | undefined
  readonly symbol?: string | undefined
  readonly minValueUsd?: number | undefined
  readonly limit: number
}

export interface StreamReplayRow {
  readonly kind: string
  readonly id: string
  readonly exchange: string | null
  readonly symbol: string | null
  readonly valueUsd: number | null
  readonly time: number
  /** `created_at` in µs since the epoch: the row's replay position. */
  readonly insertedMicros: bigint
  readonly row: Record<string, unknown>
  /** A bar's contributions as stored (which trades the row holds: api/stream.ts compares a ring event's with them). */
  readonly contributions?: ReadonlyArray<string> | undefined
}

/** The replay tables, in their tie-break order (rows inserted in the same microsecond). */
const replayTables = [
  { table: "large_trades", kinds: ["large_trade", "liquidation"], time: "timestamp" },
  { table: "funding_rates", kinds: ["funding"], time: "timestamp" },
  { table: "open_interest", kinds: ["open_interest"], time: "timestamp" },
  { table: "data_gaps", kinds: ["gap"], time: "gap_start" },
  { table: "alerts", kinds: ["alert"], time: "fired_at" },
  // A bar's created_at is when it was last written (inserted or merged): a resume sends the merged bar.
  { table: "trade_bars", kinds: ["bar"], time: "minute" }
] as const

const replayRank = (kind: string) => replayTables.findIndex((t) => (t.kinds as ReadonlyArray<string>).includes(kind))

/** `created_at` is a TIMESTAMP filled by NOW() in the session's time zone: compare and read it through that zone. */
const insertedAt = (sql: SqlClient.SqlClient, iso: string) => sql`(${iso}::timestamptz)::timestamp`
const microsIso = (micros: bigint) => {
  const ms = micros / 1000n
  const rest = String(micros % 1000n).padStart(3, "0")
  return new Date(Number(ms)).toISOString().replace("Z", `${rest}Z`)
}
const insertedMicrosColumn = "(extract(epoch FROM created_at::timestamptz) * 1000000)::int8::text AS inserted_us"

/** The replay's statement per table (those of the kinds asked), exported so a test or the bench can EXPLAIN what runs. */
export const streamReplayStatements = (sql: SqlClient.SqlClient, filter: StreamReplayFilter) => {
  const wants = (kind: string) => filter.kinds.has(kind)
  const startRank = filter.start._tag === "After" ? replayRank(filter.start.kind) : -1
  const startTs = filter.start._tag === "After" ? insertedAt(sql, microsIso(filter.start.insertedMicros)) : insertedAt(sql, new Date(filter.start.ms).toISOString())
  const conditionsFor = (rank: number) => {
    const { table, time } = replayTables[rank]!
    const conditions: Array<Statement.Fragment> = [
      sql`created_at <= ${insertedAt(sql, new Date(filter.until).toISOString())}`,
      sql`${sql.literal(time)} >= ${utcTimestamp(sql, filter.earliest)}`
    ]
    if (filter.start._tag === "InsertedSince" || rank > startRank) conditions.push(sql`created_at >= ${startTs}`)
    else if (rank < startRank) conditions.push(sql`created_at > ${startTs}`)
    else conditions.push(sql`(created_at > ${startTs} OR (created_at = ${startTs} AND id COLLATE "C" > ${filter.start.rowId}))`)
    const smallTable = table === "data_gaps" || table === "alerts"
    if (filter.exchange !== undefined) conditions.push(smallTable ? sql`(exchange IS NULL OR exchange = ${filter.exchange})` : sql`exchange = ${filter.exchange}`)
    if (filter.symbol !== undefined) {
      // The gap ledger and the alerts are small, with no symbol-first index: per row, as their own queries do.
      conditions.push(smallTable ? sql`(symbol IS NULL OR ${symbolMatches(sql, filter.symbol)})` : symbolCondition(sql, table, filter.symbol))
    }
    if (filter.minValueUsd !== undefined) {
      if (table === "large_trades") conditions.push(sql`value_usd >= ${String(filter.minValueUsd)}::numeric`)
      if (table === "open_interest") conditions.push(sql`(open_interest_usd IS NULL OR open_interest_usd >= ${String(filter.minValueUsd)}::numeric)`)
      if (table === "trade_bars") conditions.push(sql`volume_usd >= ${String(filter.minValueUsd)}::numeric`)
    }
    if (table === "large_trades" && wants("large_trade") !== wants("liquidation")) conditions.push(sql`is_liquidation = ${wants("liquidation")}`)
    return sql.and(conditions)
  }
  const take = filter.limit + 1
  const order = sql`ORDER BY created_at, id COLLATE "C" LIMIT ${take}`
  const inserted = sql.literal(insertedMicrosColumn)
  const statement = (rank: number, columns: string) =>
    sql`SELECT ${sql.literal(columns)}, ${inserted} FROM ${sql.literal(replayTables[rank]!.table)} WHERE ${conditionsFor(rank)} ${order}`
  return {
    large_trades: wants("large_trade") || wants("liquidation")
      ? statement(0, "id, exchange, symbol, side, price, size, size_base, size_unit, value_usd, timestamp, trade_id, is_liquidation, metadata") : undefined,
    funding_rates: wants("funding") ? statement(1, "id, exchange, symbol, rate, predicted_rate, timestamp, next_funding_time, metadata") : undefined,
    open_interest: wants("open_interest") ? statement(2, "id, exchange, symbol, open_interest, open_interest_base, open_interest_usd, timestamp, metadata") : undefined,
    data_gaps: wants("gap") ? statement(3, "id, exchange, channel, symbol, gap_start, gap_end, cause, estimated_missing, repair_status, repaired_count, metadata") : undefined,
    alerts: wants("alert") ? statement(4, "id, rule, kind, exchange, symbol, value, threshold, message, event_time, fired_at, details") : undefined,
    trade_bars: wants("bar")
      ? statement(5, "id, exchange, symbol, base, minute, open, high, low, close, volume_base, volume_usd, buy_volume_usd, sell_volume_usd, trade_count, long_liquidations_usd, short_liquidations_usd, liquidation_count, observed_whole, partial_reason, contributions, liquidations_sampled, unvalued_count")
      : undefined
  }
}

/**
 * What a stream client missed, from the database, in replay order: by insert
 * time (`created_at`), then table, then id, so a venue whose clock runs
 * behind or a trade repaired late is not skipped as it would be by exchange
 * time. Every filter is applied in SQL (so the limit counts what is sent),
 * with the symbol condition the other queries use on the large tables.
 * Returns at most `limit` rows and whether more follow.
 */
export const streamReplay = (filter: StreamReplayFilter) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const statements = streamReplayStatements(sql, filter)
      const perTable: Array<Array<StreamReplayRow>> = []
      if (statements.large_trades !== undefined) {
        const rows = yield* statements.large_trades
        perTable.push(rows.map((r) => {
          const kind = r.is_liquidation === true ? "liquidation" : "large_trade"
          return { kind, id: r.id as string, exchange: r.exchange as string, symbol: r.symbol as string, time: Date.parse(toIso(r.timestamp)), valueUsd: toNumber(r.value_usd), insertedMicros: BigInt(r.inserted_us as string), row: { kind, exchange: r.exchange, symbol: r.symbol, side: r.side, price: toNumber(r.price), size: toNumber(r.size), size_base: toNumberOrNull(r.size_base), size_unit: r.size_unit ?? null, value_usd: toNumber(r.value_usd), timestamp: toIso(r.timestamp), trade_id: r.trade_id, is_liquidation: r.is_liquidation, metadata: r.metadata } }
        }))
      }
      if (statements.funding_rates !== undefined) {
        const rows = yield* statements.funding_rates
        perTable.push(rows.map((r) => ({ kind: "funding", id: r.id as string, exchange: r.exchange as string, symbol: r.symbol as string, time: Date.parse(toIso(r.timestamp)), valueUsd: null, insertedMicros: BigInt(r.inserted_us as string), row: { kind: "funding", exchange: r.exchange, symbol: r.symbol, rate: toNumber(r.rate), predicted_rate: toNumberOrNull(r.predicted_rate), timestamp: toIso(r.timestamp), next_funding_time: toIsoOrNull(r.next_funding_time), metadata: r.metadata } })))
      }
      if (statements.open_interest !== undefined) {
        const rows = yield* statements.open_interest
        perTable.push(rows.map((r) => ({ kind: "open_interest", id: r.id as string, exchange: r.exchange as string, symbol: r.symbol as string, time: Date.parse(toIso(r.timestamp)), valueUsd: toNumberOrNull(r.open_interest_usd), insertedMicros: BigInt(r.inserted_us as string), row: { kind: "open_interest", exchange: r.exchange, symbol: r.symbol, open_interest: toNumber(r.open_interest), open_interest_base: toNumberOrNull(r.open_interest_base), open_interest_usd: toNumber(r.open_interest_usd), timestamp: toIso(r.timestamp), metadata: r.metadata } })))
      }
      if (statements.data_gaps !== undefined) {
        const rows = yield* statements.data_gaps
        perTable.push(rows.map((r) => ({ kind: "gap", id: r.id as string, exchange: r.exchange as string, symbol: (r.symbol as string | null) ?? null, time: Date.parse(toIso(r.gap_start)), valueUsd: null, insertedMicros: BigInt(r.inserted_us as string), row: { kind: "gap", id: r.id, ...gapJson(r) } })))
      }
      if (statements.alerts !== undefined) {
        const rows = yield* statements.alerts
        perTable.push(rows.map((r) => ({ kind: "alert", id: r.id as string, exchange: (r.exchange as string | null) ?? null, symbol: (r.symbol as string | null) ?? null, time: Date.parse(toIso(r.fired_at)), valueUsd: null, insertedMicros: BigInt(r.inserted_us as string), row: { kind: "alert", id: r.id, rule: r.rule, rule_kind: r.kind, exchange: r.exchange, symbol: r.symbol, value: toNumber(r.value), threshold: toNumber(r.threshold), message: r.message, event_time: toIso(r.event_time), fired_at: toIso(r.fired_at), details: r.details } })))
      }
      if (statements.trade_bars !== undefined) {
        const rows = yield* statements.trade_bars
        perTable.push(rows.map((r) => {
          const minute = Date.parse(toIso(r.minute))
          const buy = toNumber(r.buy_volume_usd)
          const sell = toNumber(r.sell_volume_usd)
          // The bar as stored (every contribution merged): as the hub's `bar` event with `correction: false`, it replaces.
          return { kind: "bar", id: r.id as string, exchange: r.exchange as string, symbol: r.symbol as string, time: minute, valueUsd: toNumber(r.volume_usd), insertedMicros: BigInt(r.inserted_us as string), row: { kind: "bar", exchange: r.exchange, symbol: r.symbol, base: r.base, interval: "1m", start: toIso(r.minute), end: new Date(minute + 60_000).toISOString(), open: toNumberOrNull(r.open), high: toNumberOrNull(r.high), low: toNumberOrNull(r.low), close: toNumberOrNull(r.close), volume_base: toNumber(r.volume_base), volume_usd: toNumber(r.volume_usd), buy_volume_usd: buy, sell_volume_usd: sell, volume_delta_usd: Math.round((buy - sell) * 100) / 100, trade_count: toNumber(r.trade_count), long_liquidations_usd: toNumber(r.long_liquidations_usd), short_liquidations_usd: toNumber(r.short_liquidations_usd), liquidation_count: toNumber(r.liquidation_count), observed_whole: r.observed_whole, partial_reason: r.partial_reason ?? null, correction: false, unvalued_count: toNumber(r.unvalued_count), liquidations_sampled: r.liquidations_sampled === true }, contributions: r.contributions as ReadonlyArray<string> }
        }))
      }
      // Each table's rows are in replay order already; merge by insert time, the table order breaking ties (a stable sort keeps each table's id order).
      const merged = perTable.flat().sort((a, b) => a.insertedMicros < b.insertedMicros ? -1 : a.insertedMicros > b.insertedMicros ? 1 : replayRank(a.kind) - replayRank(b.kind))
      return { rows: merged.slice(0, filter.limit), more: merged.length > filter.limit }
    })
  )

/**
 * Of these rows (`<kind>:<row id>` keys), those stored at or before `micros`
 * (insert time): a client resuming from a database position has had them.
 * A bar's row changes in place: it comes as `bar:<row id>\u0000<contribution>`,
 * one per contribution it held then (unchanged since), so a ring event is had
 * only if the stored bar holds its trades (api/stream.ts).
 */
export const streamStoredUpTo = (keys: ReadonlyArray<string>, micros: bigint) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const out = new Set<string>()
      const upTo = insertedAt(sql, microsIso(micros))
      for (const { table, kinds } of replayTables) {
        const ids = keys.filter((k) => (kinds as ReadonlyArray<string>).includes(k.slice(0, k.indexOf(":")))).map((k) => k.slice(k.indexOf(":") + 1))
        if (ids.length === 0) continue
        const liquidation = sql.literal(table === "large_trades" ? "is_liquidation" : "FALSE AS is_liquidation")
        const contributions = sql.literal(table === "trade_bars" ? ", contributions" : "")
        const rows = yield* sql`SELECT id, ${liquidation}${contributions} FROM ${sql.literal(table)} WHERE id = ANY(${ids}) AND created_at <= ${upTo}`
        if (table === "trade_bars") {
          for (const r of rows) for (const c of r.contributions as ReadonlyArray<string>) out.add(`bar:${r.id}\u0000${c}`)
          continue
        }
        for (const r of rows) out.add(`${table === "large_trades" ? (r.is_liquidation === true ? "liquidation" : "large_trade") : kinds[0]}:${r.id}`)
      }
      return out
    })
  )

// ---------------------------------------------------------------------------
// Minute bars (trade_bars, migration 0017)
// ---------------------------------------------------------------------------

/** Bar intervals and their length in seconds. */
export const barIntervals = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14_400, "1d": 86_400 } as const
export type BarInterval = keyof typeof barIntervals

export interface BarFilter {
  readonly symbol?: string | undefined
  readonly exchange?: string | undefined
  readonly hours: number
  readonly interval: BarInterval
  readonly aggregate: boolean
  /** The most recent buckets per series. */
  readonly limit: number
}

/** Why a bucket is not complete. */
export interface BarIncomplete {
  /**
   * `partial_minute`: a minute not watched whole; `gap`: an open or unrepaired gap overlaps it; `not_live`: a stream
   * of its instrument was not live over it (stream_coverage); `in_progress`: the bucket is not over, or its last
   * minute bar may not be stored yet.
   */
  readonly reason: "partial_minute" | "gap" | "not_live" | "in_progress"
  readonly detail: string
  readonly minute: string | null
  readonly gap_id: string | null
}

/** A minute partial only by a (re)connect, made whole by a verified gap over its unobserved part: why it counts. */
export interface BarRepaired {
  readonly minute: string
  readonly gap_id: string
  readonly detail: string
}

interface BarBucket {
  readonly exchange: string
  readonly symbol: string
  readonly base: string
  readonly kind: string
  readonly start: number
  readonly open: number | null
  readonly high: number | null
  readonly low: number | null
  readonly close: number | null
  readonly volumeBase: number
  readonly volumeUsd: number
  readonly buyUsd: number
  readonly sellUsd: number
  readonly trades: number
  readonly longUsd: number
  readonly shortUsd: number
  readonly liquidations: number
  readonly minutes: number
  readonly incomplete: Array<BarIncomplete>
  readonly repaired: Array<BarRepaired>
}

/** Cents, and 15 significant digits for coins: sums of numerics read back as floats carry no binary noise. */
const cents = (x: number) => Math.round(x * 100) / 100
const coins = (x: number) => Number(x.toPrecision(15))
/** USD per coin of the trades: null without coins. */
const vwapOf = (usd: number, base: number) => (base > 0 ? Number((usd / base).toPrecision(12)) : null)

/**
 * Gaps that make a bar incomplete: trades (the bar's own source), liquidations (its liquidation volumes) and
 * trade_bars (bars the writer could not store), still open or not repaired in full.
 */
const barGapChannels = ["trades", "liquidations", "trade_bars"]
/** The streams a bar is made of: a time one was not live (stream_coverage, migration 0012) is a hole in it. */
const barCoverageChannels = ["trades", "liquidations"]

/**
 * How long after a bucket's end its last minute bar may still be on its way to the table, so the bucket is
 * `in_progress` until then, never complete: the bar is due `BAR_GRACE_SECONDS` after its minute (late trades),
 * is emitted at the processor's next call, at most one tick later on a quiet stream (venue-kit's tickBooks runs
 * every second), then waits in the writer up to one `WRITER_FLUSH_MS` for a fuller batch, and up to one more
 * behind the batch being inserted. Defaults: 2 s + 1 s + 2 x 50 ms = 3.1 s. A writer retrying through a
 * database outage takes longer: those bars are late corrections to buckets already called complete.
 */
const barTickMs = 1_000
export const BarTiming = Config.all({
  graceMs: Config.Number("BAR_GRACE_SECONDS").pipe(Config.withDefault(defaultBarGraceMs / 1000), Config.map((s) => s * 1000)),
  flushMs: Config.Int("WRITER_FLUSH_MS").pipe(Config.withDefault(50))
}).pipe(Config.map(({ flushMs, graceMs }) => ({ graceMs, settleMs: graceMs + barTickMs + 2 * flushMs })))

/**
 * A minute partial only because its connection (re)opened at `at` (pipeline/bars.ts's partial_reason) was not
 * watched from its start to then. That part is filled when a verified trades gap of the instrument spans it: the
 * repair fetched every trade of it back and the writer merged them into the bar. The trades gap of a reconnect
 * ends at the first trade received after it (gaps/continuity.ts), stamped by the venue, which may trail our clock
 * by up to the bars' grace (BAR_GRACE_SECONDS): so the gap must start at or before the minute and end no earlier
 * than the reconnect less the grace; after its end the trades come in sequence (a break is another gap, a hole).
 *
 * What the write side records is not enough for more (see the report of review finding 13):
 * - "connection interrupted before <t>" (the minute a connection broke in) names the reconnect, not the break:
 *   its unobserved part, from the last message to the minute's end, is not known, so it stays partial. Needed:
 *   the unobserved interval(s) of the minute as times (e.g. unobserved_from / unobserved_until, merged as a union),
 *   not a text reason;
 * - partial_reason keeps the first reason only (COALESCE in the merge), and a minute resumed and then broken again
 *   keeps its first (markPartial skips a bar already partial): the second outage is seen only as its own gap;
 * - a correction (late or repaired trades) takes observed_whole from the connection of the moment, and the merge
 *   ANDs it in: a minute watched whole whose gap is repaired after a reconnect at <t> later than the minute is
 *   stored "connection resumed at <t>". Read as unobserved up to the minute's end, it is filled only by a gap
 *   spanning the whole minute. A correction should leave observed_whole as the live bar had it.
 * A sequenced stream whose reconnect missed no trade opens no gap: its minute stays partial (nothing verifies it).
 */
const reconnectReason = /^partial minute: connection (?:resumed|opened) at (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z)$/

export const barsStatements = (sql: SqlClient.SqlClient, filter: BarFilter, now: number) => {
  const bucketMs = barIntervals[filter.interval] * 1000
  // Whole buckets: the window's first one starts at or before its cutoff; at most `limit` of them, the latest.
  const from = Math.max(
    Math.floor(cutoffMs(filter.hours, now) / bucketMs) * bucketMs,
    (Math.floor(now / bucketMs) - filter.limit + 1) * bucketMs
  )
  const conditions: Array<Statement.Fragment> = [sql`minute >= ${utcTimestamp(sql, from)}`, sql`minute <= ${utcTimestamp(sql, now)}`]
  if (filter.exchange !== undefined) conditions.push(sql`exchange = ${filter.exchange}`)
  // A base asset by the instrument's own base (the registry's), or the exact native symbol.
  if (filter.symbol !== undefined) conditions.push(sql`(symbol = ${filter.symbol} OR base = ${filter.symbol.toUpperCase()})`)
  if (filter.aggregate) conditions.push(sql`instrument_kind <> 'option'`)
  const seconds = sql.literal(String(barIntervals[filter.interval]))
  const bars = sql`SELECT exchange, symbol, base, instrument_kind,
      (floor(extract(epoch FROM minute) / ${seconds}) * ${seconds} * 1000)::int8 AS bucket_ms,
      (array_agg(open ORDER BY minute) FILTER (WHERE open IS NOT NULL))[1] AS open,
      max(high) AS high, min(low) AS low,
      (array_agg(close ORDER BY minute DESC) FILTER (WHERE close IS NOT NULL))[1] AS close,
      sum(volume_base) AS volume_base, sum(volume_usd) AS volume_usd, sum(buy_volume_usd) AS buy, sum(sell_volume_usd) AS sell,
      sum(trade_count) AS trades, sum(long_liquidations_usd) AS longs, sum(short_liquidations_usd) AS shorts,
      sum(liquidation_count) AS liquidations, count(*) AS minutes,
      array_agg((extract(epoch FROM minute) * 1000)::int8::text ORDER BY minute) FILTER (WHERE NOT observed_whole) AS partial_minutes,
      array_agg(coalesce(partial_reason, 'partial minute') ORDER BY minute) FILTER (WHERE NOT observed_whole) AS partial_reasons
    FROM trade_bars WHERE ${sql.and(conditions)}
    GROUP BY exchange, symbol, base, instrument_kind, bucket_ms
    ORDER BY bucket_ms, exchange, symbol`
  // The instruments expected besides those with bars (an instrument with no bar in a bucket is missing from
  // it, not quiet, when the ledger or the coverage says so): every gap of the window on the bars' channels, and
  // every time a trades or liquidations stream of the window was not live. Both tables are small; each row's
  // instrument is placed by its latest bar (base, kind) when it ever had one, else by its symbol's pattern.
  const known = (alias: string) => sql`LEFT JOIN LATERAL (SELECT t.base, t.instrument_kind FROM trade_bars AS t
      WHERE t.symbol = ${sql.literal(alias)}.symbol AND t.exchange = ${sql.literal(alias)}.exchange ORDER BY t.minute DESC LIMIT 1) AS known ON TRUE`
  const asset = (alias: string) => {
    const conditions: Array<Statement.Fragment> = []
    if (filter.exchange !== undefined) conditions.push(sql`${sql.literal(alias)}.exchange = ${filter.exchange}`)
    // The bars' own asset match (exact symbol, or base), and the base-asset pattern for an instrument with no bar yet.
    if (filter.symbol !== undefined) {
      conditions.push(sql`(${sql.literal(alias)}.symbol = ${filter.symbol} OR known.base = ${filter.symbol.toUpperCase()}
        OR (known.base IS NULL AND ${sql.literal(alias)}.symbol ~ ${baseAssetPattern(filter.symbol)}))`)
    }
    return conditions
  }
  const gaps = sql`SELECT g.id, g.exchange, g.channel, g.symbol, g.gap_start, g.gap_end, g.cause, g.repair_status,
      known.base, known.instrument_kind FROM data_gaps AS g ${known("g")}
    WHERE ${sql.and([
    sql`g.channel IN ${sql.in(barGapChannels)}`,
    sql`g.gap_start < ${utcTimestamp(sql, now)}`,
    sql`(g.gap_end IS NULL OR g.gap_end > ${utcTimestamp(sql, from)})`,
    ...asset("g")
  ])} ORDER BY g.gap_start`
  const notLive = sql`SELECT c.exchange, c.channel, c.symbol, c.state, c.detail, c.since, c.until, known.base, known.instrument_kind
    FROM stream_coverage AS c ${known("c")}
    WHERE ${sql.and([
    sql`c.channel IN ${sql.in(barCoverageChannels)}`,
    sql`c.state <> 'live'`,
    sql`c.until > ${utcTimestamp(sql, from)}`,
    sql`c.since < ${utcTimestamp(sql, now)}`,
    ...asset("c")
  ])} ORDER BY c.since`
  return { from, bucketMs, bars, gaps, notLive }
}

/** A time an instrument's bars lack trades: an unrepaired gap (end null: open) or a stream not live. */
interface BarHole {
  readonly start: number
  readonly end: number | null
  readonly incomplete: BarIncomplete
}

/** An instrument the window should have bars of, by the ledger or the coverage: base and kind from its latest bar. */
interface ExpectedInstrument {
  readonly exchange: string
  readonly symbol: string
  readonly base: string | null
  readonly kind: string | null
  readonly holes: Array<BarHole>
}

const barJson = (b: BarBucket, interval: BarInterval, bucketMs: number) => ({
  exchange: b.exchange,
  symbol: b.symbol,
  base: b.base,
  interval,
  start: new Date(b.start).toISOString(),
  end: new Date(b.start + bucketMs).toISOString(),
  open: b.open,
  high: b.high,
  low: b.low,
  close: b.close,
  vwap: vwapOf(b.volumeUsd, b.volumeBase),
  volume_base: coins(b.volumeBase),
  volume_usd: cents(b.volumeUsd),
  buy_volume_usd: cents(b.buyUsd),
  sell_volume_usd: cents(b.sellUsd),
  volume_delta_usd: cents(b.buyUsd - b.sellUsd),
  trade_count: b.trades,
  long_liquidations_usd: cents(b.longUsd),
  short_liquidations_usd: cents(b.shortUsd),
  liquidation_count: b.liquidations,
  minutes: b.minutes,
  complete: b.incomplete.length === 0,
  incomplete: b.incomplete,
  repaired: b.repaired
})

/**
 * Bars per instrument at `interval`, built from the minute bars, or with
 * `aggregate` one series per asset across venues. A bucket is complete when
 * it is over, each of its minute bars was watched whole, and no open or
 * unrepaired gap (trades, liquidations, stored bars) of its instrument
 * overlaps it; minutes without a trade have no bar. The aggregate sums the
 * volumes of the venues whose bucket is complete, says which it left out and
 * why, and gives their VWAP: sum of USD volume / sum of coins, the USD price
 * of every trade in the bucket on those venues (the base-volume-weighted mean
 * of their own VWAPs), whatever each venue's quote currency.
 */
export const bars = (filter: BarFilter) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      // A malformed BAR_GRACE_SECONDS or WRITER_FLUSH_MS stops the service at start (PipelineSettings, WriterOptions).
      const { graceMs, settleMs } = yield* Effect.orDie(BarTiming)
      const statements = barsStatements(sql, filter, now)
      const { bucketMs } = statements
      const [rows, gapRows, notLiveRows] = yield* Effect.all([statements.bars, statements.gaps, statements.notLive], { concurrency: 3 })
      const instrumentKey = (exchange: unknown, symbol: unknown) => `${exchange}\u0000${symbol}`
      const expected = new Map<string, ExpectedInstrument>()
      const expect = (r: Record<string, unknown>) => {
        const key = instrumentKey(r.exchange, r.symbol)
        const known = expected.get(key)
        if (known !== undefined) return known
        const made: ExpectedInstrument = {
          exchange: r.exchange as string,
          symbol: r.symbol as string,
          base: (r.base as string | null) ?? null,
          kind: (r.instrument_kind as string | null) ?? null,
          holes: []
        }
        expected.set(key, made)
        return made
      }
      /** Verified gaps per instrument: a time whose trades were all fetched back is no hole. */
      const verified = new Map<string, Array<{ readonly id: string; readonly channel: string; readonly start: number; readonly end: number }>>()
      for (const g of gapRows) {
        const start = epochMsOf(g.gap_start)
        const end = g.gap_end === null ? null : epochMsOf(g.gap_end)
        if (g.repair_status === "verified" && end !== null) {
          const key = instrumentKey(g.exchange, g.symbol)
          verified.set(key, [...(verified.get(key) ?? []), { id: g.id as string, channel: g.channel as string, start, end }])
          continue
        }
        // The gap (start, end) loses trades strictly between its bounds (an open one: until now).
        const detail = `${g.channel} gap (${g.cause}), ${g.repair_status}, from ${toIso(g.gap_start)} to ${toIsoOrNull(g.gap_end) ?? "now (open)"}`
        expect(g).holes.push({ start, end, incomplete: { reason: "gap", detail, minute: null, gap_id: g.id as string } })
      }
      for (const c of notLiveRows) {
        const since = epochMsOf(c.since)
        const until = epochMsOf(c.until)
        // The same outage's trades gap, verified: the repair brought back what the stream missed (its end is the
        // first trade after the reconnect, venue-stamped: the grace's allowance, as for a reconnect minute below).
        if (verified.get(instrumentKey(c.exchange, c.symbol))?.some((v) => v.channel === c.channel && v.start <= since && v.end >= until - graceMs)) continue
        const why = c.detail === null ? "" : ` (${c.detail})`
        const detail = `${c.channel} stream ${c.state}${why} from ${toIso(c.since)} to ${toIso(c.until)} (stream coverage)`
        expect(c).holes.push({ start: since, end: until, incomplete: { reason: "not_live", detail, minute: null, gap_id: null } })
      }
      const holesOver = (holes: ReadonlyArray<BarHole>, start: number) =>
        holes.filter((h) => h.start < start + bucketMs && (h.end === null || h.end > start)).map((h) => h.incomplete)
      const inProgress = (start: number): Array<BarIncomplete> => {
        if (start + bucketMs > now) return [{ reason: "in_progress", detail: "the bucket is not over", minute: null, gap_id: null }]
        if (start + bucketMs + settleMs <= now) return []
        const settled = new Date(start + bucketMs + settleMs).toISOString()
        return [{ reason: "in_progress", detail: `the bucket is over; its last minute bar may be written until ${settled}`, minute: null, gap_id: null }]
      }
      const buckets: Array<BarBucket> = rows.map((r) => {
        const start = Number(r.bucket_ms)
        const incomplete = inProgress(start)
        const minutes = (r.partial_minutes as Array<string> | null) ?? []
        const reasons = (r.partial_reasons as Array<string> | null) ?? []
        const repaired: Array<BarRepaired> = []
        const fills = (verified.get(instrumentKey(r.exchange, r.symbol)) ?? []).filter((v) => v.channel === "trades")
        minutes.forEach((m, i) => {
          const minute = Number(m)
          const reason = reasons[i]!
          const reconnect = reconnectReason.exec(reason)
          if (reconnect !== null) {
            const unobservedUntil = Math.min(Date.parse(reconnect[1]!), minute + 60_000)
            const fill = fills.find((v) => v.start <= minute && v.end >= unobservedUntil - graceMs)
            if (fill !== undefined) {
              const span = `${new Date(minute).toISOString()} .. ${new Date(unobservedUntil).toISOString()}`
              const gap = `${new Date(fill.start).toISOString()} .. ${new Date(fill.end).toISOString()}`
              const detail = `${reason}; its unobserved part ${span} lies in trades gap ${gap}, verified: its trades were fetched back and merged`
              repaired.push({ minute: new Date(minute).toISOString(), gap_id: fill.id, detail })
              return
            }
          }
          incomplete.push({ reason: "partial_minute", detail: reason, minute: new Date(minute).toISOString(), gap_id: null })
        })
        incomplete.push(...holesOver(expected.get(instrumentKey(r.exchange, r.symbol))?.holes ?? [], start))
        return {
          exchange: r.exchange as string,
          symbol: r.symbol as string,
          base: r.base as string,
          kind: r.instrument_kind as string,
          start,
          open: toNumberOrNull(r.open),
          high: toNumberOrNull(r.high),
          low: toNumberOrNull(r.low),
          close: toNumberOrNull(r.close),
          volumeBase: toNumber(r.volume_base),
          volumeUsd: toNumber(r.volume_usd),
          buyUsd: toNumber(r.buy),
          sellUsd: toNumber(r.sell),
          trades: toNumber(r.trades),
          longUsd: toNumber(r.longs),
          shortUsd: toNumber(r.shorts),
          liquidations: toNumber(r.liquidations),
          minutes: toNumber(r.minutes),
          incomplete,
          repaired
        }
      })
      // An expected instrument with a hole over a bucket and no bar in it is missing from it, never silently:
      // a bucket of its own with no minute, complete: false, and the holes that say why.
      const present = new Set(buckets.map((b) => `${instrumentKey(b.exchange, b.symbol)}\u0000${b.start}`))
      const bases = [...new Set(rows.map((r) => r.base as string))]
      const baseOf = (e: ExpectedInstrument) =>
        e.base ?? [...(filter.symbol === undefined ? [] : [filter.symbol.toUpperCase()]), ...bases].find((base) => new RegExp(baseAssetPattern(base)).test(e.symbol)) ?? null
      let missing = 0
      for (const e of expected.values()) {
        const base = baseOf(e)
        // The aggregate leaves options out; one never seen is known by its symbol (strike and call or put last).
        if (filter.aggregate && (e.kind === null ? /-[0-9]+-[CP](-[A-Z]+)?$/.test(e.symbol) : e.kind === "option")) continue
        for (let start = statements.from; start <= now; start += bucketMs) {
          if (present.has(`${instrumentKey(e.exchange, e.symbol)}\u0000${start}`)) continue
          const holes = holesOver(e.holes, start)
          if (holes.length === 0) continue
          missing++
          buckets.push({
            exchange: e.exchange, symbol: e.symbol, base: base ?? "unknown", kind: e.kind ?? "unknown", start,
            open: null, high: null, low: null, close: null, volumeBase: 0, volumeUsd: 0, buyUsd: 0, sellUsd: 0, trades: 0,
            longUsd: 0, shortUsd: 0, liquidations: 0, minutes: 0, incomplete: [...inProgress(start), ...holes], repaired: []
          })
        }
      }
      const byCodeUnit = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0)
      if (missing > 0) buckets.sort((x, y) => x.start - y.start || byCodeUnit(x.exchange, y.exchange) || byCodeUnit(x.symbol, y.symbol))
      const window = { start: new Date(statements.from).toISOString(), end: new Date(now).toISOString() }
      if (!filter.aggregate) {
        return { count: buckets.length, interval: filter.interval, aggregate: false, window, bars: buckets.map((b) => barJson(b, filter.interval, bucketMs)), aggregates: [] }
      }
      const series = new Map<string, Array<BarBucket>>()
      for (const b of buckets) {
        const key = `${b.base}\u0000${b.start}`
        const list = series.get(key) ?? []
        list.push(b)
        series.set(key, list)
      }
      const aggregates = [...series.values()].map((members) => {
        const included = members.filter((b) => b.incomplete.length === 0)
        const sum = (f: (b: BarBucket) => number) => included.reduce((n, b) => n + f(b), 0)
        const usd = sum((b) => b.volumeUsd)
        const base = sum((b) => b.volumeBase)
        const buy = sum((b) => b.buyUsd)
        const sell = sum((b) => b.sellUsd)
        const first = members[0]!
        return {
          asset: first.base,
          interval: filter.interval,
          start: new Date(first.start).toISOString(),
          end: new Date(first.start + bucketMs).toISOString(),
          vwap: vwapOf(usd, base),
          volume_base: coins(base),
          volume_usd: cents(usd),
          buy_volume_usd: cents(buy),
          sell_volume_usd: cents(sell),
          volume_delta_usd: cents(buy - sell),
          trade_count: sum((b) => b.trades),
          long_liquidations_usd: cents(sum((b) => b.longUsd)),
          short_liquidations_usd: cents(sum((b) => b.shortUsd)),
          liquidation_count: sum((b) => b.liquidations),
          venues: included.map((b) => ({ exchange: b.exchange, symbol: b.symbol })),
          left_out: members.filter((b) => b.incomplete.length > 0).map((b) => ({ exchange: b.exchange, symbol: b.symbol, incomplete: b.incomplete })),
          complete: included.length > 0 && included.length === members.length
        }
      })
      return { count: aggregates.length, interval: filter.interval, aggregate: true, window, bars: [], aggregates }
    })
  )

// ---------------------------------------------------------------------------
// Cross-venue views (analytics/views.ts): each instrument's latest readings,
// and open-interest histories, as plain rows for analytics/cross-venue.ts
// ---------------------------------------------------------------------------

const epochMsOf = (value: unknown) => Date.parse(toIso(value))
const metadataOf = (value: unknown) => (typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null)

/**
 * The newest reading at or before `now` of each instrument (matching `symbol`
 * when given), by a loose index scan of (exchange, symbol, timestamp DESC)
 * (migration 0019): one probe per instrument, as latestOrderBooksStatement.
 */
export const latestPerInstrumentStatement = (
  sql: SqlClient.SqlClient,
  table: "funding_rates" | "open_interest",
  columns: string,
  filter: { readonly symbol?: string | undefined; readonly now: number }
) => {
  const from = sql.literal(table)
  const upTo = utcTimestamp(sql, filter.now)
  const instrument = filter.symbol === undefined ? sql`TRUE` : symbolMatches(sql, filter.symbol)
  return sql`WITH RECURSIVE newest(exchange, symbol, timestamp) AS (
      (SELECT o.exchange, o.symbol, o.timestamp FROM ${from} AS o WHERE o.timestamp <= ${upTo} ORDER BY o.exchange, o.symbol, o.timestamp DESC LIMIT 1)
      UNION ALL
      SELECT following.exchange, following.symbol, following.timestamp FROM newest, LATERAL (
        SELECT o.exchange, o.symbol, o.timestamp FROM ${from} AS o
        WHERE (o.exchange, o.symbol) > (newest.exchange, newest.symbol) AND o.timestamp <= ${upTo}
        ORDER BY o.exchange, o.symbol, o.timestamp DESC LIMIT 1) AS following
    )
    SELECT reading.* FROM (SELECT exchange, symbol, timestamp FROM newest WHERE ${instrument}) AS matching, LATERAL (
      SELECT ${sql.literal(columns)} FROM ${from} AS r
      WHERE r.exchange = matching.exchange AND r.symbol = matching.symbol AND r.timestamp = matching.timestamp ORDER BY r.id LIMIT 1) AS reading
    ORDER BY reading.exchange, reading.symbol`
}

export const latestFunding = (filter: { readonly symbol?: string | undefined; readonly now: number }) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.map(
      latestPerInstrumentStatement(sql, "funding_rates", "r.exchange, r.symbol, r.rate, r.predicted_rate, r.timestamp, r.next_funding_time, r.metadata", filter),
      (rows) => rows.map((r) => ({
        exchange: r.exchange as string,
        symbol: r.symbol as string,
        rate: toNumber(r.rate),
        predictedRate: toNumberOrNull(r.predicted_rate),
        timestamp: epochMsOf(r.timestamp),
        nextFundingTime: r.next_funding_time === null || r.next_funding_time === undefined ? null : epochMsOf(r.next_funding_time),
        metadata: metadataOf(r.metadata)
      }))
    )
  )

export const latestOpenInterest = (filter: { readonly symbol?: string | undefined; readonly now: number }) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.map(
      latestPerInstrumentStatement(sql, "open_interest", "r.exchange, r.symbol, r.open_interest, r.open_interest_base, r.open_interest_usd, r.timestamp, r.metadata", filter),
      (rows) => rows.map((r) => ({
        exchange: r.exchange as string,
        symbol: r.symbol as string,
        openInterest: toNumber(r.open_interest),
        openInterestBase: toNumberOrNull(r.open_interest_base),
        openInterestUsd: toNumber(r.open_interest_usd),
        timestamp: epochMsOf(r.timestamp),
        metadata: metadataOf(r.metadata)
      }))
    )
  )

/**
 * Open interest per instrument as its last reading in each interval: raw rows
 * over [rawFrom, now) in 5-minute buckets (the symbol index's range scan), and
 * the hourly rollup (migration 0007, USD only) over [hourlyFrom, hourlyUntil).
 * Exported so a test or the bench can EXPLAIN what runs.
 */
export const openInterestHistoryStatements = (
  sql: SqlClient.SqlClient,
  filter: { readonly symbol?: string | undefined; readonly rawFrom: number; readonly hourlyFrom: number; readonly hourlyUntil: number; readonly now: number }
) => {
  const instruments = filter.symbol === undefined ? [] : [symbolCondition(sql, "open_interest", filter.symbol)]
  return [
    sql`SELECT exchange, symbol, latest[1]::float8 AS at_s, latest[2] AS usd, latest[3] AS base FROM (
        SELECT exchange, symbol, max(ARRAY[extract(epoch FROM timestamp), open_interest_usd, open_interest_base]) AS latest FROM open_interest
        WHERE ${sql.and([sql`timestamp >= ${utcTimestamp(sql, filter.rawFrom)}`, sql`timestamp < ${utcTimestamp(sql, filter.now)}`, ...instruments])}
        GROUP BY exchange, symbol, floor(extract(epoch FROM timestamp) / 300)
      ) AS buckets`,
    filter.hourlyFrom < filter.hourlyUntil
      ? sql`SELECT exchange, symbol, latest[1]::float8 AS at_s, latest[2] AS usd, NULL AS base FROM open_interest_hourly
          WHERE ${sql.and([sql`hour >= ${utcTimestamp(sql, filter.hourlyFrom)}`, sql`hour < ${utcTimestamp(sql, filter.hourlyUntil)}`, ...instruments])}`
      : undefined
  ] as const
}

export const openInterestHistory = (filter: Parameters<typeof openInterestHistoryStatements>[1]) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const [raw, hourly] = openInterestHistoryStatements(sql, filter)
      const [rawRows, hourlyRows] = yield* Effect.all([raw, hourly ?? Effect.succeed([])], { concurrency: 2 })
      return [...hourlyRows, ...rawRows].map((r) => ({
        exchange: r.exchange as string,
        symbol: r.symbol as string,
        at: Math.round(Number(r.at_s) * 1000),
        usd: toNumber(r.usd),
        base: toNumberOrNull(r.base)
      }))
    })
  )

/** Each dated future's latest basis row and latest settlement on an asset (small tables: DISTINCT ON over the window). */
export const latestBasisAndSettlements = (filter: { readonly symbol: string; readonly hours: number; readonly now: number }) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const from = cutoffMs(filter.hours, filter.now)
      const [basisRows, settlementRows] = yield* Effect.all([
        sql`SELECT DISTINCT ON (exchange, symbol) exchange, symbol, futures_price, spot_price, spot_source, days_to_expiry, timestamp, metadata
            FROM futures_basis WHERE ${sql.and([sql`timestamp >= ${utcTimestamp(sql, from)}`, sql`timestamp <= ${utcTimestamp(sql, filter.now)}`, symbolCondition(sql, "futures_basis", filter.symbol)])}
            ORDER BY exchange, symbol, timestamp DESC`,
        sql`SELECT DISTINCT ON (exchange, symbol) exchange, symbol, trade_date, expiry, settlement_price, timestamp
            FROM futures_settlements WHERE ${sql.and([sql`timestamp >= ${utcTimestamp(sql, from)}`, sql`timestamp <= ${utcTimestamp(sql, filter.now)}`, symbolCondition(sql, "futures_settlements", filter.symbol)])}
            ORDER BY exchange, symbol, trade_date DESC`
      ], { concurrency: 2 })
      return {
        basis: basisRows.map((r) => ({
          exchange: r.exchange as string,
          symbol: r.symbol as string,
          futuresPrice: toNumber(r.futures_price),
          spotPrice: toNumber(r.spot_price),
          spotSource: r.spot_source as string,
          daysToExpiry: toNumber(r.days_to_expiry),
          timestamp: epochMsOf(r.timestamp),
          metadata: metadataOf(r.metadata)
        })),
        settlements: settlementRows.map((r) => ({
          exchange: r.exchange as string,
          symbol: r.symbol as string,
          tradeDate: toDate(r.trade_date),
          expiry: toDate(r.expiry),
          settlementPrice: toNumber(r.settlement_price),
          timestamp: epochMsOf(r.timestamp)
        }))
      }
    })
  )

/** The mid of each instrument's latest stored book (live venues store books as they go): only uncrossed books with both sides. */
export const latestBookMids = (filter: OrderBookFilter) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.map(latestOrderBooksStatement(sql, filter), (rows) =>
      rows.flatMap((r) => {
        const bid = Array.isArray(r.bids) ? Number((r.bids as Array<Level>)[0]?.[0]) : Number.NaN
        const ask = Array.isArray(r.asks) ? Number((r.asks as Array<Level>)[0]?.[0]) : Number.NaN
        if (!(bid > 0 && ask > 0 && bid < ask)) return []
        return [{ exchange: r.exchange as string, symbol: r.symbol as string, price: (bid + ask) / 2, at: epochMsOf(r.timestamp), source: "latest stored book mid" }]
      })
    )
  )

// ---------------------------------------------------------------------------
// Cross-venue spreads and arbitrage (analytics/): issue 20.6 and 20.7
// ---------------------------------------------------------------------------

const spreadJson = (r: Record<string, unknown>) => ({
  id: r.id as string,
  asset: r.asset as string,
  timestamp: toIso(r.timestamp),
  venues: Number(r.venues),
  changed: r.changed === true,
  quotes: (r.quotes ?? []) as ReadonlyArray<SpreadQuote>,
  // Not stored since review 20 finding 10 (storage/inserts.ts): derived from the stored mids.
  pairs: (r.metadata as Record<string, unknown> | null)?.pairs_stored === false
    ? pairSpreads((r.quotes ?? []) as ReadonlyArray<SpreadQuote>)
    : (r.pairs ?? []) as ReadonlyArray<PairSpread>,
  excluded: (r.excluded ?? []) as ReadonlyArray<ExcludedBook>,
  metadata: r.metadata ?? null
})

/**
 * The latest sample of each asset (every asset ever sampled, or `asset`), and
 * with `hours` the samples of that window, newest first. The latest per asset
 * walks the (asset, timestamp) index one asset at a time.
 */
export const spreads = (filter: { readonly asset?: string | undefined; readonly hours?: number | undefined; readonly limit: number }) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const asset = filter.asset?.toUpperCase()
      const latest = asset !== undefined
        ? yield* sql`SELECT * FROM exchange_spreads WHERE asset = ${asset} ORDER BY timestamp DESC LIMIT 1`
        : yield* sql`WITH RECURSIVE assets AS (
              SELECT min(asset) AS asset FROM exchange_spreads
              UNION ALL
              SELECT (SELECT min(e.asset) FROM exchange_spreads e WHERE e.asset > assets.asset) FROM assets WHERE assets.asset IS NOT NULL
            )
            SELECT s.* FROM assets CROSS JOIN LATERAL (
              SELECT * FROM exchange_spreads e WHERE e.asset = assets.asset ORDER BY e.timestamp DESC LIMIT 1
            ) s ORDER BY s.asset`
      let history: ReadonlyArray<Record<string, unknown>> = []
      if (filter.hours !== undefined) {
        const conditions = [sql`timestamp >= ${utcTimestamp(sql, cutoffMs(filter.hours, yield* Clock.currentTimeMillis))}`]
        if (asset !== undefined) conditions.push(sql`asset = ${asset}`)
        history = yield* sql`SELECT * FROM exchange_spreads WHERE ${sql.and(conditions)} ORDER BY timestamp DESC, asset LIMIT ${filter.limit}`
      }
      return { count: latest.length, latest: latest.map(spreadJson), history: history.map(spreadJson) }
    })
  )

/**
 * An opportunity stored open is served as open only while its last sight is
 * recent: the sampler stores an open one again every 10 s (its refresh, at a
 * sample: analytics/arbitrage.ts), and a write reaches the table within the
 * writer's flush (a few seconds at most when healthy); 5 s of slack over the
 * refresh. Past that it is `unconfirmed`: the process may have died, the
 * close row may have been dropped by the writer, or the database may be
 * behind. Nobody saw it close, and nobody saw it open either.
 */
export const arbitrageUnconfirmedAfterMs = 15_000

const arbitrageStatus = (r: Record<string, unknown>, now: number) =>
  r.closed_at !== null && r.closed_at !== undefined ? "closed" as const
    : now - Date.parse(toIso(r.last_seen_at)) > arbitrageUnconfirmedAfterMs ? "unconfirmed" as const
    : "open" as const

const arbitrageJson = (r: Record<string, unknown>, now = -Infinity) => ({
  id: r.id as string,
  asset: r.asset as string,
  market: r.market as string,
  buy_exchange: r.buy_exchange as string,
  buy_symbol: r.buy_symbol as string,
  sell_exchange: r.sell_exchange as string,
  sell_symbol: r.sell_symbol as string,
  status: arbitrageStatus(r, now),
  opened_at: toIso(r.opened_at),
  closed_at: toIsoOrNull(r.closed_at),
  close_reason: (r.close_reason as string | null) ?? null,
  last_seen_at: toIso(r.last_seen_at),
  open_edge_bps: toNumber(r.open_edge_bps),
  peak_edge_bps: toNumber(r.peak_edge_bps),
  peak_at: toIso(r.peak_at),
  buy_price: toNumber(r.buy_price),
  sell_price: toNumber(r.sell_price),
  size_base: toNumber(r.size_base),
  size_usd: toNumber(r.size_usd),
  buy_fee_bps: toNumber(r.buy_fee_bps),
  sell_fee_bps: toNumber(r.sell_fee_bps),
  metadata: r.metadata ?? null
})

/**
 * Open opportunities (whenever they opened) and those closed within `hours`,
 * newest first. `symbol`: an asset (BTC) or a native symbol of either leg;
 * `exchange`: either leg's venue. A row stored open but not seen for
 * arbitrageUnconfirmedAfterMs is listed under `unconfirmed`, never `open`.
 */
export const arbitrage = (filter: WindowFilter) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const scope = [sql`TRUE`]
      if (filter.symbol !== undefined) {
        scope.push(sql`(asset = ${filter.symbol.toUpperCase()} OR buy_symbol = ${filter.symbol} OR sell_symbol = ${filter.symbol})`)
      }
      if (filter.exchange !== undefined) scope.push(sql`(buy_exchange = ${filter.exchange} OR sell_exchange = ${filter.exchange})`)
      const now = yield* Clock.currentTimeMillis
      const cutoff = utcTimestamp(sql, cutoffMs(filter.hours, now))
      const [open, closed] = yield* Effect.all([
        sql`SELECT * FROM arbitrage_opportunities WHERE closed_at IS NULL AND ${sql.and(scope)} ORDER BY opened_at DESC, id LIMIT ${filter.limit}`,
        sql`SELECT * FROM arbitrage_opportunities WHERE closed_at >= ${cutoff} AND ${sql.and(scope)} ORDER BY closed_at DESC, id LIMIT ${filter.limit}`
      ], { concurrency: 2 })
      const all = [...open, ...closed].map((r) => arbitrageJson(r, now))
      const unconfirmed = all.filter((r) => r.status === "unconfirmed")
      return {
        count: all.length,
        open: all.filter((r) => r.status === "open"),
        unconfirmed,
        closed: all.filter((r) => r.status === "closed"),
        summary: {
          open: open.length - unconfirmed.length,
          unconfirmed: unconfirmed.length,
          closed: closed.length,
          best_peak_edge_bps: all.length === 0 ? null : Math.max(...all.map((r) => r.peak_edge_bps)),
          exchanges: [...new Set(all.flatMap((r) => [r.buy_exchange, r.sell_exchange]))].sort()
        }
      }
    })
  )

/** Opportunities stored open, as rows the writer takes (the sampler closes them at start: analytics/sampler.ts). */
export const openArbitrage = SqlClient.SqlClient.use((sql) =>
  Effect.map(sql`SELECT * FROM arbitrage_opportunities WHERE closed_at IS NULL ORDER BY opened_at`, (rows) =>
    rows.map((r) => {
      const j = arbitrageJson(r)
      return {
        id: j.id, asset: j.asset, market: j.market === "perpetual" ? "perpetual" as const : "spot" as const,
        buyExchange: j.buy_exchange, buySymbol: j.buy_symbol, sellExchange: j.sell_exchange, sellSymbol: j.sell_symbol,
        openedAt: Date.parse(j.opened_at), closedAt: null, closeReason: null, lastSeenAt: Date.parse(j.last_seen_at),
        openEdgeBps: j.open_edge_bps, peakEdgeBps: j.peak_edge_bps, peakAt: Date.parse(j.peak_at), buyPrice: j.buy_price,
        sellPrice: j.sell_price, sizeBase: j.size_base, sizeUsd: j.size_usd, buyFeeBps: j.buy_fee_bps, sellFeeBps: j.sell_fee_bps,
        metadata: (j.metadata ?? null) as Record<string, unknown> | null
      }
    })))
