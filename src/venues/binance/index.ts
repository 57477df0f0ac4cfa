/** The two Binance venues: `binance` (spot) and `binance-futures` (USD-M). */
import type { Instrument } from "../../domain/instruments.ts"
import type { NormalizedRecord } from "../../domain/records.ts"
import type { RecordedRest, VenueDefinition } from "../venue.ts"
import {
  decodeDepthSnapshot,
  decodeExchangeInfo,
  decodeOpenInterest,
  decodePremiumIndex,
  guessInstrument,
  instrumentsFrom,
  openInterestRecord,
  premiumIndexRecord,
  resultOrUndefined,
  snapshotRecord,
  symbolOfUrl
} from "./instruments.ts"
import { type Market, runMarket } from "./live.ts"
import { makeDecoder } from "./normalize.ts"
import { futuresRule, spotRule } from "./rules.ts"

const fromRest = (venue: string) => (response: RecordedRest): {
  readonly instruments?: ReadonlyArray<Instrument>
  readonly records?: ReadonlyArray<NormalizedRecord>
} => {
  const path = new URL(response.url).pathname
  const body: unknown = JSON.parse(response.body)
  if (path.endsWith("/exchangeInfo")) {
    const info = resultOrUndefined(decodeExchangeInfo(body))
    return info === undefined ? {} : { instruments: instrumentsFrom(venue, info) }
  }
  if (path.endsWith("/depth")) {
    const symbol = symbolOfUrl(response.url)
    const snapshot = resultOrUndefined(decodeDepthSnapshot(body))
    return symbol === undefined || snapshot === undefined
      ? {}
      : { records: [snapshotRecord(venue, symbol, snapshot, response.receivedAt)] }
  }
  if (path.endsWith("/openInterest")) {
    const oi = resultOrUndefined(decodeOpenInterest(body))
    return oi === undefined ? {} : { records: [openInterestRecord(venue, oi)] }
  }
  if (path.endsWith("/premiumIndex")) {
    const premium = resultOrUndefined(decodePremiumIndex(body))
    return premium === undefined ? {} : { records: [premiumIndexRecord(venue, premium)] }
  }
  return {}
}

const spotMarket: Market = {
  venue: "binance",
  configPrefix: "BINANCE",
  defaultWsUrl: "wss://stream.binance.com:9443",
  defaultRestUrl: "https://api.binance.com",
  restPrefix: "/api/v3",
  defaultWeightLimit: 6000,
  sequenceRule: spotRule,
  depthWeight: (limit) => (limit <= 100 ? 5 : limit <= 500 ? 25 : limit <= 1000 ? 50 : 250),
  // aggTrade rather than trade: one row per taker order at a price (what a whale is), and REST-repairable by id.
  aggTradesWeight: 4,
  feeds: [{
    name: "market",
    path: "/stream",
    streams: (s) => [`${s}@aggTrade`, `${s}@depth@100ms`],
    channels: ["trades", "book"]
  }],
  derivatives: false,
  incomingMessagesPerSecond: 5,
  streamOf: (channel, s) => (channel === "book" ? `${s}@depth@100ms` : channel === "trades" ? `${s}@aggTrade` : undefined)
}

const futuresMarket: Market = {
  venue: "binance-futures",
  configPrefix: "BINANCE_FUTURES",
  defaultWsUrl: "wss://fstream.binance.com",
  defaultRestUrl: "https://fapi.binance.com",
  restPrefix: "/fapi/v1",
  defaultWeightLimit: 2400,
  sequenceRule: futuresRule,
  depthWeight: (limit) => (limit <= 50 ? 2 : limit <= 100 ? 5 : limit <= 500 ? 10 : 20),
  // USD-M routes streams by path: depth is served on /public, trades, mark price and liquidations on /market.
  aggTradesWeight: 20,
  feeds: [
    { name: "public", path: "/public/stream", streams: (s) => [`${s}@depth@100ms`], channels: ["book"] },
    {
      name: "market",
      path: "/market/stream",
      streams: (s) => [`${s}@aggTrade`, `${s}@markPrice@1s`, `${s}@forceOrder`],
      channels: ["trades", "liquidations", "funding"]
    }
  ],
  derivatives: true,
  incomingMessagesPerSecond: 10,
  streamOf: (channel, s) =>
    channel === "book"
      ? `${s}@depth@100ms`
      : channel === "trades"
      ? `${s}@aggTrade`
      : channel === "funding"
      ? `${s}@markPrice@1s`
      : undefined
}

const define = (market: Market, futures: boolean): VenueDefinition => {
  const definition: VenueDefinition = {
    id: market.venue,
    decodeFrame: makeDecoder(market.venue),
    sequenceRule: market.sequenceRule,
    fromRest: fromRest(market.venue),
    guessInstrument: guessInstrument(market.venue, futures),
    live: (runtime) => runMarket(market, definition)(runtime)
  }
  return definition
}

export const binance = define(spotMarket, false)
export const binanceFutures = define(futuresMarket, true)
