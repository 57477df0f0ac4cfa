/**
 * Minute bars from every trade: per instrument and minute, open/high/low/close
 * (by trade time, ties by arrival), volume in coins and USD, taker buy and sell
 * USD (their difference is the volume delta), the trade count, and long and
 * short liquidations in USD. A bar is written once its minute has closed:
 * the processor's clock (the arrival time of the frames, or of the tick; the
 * recorded time in a replay) past its end plus `graceMs` for late trades;
 * never per trade. Exchange times do not close bars: one trade stamped ahead
 * would close every minute early. A trade for a minute already written makes a
 * correction, written at the end of the call that brought it, which the
 * database merges into the stored bar (storage/inserts.ts).
 *
 * Hot path: one Map lookup (keyed by the registry's instrument object: no key
 * to build) and a few additions per trade; an object per bar, not per trade.
 *
 * Liquidation sides: a liquidation record's `side` is the liquidated order's;
 * a sell order liquidates a long position, a buy order a short one. A trade
 * flagged as a liquidation (Deribit) counts by its `liquidatedSide` (both
 * orders liquidated: its value counts on both sides).
 *
 * `observedWhole` claims only what was watched: the processor saw the stream
 * from before the minute began (not the minute it started in, nor the one a
 * connection came back in), through its end (not the minute a connection
 * broke in, nor the one it stopped in). Gaps in the trades are the ledger's,
 * judged when the bar is read.
 */
import { randomUUID } from "node:crypto"
import type { Instrument } from "../domain/instruments.ts"
import type { ValuedRecordSink } from "../domain/large-trades.ts"
import type { Liquidation, Trade } from "../domain/records.ts"
import { timedRowId, type TradeBarRow } from "../domain/rows.ts"
import { baseQuantity, roundUsd } from "../domain/valuation.ts"

export const minuteMs = 60_000
/** How long after its minute's end a bar stays open for trades that arrive late. */
export const defaultBarGraceMs = 2_000

interface Bar {
  readonly instrument: Instrument
  readonly minute: number
  open: number
  high: number
  low: number
  close: number
  openTime: number
  closeTime: number
  volumeBase: number
  volumeUsd: number
  buyUsd: number
  sellUsd: number
  trades: number
  longUsd: number
  shortUsd: number
  liquidations: number
  /** Trades and liquidations it could not value (no USD price yet): left out of its figures, so it is partial. */
  unvaluedTrades: number
  unvaluedLiquidations: number
  /** It holds a liquidation from a stream the venue samples (Liquidation.sampled): its liquidation totals are lower bounds. */
  liquidationsSampled: boolean
  first: Trade | Liquidation | undefined
  last: Trade | Liquidation | undefined
  /** The earliest and latest exchange time of the records it holds: the contribution's trade-time range. */
  earliest: number
  latest: number
  /** Built from trades repaired over REST (processRepaired): named by those trades, not by the run. */
  repaired: boolean
  /**
   * Watched from the minute's start: this process holds every trade of it up to now. Otherwise (the
   * minute it started or reconnected in) another process may have written the rest: published to add.
   */
  watchedFromStart: boolean
  observedWhole: boolean
  partialReason: string | null
}

interface InstrumentBars {
  /** Minutes not written yet, oldest first (one, two around a minute's end). */
  readonly open: Array<Bar>
  /** The latest minute written: a trade at or before it is a correction. */
  writtenThrough: number
}

const recordId = (r: Trade | Liquidation): string =>
  r.kind === "trade" ? r.tradeId : `liquidation-${r.id ?? `${r.timestamp}-${r.side}-${r.averagePrice}-${r.filledSize}`}`

/**
 * A contribution names the trades it holds, for the merge (storage/inserts.ts `upsertTradeBars`):
 * `{run}|{earliest ms}|{latest ms}|{records}|{first id}|{last id}`. Why a run id and a trade-time range
 * rather than the ids alone: which records a contribution holds depends on when its bar was written
 * (a tick splits a minute in two live, a replay without that tick writes it whole), so ids do not match
 * across runs. Within one run a record is counted once (the processor's own state), so a contribution of
 * the same run always merges, a writer retry apart (the same id). A contribution from another run (a
 * replay, a restart) merges only if its trade-time range overlaps no stored one: the two halves of a
 * restart minute are disjoint in time, a replay's contributions cover the originals' times, and so do
 * the liquidations a venue repeats after a new subscription (OKX). Trades repaired over REST are named
 * `repair|...` by themselves: the same repair again (after a restart) is the same id.
 */
