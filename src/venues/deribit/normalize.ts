/**
 * Deribit JSON-RPC frames -> normalized records. Subscription notifications
 * carry the data; answers to our requests (subscribe, set_heartbeat, test) are
 * bookkeeping, and an answer with an `error` is a typed DecodeError naming
 * Deribit's code. Heartbeat requests are answered by live.ts, not here.
 *
 * Amounts: inverse futures and perpetuals trade in USD (`amount` is USD), linear
 * ones and options in the base coin. Option prices are in the base coin; each
 * trade carries Deribit's index price, which values it in USD.
 */
import { Result, Schema } from "effect"
import type { DecodeError } from "../../domain/errors.ts"
import { decodeFailure, parseFrame, unreadable, WireFailure, withSchemaFallback } from "../../domain/frames.ts"
import type { Level, NormalizedRecord, Trade } from "../../domain/records.ts"
import { type DeribitTrade, readBook, readTicker, readTrades, RpcResponse, VolatilityIndex } from "./wire.ts"

type Outcome = DecodeError | undefined | typeof unreadable

const decodeVolatility = Schema.decodeUnknownResult(VolatilityIndex)
const decodeResponse = Schema.decodeUnknownResult(RpcResponse)

const levels = (raw: ReadonlyArray<readonly ["new" | "change" | "delete", number, number]>): Array<Level> => {
  const out = new Array<Level>(raw.length)
  for (let i = 0; i < raw.length; i++) {
    const level = raw[i]!
    out[i] = [level[1], level[0] === "delete" ? 0 : level[2]]
  }
  return out
}

const months: Record<string, number> = { JAN: 0, FEB: 1, MAR: 2, APR: 3, MAY: 4, JUN: 5, JUL: 6, AUG: 7, SEP: 8, OCT: 9, NOV: 10, DEC: 11 }

/** BTC-24SEP21-40000-P: currency, expiry (Deribit expires at 08:00 UTC), strike and type, from the name alone. */
export const parseOptionName = (name: string) => {
  const match = /^([A-Z]+)(?:_[A-Z]+)?-(\d{1,2})([A-Z]{3})(\d{2})-(\d+(?:d\d+)?)-([CP])$/.exec(name)
  if (match === null || months[match[3]!] === undefined) return undefined
  return {
    currency: match[1]!,
    expiry: Date.UTC(2000 + Number(match[4]), months[match[3]!]!, Number(match[2]), 8),
    // Fractional strikes are written with a "d" (XRP_USDC-...-0d625-C).
    strike: Number(match[5]!.replace("d", ".")),
    optionType: match[6] === "C" ? ("call" as const) : ("put" as const)
  }
}

// Tickers repeat the same few thousand option names: parse each once.
const parsedOptions = new Map<string, ReturnType<typeof parseOptionName>>()
const optionNamed = (name: string) => {
  let parsed = parsedOptions.get(name)
  if (parsed === undefined && !parsedOptions.has(name)) {
    parsed = parseOptionName(name)
    if (parsedOptions.size < 100_000) parsedOptions.set(name, parsed)
  }
  return parsed
}

/** Option names are CURRENCY-DMMMYY-STRIKE-C|P; futures CURRENCY-DMMMYY; perpetuals CURRENCY-PERPETUAL. */
export const isOption = (instrument: string) => /-[CP]$/.test(instrument)
const isCoinQuotedOption = (instrument: string) => isOption(instrument) && !/^[A-Z]+_/.test(instrument)

const opposite = (side: "buy" | "sell") => (side === "buy" ? "sell" : "buy")

/** Deribit's `liquidation`: "M" the maker's order was liquidated, "T" the taker's, "MT" both. */
const liquidatedSide = (flag: string, takerSide: "buy" | "sell"): "buy" | "sell" | "both" | undefined =>
  flag === "M" ? opposite(takerSide) : flag === "T" ? takerSide : flag === "MT" ? "both" : undefined

const optionalLiquidatedSide = (flag: string, takerSide: "buy" | "sell") => {
  const side = liquidatedSide(flag, takerSide)
  return side === undefined ? {} : { liquidatedSide: side }
}

/** One Deribit trade, from the feed or from REST (the same documented fields). */
export const tradeRecord = (venue: string, t: typeof DeribitTrade.Type, source: string): Trade => ({
  kind: "trade",
  venue,
  symbol: t.instrument_name,
  tradeId: t.trade_id,
  sequence: t.trade_seq,
  price: t.price,
  size: t.amount,
  side: t.direction,
  timestamp: t.timestamp,
  ...(t.liquidation === undefined ? {} : { liquidation: true, ...optionalLiquidatedSide(t.liquidation, t.direction) }),
  // Coin-quoted options are valued at the trade's index price; linear (XRP_USDC-...) ones are quoted in USDC.
  ...(isCoinQuotedOption(t.instrument_name) ? { quoteUsdRate: t.index_price } : {}),
  details: {
    source,
    trade_seq: t.trade_seq,
    index_price: t.index_price,
    ...(t.mark_price === undefined ? {} : { mark_price: t.mark_price }),
    ...(t.iv === undefined ? {} : { iv: t.iv }),
    // "M": the maker side was liquidated, "T": the taker side, "MT": both.
    ...(t.liquidation === undefined ? {} : { liquidation: t.liquidation }),
    ...(t.block_trade_id === undefined ? {} : { block_trade_id: t.block_trade_id })
  }
})

