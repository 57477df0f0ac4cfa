/**
 * One multi-row INSERT per batch and table: every column travels as one text[]
 * parameter through `unnest` and is cast per element, so a batch of any size is a
 * single statement with a fixed number of parameters. Ids are deterministic and
 * conflicts are ignored, so a replay or a reconnect never stores a row twice.
 */
import { PgTypes } from "@effect/sql-pg"
import { Effect, Result, Schema } from "effect"
import { SqlClient } from "effect/sql"
import type {
  CursorRow,
  FundingRateRow,
  LargeTradeRow,
  OpenInterestRow,
  OptionChainRow,
  OrderBookRow,
  RowsByTable,
  TableName,
  VolatilityIndexRow,
  FuturesBasisRow,
  FuturesRollRow,
  FuturesSettlementRow,
  SpreadRow,
  ArbitrageRow,
  TradeBarRow
} from "../domain/rows.ts"

/**
 * Building a statement from rows can throw on a value it cannot encode (an
 * invalid time, an array the driver refuses). That is these rows' fault, and
 * a typed failure; a fault while the statement runs is not caught here.
 */
export class StatementBuildError extends Schema.TaggedError<StatementBuildError>()("StatementBuildError", {
  detail: Schema.String
}) {}

const statement = <A, E>(build: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    let built: Effect.Effect<A, E>
    try {
      built = build(sql)
    } catch (defect) {
      return yield* new StatementBuildError({ detail: String(defect) })
    }
    return yield* built
  })

const text = (values: ReadonlyArray<string | null>) => Result.getOrThrow(PgTypes.array(values, PgTypes.OID.text))

const iso = (ms: number) => new Date(ms).toISOString()
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms))
const json = (value: unknown) => (value === null || value === undefined ? null : JSON.stringify(value))
const num = (value: number) => String(value)
const numOrNull = (value: number | null) => (value === null ? null : String(value))

/*
 * `sizeBase ?? null` and the like: a dead letter kept before a column existed
 * (storage/rejected.ts replays them) has no such field; it is stored as NULL.
 */

/** UTC wall-clock into TIMESTAMP (without time zone), whatever the session's TimeZone. */
const utc = (column: string) => `(${column}::timestamptz AT TIME ZONE 'UTC')`

const insertLargeTrades = (rows: ReadonlyArray<LargeTradeRow>) =>
  statement((sql) =>
    sql`INSERT INTO large_trades (id, exchange, symbol, side, price, size, size_base, size_unit, value_usd, timestamp, trade_id,
        is_liquidation, metadata)
      SELECT u.id, u.exchange, u.symbol, u.side, u.price::numeric, u.size::numeric, u.size_base::numeric, u.size_unit,
        u.value_usd::numeric, ${sql.literal(utc("u.ts"))}, u.trade_id, u.is_liquidation::boolean, u.metadata::jsonb
      FROM unnest(${text(rows.map((r) => r.id))}, ${text(rows.map((r) => r.exchange))}, ${text(rows.map((r) => r.symbol))},
        ${text(rows.map((r) => r.side))}, ${text(rows.map((r) => num(r.price)))}, ${text(rows.map((r) => num(r.size)))},
        ${text(rows.map((r) => numOrNull(r.sizeBase ?? null)))}, ${text(rows.map((r) => r.sizeUnit ?? null))},
        ${text(rows.map((r) => num(r.valueUsd)))}, ${text(rows.map((r) => iso(r.timestamp)))}, ${text(rows.map((r) => r.tradeId))},
        ${text(rows.map((r) => String(r.isLiquidation)))}, ${text(rows.map((r) => json(r.metadata)))})
        AS u(id, exchange, symbol, side, price, size, size_base, size_unit, value_usd, ts, trade_id, is_liquidation, metadata)
      ON CONFLICT DO NOTHING`.raw
  )

