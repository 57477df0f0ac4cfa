/**
 * Bybit's book rule: the snapshot comes on the stream (on subscribing, and
 * again whenever Bybit restarts its service, then with `u` = 1), and each
 * delta's update id `u` is the previous one's plus one. Anything else is a
 * gap: the book resubscribes for a fresh snapshot.
 */
import type { SequenceRule } from "../../book/sync.ts"

export const updateIdRule: SequenceRule = {
  bridge: (snapshot, delta) => (delta.lastSequence <= snapshot ? "drop" : delta.lastSequence === snapshot + 1 ? "apply" : "gap"),
  follows: (last, delta) =>
    delta.lastSequence <= last.lastSequence ? "drop" : delta.lastSequence === last.lastSequence + 1 ? "apply" : "gap",
  snapshotsInStream: true
}
