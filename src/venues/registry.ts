/** Every venue the service knows. Adding one is a folder and a line here. */
import { binance, binanceFutures } from "./binance/index.ts"
import { bybit, bybitDerivatives } from "./bybit/index.ts"
import { coinbase } from "./coinbase/index.ts"
import { deribit } from "./deribit/index.ts"
import { cme } from "./cme/index.ts"
import { okx } from "./okx/index.ts"
import type { VenueDefinition } from "./venue.ts"

export const venues: ReadonlyArray<VenueDefinition> = [binance, binanceFutures, coinbase, deribit, cme, okx, bybit, bybitDerivatives]

export const venueById = (id: string): VenueDefinition | undefined => venues.find((venue) => venue.id === id)