/** Stream cursors, never moving backwards. */
const upsertCursors = (rows: ReadonlyArray<CursorRow>) =>
  statement((sql) =>
    sql`INSERT INTO feed_cursors (exchange, channel, symbol, last_sequence, last_time)
      SELECT u.exchange, u.channel, u.symbol, u.seq::bigint, ${sql.literal(utc("u.ts"))}
      FROM unnest(${text(rows.map((r) => r.exchange))}, ${text(rows.map((r) => r.channel))}, ${text(rows.map((r) => r.symbol))},
        ${text(rows.map((r) => String(r.sequence)))}, ${text(rows.map((r) => iso(r.time)))}) AS u(exchange, channel, symbol, seq, ts)
      ON CONFLICT (exchange, channel, symbol) DO UPDATE SET last_sequence = EXCLUDED.last_sequence,
        last_time = EXCLUDED.last_time, updated_at = NOW()
      WHERE feed_cursors.last_sequence < EXCLUDED.last_sequence`.raw
  )

/** Large trades first, then the cursors that follow them in the queue: a cursor is stored only after its rows. */
const insertLargeTradesThenCursors = (rows: ReadonlyArray<LargeTradeRow | CursorRow>) =>
  Effect.gen(function*() {
    const trades: Array<LargeTradeRow> = []
    const cursors = new Map<string, CursorRow>()
    for (const row of rows) {
      if ("kind" in row) cursors.set(`${row.exchange}\u0000${row.channel}\u0000${row.symbol}`, row)
      else trades.push(row)
    }
    const result = trades.length > 0 ? yield* insertLargeTrades(trades) : { rowCount: 0 }
    if (cursors.size > 0) yield* upsertCursors([...cursors.values()])
    return result
  })

const insertFundingRates = (rows: ReadonlyArray<FundingRateRow>) =>
  statement((sql) =>
    sql`INSERT INTO funding_rates (id, exchange, symbol, rate, predicted_rate, timestamp, next_funding_time, metadata)
      SELECT u.id, u.exchange, u.symbol, u.rate::numeric, u.predicted_rate::numeric, ${sql.literal(utc("u.ts"))},
        ${sql.literal(utc("u.next_funding_time"))}, u.metadata::jsonb
      FROM unnest(${text(rows.map((r) => r.id))}, ${text(rows.map((r) => r.exchange))}, ${text(rows.map((r) => r.symbol))},
        ${text(rows.map((r) => num(r.rate)))}, ${text(rows.map((r) => numOrNull(r.predictedRate)))},
        ${text(rows.map((r) => iso(r.timestamp)))}, ${text(rows.map((r) => isoOrNull(r.nextFundingTime)))},
        ${text(rows.map((r) => json(r.metadata)))})
        AS u(id, exchange, symbol, rate, predicted_rate, ts, next_funding_time, metadata)
      ON CONFLICT DO NOTHING`.raw
  )

const insertOpenInterest = (rows: ReadonlyArray<OpenInterestRow>) =>
  statement((sql) =>
    sql`INSERT INTO open_interest (id, exchange, symbol, open_interest, open_interest_base, open_interest_usd, timestamp, metadata)
      SELECT u.id, u.exchange, u.symbol, u.open_interest::numeric, u.open_interest_base::numeric, u.open_interest_usd::numeric,
        ${sql.literal(utc("u.ts"))}, u.metadata::jsonb
      FROM unnest(${text(rows.map((r) => r.id))}, ${text(rows.map((r) => r.exchange))}, ${text(rows.map((r) => r.symbol))},
        ${text(rows.map((r) => num(r.openInterest)))}, ${text(rows.map((r) => numOrNull(r.openInterestBase ?? null)))},
        ${text(rows.map((r) => num(r.openInterestUsd)))}, ${text(rows.map((r) => iso(r.timestamp)))}, ${text(rows.map((r) => json(r.metadata)))})
        AS u(id, exchange, symbol, open_interest, open_interest_base, open_interest_usd, ts, metadata)
      ON CONFLICT DO NOTHING`.raw
  )

