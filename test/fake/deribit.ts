/**
 * A fake Deribit on loopback speaking API v2: JSON-RPC 2.0 over one WebSocket
 * (`public/subscribe`, `public/unsubscribe`, `public/set_heartbeat` with
 * `test_request`s that must be answered by `public/test` or the socket is
 * closed, as Deribit does) and the REST methods under `/api/v2/public/`.
 *
 * Instruments and option tickers are the recorded ones (shared/fixtures/recorded
 * DERIBIT.0 and DERIBIT.ws.1.0). The recordings hold no futures trades, books
 * or funding, so those are synthesized in Deribit's documented formats: a
 * deterministic market in BTC-PERPETUAL, ETH-PERPETUAL and BTC-25MAR22 (trades
 * numbered by `trade_seq`, USD amounts for these inverse contracts, some
 * flagged `liquidation`), book changes chained by `prev_change_id`, perpetual
 * tickers with funding, DVOL every second, and option trades in BTC with the
 * index price. Faults (`faults`, see faults.ts): trades or book changes lost,
 * duplicated, reordered or renamed in transit, a silent open socket (no
 * heartbeats either), REST errors and delays; `dropConnections` with or
 * without a close frame; `inject` of raw frames.
 */
import { readFileSync } from "node:fs"
import type { IncomingMessage, ServerResponse } from "node:http"
import type { WebSocket } from "ws"
import { parseRecording } from "../../src/replay/recorded.ts"
import { fixtures } from "./binance.ts"
import { FaultPlan } from "./faults.ts"
import { LoopbackVenue } from "./loopback.ts"

type Message = Record<string, any>

interface Client {
  readonly ws: WebSocket
  readonly channels: Set<string>
  heartbeatMs: number
  unanswered: number
}

interface Book {
  readonly bids: Map<number, number>
  readonly asks: Map<number, number>
  changeId: number
}

/** The instrument a notification is about: routed faults pair messages of one stream. */
const streamOf = (data: unknown): string =>
  String((Array.isArray(data) ? data[0] : (data as Message)).instrument_name)

export const activeFutures = ["BTC-PERPETUAL", "ETH-PERPETUAL", "BTC-25MAR22"] as const
export const activeOption = "BTC-24SEP21-34000-P"

export class FakeDeribit extends LoopbackVenue<Client> {
  readonly trades = new Map<string, Array<Message>>()
  readonly sentTrades: Array<Message> = []
  readonly lost: Array<Message> = []
  readonly requests: Array<Message> = []
  /** When each request arrived (one connection per client). */
  readonly receivedAt: Array<number> = []
  readonly restCalls: Array<string> = []
  readonly faults = new FaultPlan()
  tests = 0
  private readonly instruments = new Map<string, Array<Message>>()
  private readonly optionTickers = new Map<string, Message>()

  /** The recorded ticker of an option (its greeks as Deribit computed them). */
  optionTicker(name: string): Message | undefined {
    return this.optionTickers.get(name)
  }
  private readonly books = new Map<string, Book>()
  private readonly prices = new Map<string, number>([["BTC", 50_000], ["ETH", 3_000]])
  private readonly frameIntervalMs: number
  private step = 0
  private started = false
  private frozen = false

  private constructor(frameIntervalMs: number) {
    super()
    this.frameIntervalMs = frameIntervalMs
    for (const response of parseRecording(readFileSync(`${fixtures}DERIBIT.0`, "utf8")).rest) {
      const currency = new URL(response.url).searchParams.get("currency")!
      this.instruments.set(currency, JSON.parse(response.body).result)
    }
    for (const frame of parseRecording(readFileSync(`${fixtures}DERIBIT.ws.1.0`, "utf8")).frames) {
      const message = JSON.parse(frame.text)
      if (message.params?.channel?.startsWith("ticker.")) this.optionTickers.set(message.params.data.instrument_name, message.params.data)
    }
    this.server.on("upgrade", (req, socket, head) => this.wss.handleUpgrade(req, socket, head, (ws) => this.connect(ws)))
  }

