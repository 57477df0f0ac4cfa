/**
 * The two Bybit venues (v5): `bybit` (spot) and `bybit-derivatives` (linear
 * USDT/USDC and inverse perpetuals and futures). Two ids because spot and
 * linear symbols collide (BTCUSDT is both), as Binance's do.
 */
import type { Instrument } from "../../domain/instruments.ts"
import type { NormalizedRecord } from "../../domain/records.ts"
import type { RecordedRest, VenueDefinition } from "../venue.ts"
import { categoryOfUrl, decodeInstrumentsPage, guessInstrument, instrumentFrom } from "./instruments.ts"
import { type BybitMarket, runBybit } from "./live.ts"
import { makeDecoder } from "./normalize.ts"
import { updateIdRule } from "./rules.ts"

const defaultSymbols = "BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT,DOGEUSDT"

const fromRest = (venue: string) => (response: RecordedRest): {
  readonly instruments?: ReadonlyArray<Instrument>
  readonly records?: ReadonlyArray<NormalizedRecord>
} => {
  const category = categoryOfUrl(response.url)
  if (category === undefined || !new URL(response.url).pathname.endsWith("/instruments-info")) return {}
  // Spot listings belong to `bybit`, linear and inverse ones to `bybit-derivatives`.
  if ((category === "spot") !== (venue === "bybit")) return {}
  const page = decodeInstrumentsPage(JSON.parse(response.body))
  return page._tag === "Success" ? { instruments: page.success.kept.map((info) => instrumentFrom(venue, category, info)) } : {}
}

const define = (market: BybitMarket, derivatives: boolean): VenueDefinition => {
  const definition: VenueDefinition = {
    id: market.venue,
    decodeFrame: makeDecoder(market.venue),
    sequenceRule: updateIdRule,
    fromRest: fromRest(market.venue),
    guessInstrument: guessInstrument(market.venue, derivatives),
    live: (runtime) => runBybit(market, definition)(runtime)
  }
  return definition
}

export const bybit = define({
  venue: "bybit",
  categories: [{ category: "spot", symbolsVariable: "BYBIT_SPOT_SYMBOLS", defaultSymbols }]
}, false)

export const bybitDerivatives = define({
  venue: "bybit-derivatives",
  categories: [
    { category: "linear", symbolsVariable: "BYBIT_LINEAR_SYMBOLS", defaultSymbols },
    { category: "inverse", symbolsVariable: "BYBIT_INVERSE_SYMBOLS", defaultSymbols: "BTCUSD,ETHUSD" }
  ]
}, true)