const insertOrderBooks = (rows: ReadonlyArray<OrderBookRow>) =>
  statement((sql) =>
    sql`INSERT INTO exchange_orderbooks (id, exchange, symbol, bids, asks, timestamp, sequence, metadata)
      SELECT u.id, u.exchange, u.symbol, u.bids::jsonb, u.asks::jsonb, ${sql.literal(utc("u.ts"))}, u.sequence::bigint,
        u.metadata::jsonb
      FROM unnest(${text(rows.map((r) => r.id))}, ${text(rows.map((r) => r.exchange))}, ${text(rows.map((r) => r.symbol))},
        ${text(rows.map((r) => JSON.stringify(r.bids)))}, ${text(rows.map((r) => JSON.stringify(r.asks)))},
        ${text(rows.map((r) => iso(r.timestamp)))}, ${text(rows.map((r) => numOrNull(r.sequence)))},
        ${text(rows.map((r) => json(r.metadata)))})
        AS u(id, exchange, symbol, bids, asks, ts, sequence, metadata)
      ON CONFLICT DO NOTHING`.raw
  )

const insertVolatilityIndex = (rows: ReadonlyArray<VolatilityIndexRow>) =>
  statement((sql) =>
    sql`INSERT INTO volatility_index (id, exchange, index_name, value, timestamp, metadata)
      SELECT u.id, u.exchange, u.index_name, u.value::numeric, ${sql.literal(utc("u.ts"))}, u.metadata::jsonb
      FROM unnest(${text(rows.map((r) => r.id))}, ${text(rows.map((r) => r.exchange))}, ${text(rows.map((r) => r.indexName))},
        ${text(rows.map((r) => num(r.value)))}, ${text(rows.map((r) => iso(r.timestamp)))}, ${text(rows.map((r) => json(r.metadata)))})
        AS u(id, exchange, index_name, value, ts, metadata)
      ON CONFLICT DO NOTHING`.raw
  )

const optionColumns = [
  "markPrice", "markIv", "bidIv", "askIv", "bestBid", "bestAsk", "delta", "gamma", "vega", "theta", "rho", "underlyingPrice", "indexPrice"
] as const

const insertOptionChain = (rows: ReadonlyArray<OptionChainRow>) =>
  statement((sql) => {
    const [mark, markIv, bidIv, askIv, bid, ask, delta, gamma, vega, theta, rho, underlying, index] = optionColumns.map((column) =>
      text(rows.map((r) => numOrNull(r[column])))
    )
    return sql`INSERT INTO option_chain (id, exchange, currency, instrument, expiry, strike, option_type, mark_price, mark_iv, bid_iv, ask_iv,
        best_bid, best_ask, delta, gamma, vega, theta, rho, open_interest, underlying_price, underlying_index, index_price, timestamp, metadata)
      SELECT u.id, u.exchange, u.currency, u.instrument, ${sql.literal(utc("u.expiry"))}, u.strike::numeric, u.option_type,
        u.mark::numeric, u.mark_iv::numeric, u.bid_iv::numeric, u.ask_iv::numeric, u.bid::numeric, u.ask::numeric,
        u.delta::numeric, u.gamma::numeric, u.vega::numeric, u.theta::numeric, u.rho::numeric, u.oi::numeric,
        u.underlying::numeric, u.underlying_index, u.idx::numeric, ${sql.literal(utc("u.ts"))}, u.metadata::jsonb
      FROM unnest(${text(rows.map((r) => r.id))}, ${text(rows.map((r) => r.exchange))}, ${text(rows.map((r) => r.currency))},
        ${text(rows.map((r) => r.instrument))}, ${text(rows.map((r) => iso(r.expiry)))}, ${text(rows.map((r) => num(r.strike)))},
        ${text(rows.map((r) => r.optionType))}, ${mark!}, ${markIv!}, ${bidIv!}, ${askIv!}, ${bid!}, ${ask!}, ${delta!}, ${gamma!},
        ${vega!}, ${theta!}, ${rho!}, ${text(rows.map((r) => num(r.openInterest)))}, ${underlying!},
        ${text(rows.map((r) => r.underlyingIndex))}, ${index!}, ${text(rows.map((r) => iso(r.timestamp)))},
        ${text(rows.map((r) => json(r.metadata)))})
        AS u(id, exchange, currency, instrument, expiry, strike, option_type, mark, mark_iv, bid_iv, ask_iv, bid, ask,
          delta, gamma, vega, theta, rho, oi, underlying, underlying_index, idx, ts, metadata)
      ON CONFLICT DO NOTHING`.raw
  })

const date = (ms: number) => new Date(ms).toISOString().slice(0, 10)

