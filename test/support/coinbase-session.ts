/**
 * Facts about the real 2026 Coinbase Advanced Trade session, derived straight
 * from its raw messages (no normalizer, no BookSync), to check ours against.
 */
export interface Top {
  readonly product: string
  readonly bestBid: number
  readonly bestAsk: number
}

/**
 * Rebuilds each product's book from the raw `l2_data` events and calls `visit`
 * after every message with its position among them, the product it touched
 * and that book's best bid and ask.
 */
export const rebuildBooks = (messages: ReadonlyArray<Record<string, any>>, visit: (message: Record<string, any>, tops: Map<string, Top>) => void) => {
  const books = new Map<string, { bid: Map<string, number>; offer: Map<string, number> }>()
  const tops = new Map<string, Top>()
  for (const message of messages) {
    if (message.channel === "l2_data") {
      for (const event of message.events) {
        const book = books.get(event.product_id) ?? { bid: new Map(), offer: new Map() }
        books.set(event.product_id, book)
        if (event.type === "snapshot") (book.bid.clear(), book.offer.clear())
        for (const u of event.updates) {
          const side = u.side === "bid" ? book.bid : book.offer
          if (Number(u.new_quantity) === 0) side.delete(u.price_level)
          else side.set(u.price_level, Number(u.new_quantity))
        }
        tops.set(event.product_id, {
          product: event.product_id,
          bestBid: Math.max(...[...book.bid.keys()].map(Number)),
          bestAsk: Math.min(...[...book.offer.keys()].map(Number))
        })
      }
    }
    visit(message, tops)
  }
}

/**
 * The taker side of every trade that can be placed against the book at that
 * moment: at or through the best ask a buyer lifted the offer, at or through
 * the best bid a seller hit the bid. Trades inside the spread are left out.
 */
export const takerSidesFromBook = (messages: ReadonlyArray<Record<string, any>>) => {
  const sides = new Map<string, "buy" | "sell">()
  let inside = 0
  rebuildBooks(messages, (message, tops) => {
    if (message.channel !== "market_trades") return
    for (const event of message.events) {
      if (event.type !== "update") continue
      for (const t of event.trades) {
        const top = tops.get(t.product_id)
        if (top === undefined) continue
        const price = Number(t.price)
        if (price >= top.bestAsk) sides.set(t.trade_id, "buy")
        else if (price <= top.bestBid) sides.set(t.trade_id, "sell")
        else inside++
      }
    }
  })
  return { sides, inside }
}
