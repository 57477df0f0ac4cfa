/** CME (`cme`): BTC, MBT, ETH and MET futures from daily settlements; no streaming feed. */
import { DecodeError } from "../../domain/errors.ts"
import type { VenueDefinition } from "../venue.ts"
import { fromSymbol, products } from "./contracts.ts"
import { runCme } from "./live.ts"

const venue = "cme"

export const cme: VenueDefinition = {
  id: venue,
  // CME data arrives as settlements over REST, never as frames: a frame given to it is an error.
  decodeFrame: (frame) => new DecodeError({ venue, channel: "frames", detail: "the cme venue has no frame feed", sample: frame.slice(0, 200) }),
  sequenceRule: undefined,
  fromRest: () => ({}),
  guessInstrument: (symbol) => {
    const contract = fromSymbol(symbol, Date.now())
    if (contract === undefined) return undefined
    const product = products[contract.root]!
    return { venue, symbol: contract.symbol, base: product.base, quote: "USD", kind: "future", contractSize: product.multiplier, inverse: false }
  },
  live: (runtime) => runCme(cme)(runtime)
}
