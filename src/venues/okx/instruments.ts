/**
 * OKX instruments from `/api/v5/public/instruments` and what a contract is
 * worth: spot quantities are coins; a linear swap or future is `ctVal` x
 * `ctMult` coins of `ctValCcy` (BTC-USDT-SWAP: 0.01 BTC); an inverse one is
 * `ctVal` USD (BTC-USD-SWAP: 100 USD).
 */
import { Result, Schema } from "effect"
import { decodeEach, type Salvaged } from "../../domain/frames.ts"
import type { Instrument } from "../../domain/instruments.ts"
import { InstrumentListing, RestAnswer } from "./wire.ts"

const decodeAnswer = Schema.decodeUnknownResult(RestAnswer)
const eachListing = decodeEach(InstrumentListing)

/** A REST answer's data, or OKX's error (code other than "0"). */
export const restData = (body: unknown): Result.Result<ReadonlyArray<unknown>, string> => {
  const answer = decodeAnswer(body)
  if (Result.isFailure(answer)) return Result.fail(answer.failure.message)
  return answer.success.code === "0" ? Result.succeed(answer.success.data) : Result.fail(`OKX error ${answer.success.code}: ${answer.success.msg ?? ""}`)
}

export const decodeInstruments = (body: unknown): Result.Result<Salvaged<InstrumentListing>, string> =>
  Result.map(restData(body), (data) => eachListing(data)!)

/** BTC-USDT-SWAP -> BTC, USDT; BTC-USD-220527 -> BTC, USD; BTC-USDT -> BTC, USDT. */
const pair = (listing: InstrumentListing): [string, string] => {
  const [base, quote] = (listing.instFamily ?? listing.uly ?? listing.instId).split("-")
  return [listing.baseCcy !== undefined && listing.baseCcy !== "" ? listing.baseCcy : base!, listing.quoteCcy !== undefined && listing.quoteCcy !== "" ? listing.quoteCcy : (quote ?? "")]
}

export const instrumentFrom = (venue: string, listing: InstrumentListing): Instrument | undefined => {
  const [base, quote] = pair(listing)
  if (listing.instType === "SPOT") return { venue, symbol: listing.instId, base, quote, kind: "spot", contractSize: 1, inverse: false }
  if (listing.instType !== "SWAP" && listing.instType !== "FUTURES") return undefined
  const value = Number(listing.ctVal) * (listing.ctMult === undefined || listing.ctMult === "" ? 1 : Number(listing.ctMult))
  // "1e400" is Infinity: a contract size no valuation could use.
  if (!(Number.isFinite(value) && value > 0)) return undefined
  return {
    venue,
    symbol: listing.instId,
    base,
    quote,
    kind: listing.instType === "SWAP" ? "perpetual" : "future",
    contractSize: value,
    inverse: listing.ctType === "inverse",
    // Swap and futures sizes (trades, liquidations, open interest) count contracts, even of one coin.
    sizeUnit: "contracts"
  }
}

/** For replays without metadata: spot from the name; derivatives need the listing's contract value. */
export const guessInstrument = (venue: string) => (symbol: string): Instrument | undefined => {
  const parts = symbol.split("-")
  if (parts.length !== 2) return undefined
  return { venue, symbol, base: parts[0]!, quote: parts[1]!, kind: "spot", contractSize: 1, inverse: false }
}
