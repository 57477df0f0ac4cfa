/**
 * Binance's documented diff-depth synchronisation rules.
 * Spot: the first applied event has `U <= lastUpdateId + 1 <= u`, then each `U = previous u + 1`.
 * USD-M futures: the first applied event has `U <= lastUpdateId <= u`, then each `pu = previous u`.
 */
import type { SequenceRule } from "../../book/sync.ts"

export const spotRule: SequenceRule = {
  bridge: (snapshot, delta) => {
    if (delta.lastSequence <= snapshot) return "drop"
    return delta.firstSequence <= snapshot + 1 ? "apply" : "gap"
  },
  follows: (last, delta) => {
    if (delta.lastSequence <= last.lastSequence) return "drop"
    return delta.firstSequence === last.lastSequence + 1 ? "apply" : "gap"
  }
}

export const futuresRule: SequenceRule = {
  bridge: (snapshot, delta) => {
    if (delta.lastSequence < snapshot) return "drop"
    return delta.firstSequence <= snapshot ? "apply" : "gap"
  },
  follows: (last, delta) => {
    if (delta.lastSequence <= last.lastSequence) return "drop"
    return delta.previousSequence === last.lastSequence ? "apply" : "gap"
  }
}
