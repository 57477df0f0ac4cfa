/**
 * The stateful middle of the pipeline, shared by every venue and by replay:
 * normalized records in, table rows out (large-trade detection, book sync and
 * sampling, funding sampling, open interest valued at the mark price).
 */
import { BookSync } from "../book/sync.ts"
import type { SequenceRule } from "../book/sync.ts"
import type { DetectOutcome, LargeTradeDetector } from "../domain/large-trades.ts"
import type { InstrumentRegistry } from "../domain/instruments.ts"
import type { FuturesSettlement, NormalizedRecord, OptionQuote } from "../domain/records.ts"
import { type OptionChainRow, RowBatch, timedRowId } from "../domain/rows.ts"
import { baseAmount, roundUsd } from "../domain/valuation.ts"
import type { TradeContinuity } from "../gaps/continuity.ts"
import type { Trade } from "../domain/records.ts"
import { admitRecords, type RefusedRecord } from "../domain/validate.ts"
import { TradeBars } from "./bars.ts"
import { FundingSampler } from "./funding.ts"

export interface ProcessorOptions {
  readonly venue: string
  readonly instruments: InstrumentRegistry
  readonly detector: LargeTradeDetector
  readonly sequenceRule: SequenceRule | undefined
  readonly bookDepth: number
  readonly bookIntervalMs: number
  readonly fundingSampleMs: number
  readonly fundingIntervalHours: (symbol: string) => { readonly hours: number; readonly source: string }
  readonly requestSnapshot: (symbol: string, reason: string) => void
  readonly onResync: (symbol: string, reason: string, lastGoodAt: number) => void
  readonly onBookLive?: ((symbol: string, at: number) => void) | undefined
  /** Checks trade sequences, where the venue has them. */
  readonly continuity?: TradeContinuity | undefined
  /** How long a minute bar waits after its minute for late trades (default 2 s, pipeline/bars.ts). */
  readonly barGraceMs?: number | undefined
  /** This run's name in the bars' contributions (default: fresh at each start; pipeline/bars.ts contributionId). */
  readonly barRunId?: string | undefined
}

export interface ProcessorCounters {
  records: number
  unvalued: number
  unknownInstrument: number
  /** Our USD figure more than 0.1 % away from the venue's own (open interest). */
  venueFigureMismatch: number
  /** Records refused by the shared check (domain/validate.ts): decode errors, never processed. */
  invalid: number
}

export class RecordProcessor {
  readonly books: BookSync | undefined
  /** Minute bars of every trade and liquidation (pipeline/bars.ts). */
  readonly bars: TradeBars
  readonly counters: ProcessorCounters = { records: 0, unvalued: 0, unknownInstrument: 0, venueFigureMismatch: 0, invalid: 0 }
  /** The last record the shared check refused, for the log line that counts it. */
  lastRefused: RefusedRecord | undefined
  private readonly funding: FundingSampler
  private readonly refuse = (refused: RefusedRecord) => {
    this.counters.invalid++
    this.lastRefused = refused
  }
  private readonly markPrices = new Map<string, number>()
  private readonly options: ProcessorOptions

  constructor(options: ProcessorOptions) {
    this.options = options
    this.books = options.sequenceRule === undefined ? undefined : new BookSync({
      venue: options.venue,
      rule: options.sequenceRule,
      depth: options.bookDepth,
      snapshotIntervalMs: options.bookIntervalMs,
      maxBuffered: 10_000,
      requestSnapshot: options.requestSnapshot,
      onResync: options.onResync,
      onLive: options.onBookLive
    })
    this.funding = new FundingSampler(options.fundingSampleMs, options.fundingIntervalHours)
    this.bars = new TradeBars(options.venue, options.barGraceMs, options.barRunId)
  }

  get venue(): string {
    return this.options.venue
  }

  markPrice(symbol: string): number | undefined {
    return this.markPrices.get(symbol)
  }

  private count(outcome: DetectOutcome): void {
    if (outcome === "unvalued") this.counters.unvalued++
    else if (outcome === "unknown_instrument") this.counters.unknownInstrument++
  }

