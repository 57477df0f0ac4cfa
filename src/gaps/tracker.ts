/**
 * Turns what the feeds notice into gap-ledger rows, per venue: trade-sequence
 * jumps (repaired over REST where the venue allows it), interrupted connections
 * (book, liquidation and funding holes cannot be refetched: unrecoverable) and
 * book resyncs (open until the book is live again). Knows no venue: the venue
 * passes in how to fetch a range of trades.
 */
import { Duration, Effect, Metric, Queue, Result, type Scope } from "effect"
import type { Trade } from "../domain/records.ts"
import { TradeContinuity, type TradeGap } from "./continuity.ts"
import { type Gap, type GapCause, type GapChannel, gapTradesRepaired, GapLedger } from "./ledger.ts"

export interface GapTrackerOptions {
  readonly venue: string
  /** Trades with sequences `from..to` inclusive, in order; at most `limit` of them. */
  readonly fetchTrades: ((symbol: string, from: number, to: number, limit: number) => Effect.Effect<ReadonlyArray<Trade>, { readonly _tag: string }>) | undefined
  /** Repaired trades go through the same detection and writer path as live ones. */
  readonly onRepaired: (trades: ReadonlyArray<Trade>) => Effect.Effect<void>
  readonly maxRepairTrades: number
}

export interface GapTracker {
  readonly continuity: TradeContinuity
  /** A connection came back: everything it carried was missing from `since` to `now`. */
  readonly connectionInterrupted: (options: {
    readonly cause: GapCause
    readonly since: number
    readonly now: number
    readonly symbols: ReadonlyArray<string>
    readonly channels: ReadonlyArray<GapChannel>
  }) => void
  /** One stream of a live socket went silent (stale), and later came back. */
  readonly streamStale: (channel: GapChannel, symbol: string, since: number) => void
  readonly streamFresh: (channel: GapChannel, symbol: string, at: number) => void
  readonly bookResync: (symbol: string, reason: string, lastGoodAt: number) => void
  readonly bookLive: (symbol: string, at: number) => void
}

export const causeOfSessionEnd = (tag: string | null): GapCause =>
  tag === "FeedStaleError" ? "stale" : tag === "RateLimitedError" ? "rate_limited" : "disconnect"