const contributionId = (run: string, bar: Bar): string =>
  `${bar.repaired ? "repair" : run}|${bar.earliest}|${bar.latest}|${bar.trades + bar.liquidations + bar.unvaluedTrades + bar.unvaluedLiquidations}|${recordId(bar.first!)}|${recordId(bar.last!)}`

/** A process's run: 12 hex digits (no `|`), fresh at each start. */
export const newBarRunId = (): string => randomUUID().replaceAll("-", "").slice(0, 12)

const significant = (x: number) => Number(x.toPrecision(15))
const iso = (ms: number) => new Date(ms).toISOString()

export class TradeBars implements ValuedRecordSink {
  private readonly venue: string
  private readonly graceMs: number
  /** This run's name in the contributions it writes. */
  readonly runId: string
  private readonly byInstrument = new Map<Instrument, InstrumentBars>()
  /** Corrections gathered during one call, by bar id (late trades are rare: a string key is fine here). */
  private readonly corrections = new Map<string, Bar>()
  /** When the processor first ran: minutes that began before it were not watched whole. */
  private liveSince: number | undefined
  /** Per symbol, when its connection last (re)opened. */
  private readonly resumedAt = new Map<string, { readonly at: number; readonly reason: string }>()
  /**
   * Liquidations counted lately, by id: venues repeat recent ones after a subscription (OKX), which the
   * large-trades table drops by id and a bar must not add twice. Few a minute: a bounded map, oldest out.
   */
  private readonly recentLiquidations = new Map<string, true>()
  /**
   * Live trades and liquidations that came after their minute was written (repaired trades apart): a venue whose clock trails
   * ours by more than the grace makes them all the time (a correction per batch): BAR_GRACE_SECONDS is short.
   */
  lateTrades = 0
  /** Set while repaired trades go through: they are late by design. */
  repairing = false
  /** The earliest time an open bar comes due (Infinity: none open), so most calls scan nothing. */
  private nextDue = Number.POSITIVE_INFINITY

  constructor(venue: string, graceMs: number = defaultBarGraceMs, runId: string = newBarRunId()) {
    this.venue = venue
    this.graceMs = graceMs
    this.runId = runId
  }

  /** The processor runs at `now`: the first call fixes when watching began. */
  running(now: number): void {
    if (this.liveSince === undefined) this.liveSince = now
  }

  /**
   * A connection carrying these symbols' trades opened at `now`; `interrupted`
   * when it replaces one that broke: the minutes still open were not watched
   * to their end.
   */
  resumed(symbols: ReadonlyArray<string>, now: number, interrupted: boolean): void {
    this.running(now)
    const reason = interrupted ? "connection resumed" : "connection opened"
    for (const symbol of symbols) this.resumedAt.set(symbol, { at: now, reason })
    if (!interrupted) return
    const wanted = new Set(symbols)
    for (const [instrument, state] of this.byInstrument) {
      if (!wanted.has(instrument.symbol)) continue
      for (const bar of state.open) this.markPartial(bar, `connection interrupted before ${iso(now)}`)
    }
  }

  trade(instrument: Instrument, trade: Trade, usd: number): void {
    const bar = this.barFor(instrument, trade.timestamp)
    const price = trade.price
    if (bar.trades === 0) {
      bar.open = bar.high = bar.low = bar.close = price
      bar.openTime = bar.closeTime = trade.timestamp
    } else {
      // Ties by arrival: the first trade of a time keeps open, the last one takes close.
      if (trade.timestamp < bar.openTime) {
        bar.open = price
        bar.openTime = trade.timestamp
      }
      if (trade.timestamp >= bar.closeTime) {
        bar.close = price
        bar.closeTime = trade.timestamp
      }
      if (price > bar.high) bar.high = price
      if (price < bar.low) bar.low = price
    }
    const base = baseQuantity(instrument, trade.size, price)
    if (Number.isFinite(base)) bar.volumeBase += base
    bar.volumeUsd += usd
    if (trade.side === "buy") bar.buyUsd += usd
    else bar.sellUsd += usd
    bar.trades++
    const liquidated = trade.liquidatedSide ?? (trade.liquidation === true ? trade.side : undefined)
    if (liquidated !== undefined) {
      if (liquidated !== "buy") bar.longUsd += usd
      if (liquidated !== "sell") bar.shortUsd += usd
    }
    this.holds(bar, trade)
  }

