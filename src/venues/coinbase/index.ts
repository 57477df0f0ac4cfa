/** Coinbase spot (`coinbase`): the Advanced Trade feed by default, or the Exchange feed. */
import type { Instrument } from "../../domain/instruments.ts"
import type { NormalizedRecord } from "../../domain/records.ts"
import type { RecordedRest, VenueDefinition } from "../venue.ts"
import { bookSnapshotRecord, decodeProductBook, decodeProducts, guessInstrument, instrumentsFrom } from "./instruments.ts"
import { runCoinbase } from "./live.ts"
import { makeDecoder } from "./normalize.ts"
import { orderedRule } from "./rules.ts"

const venue = "coinbase"

const fromRest = (response: RecordedRest): {
  readonly instruments?: ReadonlyArray<Instrument>
  readonly records?: ReadonlyArray<NormalizedRecord>
} => {
  const path = new URL(response.url).pathname
  const body: unknown = JSON.parse(response.body)
  if (path.endsWith("/products")) {
    const products = decodeProducts(body)
    return products._tag === "Success" ? { instruments: instrumentsFrom(venue, products.success) } : {}
  }
  const book = /\/products\/([^/]+)\/book$/.exec(path)
  if (book !== null) {
    const decoded = decodeProductBook(body)
    return decoded._tag === "Success" ? { records: [bookSnapshotRecord(venue, book[1]!, decoded.success, response.receivedAt)] } : {}
  }
  return {}
}

export const coinbase: VenueDefinition = {
  id: venue,
  decodeFrame: makeDecoder(venue),
  sequenceRule: orderedRule,
  fromRest,
  guessInstrument: guessInstrument(venue),
  live: (runtime) => runCoinbase(coinbase)(runtime)
}
