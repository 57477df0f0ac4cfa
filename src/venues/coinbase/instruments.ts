/** Coinbase Exchange REST bodies -> instruments, trades and book snapshots. */
import { Schema } from "effect"
import type { Instrument } from "../../domain/instruments.ts"
import type { BookSnapshot, Trade } from "../../domain/records.ts"
import { ProductBook, Products, TradesPage } from "./wire.ts"

export const decodeProducts = Schema.decodeUnknownResult(Products)
export const decodeTradesPage = Schema.decodeUnknownResult(TradesPage)
export const decodeProductBook = Schema.decodeUnknownResult(ProductBook)

export const instrumentsFrom = (venue: string, products: typeof Products.Type): Array<Instrument> =>
  products.map((p) => ({
    venue,
    symbol: p.id,
    base: p.base_currency,
    quote: p.quote_currency,
    kind: "spot",
    contractSize: 1,
    inverse: false
  }))

/** Product ids are BASE-QUOTE; enough for replays that carry no product list. */
export const guessInstrument = (venue: string) => (symbol: string): Instrument | undefined => {
  const [base, quote, ...rest] = symbol.split("-")
  if (base === undefined || quote === undefined || rest.length > 0) return undefined
  return { venue, symbol, base, quote, kind: "spot", contractSize: 1, inverse: false }
}

/** A REST trade: like the feed, `side` is the maker's, so the taker side is its opposite. */
export const restTradeRecord = (venue: string, product: string, t: (typeof TradesPage.Type)[number]): Trade => ({
  kind: "trade",
  venue,
  symbol: product,
  tradeId: String(t.trade_id),
  sequence: t.trade_id,
  price: t.price,
  size: t.size,
  side: t.side === "buy" ? "sell" : "buy",
  timestamp: Date.parse(t.time),
  details: { source: "rest trades", maker_side: t.side }
})

export const bookSnapshotRecord = (venue: string, product: string, book: typeof ProductBook.Type, at: number): BookSnapshot => ({
  kind: "book_snapshot",
  venue,
  symbol: product,
  sequence: book.sequence,
  bids: book.bids.map(([price, size]) => [price, size] as const),
  asks: book.asks.map(([price, size]) => [price, size] as const),
  timestamp: at
})