const insertSettlements = (rows: ReadonlyArray<FuturesSettlementRow>) =>
  statement((sql) =>
    sql`INSERT INTO futures_settlements (id, exchange, symbol, root, trade_date, expiry, settlement_price, volume, open_interest,
        contract_size, source, timestamp, metadata)
      SELECT u.id, u.exchange, u.symbol, u.root, u.trade_date::date, u.expiry::date, u.price::numeric, u.volume::bigint,
        u.oi::bigint, u.size::numeric, u.source, ${sql.literal(utc("u.ts"))}, u.metadata::jsonb
      FROM unnest(${text(rows.map((r) => r.id))}, ${text(rows.map((r) => r.exchange))}, ${text(rows.map((r) => r.symbol))},
        ${text(rows.map((r) => r.root))}, ${text(rows.map((r) => date(r.tradeDate)))}, ${text(rows.map((r) => date(r.expiry)))},
        ${text(rows.map((r) => num(r.price)))}, ${text(rows.map((r) => numOrNull(r.volume)))},
        ${text(rows.map((r) => numOrNull(r.openInterest)))}, ${text(rows.map((r) => num(r.contractSize)))},
        ${text(rows.map((r) => r.source))}, ${text(rows.map((r) => iso(r.timestamp)))}, ${text(rows.map((r) => json(r.metadata)))})
        AS u(id, exchange, symbol, root, trade_date, expiry, price, volume, oi, size, source, ts, metadata)
      ON CONFLICT DO NOTHING`.raw
  )

const insertBasis = (rows: ReadonlyArray<FuturesBasisRow>) =>
  statement((sql) =>
    sql`INSERT INTO futures_basis (id, exchange, symbol, futures_price, spot_price, spot_source, basis, basis_percent,
        annualized_percent, days_to_expiry, timestamp, metadata)
      SELECT u.id, u.exchange, u.symbol, u.futures::numeric, u.spot::numeric, u.spot_source, u.basis::numeric, u.pct::numeric,
        u.annual::numeric, u.days::numeric, ${sql.literal(utc("u.ts"))}, u.metadata::jsonb
      FROM unnest(${text(rows.map((r) => r.id))}, ${text(rows.map((r) => r.exchange))}, ${text(rows.map((r) => r.symbol))},
        ${text(rows.map((r) => num(r.futuresPrice)))}, ${text(rows.map((r) => num(r.spotPrice)))}, ${text(rows.map((r) => r.spotSource))},
        ${text(rows.map((r) => num(r.basis)))}, ${text(rows.map((r) => num(r.basisPercent)))},
        ${text(rows.map((r) => numOrNull(r.annualizedPercent)))}, ${text(rows.map((r) => num(r.daysToExpiry)))},
        ${text(rows.map((r) => iso(r.timestamp)))}, ${text(rows.map((r) => json(r.metadata)))})
        AS u(id, exchange, symbol, futures, spot, spot_source, basis, pct, annual, days, ts, metadata)
      ON CONFLICT DO NOTHING`.raw
  )

const insertRolls = (rows: ReadonlyArray<FuturesRollRow>) =>
  statement((sql) =>
    sql`INSERT INTO futures_rolls (id, exchange, root, from_symbol, to_symbol, reason, trade_date, from_open_interest,
        to_open_interest, from_volume, to_volume, timestamp, metadata)
      SELECT u.id, u.exchange, u.root, u.from_symbol, u.to_symbol, u.reason, u.trade_date::date, u.from_oi::bigint,
        u.to_oi::bigint, u.from_volume::bigint, u.to_volume::bigint, ${sql.literal(utc("u.ts"))}, u.metadata::jsonb
      FROM unnest(${text(rows.map((r) => r.id))}, ${text(rows.map((r) => r.exchange))}, ${text(rows.map((r) => r.root))},
        ${text(rows.map((r) => r.fromSymbol))}, ${text(rows.map((r) => r.toSymbol))}, ${text(rows.map((r) => r.reason))},
        ${text(rows.map((r) => date(r.tradeDate)))}, ${text(rows.map((r) => numOrNull(r.fromOpenInterest)))},
        ${text(rows.map((r) => numOrNull(r.toOpenInterest)))}, ${text(rows.map((r) => numOrNull(r.fromVolume)))},
        ${text(rows.map((r) => numOrNull(r.toVolume)))}, ${text(rows.map((r) => iso(r.timestamp)))},
        ${text(rows.map((r) => json(r.metadata)))})
        AS u(id, exchange, root, from_symbol, to_symbol, reason, trade_date, from_oi, to_oi, from_volume, to_volume, ts, metadata)
      ON CONFLICT DO NOTHING`.raw
  )