  /**
   * Processes records received at `now` (epoch ms; recorded time in replays)
   * into `out`. Every path into the pipeline comes through here or
   * `processRepaired`, so no record skips the shared check: those it refuses
   * are counted in `counters.invalid` and go no further. Returns the records processed.
   */
  process(incoming: ReadonlyArray<NormalizedRecord>, now: number, out: RowBatch): ReadonlyArray<NormalizedRecord> {
    const records = admitRecords(incoming, now, this.refuse)
    this.counters.records += records.length
    this.bars.running(now)
    for (const record of records) {
      switch (record.kind) {
        case "trade":
          if (this.options.continuity !== undefined && !this.options.continuity.observe(record)) break
          this.count(this.options.detector.trade(record, out.large_trades, this.bars))
          break
        case "liquidation":
          this.count(this.options.detector.liquidation(record, out.large_trades, this.bars))
          break
        case "book_delta":
          this.books?.onDelta(record, now)
          break
        case "book_snapshot":
          this.books?.onSnapshot(record, now)
          break
        case "book_invalid":
          this.books?.resyncBook(record.symbol, record.reason)
          break
        case "funding":
          if (record.markPrice !== null) this.markPrices.set(record.symbol, record.markPrice)
          this.funding.observe(record, out.funding_rates)
          break
        case "mark_price":
          this.markPrices.set(record.symbol, record.markPrice)
          break
        case "open_interest":
          this.openInterest(record, out)
          break
        case "volatility_index":
          out.volatility_index.push({
            id: timedRowId(record.venue, record.symbol, record.timestamp),
            exchange: record.venue,
            indexName: record.symbol,
            value: record.value,
            timestamp: record.timestamp,
            metadata: null
          })
          break
        case "option_quote":
          out.option_chain.push(optionChainRow(record))
          break
        case "settlement":
          this.settlement(record, out)
          break
        case "basis":
          out.futures_basis.push({
            id: timedRowId(record.venue, record.symbol, record.timestamp),
            exchange: record.venue,
            symbol: record.symbol,
            futuresPrice: record.futuresPrice,
            spotPrice: record.spotPrice,
            spotSource: record.spotSource,
            basis: record.basis,
            basisPercent: record.basisPercent,
            annualizedPercent: record.annualizedPercent,
            daysToExpiry: record.daysToExpiry,
            timestamp: record.timestamp,
            metadata: record.details
          })
          break
        case "roll":
          out.futures_rolls.push({
            id: `${record.venue}_${record.symbol}_${record.fromSymbol}_${record.toSymbol}`,
            exchange: record.venue,
            root: record.symbol,
            fromSymbol: record.fromSymbol,
            toSymbol: record.toSymbol,
            reason: record.reason,
            tradeDate: record.tradeDate,
            fromOpenInterest: record.fromOpenInterest,
            toOpenInterest: record.toOpenInterest,
            fromVolume: record.fromVolume,
            toVolume: record.toVolume,
            timestamp: record.timestamp,
            metadata: null
          })
          break
      }
    }
    this.books?.sample(now, out.exchange_orderbooks)
    this.bars.emitDue(now, out.trade_bars)
    if (this.options.continuity !== undefined) {
      for (const [symbol, cursor] of this.options.continuity.takeCursors()) {
        out.cursors.push({ kind: "cursor", exchange: this.options.venue, channel: "trades", symbol, sequence: cursor.sequence, time: cursor.time })
      }
    }
    return records
  }

  /**
   * Trades recovered over REST for a gap, received at `now`: the shared check,
   * then detection and the minute bars only (they are behind the live sequence
   * by design): a minute already written gets a correction, merged when stored.
   */
  processRepaired(incoming: ReadonlyArray<Trade>, now: number, out: RowBatch): void {
    const trades = admitRecords(incoming, now, this.refuse) as ReadonlyArray<Trade>
    this.counters.records += trades.length
    this.bars.repairing = true
    for (const trade of trades) this.count(this.options.detector.trade(trade, out.large_trades, this.bars))
    this.bars.repairing = false
    this.bars.emitCorrections(out.trade_bars)
  }

  /** Emits book rows and minute bars that came due without any new record (quiet books, quiet minutes). */
  tick(now: number, out: RowBatch): void {
    this.books?.sample(now, out.exchange_orderbooks)
    // No `bars.running` here: a tick says the clock runs, not that any trade stream is watched (the
    // venue ticks from its start, long before a socket may open). Records, or a connection, say so.
    this.bars.emitDue(now, out.trade_bars)
  }

  /** The feed stops at `now`: the minute bars still open are written, their last minute marked partial. */
  stop(now: number, out: RowBatch): void {
    this.bars.stop(now, out.trade_bars)
  }