  liquidation(instrument: Instrument, liquidation: Liquidation, usd: number): void {
    const id = `${instrument.symbol}\u0000${recordId(liquidation)}`
    if (this.recentLiquidations.has(id)) return
    this.recentLiquidations.set(id, true)
    if (this.recentLiquidations.size > 10_000) this.recentLiquidations.delete(this.recentLiquidations.keys().next().value!)
    const bar = this.barFor(instrument, liquidation.timestamp)
    // The liquidated order's side: a sell closes a long.
    if (liquidation.side === "sell") bar.longUsd += usd
    else bar.shortUsd += usd
    bar.liquidations++
    if (liquidation.sampled === true) bar.liquidationsSampled = true
    this.holds(bar, liquidation)
  }

  /**
   * A record the detector could not value: not in the figures (no USD to add), but counted, so the bar
   * says it is short of them (partial) rather than look complete. It is part of the contribution (its
   * time range and count): the same frames replayed hold it again.
   */
  unvalued(instrument: Instrument, record: Trade | Liquidation): void {
    const bar = this.barFor(instrument, record.timestamp)
    if (record.kind === "trade") bar.unvaluedTrades++
    else bar.unvaluedLiquidations++
    this.holds(bar, record)
  }

  private holds(bar: Bar, record: Trade | Liquidation): void {
    bar.first ??= record
    bar.last = record
    if (record.timestamp < bar.earliest) bar.earliest = record.timestamp
    if (record.timestamp > bar.latest) bar.latest = record.timestamp
  }

  /** Writes the bars whose minute (plus grace) has passed at `now`, and the corrections gathered. */
  emitDue(now: number, out: Array<TradeBarRow>): void {
    this.emitCorrections(out)
    if (now < this.nextDue) return
    let nextDue = Number.POSITIVE_INFINITY
    for (const state of this.byInstrument.values()) {
      let written = 0
      for (const bar of state.open) {
        const due = bar.minute + minuteMs + this.graceMs
        if (due > now) {
          if (due < nextDue) nextDue = due
          continue
        }
        out.push(this.row(bar, false))
        if (bar.minute > state.writtenThrough) state.writtenThrough = bar.minute
        written++
      }
      // Open bars are kept oldest first, so those written are the first ones.
      if (written > 0) state.open.splice(0, written)
    }
    this.nextDue = nextDue
  }

  /** The corrections gathered since the last call (repaired trades: once their call is done). */
  emitCorrections(out: Array<TradeBarRow>): void {
    if (this.corrections.size === 0) return
    for (const bar of this.corrections.values()) out.push(this.row(bar, true))
    this.corrections.clear()
  }

  /** The feed stops at `now`: every open bar is written, its minute not watched to the end. */
  stop(now: number, out: Array<TradeBarRow>): void {
    this.emitCorrections(out)
    for (const state of this.byInstrument.values()) {
      for (const bar of state.open) {
        if (bar.minute + minuteMs > now) this.markPartial(bar, `feed stopped at ${iso(now)}`)
        out.push(this.row(bar, false))
        if (bar.minute > state.writtenThrough) state.writtenThrough = bar.minute
      }
      state.open.length = 0
    }
    this.nextDue = Number.POSITIVE_INFINITY
  }

  private barFor(instrument: Instrument, time: number): Bar {
    let state = this.byInstrument.get(instrument)
    if (state === undefined) {
      state = { open: [], writtenThrough: Number.NEGATIVE_INFINITY }
      this.byInstrument.set(instrument, state)
    }
    const minute = time - (time % minuteMs)
    const open = state.open
    for (let i = open.length - 1; i >= 0; i--) {
      const bar = open[i]!
      if (bar.minute === minute) return bar
      // Later than every open bar older than it: open bars are all after the minutes written.
      if (bar.minute < minute) return this.newBar(instrument, minute, open, i + 1)
    }
    if (minute <= state.writtenThrough) {
      if (!this.repairing) this.lateTrades++
      return this.correctionFor(instrument, minute)
    }
    return this.newBar(instrument, minute, open, 0)
  }

  private newBar(instrument: Instrument, minute: number, open: Array<Bar>, at: number): Bar {
    const bar = this.emptyBar(instrument, minute)
    open.splice(at, 0, bar)
    const due = minute + minuteMs + this.graceMs
    if (due < this.nextDue) this.nextDue = due
    return bar
  }