/**
 * Pair spreads are not stored: n books make n(n-1)/2 pairs, each a function of
 * two stored mids (analytics/spreads.ts pairSpreads); the query derives them
 * (metadata pairs_stored: false). 40 % of a 12-book row's bytes.
 */
const insertSpreads = (rows: ReadonlyArray<SpreadRow>) =>
  statement((sql) =>
    sql`INSERT INTO exchange_spreads (id, asset, timestamp, venues, quotes, pairs, excluded, changed, metadata)
      SELECT u.id, u.asset, ${sql.literal(utc("u.ts"))}, u.venues::int, u.quotes::jsonb, u.pairs::jsonb, u.excluded::jsonb,
        u.changed::boolean, u.metadata::jsonb
      FROM unnest(${text(rows.map((r) => r.id))}, ${text(rows.map((r) => r.asset))}, ${text(rows.map((r) => iso(r.timestamp)))},
        ${text(rows.map((r) => String(new Set(r.quotes.map((q) => q.exchange)).size)))}, ${text(rows.map((r) => JSON.stringify(r.quotes)))},
        ${text(rows.map(() => "[]"))}, ${text(rows.map((r) => JSON.stringify(r.excluded)))},
        ${text(rows.map((r) => String(r.changed)))}, ${text(rows.map((r) => json({ ...r.metadata, pairs_stored: false })))})
        AS u(id, asset, ts, venues, quotes, pairs, excluded, changed, metadata)
      ON CONFLICT DO NOTHING`.raw
  )

/**
 * Opportunities are written at open, at each new peak and at close under one
 * id: a later state replaces an earlier one (by last_seen_at), a closed one
 * never changes again, and a replayed older state changes nothing.
 */
const upsertArbitrage = (rows: ReadonlyArray<ArbitrageRow>) =>
  statement((sql) => {
    const latest = new Map<string, ArbitrageRow>()
    for (const r of rows) if ((latest.get(r.id)?.lastSeenAt ?? -Infinity) <= r.lastSeenAt) latest.set(r.id, r)
    const list = [...latest.values()]
    const col = (f: (r: ArbitrageRow) => string | null) => text(list.map(f))
    return sql`INSERT INTO arbitrage_opportunities (id, asset, market, buy_exchange, buy_symbol, sell_exchange, sell_symbol, opened_at,
        closed_at, close_reason, last_seen_at, open_edge_bps, peak_edge_bps, peak_at, buy_price, sell_price, size_base, size_usd,
        buy_fee_bps, sell_fee_bps, metadata)
      SELECT u.id, u.asset, u.market, u.buy_exchange, u.buy_symbol, u.sell_exchange, u.sell_symbol, ${sql.literal(utc("u.opened"))},
        ${sql.literal(utc("u.closed"))}, u.close_reason, ${sql.literal(utc("u.seen"))}, u.open_edge::numeric, u.peak_edge::numeric,
        ${sql.literal(utc("u.peak_at"))}, u.buy_price::numeric, u.sell_price::numeric, u.size_base::numeric, u.size_usd::numeric,
        u.buy_fee::numeric, u.sell_fee::numeric, u.metadata::jsonb
      FROM unnest(${col((r) => r.id)}, ${col((r) => r.asset)}, ${col((r) => r.market)}, ${col((r) => r.buyExchange)},
        ${col((r) => r.buySymbol)}, ${col((r) => r.sellExchange)}, ${col((r) => r.sellSymbol)}, ${col((r) => iso(r.openedAt))},
        ${col((r) => isoOrNull(r.closedAt))}, ${col((r) => r.closeReason)}, ${col((r) => iso(r.lastSeenAt))},
        ${col((r) => num(r.openEdgeBps))}, ${col((r) => num(r.peakEdgeBps))}, ${col((r) => iso(r.peakAt))},
        ${col((r) => num(r.buyPrice))}, ${col((r) => num(r.sellPrice))}, ${col((r) => num(r.sizeBase))}, ${col((r) => num(r.sizeUsd))},
        ${col((r) => num(r.buyFeeBps))}, ${col((r) => num(r.sellFeeBps))}, ${col((r) => json(r.metadata))})
        AS u(id, asset, market, buy_exchange, buy_symbol, sell_exchange, sell_symbol, opened, closed, close_reason, seen, open_edge,
          peak_edge, peak_at, buy_price, sell_price, size_base, size_usd, buy_fee, sell_fee, metadata)
      ON CONFLICT (id) DO UPDATE SET closed_at = EXCLUDED.closed_at, close_reason = EXCLUDED.close_reason,
        last_seen_at = EXCLUDED.last_seen_at, peak_edge_bps = EXCLUDED.peak_edge_bps, peak_at = EXCLUDED.peak_at,
        buy_price = EXCLUDED.buy_price, sell_price = EXCLUDED.sell_price, size_base = EXCLUDED.size_base, size_usd = EXCLUDED.size_usd,
        metadata = EXCLUDED.metadata
      WHERE arbitrage_opportunities.closed_at IS NULL AND arbitrage_opportunities.last_seen_at <= EXCLUDED.last_seen_at`.raw
  })

