/**
 * OKX's book rule (today's docs): each message names the previous one's
 * `seqId` in `prevSeqId` (-1 on a snapshot, which comes on the stream); an
 * update without changes repeats the `seqId`. Anything else is a gap: the
 * book resubscribes. The checksum (normalize.ts) guards what sequences cannot.
 */
import type { SequenceRule } from "../../book/sync.ts"

export const seqIdRule: SequenceRule = {
  bridge: (snapshot, delta) =>
    delta.previousSequence === snapshot ? "apply" : delta.lastSequence <= snapshot ? "drop" : "gap",
  follows: (last, delta) =>
    delta.previousSequence === last.lastSequence ? "apply" : delta.lastSequence <= last.lastSequence ? "drop" : "gap",
  snapshotsInStream: true
}
