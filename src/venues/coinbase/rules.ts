/**
 * Coinbase's level-2 feeds number nothing per product, but deliver each
 * product's snapshot and updates in order on one connection. The decoder gives
 * every book message an arrival ordinal; an update older than the snapshot is
 * dropped and every later one applies. Loss is detected elsewhere (connection
 * `sequence_num` on Advanced Trade; stale streams on both).
 */
import type { SequenceRule } from "../../book/sync.ts"

export const orderedRule: SequenceRule = {
  bridge: (snapshot, delta) => (delta.lastSequence <= snapshot ? "drop" : "apply"),
  follows: (last, delta) => (delta.lastSequence <= last.lastSequence ? "drop" : "apply"),
  snapshotsInStream: true
}