/**
 * Contributions to one bar in one batch, combined as the merge below would (one statement may not update a
 * row twice): sums, extremes, the earliest open and the latest close (ties: the later row, which arrived later).
 */
const combineBars = (a: TradeBarMerge, b: TradeBarRow): TradeBarMerge => {
  // The same contribution offered twice (a batch handed over again) is one contribution.
  if (a.contributions.includes(b.contribution)) return a
  const takeOpen = a.openTime === null || (b.openTime !== null && b.openTime < a.openTime)
  const takeClose = a.closeTime === null || (b.closeTime !== null && b.closeTime >= a.closeTime)
  const extreme = (x: number | null, y: number | null, pick: (p: number, q: number) => number) => (x === null ? y : y === null ? x : pick(x, y))
  return {
    ...a,
    open: takeOpen ? b.open : a.open,
    openTime: takeOpen ? b.openTime : a.openTime,
    close: takeClose ? b.close : a.close,
    closeTime: takeClose ? b.closeTime : a.closeTime,
    high: extreme(a.high, b.high, Math.max),
    low: extreme(a.low, b.low, Math.min),
    volumeBase: Number((a.volumeBase + b.volumeBase).toPrecision(15)),
    volumeUsd: Math.round((a.volumeUsd + b.volumeUsd) * 100) / 100,
    buyVolumeUsd: Math.round((a.buyVolumeUsd + b.buyVolumeUsd) * 100) / 100,
    sellVolumeUsd: Math.round((a.sellVolumeUsd + b.sellVolumeUsd) * 100) / 100,
    tradeCount: a.tradeCount + b.tradeCount,
    longLiquidationsUsd: Math.round((a.longLiquidationsUsd + b.longLiquidationsUsd) * 100) / 100,
    shortLiquidationsUsd: Math.round((a.shortLiquidationsUsd + b.shortLiquidationsUsd) * 100) / 100,
    liquidationCount: a.liquidationCount + b.liquidationCount,
    observedWhole: a.observedWhole && b.observedWhole,
    partialReason: a.partialReason ?? b.partialReason,
    liquidationsSampled: (a.liquidationsSampled ?? false) || (b.liquidationsSampled ?? false),
    unvaluedCount: (a.unvaluedCount ?? 0) + (b.unvaluedCount ?? 0),
    contributions: [...a.contributions, b.contribution]
  }
}

type TradeBarMerge = Omit<TradeBarRow, "contribution" | "correction"> & { readonly contributions: ReadonlyArray<string> }

/** Separates the contribution ids of one row on the wire (no venue's trade id holds a control character). */
const unitSeparator = "\u001f"

