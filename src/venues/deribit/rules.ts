/**
 * Deribit's book rule: the snapshot comes first on the subscription, then every
 * change names the change it follows (`prev_change_id`). A change that does not
 * follow the last one is a gap: the book resubscribes for a fresh snapshot.
 */
import type { SequenceRule } from "../../book/sync.ts"

export const changeIdRule: SequenceRule = {
  bridge: (snapshot, delta) => {
    if (delta.lastSequence <= snapshot) return "drop"
    return delta.previousSequence === snapshot ? "apply" : "gap"
  },
  follows: (last, delta) => {
    if (delta.lastSequence <= last.lastSequence) return "drop"
    return delta.previousSequence === last.lastSequence ? "apply" : "gap"
  },
  snapshotsInStream: true
}
