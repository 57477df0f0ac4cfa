/**
 * The gap ledger: every hole in what was collected (a disconnect, a sequence
 * break, a silent stream, a restart), with its bounds, cause, estimated size and
 * repair status, persisted in `data_gaps`. Also the per-stream cursors that let
 * a restarted process find where it left off. Callers are synchronous pipeline
 * code: they enqueue, a background fiber writes (retrying through outages).
 * Rows the writer did not store (a full queue, dead-lettered, left at shutdown)
 * are gaps too: `followLosses` turns the writer's losses into ledger rows.
 */
import { Context, Duration, Effect, FiberSet, Layer, Metric, Option, Queue, Schedule, Stream } from "effect"
import { SqlClient } from "effect/sql"
import type { TableName } from "../domain/rows.ts"
import { gapMessage } from "../domain/messages.ts"
import { Outbox } from "../storage/outbox.ts"
import type { RowLoss } from "../storage/writer.ts"

/** The channels a venue's streams carry (what its feeds and gap trackers know). */
export type GapChannel = "trades" | "book" | "liquidations" | "funding"
/** Every channel a gap may be on: a stream's, or a stored table's where the writer lost rows of it. */
export type LedgerChannel = GapChannel | "open_interest" | Exclude<TableName, "large_trades" | "funding_rates" | "open_interest" | "exchange_orderbooks">
/**
 * `missed`: trades the venue's REST history has and its stream never delivered (venues without trade sequences, found by reconciliation).
 * `overload`: rows a full writer queue dropped; `rejected`: rows the database refused as data (kept in rejected_rows);
 * `unstored`: rows still queued when shutdown's drain deadline passed.
 */
export type GapCause = "disconnect" | "sequence_gap" | "checksum" | "stale" | "rate_limited" | "restart" | "missed" | "overload" | "rejected" | "unstored"
export type RepairStatus = "open" | "repairing" | "verified" | "partial" | "unrecoverable"

export interface Gap {
  readonly id: string
  readonly exchange: string
  readonly channel: LedgerChannel
  readonly symbol: string
  readonly start: number
  end: number | null
  readonly cause: GapCause
  estimatedMissing: number | null
  status: RepairStatus
  repairedCount: number
  metadata: Record<string, unknown>
}

export interface Cursor {
  readonly sequence: number
  readonly time: number
}

export const gapsOpened = Metric.counter("gaps_total", { description: "Gaps recorded, per venue, channel and cause", incremental: true })
export const gapTradesRepaired = Metric.counter("gap_trades_repaired_total", {
  description: "Trades recovered over REST to fill gaps",
  incremental: true
})

/** The channel a lost row was on: the stream its table is fed by (liquidations apart from trades). */
export const lossChannel = (loss: Pick<RowLoss, "table" | "liquidation">): LedgerChannel =>
  loss.table === "large_trades"
    ? (loss.liquidation ? "liquidations" : "trades")
    : loss.table === "funding_rates"
    ? "funding"
    : loss.table === "exchange_orderbooks"
    ? "book"
    : loss.table

const lossCause = { overload: "overload", rejected: "rejected", shutdown: "unstored" } as const

export const gapId = (exchange: string, channel: string, symbol: string, start: number, cause: string) =>
  `${exchange}_${channel}_${symbol}_${start}_${cause}`

