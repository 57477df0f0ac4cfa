/**
 * Bybit instruments from `/v5/market/instruments-info`, one category at a
 * time (spot, linear, inverse), and what a contract is worth:
 * - spot and linear (USDT and USDC perpetuals and futures): quantities are in
 *   the base coin, so a contract is one coin;
 * - inverse (BTCUSD, BTCUSDZ26): a contract is one USD.
 */
import { Result, Schema } from "effect"
import { decodeEach, type Salvaged } from "../../domain/frames.ts"
import type { Instrument, InstrumentKind } from "../../domain/instruments.ts"
import { InstrumentInfo, InstrumentsPage, RecentTrades } from "./wire.ts"

export type Category = "spot" | "linear" | "inverse"

const decodePage = Schema.decodeUnknownResult(InstrumentsPage)
const eachListing = decodeEach(InstrumentInfo)

export interface ListingsPage extends Salvaged<InstrumentInfo> {
  readonly category: string
  readonly nextPageCursor: string | undefined
}

/** One page of listings, listing by listing: an odd listing is dropped and counted, never the page refused. */
export const decodeInstrumentsPage = (body: unknown): Result.Result<ListingsPage, Schema.SchemaError | string> =>
  Result.flatMap(decodePage(body), (page) =>
    page.retCode !== 0
      ? Result.fail(`Bybit error ${page.retCode}: ${page.retMsg}`)
      : Result.succeed({
        ...eachListing(page.result.list)!,
        category: page.result.category,
        nextPageCursor: page.result.nextPageCursor === "" ? undefined : page.result.nextPageCursor
      })
  )

export const decodeRecentTrades = Schema.decodeUnknownResult(RecentTrades)

const kindOf = (info: InstrumentInfo): InstrumentKind =>
  info.contractType === undefined ? "spot" : info.contractType.endsWith("Perpetual") ? "perpetual" : "future"

export const instrumentFrom = (venue: string, category: Category, info: InstrumentInfo): Instrument => ({
  venue,
  symbol: info.symbol,
  base: info.baseCoin,
  quote: info.quoteCoin,
  kind: kindOf(info),
  // Linear and spot quantities are coins; an inverse contract is 1 USD.
  contractSize: 1,
  inverse: category === "inverse"
})

/** Funding interval in hours from the listing (minutes there); 8 when the listing does not say. */
export const fundingHoursOf = (info: InstrumentInfo | undefined): number =>
  info?.fundingInterval !== undefined && info.fundingInterval > 0 ? info.fundingInterval / 60 : 8

const knownQuotes = ["USDT", "USDC", "USD"]

/** For replays without metadata: BTCUSDT (linear or spot), BTCUSD (inverse), BTCPERP (USDC). */
export const guessInstrument = (venue: string, derivatives: boolean) => (symbol: string): Instrument | undefined => {
  if (derivatives && symbol.endsWith("PERP")) {
    return { venue, symbol, base: symbol.slice(0, -4), quote: "USDC", kind: "perpetual", contractSize: 1, inverse: false }
  }
  const quote = knownQuotes.find((q) => symbol.endsWith(q) && symbol.length > q.length)
  if (quote === undefined) return undefined
  return {
    venue,
    symbol,
    base: symbol.slice(0, -quote.length),
    quote,
    kind: derivatives ? "perpetual" : "spot",
    contractSize: 1,
    inverse: derivatives && quote === "USD"
  }
}

/** The category a REST URL asked for. */
export const categoryOfUrl = (url: string): Category | undefined => {
  try {
    const category = new URL(url).searchParams.get("category")
    return category === "spot" || category === "linear" || category === "inverse" ? category : undefined
  } catch {
    return undefined
  }
}