/**
 * Minute bars, merged into the stored row on conflict (migration 0017): a bar written, then its late or
 * repaired trades, add up to the bar of all of them. Why not a sum at query time over one row per
 * contribution: a bar is read far more often than it is corrected, and its row stays one per minute.
 *
 * Idempotent by which trades a contribution holds, not by when it was written (pipeline/bars.ts
 * contributionId: `{run}|{earliest}|{latest}|{records}|...`):
 * - a contribution already stored (the writer's retry of a batch whose commit it could not confirm, or
 *   the same repair again) changes nothing;
 * - one of the run that wrote the stored ones always merges: a run counts each record once;
 * - one of another run (a replay of the same frames, a restart that receives recent trades again)
 *   merges only if its trade-time range overlaps no stored contribution's of another run: the halves of
 *   a restart minute are disjoint in time, a replay covers the originals' times. When both overlap and
 *   hold new trades, the new ones are left out: a bar short of trades, never one counted twice (that
 *   minute is partial anyway: a run's first minute is not watched whole).
 * Repaired contributions (`repair|...`) are named by their trades and take no part in the overlap test.
 * A batch comes from one process, so the contributions of one row in it are all of one run. A contribution
 * not in this form (none is written so) takes no part in the overlap test: the CASE keeps the casts safe.
 */