export const makeGapTracker = (options: GapTrackerOptions): Effect.Effect<GapTracker, never, GapLedger | Scope.Scope> =>
  Effect.gen(function*() {
    const ledger = yield* GapLedger
    const repairs = yield* Queue.unbounded<{ readonly gap: Gap; readonly trade: TradeGap }>()
    const openBookGaps = new Map<string, Gap>()
    const repaired = Metric.withAttributes(gapTradesRepaired, { exchange: options.venue })

    const continuity = new TradeContinuity(
      (trade) => {
        const missing = trade.toSequence - trade.fromSequence + 1
        const gap = ledger.open({
          exchange: trade.venue,
          channel: "trades",
          symbol: trade.symbol,
          start: trade.start,
          end: trade.end,
          cause: trade.cause,
          estimatedMissing: missing,
          status: options.fetchTrades === undefined ? "unrecoverable" : "repairing",
          metadata: { first_missing_sequence: trade.fromSequence, last_missing_sequence: trade.toSequence }
        })
        if (options.fetchTrades !== undefined) Queue.offerUnsafe(repairs, { gap, trade })
      }
    )

    /** Fetches the missing range (a few tries: a venue refusing for long makes the gap partial, never a hot loop). */
    const repair = ({ gap, trade }: { readonly gap: Gap; readonly trade: TradeGap }) =>
      Effect.gen(function*() {
        const fetch = options.fetchTrades!
        const wanted = trade.toSequence - trade.fromSequence + 1
        let result: Result.Result<ReadonlyArray<Trade>, { readonly _tag: string }> = Result.fail({ _tag: "NotTried" })
        for (let attempt = 0; attempt < 5; attempt++) {
          result = yield* Effect.result(fetch(trade.symbol, trade.fromSequence, trade.toSequence, options.maxRepairTrades))
          if (Result.isSuccess(result)) break
          yield* Effect.sleep(Duration.seconds(2 ** attempt))
        }
        if (Result.isFailure(result)) {
          gap.status = "partial"
          gap.metadata = { ...gap.metadata, repair_error: result.failure._tag }
          ledger.update(gap)
          return
        }
        const trades = result.success.filter((t) =>
          t.sequence !== undefined && (t.firstSequence ?? t.sequence) >= trade.fromSequence && t.sequence <= trade.toSequence
        )
        yield* options.onRepaired(trades)
        // A record may cover several sequence numbers (OKX aggregates fills): contiguous when each starts where the last ended.
        let next = trade.fromSequence
        let contiguous = true
        for (const t of trades) {
          if ((t.firstSequence ?? t.sequence) !== next) contiguous = false
          next = t.sequence! + 1
        }
        const covered = trades.reduce((n, t) => n + t.sequence! - (t.firstSequence ?? t.sequence!) + 1, 0)
        yield* Metric.update(repaired, covered)
        gap.repairedCount = covered
        gap.status = contiguous && next === trade.toSequence + 1 && covered === wanted ? "verified" : "partial"
        if (wanted > options.maxRepairTrades) gap.metadata = { ...gap.metadata, repair_capped_at: options.maxRepairTrades }
        ledger.update(gap)
      })
    yield* Queue.take(repairs).pipe(Effect.flatMap(repair), Effect.forever, Effect.forkScoped)

    const openBookGap = (symbol: string, cause: GapCause, start: number, reason: string) => {
      if (openBookGaps.has(symbol)) return
      openBookGaps.set(symbol, ledger.open({
        exchange: options.venue,
        channel: "book",
        symbol,
        start,
        end: null,
        cause,
        estimatedMissing: null,
        status: "open",
        metadata: { reason, repair: "book deltas cannot be refetched; the book resyncs from a new snapshot" }
      }))
    }

    const openStreamGaps = new Map<string, Gap>()

    return {
      continuity,
      streamStale: (channel, symbol, since) => {
        if (channel === "trades") continuity.markInterrupted("stale", [symbol])
        else if (channel === "book") openBookGap(symbol, "stale", since, "diffs stopped while the socket stayed busy")
        else {
          openStreamGaps.set(`${channel}\u0000${symbol}`, ledger.open({
            exchange: options.venue,
            channel,
            symbol,
            start: since,
            end: null,
            cause: "stale",
            estimatedMissing: null,
            status: "open",
            metadata: { reason: "stream stopped while the socket stayed busy" }
          }))
        }
      },
      streamFresh: (channel, symbol, at) => {
        const key = `${channel}\u0000${symbol}`
        const gap = openStreamGaps.get(key)
        if (gap === undefined) return
        openStreamGaps.delete(key)
        gap.end = at
        gap.status = "unrecoverable"
        ledger.update(gap)
      },
      connectionInterrupted: ({ cause, since, now, symbols, channels }) => {
        if (channels.includes("trades")) continuity.markInterrupted(cause, symbols)
        for (const symbol of symbols) {
          if (channels.includes("book")) openBookGap(symbol, cause, since, "connection interrupted")
          for (const channel of ["liquidations", "funding"] as const) {
            if (!channels.includes(channel)) continue
            ledger.open({
              exchange: options.venue,
              channel,
              symbol,
              start: since,
              end: now,
              cause,
              estimatedMissing: null,
              status: "unrecoverable",
              metadata: { reason: "no REST history to refetch this stream from" }
            })
          }
        }
      },
      bookResync: (symbol, reason, lastGoodAt) =>
        openBookGap(symbol, reason.includes("audit") || reason.includes("checksum") ? "checksum" : "sequence_gap", lastGoodAt, reason),
      bookLive: (symbol, at) => {
        const gap = openBookGaps.get(symbol)
        if (gap === undefined) return
        openBookGaps.delete(symbol)
        gap.end = at
        gap.status = "unrecoverable"
        ledger.update(gap)
      }
    }
  })