export class GapLedger extends Context.Service<GapLedger, {
  readonly open: (gap: Omit<Gap, "id" | "repairedCount"> & { readonly repairedCount?: number }) => Gap
  readonly update: (gap: Gap) => void
  readonly recent: () => ReadonlyArray<Gap>
  /** Calls `listener` with every gap opened or changed from now on (synchronously: it must only hand the gap on). */
  readonly watch: (listener: (gap: Gap) => void) => void
  readonly loadCursors: (exchange: string, channel: string) => Effect.Effect<ReadonlyMap<string, Cursor>>
  /**
   * Every loss on `losses` (the writer's) becomes a gap over the exchange time the lost rows cover, per table
   * and stream. Followed in the ledger's own scope until the stream ends (the writer's last losses, at its
   * shutdown, are recorded before the ledger stops).
   */
  readonly followLosses: (losses: Stream.Stream<RowLoss>) => Effect.Effect<void>
}>()("market-data/gaps/GapLedger") {
  static readonly layer = Layer.effect(
    GapLedger,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      /** Each gap state to write; `opened` the first time a gap is seen (counted once it is written). */
      const pending = yield* Queue.unbounded<{ readonly gap: Gap; readonly opened: boolean }>()
      const recent: Array<Gap> = []
      const knownIds = new Set<string>()

      const upsert = (gap: Gap) =>
        sql`INSERT INTO data_gaps (id, exchange, channel, symbol, gap_start, gap_end, cause, estimated_missing, repair_status, repaired_count, metadata)
          VALUES (${gap.id}, ${gap.exchange}, ${gap.channel}, ${gap.symbol},
            (${new Date(gap.start).toISOString()}::timestamptz AT TIME ZONE 'UTC'),
            (${gap.end === null ? null : new Date(gap.end).toISOString()}::timestamptz AT TIME ZONE 'UTC'),
            ${gap.cause}, ${gap.estimatedMissing === null ? null : String(gap.estimatedMissing)}::bigint, ${gap.status},
            ${String(gap.repairedCount)}::bigint, ${JSON.stringify(gap.metadata)}::jsonb)
          ON CONFLICT (id) DO UPDATE SET gap_end = EXCLUDED.gap_end, estimated_missing = EXCLUDED.estimated_missing,
            repair_status = EXCLUDED.repair_status, repaired_count = EXCLUDED.repaired_count,
            metadata = EXCLUDED.metadata, updated_at = NOW()`

      // Each state of a gap is published: its message is staged in the upsert's transaction (storage/outbox.ts).
      const outbox = yield* Effect.serviceOption(Outbox)
      const persist = (gap: Gap) =>
        Option.isNone(outbox) ? upsert(gap) : sql.withTransaction(Effect.andThen(upsert(gap), outbox.value.stageMessages([gapMessage(gap)])))
      const countOpened = (gap: Gap) =>
        Metric.update(Metric.withAttributes(gapsOpened, { exchange: gap.exchange, channel: gap.channel, cause: gap.cause }), 1)

      // Through a database outage a gap is retried with capped backoff until it is stored.
      const retry = Schedule.min([Schedule.exponential(Duration.millis(250)), Schedule.spaced(Duration.seconds(5))])
      const writeOne = ({ gap, opened }: { readonly gap: Gap; readonly opened: boolean }) =>
        Effect.andThen(opened ? countOpened(gap) : Effect.void, Effect.retry(persist(gap), retry))
      yield* Queue.take(pending).pipe(Effect.flatMap(writeOne), Effect.forever, Effect.forkScoped)

      // The followers of loss streams, made before the flush below: it runs first at release and waits for them.
      const followers = yield* FiberSet.make<void>()
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          // A follower ends when its stream does (the writer has shut down); then whatever is left is written.
          yield* FiberSet.awaitEmpty(followers).pipe(Effect.timeout(Duration.seconds(3)), Effect.ignore)
          for (const item of yield* Queue.clear(pending)) yield* persist(item.gap).pipe(Effect.ignore)
        }).pipe(Effect.timeout(Duration.seconds(8)), Effect.ignore)
      )

      const listeners: Array<(gap: Gap) => void> = []
      const enqueue = (gap: Gap, opened: boolean) => {
        Queue.offerUnsafe(pending, { gap, opened })
        for (const listener of listeners) listener(gap)
      }

      const open: GapLedger["Service"]["open"] = (input) => {
        const gap: Gap = {
          ...input,
          id: gapId(input.exchange, input.channel, input.symbol, input.start, input.cause),
          repairedCount: input.repairedCount ?? 0
        }
        const opened = !knownIds.has(gap.id)
        if (opened) {
          knownIds.add(gap.id)
          recent.push(gap)
          if (recent.length > 1000) recent.shift()
        }
        enqueue(gap, opened)
        return gap
      }

      /** Losses of one stream that start at the same time (the same rows lost twice) widen one gap. */
      const lossGaps = new Map<string, Gap>()
      const recordLoss = (loss: RowLoss) =>
        Effect.sync(() => {
          const channel = lossChannel(loss)
          const cause = lossCause[loss.cause]
          const id = gapId(loss.exchange, channel, loss.symbol, loss.from, cause)
          const known = lossGaps.get(id)
          if (known !== undefined) {
            known.end = Math.max(known.end ?? loss.to, loss.to)
            known.estimatedMissing = (known.estimatedMissing ?? 0) + loss.count
            enqueue(known, false)
            return
          }
          const gap = open({
            exchange: loss.exchange,
            channel,
            symbol: loss.symbol,
            start: loss.from,
            end: loss.to,
            cause,
            estimatedMissing: loss.count,
            // Rejected rows wait in rejected_rows for an operator to replay; dropped and unstored ones are gone.
            status: loss.cause === "rejected" ? "open" : "unrecoverable",
            metadata: {
              table: loss.table,
              reason: loss.cause === "overload"
                ? "the writer's queue was full: rows received and dropped"
                : loss.cause === "rejected"
                ? "the database refused these rows as data; they are kept in rejected_rows"
                : "still queued when shutdown's drain deadline passed: never stored"
            }
          })
          lossGaps.set(id, gap)
          if (lossGaps.size > 10_000) lossGaps.delete(lossGaps.keys().next().value!)
        })

      return GapLedger.of({
        open,
        update: (gap) => enqueue(gap, false),
        recent: () => recent,
        watch: (listener) => {
          listeners.push(listener)
        },
        loadCursors: (exchange, channel) =>
          sql<{ symbol: string; last_sequence: bigint | string; last_time: Date }>`SELECT symbol, last_sequence, last_time
            FROM feed_cursors WHERE exchange = ${exchange} AND channel = ${channel}`.pipe(
            Effect.map((rows) =>
              new Map(rows.map((r) => [r.symbol, { sequence: Number(r.last_sequence), time: r.last_time.getTime() }]))
            ),
            Effect.catchCause(() => Effect.succeed(new Map<string, Cursor>()))
          ),
        followLosses: (losses) => FiberSet.run(followers, Stream.runForEach(losses, recordLoss)).pipe(Effect.asVoid)
      })
    })
  )
}
