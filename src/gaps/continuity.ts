/**
 * Trade-id continuity per symbol, for venues whose trades carry a contiguous
 * sequence (Binance aggTrade ids, Deribit trade_seq, Coinbase trade ids). A jump
 * is a gap; what caused it is what happened since the last trade: a
 * disconnect, a stale stream, a process restart, or nothing (a sequence gap).
 */
import type { Trade } from "../domain/records.ts"
import type { Cursor, GapCause } from "./ledger.ts"

export interface TradeGap {
  readonly venue: string
  readonly symbol: string
  /** First and last missing sequence numbers, inclusive. */
  readonly fromSequence: number
  readonly toSequence: number
  /** Time of the last trade before the hole and of the first one after it. */
  readonly start: number
  readonly end: number
  readonly cause: GapCause
}

export class TradeContinuity {
  private readonly last = new Map<string, Cursor>()
  /** Cursors from a previous run: they reveal a restart gap but never make a trade count as seen. */
  private readonly seeded = new Set<string>()
  private readonly pendingCause = new Map<string, GapCause>()
  private readonly dirty = new Map<string, Cursor>()
  private readonly claims = new Map<string, number>()
  private readonly onGap: (gap: TradeGap) => void

  constructor(onGap: (gap: TradeGap) => void) {
    this.onGap = onGap
  }

  /** Where a previous run left off: the first trade seen will be checked against it. */
  seed(symbol: string, cursor: Cursor): void {
    if (this.last.has(symbol)) return
    this.last.set(symbol, cursor)
    this.seeded.add(symbol)
    this.pendingCause.set(symbol, "restart")
  }

  /** Cursors advanced since the last call, one per symbol. */
  takeCursors(): Array<[string, Cursor]> {
    if (this.dirty.size === 0) return []
    const out = [...this.dirty]
    this.dirty.clear()
    return out
  }

  /** The stream was interrupted: the next jump on each symbol is attributed to `cause`. */
  markInterrupted(cause: GapCause, symbols: ReadonlyArray<string>): void {
    for (const symbol of symbols) if (this.last.has(symbol)) this.pendingCause.set(symbol, cause)
  }

  /** False for a trade already seen (a replayed or overlapping frame). */
  observe(trade: Trade): boolean {
    const sequence = trade.sequence
    if (sequence === undefined) return true
    const previous = this.last.get(trade.symbol)
    if (previous !== undefined && sequence <= previous.sequence) {
      // Behind a previous run's cursor: maybe seen, maybe never stored. Process it again (rows are idempotent).
      return this.seeded.has(trade.symbol)
    }
    this.seeded.delete(trade.symbol)
    // A record aggregating several trades (OKX `count`) covers firstSequence..sequence.
    const first = trade.firstSequence ?? sequence
    if (previous !== undefined && first > previous.sequence + 1) {
      this.onGap({
        venue: trade.venue,
        symbol: trade.symbol,
        fromSequence: previous.sequence + 1,
        toSequence: first - 1,
        start: previous.time,
        end: trade.timestamp,
        cause: this.pendingCause.get(trade.symbol) ?? "sequence_gap"
      })
    }
    this.pendingCause.delete(trade.symbol)
    const cursor = { sequence, time: trade.timestamp }
    this.last.set(trade.symbol, cursor)
    this.dirty.set(trade.symbol, cursor)
    return true
  }

  /**
   * The venue says its last trade on `symbol` is `lastSequence` (Coinbase heartbeats).
   * A claim still ahead of us one report later means trades were lost, even if no
   * later trade arrives to reveal the jump: the gap opens up to the claimed id.
   * A `settled` report (the venue's REST history) is acted on at once.
   */
  venueReports(venue: string, symbol: string, lastSequence: number, at: number, settled = false): void {
    const previous = this.last.get(symbol)
    const claimed = settled ? lastSequence : this.claims.get(symbol)
    this.claims.set(symbol, lastSequence)
    if (previous === undefined || claimed === undefined || claimed <= previous.sequence) return
    this.onGap({
      venue,
      symbol,
      fromSequence: previous.sequence + 1,
      toSequence: claimed,
      start: previous.time,
      end: at,
      cause: this.pendingCause.get(symbol) ?? "sequence_gap"
    })
    this.pendingCause.delete(symbol)
    this.seeded.delete(symbol)
    const cursor = { sequence: claimed, time: at }
    this.last.set(symbol, cursor)
    this.dirty.set(symbol, cursor)
  }

  symbols(): Array<string> {
    return [...this.last.keys()]
  }
}
