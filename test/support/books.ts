/**
 * Real books for the cross-venue tests: a RecordProcessor per made-up venue
 * (pipeline/runtime.ts makeProcessor, so its BookSync registers in the live
 * view as in the service), driven with snapshot and delta records received
 * at times the test chooses.
 */
import { Effect } from "effect"
import type { LiveBookRegistry } from "../../src/book/live.ts"
import type { SequenceRule } from "../../src/book/sync.ts"
import type { Instrument } from "../../src/domain/instruments.ts"
import type { Level } from "../../src/domain/records.ts"
import { RowBatch } from "../../src/domain/rows.ts"
import { defaultPipelineSettings, makeProcessor, makeVenueRuntime } from "../../src/pipeline/runtime.ts"
import type { RecordProcessor } from "../../src/pipeline/processor.ts"

/** Snapshots arrive on the stream (as Coinbase's do); deltas must follow one another exactly. */
export const streamRule: SequenceRule = {
  snapshotsInStream: true,
  bridge: (snapshot, delta) => (delta.lastSequence <= snapshot ? "drop" : delta.firstSequence <= snapshot + 1 ? "apply" : "gap"),
  follows: (last, delta) => (delta.lastSequence <= last.lastSequence ? "drop" : delta.firstSequence === last.lastSequence + 1 ? "apply" : "gap")
}

export type Facts = Pick<Instrument, "base" | "quote" | "kind"> & Partial<Pick<Instrument, "contractSize" | "inverse">>

export interface FakeVenue {
  readonly processor: RecordProcessor
  /** The book's whole top, as a snapshot received at `at` (exchange time `at - 20`). */
  readonly book: (symbol: string, bids: ReadonlyArray<Level>, asks: ReadonlyArray<Level>, at: number) => void
  /** A delta that skips a sequence number: the book resyncs (its last levels stay, not live). */
  readonly gap: (symbol: string, at: number) => void
}

/** A venue whose processor's books register in `registry`, listing `instruments`. */
export const fakeVenue = (registry: LiveBookRegistry, venue: string, instruments: Record<string, Facts>): FakeVenue => {
  const runtime = makeVenueRuntime(defaultPipelineSettings, () => Effect.void, registry)
  for (const [symbol, f] of Object.entries(instruments)) {
    runtime.instruments.add({ venue, symbol, base: f.base, quote: f.quote, kind: f.kind, contractSize: f.contractSize ?? 1, inverse: f.inverse ?? false })
  }
  const processor = makeProcessor(runtime, venue, { sequenceRule: streamRule, requestSnapshot: () => undefined })
  const sequences = new Map<string, number>()
  const next = (symbol: string) => {
    const n = (sequences.get(symbol) ?? 0) + 10
    sequences.set(symbol, n)
    return n
  }
  return {
    processor,
    book: (symbol, bids, asks, at) => {
      processor.process([{ kind: "book_snapshot", venue, symbol, sequence: next(symbol), bids, asks, timestamp: at - 20 }], at, new RowBatch())
    },
    gap: (symbol, at) => {
      const n = next(symbol)
      processor.process([{ kind: "book_delta", venue, symbol, firstSequence: n + 5, lastSequence: n + 6, bids: [], asks: [], timestamp: at - 20 }], at, new RowBatch())
    }
  }
}