  /** A settlement row, and the day's open interest valued at the settlement price. */
  private settlement(s: FuturesSettlement, out: RowBatch): void {
    const day = new Date(s.tradeDate).toISOString().slice(0, 10)
    out.futures_settlements.push({
      id: `${s.venue}_${s.symbol}_${day}`,
      exchange: s.venue,
      symbol: s.symbol,
      root: s.root,
      tradeDate: s.tradeDate,
      expiry: s.expiry,
      price: s.price,
      volume: s.volume,
      openInterest: s.openInterest,
      contractSize: s.contractSize,
      source: s.source,
      timestamp: s.timestamp,
      metadata: null
    })
    if (s.openInterest === null) return
    const usd = roundUsd(s.openInterest * s.contractSize * s.price)
    if (!Number.isFinite(usd)) {
      this.counters.unvalued++
      return
    }
    out.open_interest.push({
      id: timedRowId(s.venue, s.symbol, s.timestamp),
      exchange: s.venue,
      symbol: s.symbol,
      openInterest: s.openInterest,
      // Contracts x multiplier (CME BTC: 5 BTC a contract).
      openInterestBase: Number((s.openInterest * s.contractSize).toPrecision(15)),
      openInterestUsd: usd,
      timestamp: s.timestamp,
      metadata: { contract_size: s.contractSize, contract_unit: s.base, usd_price_source: "settlement", settlement_price: s.price, trade_date: day, source: s.source }
    })
  }

  private openInterest(record: Extract<NormalizedRecord, { kind: "open_interest" }>, out: RowBatch): void {
    const instrument = this.options.instruments.get(record.venue, record.symbol)
    const mark = this.markPrices.get(record.symbol)
    if (instrument === undefined) {
      this.counters.unknownInstrument++
      return
    }
    if (record.valueUsd === undefined && mark === undefined) {
      this.counters.unvalued++
      return
    }
    // Open interest is counted in contracts of the reading's own contract size where it says one.
    const contractSize = record.contractSize ?? instrument.contractSize
    const usd = record.valueUsd ?? (instrument.inverse
      ? record.openInterest * contractSize
      : record.openInterest * contractSize * mark!)
    // Finite readings can still multiply past what a row holds: no value, counted as such.
    if (!Number.isFinite(roundUsd(usd))) {
      this.counters.unvalued++
      return
    }
    // Where the venue states its own figure, ours must agree with it (contract sizes, units): a divergence is counted.
    if (record.venueValueUsd !== undefined && record.venueValueUsd > 0 && Math.abs(usd - record.venueValueUsd) / record.venueValueUsd > 0.001) {
      this.counters.venueFigureMismatch++
    }
    out.open_interest.push({
      id: timedRowId(record.venue, record.symbol, record.timestamp),
      exchange: record.venue,
      symbol: record.symbol,
      openInterest: record.openInterest,
      openInterestBase: baseAmount(instrument, record.openInterest, record.markPrice ?? mark, contractSize).base,
      openInterestUsd: roundUsd(usd),
      timestamp: record.timestamp,
      metadata: {
        contract_size: contractSize,
        contract_unit: record.contractUnit ?? (instrument.inverse ? instrument.quote : instrument.base),
        usd_price_source: record.valueUsd === undefined ? "mark" : "venue",
        mark_price: mark ?? null,
        ...(record.venueValueUsd === undefined ? {} : { venue_value_usd: record.venueValueUsd }),
        ...record.details
      }
    })
  }
}

export const emptyBatch = () => new RowBatch()

const optionChainRow = (q: OptionQuote): OptionChainRow => ({
  id: timedRowId(q.venue, q.symbol, q.timestamp),
  exchange: q.venue,
  currency: q.currency,
  instrument: q.symbol,
  expiry: q.expiry,
  strike: q.strike,
  optionType: q.optionType,
  markPrice: q.markPrice,
  markIv: q.markIv,
  bidIv: q.bidIv,
  askIv: q.askIv,
  bestBid: q.bestBid,
  bestAsk: q.bestAsk,
  delta: q.greeks?.delta ?? null,
  gamma: q.greeks?.gamma ?? null,
  vega: q.greeks?.vega ?? null,
  theta: q.greeks?.theta ?? null,
  rho: q.greeks?.rho ?? null,
  openInterest: q.openInterest,
  underlyingPrice: q.underlyingPrice,
  underlyingIndex: q.underlyingIndex,
  indexPrice: q.indexPrice,
  timestamp: q.timestamp,
  metadata: q.greeksSource === undefined ? null : { greeks_source: q.greeksSource }
})