  private correctionFor(instrument: Instrument, minute: number): Bar {
    // Repaired and live corrections apart: they are named differently (contributionId).
    const id = `${timedRowId(this.venue, instrument.symbol, minute)}${this.repairing ? "\u0000repair" : ""}`
    let bar = this.corrections.get(id)
    if (bar === undefined) {
      bar = this.emptyBar(instrument, minute)
      bar.repaired = this.repairing
      this.corrections.set(id, bar)
    }
    return bar
  }

  private emptyBar(instrument: Instrument, minute: number): Bar {
    const watched = this.watchedFrom(instrument.symbol)
    const whole = watched !== undefined && watched.at <= minute
    return {
      instrument,
      minute,
      open: Number.NaN,
      high: Number.NaN,
      low: Number.NaN,
      close: Number.NaN,
      openTime: Number.NaN,
      closeTime: Number.NaN,
      volumeBase: 0,
      volumeUsd: 0,
      buyUsd: 0,
      sellUsd: 0,
      trades: 0,
      longUsd: 0,
      shortUsd: 0,
      liquidations: 0,
      unvaluedTrades: 0,
      unvaluedLiquidations: 0,
      liquidationsSampled: false,
      first: undefined,
      last: undefined,
      earliest: Number.POSITIVE_INFINITY,
      latest: Number.NEGATIVE_INFINITY,
      repaired: false,
      watchedFromStart: whole,
      observedWhole: whole,
      partialReason: whole ? null : watched === undefined ? "partial minute: not watched live" : `partial minute: ${watched.reason} at ${iso(watched.at)}`
    }
  }

  private watchedFrom(symbol: string): { readonly at: number; readonly reason: string } | undefined {
    return this.resumedAt.get(symbol) ?? (this.liveSince === undefined ? undefined : { at: this.liveSince, reason: "collection started" })
  }

  private markPartial(bar: Bar, reason: string): void {
    if (!bar.observedWhole) return
    bar.observedWhole = false
    bar.partialReason = `partial minute: ${reason}`
  }

  private row(bar: Bar, correction: boolean): TradeBarRow {
    const traded = bar.trades > 0
    const unvalued = [
      bar.unvaluedTrades > 0 ? `${bar.unvaluedTrades} trade${bar.unvaluedTrades === 1 ? "" : "s"}` : undefined,
      bar.unvaluedLiquidations > 0 ? `${bar.unvaluedLiquidations} liquidation${bar.unvaluedLiquidations === 1 ? "" : "s"}` : undefined
    ].filter((part) => part !== undefined)
    const unvaluedReason = unvalued.length === 0 ? null : `${unvalued.join(" and ")} not valued (no USD price yet), left out`
    return {
      id: timedRowId(this.venue, bar.instrument.symbol, bar.minute),
      exchange: this.venue,
      symbol: bar.instrument.symbol,
      base: bar.instrument.base,
      instrumentKind: bar.instrument.kind,
      timestamp: bar.minute,
      open: traded ? bar.open : null,
      high: traded ? bar.high : null,
      low: traded ? bar.low : null,
      close: traded ? bar.close : null,
      openTime: traded ? bar.openTime : null,
      closeTime: traded ? bar.closeTime : null,
      volumeBase: significant(bar.volumeBase),
      volumeUsd: roundUsd(bar.volumeUsd),
      buyVolumeUsd: roundUsd(bar.buyUsd),
      sellVolumeUsd: roundUsd(bar.sellUsd),
      tradeCount: bar.trades,
      longLiquidationsUsd: roundUsd(bar.longUsd),
      shortLiquidationsUsd: roundUsd(bar.shortUsd),
      liquidationCount: bar.liquidations,
      observedWhole: bar.observedWhole && unvaluedReason === null,
      partialReason: unvaluedReason === null ? bar.partialReason : bar.partialReason === null ? `partial: ${unvaluedReason}` : `${bar.partialReason}; ${unvaluedReason}`,
      unvaluedCount: bar.unvaluedTrades + bar.unvaluedLiquidations,
      liquidationsSampled: bar.liquidationsSampled,
      contribution: contributionId(this.runId, bar),
      // A minute not watched from its start may have trades another process wrote (the minute a restart
      // came in): to add, never to replace (adding to nothing is replacing, so this is always safe).
      correction: correction || !bar.watchedFromStart
    }
  }
}
