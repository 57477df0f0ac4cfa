/** OKX (`okx`, v5): spot, perpetual swaps and dated futures, linear and inverse. */
import type { Instrument } from "../../domain/instruments.ts"
import type { NormalizedRecord } from "../../domain/records.ts"
import type { RecordedRest, VenueDefinition } from "../venue.ts"
import { decodeInstruments, guessInstrument, instrumentFrom } from "./instruments.ts"
import { runOkx } from "./live.ts"
import { makeDecoder } from "./normalize.ts"
import { seqIdRule } from "./rules.ts"

const venue = "okx"

const fromRest = (response: RecordedRest): {
  readonly instruments?: ReadonlyArray<Instrument>
  readonly records?: ReadonlyArray<NormalizedRecord>
} => {
  if (!new URL(response.url).pathname.endsWith("/public/instruments")) return {}
  const decoded = decodeInstruments(JSON.parse(response.body))
  return decoded._tag === "Success" ? { instruments: decoded.success.kept.flatMap((l) => instrumentFrom(venue, l) ?? []) } : {}
}

export const okx: VenueDefinition = {
  id: venue,
  decodeFrame: makeDecoder(venue),
  sequenceRule: seqIdRule,
  fromRest,
  guessInstrument: guessInstrument(venue),
  live: (runtime) => runOkx(okx)(runtime)
}
