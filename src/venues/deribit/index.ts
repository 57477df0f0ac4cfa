/** Deribit (`deribit`): BTC and ETH perpetuals, dated futures and options, DVOL. */
import type { Instrument } from "../../domain/instruments.ts"
import type { NormalizedRecord } from "../../domain/records.ts"
import type { RecordedRest, VenueDefinition } from "../venue.ts"
import { decodeInstruments, guessInstrument, instrumentFrom } from "./instruments.ts"
import { runDeribit } from "./live.ts"
import { makeDecoder } from "./normalize.ts"
import { changeIdRule } from "./rules.ts"

const venue = "deribit"

const fromRest = (response: RecordedRest): {
  readonly instruments?: ReadonlyArray<Instrument>
  readonly records?: ReadonlyArray<NormalizedRecord>
} => {
  if (!new URL(response.url).pathname.endsWith("/public/get_instruments")) return {}
  const decoded = decodeInstruments(JSON.parse(response.body))
  return decoded._tag === "Success" ? { instruments: decoded.success.kept.map((i) => instrumentFrom(venue, i)) } : {}
}

export const deribit: VenueDefinition = {
  id: venue,
  decodeFrame: makeDecoder(venue),
  sequenceRule: changeIdRule,
  fromRest,
  guessInstrument: guessInstrument(venue),
  live: (runtime) => runDeribit(deribit)(runtime)
}
