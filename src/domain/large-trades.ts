/**
 * Large-trade detection: a trade is stored when its USD notional reaches the
 * threshold of its base asset. Liquidations are stored whatever their size.
 */
import type { Instrument, InstrumentRegistry } from "./instruments.ts"
import type { Liquidation, Trade } from "./records.ts"
import { type LargeTradeRow, tradeRowId } from "./rows.ts"
import { baseAmount, type ReferencePrices, roundUsd, usdNotional } from "./valuation.ts"

export interface LargeTradeThresholds {
  readonly byAsset: Readonly<Record<string, number>>
  readonly otherAssets: number
}

export const defaultThresholds: LargeTradeThresholds = {
  byAsset: { BTC: 100_000, ETH: 50_000 },
  otherAssets: 20_000
}

export const thresholdFor = (thresholds: LargeTradeThresholds, base: string): number =>
  thresholds.byAsset[base] ?? thresholds.otherAssets

/** The contract facts every trade and liquidation row carries in its metadata. */
const contractMetadata = (instrument: Instrument) => ({
  base: instrument.base,
  quote: instrument.quote,
  contract_type: instrument.inverse ? "inverse" : instrument.kind === "spot" || instrument.kind === "option" ? instrument.kind : "linear",
  contract_size: instrument.contractSize
})

export type DetectOutcome = "stored" | "below" | "unknown_instrument" | "unvalued"

/**
 * Sees every trade and liquidation the detector values, large or not, with the instrument and USD value it
 * found (the minute bars, pipeline/bars.ts): one valuation per trade serves both.
 */
export interface ValuedRecordSink {
  trade(instrument: Instrument, trade: Trade, usd: number): void
  liquidation(instrument: Instrument, liquidation: Liquidation, usd: number): void
  /** A record of a known instrument the detector could not value (no USD price for its quote yet). */
  unvalued(instrument: Instrument, record: Trade | Liquidation): void
}

export class LargeTradeDetector {
  private readonly instruments: InstrumentRegistry
  private readonly prices: ReferencePrices
  private readonly thresholds: LargeTradeThresholds

  constructor(instruments: InstrumentRegistry, prices: ReferencePrices, thresholds: LargeTradeThresholds) {
    this.instruments = instruments
    this.prices = prices
    this.thresholds = thresholds
  }

  trade(trade: Trade, out: Array<LargeTradeRow>, valued?: ValuedRecordSink): DetectOutcome {
    const instrument = this.instruments.get(trade.venue, trade.symbol)
    if (instrument === undefined) return "unknown_instrument"
    this.prices.observe(instrument, trade.price, trade.timestamp)
    const value = usdNotional(instrument, trade.price, trade.size, trade.timestamp, this.prices, trade.quoteUsdRate)
    if (value === undefined) {
      valued?.unvalued(instrument, trade)
      return "unvalued"
    }
    valued?.trade(instrument, trade, value.usd)
    if (value.usd < thresholdFor(this.thresholds, instrument.base)) return "below"
    // A liquidation row carries the side of the liquidated order (the taker's when both were).
    const liquidated = trade.liquidatedSide
    const amount = baseAmount(instrument, trade.size, trade.price)
    out.push({
      id: tradeRowId(trade.venue, trade.symbol, trade.tradeId),
      exchange: trade.venue,
      symbol: trade.symbol,
      side: liquidated === "buy" || liquidated === "sell" ? liquidated : trade.side,
      price: trade.price,
      size: trade.size,
      sizeBase: amount.base,
      sizeUnit: amount.unit,
      valueUsd: roundUsd(value.usd),
      timestamp: trade.timestamp,
      tradeId: trade.tradeId,
      isLiquidation: trade.liquidation === true,
      metadata: {
        ...trade.details,
        ...(liquidated === undefined ? {} : { taker_side: trade.side, liquidated_side: liquidated }),
        ...contractMetadata(instrument),
        quote_usd_source: value.quoteUsdSource,
        quote_usd_rate: value.quoteUsdRate
      }
    })
    return "stored"
  }

  liquidation(liquidation: Liquidation, out: Array<LargeTradeRow>, valued?: ValuedRecordSink): DetectOutcome {
    const instrument = this.instruments.get(liquidation.venue, liquidation.symbol)
    if (instrument === undefined) return "unknown_instrument"
    const value = usdNotional(
      instrument,
      liquidation.averagePrice,
      liquidation.filledSize,
      liquidation.timestamp,
      this.prices
    )
    if (value === undefined) {
      valued?.unvalued(instrument, liquidation)
      return "unvalued"
    }
    valued?.liquidation(instrument, liquidation, value.usd)
    // Without the venue's own id, what the event is made of names it: several liquidations can share a millisecond
    // and a side (one id for both lost the second to ON CONFLICT); the same event replayed keeps its id.
    const amount = baseAmount(instrument, liquidation.filledSize, liquidation.averagePrice)
    const tradeId = `liquidation-${liquidation.id ?? `${liquidation.timestamp}-${liquidation.side}-${liquidation.averagePrice}-${liquidation.filledSize}`}`
    out.push({
      id: tradeRowId(liquidation.venue, liquidation.symbol, tradeId),
      exchange: liquidation.venue,
      symbol: liquidation.symbol,
      side: liquidation.side,
      price: liquidation.averagePrice,
      size: liquidation.filledSize,
      sizeBase: amount.base,
      sizeUnit: amount.unit,
      valueUsd: roundUsd(value.usd),
      timestamp: liquidation.timestamp,
      tradeId,
      isLiquidation: true,
      metadata: {
        ...liquidation.details,
        order_price: liquidation.price,
        liquidated_position: liquidation.side === "sell" ? "long" : "short",
        ...contractMetadata(instrument),
        quote_usd_source: value.quoteUsdSource,
        quote_usd_rate: value.quoteUsdRate
      }
    })
    return "stored"
  }
}