  static async start(options: { readonly frameIntervalMs?: number } = {}): Promise<FakeDeribit> {
    const fake = new FakeDeribit(options.frameIntervalMs ?? 5)
    await fake.listen()
    return fake
  }

  get restUrl(): string {
    return `http://127.0.0.1:${this.port}/api/v2`
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ws/api/v2`
  }

  loseNext(kind: "trade" | "book", count: number): void {
    this.faults.loseNext(kind, count)
  }

  /** Stops the synthetic market: what has traded is all there will be. */
  freeze(): void {
    this.frozen = true
  }

  /** Every trade of `instrument` so far, in order. */
  played(instrument: string): ReadonlyArray<Message> {
    return this.trades.get(instrument) ?? []
  }

  private connect(ws: WebSocket): void {
    const client: Client = { ws, channels: new Set(), heartbeatMs: 0, unanswered: 0 }
    this.track(client)
    ws.on("message", (raw) => {
      this.receivedAt.push(Date.now())
      this.request(client, JSON.parse(String(raw)))
    })
  }

  private reply(client: Client, id: number, result: unknown): void {
    this.deliver(client, { jsonrpc: "2.0", id, result, usIn: Date.now() * 1000, usOut: Date.now() * 1000 })
  }

  private request(client: Client, message: Message): void {
    this.requests.push(message)
    const channels: Array<string> = message.params?.channels ?? []
    switch (message.method) {
      case "public/set_heartbeat":
        client.heartbeatMs = message.params.interval * 1000
        this.reply(client, message.id, "ok")
        this.heartbeat(client)
        return
      case "public/test":
        this.tests++
        client.unanswered = 0
        this.reply(client, message.id, { version: "1.2.26" })
        return
      case "public/subscribe":
        for (const channel of channels) client.channels.add(channel)
        this.reply(client, message.id, channels)
        for (const channel of channels) {
          const book = /^book\.(.+)\.100ms$/.exec(channel)
          if (book !== null) this.notify(client, channel, this.snapshotOf(book[1]!))
        }
        if (!this.started) {
          this.started = true
          this.later(this.frameIntervalMs, () => this.pump())
          this.dvol()
        }
        return
      case "public/unsubscribe":
        for (const channel of channels) client.channels.delete(channel)
        this.reply(client, message.id, channels)
        return
      default:
        this.deliver(client, { jsonrpc: "2.0", id: message.id, error: { code: -32601, message: "Method not found" } })
    }
  }

  private heartbeat(client: Client): void {
    if (client.ws.readyState !== client.ws.OPEN) return
    // Deribit closes a connection that leaves a test_request unanswered.
    if (client.unanswered > 0) return client.ws.close(1000, "heartbeat not answered")
    if (!this.faults.paused) {
      client.unanswered++
      this.deliver(client, { jsonrpc: "2.0", method: "heartbeat", params: { type: "test_request" } })
    }
    this.later(client.heartbeatMs, () => this.heartbeat(client))
  }

  private bookOf(instrument: string): Book {
    let book = this.books.get(instrument)
    if (book === undefined) {
      const mid = this.priceOf(instrument)
      const tick = instrument.startsWith("BTC") ? 0.5 : 0.05
      book = { bids: new Map(), asks: new Map(), changeId: 1_000_000 }
      for (let i = 1; i <= 10; i++) {
        book.bids.set(mid - i * tick, i * 1000)
        book.asks.set(mid + i * tick, i * 1000)
      }
      this.books.set(instrument, book)
    }
    return book
  }

  private priceOf(instrument: string): number {
    return this.prices.get(instrument.split("-")[0]!)!
  }

  private snapshotOf(instrument: string): Message {
    const book = this.bookOf(instrument)
    return {
      type: "snapshot",
      timestamp: Date.now(),
      instrument_name: instrument,
      change_id: book.changeId,
      bids: [...book.bids].sort((a, b) => b[0] - a[0]).map(([p, a]) => ["new", p, a]),
      asks: [...book.asks].sort((a, b) => a[0] - b[0]).map(([p, a]) => ["new", p, a])
    }
  }

  /** One step of the synthetic market: a book change, a trade, a ticker, round robin. */
  private pump(): void {
    if (this.frozen) return
    const step = this.step++
    const instrument = activeFutures[step % activeFutures.length]!
    const now = Date.now()
    switch (Math.floor(step / activeFutures.length) % 3) {
      case 0: {
        const book = this.bookOf(instrument)
        const tick = instrument.startsWith("BTC") ? 0.5 : 0.05
        const bid = [...book.bids.keys()].sort((a, b) => b - a)[step % 5]!
        const amount = 500 + (step % 17) * 100
        const previous = book.changeId
        book.changeId += 1
        book.bids.set(bid, amount)
        const ask = [...book.asks.keys()].sort((a, b) => a - b)[0]! + tick * ((step % 3) + 1)
        book.asks.set(ask, amount)
        this.publish(`book.${instrument}.100ms`, {
          type: "change",
          timestamp: now,
          prev_change_id: previous,
          instrument_name: instrument,
          change_id: book.changeId,
          bids: [["change", bid, amount]],
          asks: [[book.asks.has(ask) ? "change" : "new", ask, amount]]
        }, "book")
        break
      }
      case 1: {
        const list = this.trades.get(instrument) ?? []
        this.trades.set(instrument, list)
        const usd = instrument.startsWith("BTC") ? 10 * (500 + (step % 50) * 997) : 1 * (200 + (step % 40) * 1013)
        const trade = {
          trade_seq: list.length + 1,
          trade_id: `${instrument.split("-")[0]}-${1000 + step}`,
          timestamp: now,
          tick_direction: 0,
          price: this.priceOf(instrument) + (step % 7) * 0.5,
          mark_price: this.priceOf(instrument),
          instrument_name: instrument,
          index_price: this.priceOf(instrument) - 1,
          direction: step % 2 === 0 ? "buy" : "sell",
          amount: usd,
          ...(step % 11 === 0 ? { liquidation: "T" } : {})
        }
        list.push(trade)
        this.publish(`trades.future.${instrument.split("-")[0]}.100ms`, [trade], "trade")
        if (step % 4 === 0) this.optionTrade(now)
        break
      }
      default: {
        if (!instrument.endsWith("PERPETUAL")) break
        const price = this.priceOf(instrument)
        this.publish(`ticker.${instrument}.100ms`, {
          instrument_name: instrument,
          timestamp: now,
          state: "open",
          mark_price: price,
          index_price: price - 1,
          open_interest: instrument.startsWith("BTC") ? 1_200_000_000 : 500_000_000,
          current_funding: 0.00001,
          funding_8h: 0.0001 + (step % 5) * 0.00001,
          estimated_delivery_price: price - 1,
          best_bid_price: price - 0.5,
          best_ask_price: price + 0.5
        }, undefined)
      }
    }
    this.later(this.frameIntervalMs, () => this.pump())
  }

  private optionTrade(now: number): void {
    const list = this.trades.get(activeOption) ?? []
    this.trades.set(activeOption, list)
    const trade = {
      trade_seq: list.length + 1,
      trade_id: `OPT-${now}-${list.length}`,
      timestamp: now,
      tick_direction: 1,
      price: 0.0125,
      mark_price: 0.0124,
      iv: 71.5,
      instrument_name: activeOption,
      index_price: this.prices.get("BTC")!,
      direction: "buy",
      amount: 25
    }
    list.push(trade)
    this.publish("trades.option.BTC.100ms", [trade], "trade")
  }

  private dvol(): void {
    for (const [index, value] of [["btc_usd", 55.25], ["eth_usd", 68.5]] as const) {
      this.publish(`deribit_volatility_index.${index}`, { index_name: index, volatility: value, timestamp: Date.now() }, undefined)
    }
    this.later(1000, () => this.dvol())
  }

  private publish(channel: string, data: unknown, kind: "trade" | "book" | undefined): void {
    let lost = false
    for (const client of this.clients) {
      if (!client.channels.has(channel)) continue
      const message = { jsonrpc: "2.0", method: "subscription", params: { channel, data } }
      if (kind === undefined) {
        this.deliver(client, message)
        continue
      }
      this.faults.route(`${kind}:${streamOf(data)}`, message, (m) => {
        if (kind === "trade") this.sentTrades.push(...(m.params.data as Array<Message>))
        this.deliver(client, m)
      }, () => {
        if (!lost) this.lost.push({ channel, data })
        lost = true
      })
    }
  }

  private notify(client: Client, channel: string, data: unknown): void {
    this.deliver(client, { jsonrpc: "2.0", method: "subscription", params: { channel, data } })
  }

  private deliver(client: Client, message: Message): void {
    if (client.ws.readyState === client.ws.OPEN && !this.faults.paused) client.ws.send(JSON.stringify(message))
  }

  protected rest(req: IncomingMessage, res: ServerResponse): void {
    if (this.faults.restDelayMs > 0) {
      this.later(this.faults.restDelayMs, () => this.answer(req, res))
      return
    }
    this.answer(req, res)
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", `http://127.0.0.1:${this.port}`)
    this.restCalls.push(`${url.pathname}${url.search}`)
    const failure = this.faults.takeFailure(url.pathname)
    if (failure !== undefined) {
      const headers: Record<string, string> = { "content-type": "application/json" }
      if (failure.retryAfter !== undefined) headers["retry-after"] = String(failure.retryAfter)
      res.writeHead(failure.status, headers).end(JSON.stringify({ jsonrpc: "2.0", error: { code: 10028, message: "too_many_requests" } }))
      return
    }
    const q = (name: string) => url.searchParams.get(name) ?? ""
    const ok = (result: unknown): void => {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", result, usIn: 0, usOut: 0, usDiff: 0, testnet: false }))
    }
    const method = url.pathname.replace(/^\/api\/v2\//, "")
    const now = Date.now()
    switch (method) {
      case "public/get_instruments":
        return ok((this.instruments.get(q("currency")) ?? []).filter((i) => q("kind") === "" || i.kind === q("kind")))
      case "public/get_book_summary_by_currency": {
        const listed = (this.instruments.get(q("currency")) ?? []).filter((i) => i.kind === q("kind"))
        if (q("kind") === "future") {
          return ok(listed.map((i) => ({
            instrument_name: i.instrument_name,
            open_interest: i.instrument_name === "BTC-PERPETUAL" ? 1_200_000_000 : i.instrument_name === "ETH-PERPETUAL" ? 500_000_000 : 10_000_000,
            mark_price: this.priceOf(i.instrument_name),
            creation_timestamp: now,
            estimated_delivery_price: this.priceOf(i.instrument_name) - 1
          })))
        }
        return ok(listed.filter((i) => this.optionTickers.has(i.instrument_name)).map((i) => {
          const t = this.optionTickers.get(i.instrument_name)!
          return {
            instrument_name: i.instrument_name,
            open_interest: t.open_interest,
            mark_price: t.mark_price,
            mark_iv: t.mark_iv,
            bid_price: t.best_bid_price,
            ask_price: t.best_ask_price,
            underlying_price: t.underlying_price,
            underlying_index: t.underlying_index,
            // The recorded values were true at the recording's moment (the options expired in 2021): dated so.
            creation_timestamp: t.timestamp
          }
        }))
      }
      case "public/ticker": {
        const ticker = this.optionTickers.get(q("instrument_name"))
        if (ticker === undefined) {
          res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", error: { code: 10004, message: "instrument_not_found" } }))
          return
        }
        return ok({ ...ticker, timestamp: now })
      }
      case "public/get_last_trades_by_instrument": {
        const from = Number(q("start_seq"))
        const to = Number(q("end_seq"))
        const count = Number(q("count") || 10)
        const matching = (this.trades.get(q("instrument_name")) ?? []).filter((t) => t.trade_seq >= from && t.trade_seq <= to)
        return ok({ trades: matching.slice(0, count), has_more: matching.length > count })
      }
      default:
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32601, message: "Method not found" } }))
    }
  }
}