const upsertTradeBars = (rows: ReadonlyArray<TradeBarRow>) =>
  statement((sql) => {
    const byId = new Map<string, TradeBarMerge>()
    for (const row of rows) {
      const known = byId.get(row.id)
      if (known === undefined) {
        const { contribution, correction: _correction, ...bar } = row
        byId.set(row.id, { ...bar, contributions: [contribution] })
      } else byId.set(row.id, combineBars(known, row))
    }
    const bars = [...byId.values()]
    const column = (f: (b: TradeBarMerge) => string | null) => text(bars.map(f))
    return sql`INSERT INTO trade_bars AS b (id, exchange, symbol, base, instrument_kind, minute, open, high, low, close, open_time, close_time,
        volume_base, volume_usd, buy_volume_usd, sell_volume_usd, trade_count, long_liquidations_usd, short_liquidations_usd,
        liquidation_count, observed_whole, partial_reason, contributions, liquidations_sampled, unvalued_count)
      SELECT u.id, u.exchange, u.symbol, u.base, u.kind, ${sql.literal(utc("u.minute"))}, u.open::numeric, u.high::numeric, u.low::numeric,
        u.close::numeric, ${sql.literal(utc("u.open_time"))}, ${sql.literal(utc("u.close_time"))}, u.volume_base::numeric,
        u.volume_usd::numeric, u.buy::numeric, u.sell::numeric, u.trades::bigint, u.longs::numeric, u.shorts::numeric,
        u.liquidations::bigint, u.whole::boolean, u.reason, string_to_array(u.contributions, ${unitSeparator}), u.sampled::boolean, u.unvalued::bigint
      FROM unnest(${column((b) => b.id)}, ${column((b) => b.exchange)}, ${column((b) => b.symbol)}, ${column((b) => b.base)},
        ${column((b) => b.instrumentKind)}, ${column((b) => iso(b.timestamp))}, ${column((b) => numOrNull(b.open))}, ${column((b) => numOrNull(b.high))},
        ${column((b) => numOrNull(b.low))}, ${column((b) => numOrNull(b.close))}, ${column((b) => isoOrNull(b.openTime))},
        ${column((b) => isoOrNull(b.closeTime))}, ${column((b) => num(b.volumeBase))}, ${column((b) => num(b.volumeUsd))},
        ${column((b) => num(b.buyVolumeUsd))}, ${column((b) => num(b.sellVolumeUsd))}, ${column((b) => String(b.tradeCount))},
        ${column((b) => num(b.longLiquidationsUsd))}, ${column((b) => num(b.shortLiquidationsUsd))},
        ${column((b) => String(b.liquidationCount))}, ${column((b) => String(b.observedWhole))}, ${column((b) => b.partialReason)},
        ${column((b) => b.contributions.join(unitSeparator))}, ${column((b) => String(b.liquidationsSampled ?? false))},
        ${column((b) => String(b.unvaluedCount ?? 0))})
        AS u(id, exchange, symbol, base, kind, minute, open, high, low, close, open_time, close_time, volume_base, volume_usd, buy, sell,
          trades, longs, shorts, liquidations, whole, reason, contributions, sampled, unvalued)
      ON CONFLICT (id) DO UPDATE SET
        open = CASE WHEN b.open_time IS NULL OR EXCLUDED.open_time < b.open_time THEN EXCLUDED.open ELSE b.open END,
        open_time = CASE WHEN b.open_time IS NULL OR EXCLUDED.open_time < b.open_time THEN EXCLUDED.open_time ELSE b.open_time END,
        close = CASE WHEN b.close_time IS NULL OR EXCLUDED.close_time >= b.close_time THEN EXCLUDED.close ELSE b.close END,
        close_time = CASE WHEN b.close_time IS NULL OR EXCLUDED.close_time >= b.close_time THEN EXCLUDED.close_time ELSE b.close_time END,
        high = GREATEST(b.high, EXCLUDED.high),
        low = LEAST(b.low, EXCLUDED.low),
        volume_base = b.volume_base + EXCLUDED.volume_base,
        volume_usd = b.volume_usd + EXCLUDED.volume_usd,
        buy_volume_usd = b.buy_volume_usd + EXCLUDED.buy_volume_usd,
        sell_volume_usd = b.sell_volume_usd + EXCLUDED.sell_volume_usd,
        trade_count = b.trade_count + EXCLUDED.trade_count,
        long_liquidations_usd = b.long_liquidations_usd + EXCLUDED.long_liquidations_usd,
        short_liquidations_usd = b.short_liquidations_usd + EXCLUDED.short_liquidations_usd,
        liquidation_count = b.liquidation_count + EXCLUDED.liquidation_count,
        observed_whole = b.observed_whole AND EXCLUDED.observed_whole,
        partial_reason = COALESCE(b.partial_reason, EXCLUDED.partial_reason),
        contributions = b.contributions || EXCLUDED.contributions,
        liquidations_sampled = b.liquidations_sampled OR EXCLUDED.liquidations_sampled,
        unvalued_count = b.unvalued_count + EXCLUDED.unvalued_count,
        created_at = NOW()
      WHERE NOT (b.contributions && EXCLUDED.contributions)
        AND NOT EXISTS (
          SELECT 1 FROM unnest(b.contributions) AS s(c), unnest(EXCLUDED.contributions) AS n(c)
          WHERE CASE
            WHEN s.c !~ '^[^|]+[|][0-9]+[|][0-9]+[|]' OR n.c !~ '^[^|]+[|][0-9]+[|][0-9]+[|]' THEN false
            WHEN split_part(s.c, '|', 1) = split_part(n.c, '|', 1) OR split_part(s.c, '|', 1) = 'repair' OR split_part(n.c, '|', 1) = 'repair' THEN false
            ELSE split_part(s.c, '|', 2)::bigint <= split_part(n.c, '|', 3)::bigint AND split_part(n.c, '|', 2)::bigint <= split_part(s.c, '|', 3)::bigint
          END)`.raw
  })

/** The large-trades queue also carries the cursors that follow its rows. */
export type QueuedRow<T extends TableName> = T extends "large_trades" ? LargeTradeRow | CursorRow : RowsByTable[T]

const inserters: { readonly [T in TableName]: (rows: ReadonlyArray<QueuedRow<T>>) => Effect.Effect<unknown, unknown, SqlClient.SqlClient> } = {
  large_trades: insertLargeTradesThenCursors,
  funding_rates: insertFundingRates,
  open_interest: insertOpenInterest,
  exchange_orderbooks: insertOrderBooks,
  volatility_index: insertVolatilityIndex,
  option_chain: insertOptionChain,
  futures_settlements: insertSettlements,
  futures_basis: insertBasis,
  futures_rolls: insertRolls,
  exchange_spreads: insertSpreads,
  arbitrage_opportunities: upsertArbitrage,
  trade_bars: upsertTradeBars
}

/** Inserts a batch; returns how many rows were new. */
export const insertRows = <T extends TableName>(table: T, rows: ReadonlyArray<QueuedRow<T>>) =>
  inserters[table](rows).pipe(
    Effect.map((result) => {
      const count = (result as { readonly rowCount?: number | null }).rowCount
      return typeof count === "number" ? count : 0
    })
  )