export const makeDecoder = (venue: string) => {
  const failure = decodeFailure(venue)

  const notification = (channel: string, data: unknown, frame: string, out: Array<NormalizedRecord>, fast: boolean): Outcome => {
    const kind = channel.slice(0, channel.indexOf("."))
    switch (kind) {
      case "trades": {
        const trades = readTrades(data, fast)
        if (trades === undefined) return unreadable
        if (trades instanceof WireFailure) return failure("trades", trades.message, frame)
        for (const t of trades) out.push(tradeRecord(venue, t, "trades"))
        return undefined
      }
      case "book": {
        const b = readBook(data, fast)
        if (b === undefined) return unreadable
        if (b instanceof WireFailure) return failure("book", b.message, frame)
        if (b.type === "snapshot") {
          out.push({ kind: "book_snapshot", venue, symbol: b.instrument_name, sequence: b.change_id, bids: levels(b.bids), asks: levels(b.asks), timestamp: b.timestamp })
        } else {
          out.push({
            kind: "book_delta",
            venue,
            symbol: b.instrument_name,
            firstSequence: b.change_id,
            lastSequence: b.change_id,
            ...(b.prev_change_id === undefined ? {} : { previousSequence: b.prev_change_id }),
            bids: levels(b.bids),
            asks: levels(b.asks),
            timestamp: b.timestamp
          })
        }
        return undefined
      }
      case "ticker": {
        const t = readTicker(data, fast)
        if (t === undefined) return unreadable
        if (t instanceof WireFailure) return failure("ticker", t.message, frame)
        if (t.funding_8h !== undefined) {
          out.push({
            kind: "funding",
            venue,
            symbol: t.instrument_name,
            // Deribit funds continuously; funding_8h is the rate over the last 8 hours, the comparable figure.
            rate: t.funding_8h,
            predictedRate: null,
            markPrice: t.mark_price,
            indexPrice: t.index_price,
            nextFundingTime: null,
            timestamp: t.timestamp,
            details: { source: "ticker", current_funding: t.current_funding ?? null, funding_basis: "funding_8h (continuous funding)" }
          })
        }
        const option = isOption(t.instrument_name) ? optionNamed(t.instrument_name) : undefined
        if (option !== undefined) {
          out.push({
            kind: "option_quote",
            venue,
            symbol: t.instrument_name,
            ...option,
            markPrice: t.mark_price,
            markIv: t.mark_iv ?? null,
            bidIv: t.bid_iv ?? null,
            askIv: t.ask_iv ?? null,
            bestBid: t.best_bid_price ?? null,
            bestAsk: t.best_ask_price ?? null,
            greeks: t.greeks ?? null,
            openInterest: t.open_interest,
            underlyingPrice: t.underlying_price ?? null,
            underlyingIndex: t.underlying_index ?? null,
            indexPrice: t.index_price,
            timestamp: t.timestamp
          })
        }
        return undefined
      }
      case "deribit_volatility_index": {
        const decoded = decodeVolatility(data)
        if (Result.isFailure(decoded)) return failure("volatility_index", decoded.failure.message, frame)
        const v = decoded.success
        out.push({ kind: "volatility_index", venue, symbol: v.index_name, value: v.volatility, timestamp: v.timestamp })
        return undefined
      }
      default:
        return failure(kind, "unknown channel", frame)
    }
  }

  return withSchemaFallback((frame: string, out: Array<NormalizedRecord>, fast: boolean): Outcome => {
    const parsed = parseFrame(frame, { arrays: false })
    if (typeof parsed === "string") return failure("unknown", parsed, frame)
    const message = parsed as { readonly method?: unknown; readonly params?: { readonly channel?: unknown; readonly data?: unknown } }
    if (message.method === "subscription") {
      const channel = message.params?.channel
      if (typeof channel !== "string") return failure("subscription", "no channel", frame)
      return notification(channel, message.params?.data, frame, out, fast)
    }
    // Heartbeats are answered by the connection (public/test); nothing to store.
    if (message.method === "heartbeat") return undefined
    const response = decodeResponse(parsed)
    if (Result.isFailure(response)) return failure("unknown", "neither a notification nor a JSON-RPC answer", frame)
    if (response.success.error !== undefined) {
      return failure("rpc", `venue error ${response.success.error.code}: ${response.success.error.message}`, frame)
    }
    return undefined
  })
}
