/**
 * A fake Bybit on loopback speaking v5: WebSockets on /v5/public/spot,
 * /linear and /inverse (`op` subscribe, unsubscribe and ping, answered as
 * Bybit answers them; spot refuses more than 10 args a request) and the REST
 * endpoints the collector calls (`/v5/market/instruments-info`,
 * `/v5/market/recent-trade`).
 *
 * Spot and linear replay the real session of 2026-08-09
 * (shared/fixtures/sessions/BYBIT.jsonl.zst) with its times moved to now:
 * order books, trades, tickers (snapshot + partial deltas) and the two
 * instruments-info answers. Like a live venue each market has one timeline
 * that starts with the first subscriber and moves on whether anyone listens;
 * the fake keeps the true books, so a (re)subscription gets a current
 * snapshot. What the session lacks is synthesized in Bybit's documented
 * formats and marked so: `allLiquidation` (the session saw none in its 24 s),
 * and the inverse market (BTCUSD, ETHUSD: the linear BTC and ETH streams with
 * sizes in 1-USD contracts, open interest in USD and its value in coins).
 *
 * Faults (`faults`, see faults.ts) aim at `orderbook:<symbol>` and
 * `publicTrade:<symbol>`: lost, duplicated, reordered or renamed in transit;
 * a silent open socket; REST errors and delays. `dropConnections`, `inject`,
 * `freeze`.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import type { WebSocket } from "ws"
import { session } from "../support/fixtures.ts"
import { FaultPlan } from "./faults.ts"
import { LoopbackVenue } from "./loopback.ts"

type Message = Record<string, any>
type Category = "spot" | "linear" | "inverse"

interface Book {
  readonly bids: Map<string, string>
  readonly asks: Map<string, string>
  u: number
  seq: number
}

interface Market {
  readonly frames: Array<Message>
  position: number
  /** Passes over the recording so far (with `loop`); each later pass is shifted in time and renames its trade ids. */
  pass: number
  started: boolean
  readonly books: Map<string, Book>
  /** Every trade that went by (delivered or lost), oldest first. */
  readonly trades: Array<Message>
  readonly listings: Array<Message>
}

interface Client {
  readonly ws: WebSocket
  readonly category: Category
  readonly topics: Set<string>
  readonly id: string
}

/** The recorded session, per market (connection 2 was /linear, 3 /spot), and the two instruments-info answers. */
const loadSession = () => {
  const recording = session("BYBIT.jsonl.zst")
  const byConnection = (connection: string) => recording.frames.filter((f) => f.connection === connection).map((f) => JSON.parse(f.text) as Message).filter((m) => typeof m.topic === "string")
  const listings = (category: string) => JSON.parse(recording.rest.find((r) => r.url.includes(`category=${category}`))!.body).result.list as Array<Message>
  return { linear: byConnection("BYBIT.ws.2"), spot: byConnection("BYBIT.ws.3"), linearListings: listings("linear"), spotListings: listings("spot") }
}

const contracts = (coins: string, price: number): string => (Number(coins) === 0 ? "0" : String(Math.max(1, Math.round(Number(coins) * price))))

/** The inverse market, derived from the linear BTC and ETH streams: same prices, sizes in 1-USD contracts (marked synthetic). */
const inverseOf = (linear: ReadonlyArray<Message>): Array<Message> => {
  const out: Array<Message> = []
  const lastPrice = new Map<string, number>()
  for (const m of linear) {
    const [channel] = m.topic.split(".")
    const symbol = m.topic.slice(m.topic.lastIndexOf(".") + 1) as string
    if (symbol !== "BTCUSDT" && symbol !== "ETHUSDT") continue
    const inverse = symbol.replace("USDT", "USD")
    const topic = m.topic.replace(symbol, inverse)
    if (channel === "orderbook") {
      const levels = (side: Array<[string, string]>) => side.map(([p, q]) => [p, contracts(q, Number(p))])
      out.push({ ...m, topic, data: { ...m.data, s: inverse, b: levels(m.data.b), a: levels(m.data.a) }, synthetic: true })
    } else if (channel === "publicTrade") {
      out.push({ ...m, topic, data: m.data.map((t: Message) => ({ ...t, s: inverse, v: contracts(t.v, Number(t.p)), i: `inv-${t.i}` })), synthetic: true })
      lastPrice.set(inverse, Number(m.data[m.data.length - 1].p))
    } else if (channel === "tickers") {
      const data: Message = { ...m.data, symbol: inverse }
      const mark = Number(m.data.markPrice ?? lastPrice.get(inverse) ?? 0)
      if (m.data.openInterest !== undefined && mark > 0) {
        data.openInterest = String(Math.round(Number(m.data.openInterest) * mark))
        data.openInterestValue = m.data.openInterest
      } else delete data.openInterestValue
      delete data.singleOpenInterest
      delete data.singleOpenInterestValue
      out.push({ ...m, topic, data, synthetic: true })
    }
  }
  return out
}

const inverseListings = ["BTC", "ETH"].map((base) => ({
  symbol: `${base}USD`, contractType: "InversePerpetual", status: "Trading", baseCoin: base, quoteCoin: "USD", settleCoin: base,
  launchTime: "1585526400000", deliveryTime: "0", fundingInterval: 480, lotSizeFilter: { qtyStep: "1" }
}))

export class FakeBybit extends LoopbackVenue<Client> {
  readonly faults = new FaultPlan()
  readonly restCalls: Array<string> = []
  readonly controlMessages: Array<{ readonly category: Category; readonly message: Message }> = []
  /** Trades delivered to at least one client, and ones lost in transit. */
  readonly sentTrades: Array<Message> = []
  readonly lostFrames: Array<Message> = []
  pings = 0
  private readonly markets: Record<Category, Market>
  private readonly frameIntervalMs: number
  private readonly liquidationEvery: number
  private readonly loop: boolean
  private readonly span: number
  private frozen = false
  private offset = 0
  private nextClient = 0

  private constructor(options: { readonly frameIntervalMs: number; readonly liquidationEvery: number; readonly loop: boolean }) {
    super()
    this.frameIntervalMs = options.frameIntervalMs
    this.liquidationEvery = options.liquidationEvery
    this.loop = options.loop
    const recorded = loadSession()
    this.span = Math.max(...recorded.linear.map((m) => m.ts)) - Math.min(...recorded.linear.map((m) => m.ts)) + 1000
    const market = (frames: Array<Message>, listings: Array<Message>): Market => ({ frames, position: 0, pass: 0, started: false, books: new Map(), trades: [], listings })
    this.markets = {
      linear: market(recorded.linear, recorded.linearListings),
      spot: market(recorded.spot, recorded.spotListings),
      inverse: market(inverseOf(recorded.linear), inverseListings)
    }
    // The session's times moved so that its first frame is now.
    this.offset = Date.now() - Math.min(...recorded.linear.map((m) => m.ts))
    this.server.on("upgrade", (req, socket, head) => {
      const category = /^\/v5\/public\/(spot|linear|inverse)$/.exec(new URL(req.url ?? "/", "http://x").pathname)?.[1] as Category | undefined
      if (category === undefined) return socket.destroy()
      this.wss.handleUpgrade(req, socket, head, (ws) => this.connect(ws, category))
    })
  }

  /**
   * `loop`: after the recording, play it again (a market that never ends, for
   * fault tests): each pass starts with the recorded book snapshots (a reset,
   * as after a Bybit service restart), later in time, with its own trade ids.
   */
  static async start(options: { readonly frameIntervalMs?: number; readonly liquidationEvery?: number; readonly loop?: boolean } = {}): Promise<FakeBybit> {
    const fake = new FakeBybit({ frameIntervalMs: options.frameIntervalMs ?? 2, liquidationEvery: options.liquidationEvery ?? 10, loop: options.loop ?? false })
    await fake.listen()
    return fake
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /** Some market started, and every market that started has played all its frames (never, with `loop`). */
  finished(): boolean {
    const started = Object.values(this.markets).filter((m) => m.started)
    return !this.loop && started.length > 0 && started.every((m) => m.position >= m.frames.length)
  }

  /** Every trade of a market that went by, oldest first (delivered or lost). */
  played(category: Category): ReadonlyArray<Message> {
    return this.markets[category].trades
  }

  /** The true book's best bid and ask now. */
  bestOf(category: Category, symbol: string): readonly [number, number] | undefined {
    const book = this.markets[category].books.get(symbol)
    if (book === undefined) return undefined
    return [Math.max(...[...book.bids.keys()].map(Number)), Math.min(...[...book.asks.keys()].map(Number))]
  }

  freeze(): void {
    this.frozen = true
  }

  private connect(ws: WebSocket, category: Category): void {
    const client: Client = { ws, category, topics: new Set(), id: `fake-${++this.nextClient}` }
    this.track(client)
    ws.on("message", (raw) => this.request(client, JSON.parse(String(raw)) as Message))
  }

  private answer(client: Client, message: Message): void {
    if (client.ws.readyState === client.ws.OPEN && !this.faults.paused) client.ws.send(JSON.stringify(message))
  }

  private request(client: Client, message: Message): void {
    this.controlMessages.push({ category: client.category, message })
    const market = this.markets[client.category]
    const reply = (success: boolean, retMsg: string) =>
      this.answer(client, { success, ret_msg: retMsg, conn_id: client.id, req_id: message.req_id ?? "", op: message.op })
    switch (message.op) {
      case "ping":
        this.pings++
        // Spot answers with op "pong", derivatives with a success answer to op "ping" (as Bybit does).
        if (client.category === "spot") this.answer(client, { req_id: "", op: "pong", args: [String(Date.now())], conn_id: client.id })
        else reply(true, "pong")
        return
      case "subscribe": {
        const args: Array<string> = message.args ?? []
        if (client.category === "spot" && args.length > 10) return reply(false, "args size >10")
        const unknown = args.find((topic) => !market.listings.some((l) => l.symbol === topic.slice(topic.lastIndexOf(".") + 1)))
        if (unknown !== undefined) return reply(false, `error:handler not found,topic:${unknown}`)
        for (const topic of args) client.topics.add(topic)
        reply(true, "")
        for (const topic of args) {
          if (!topic.startsWith("orderbook.")) continue
          const book = market.books.get(topic.slice(topic.lastIndexOf(".") + 1))
          if (book !== undefined) this.answer(client, this.snapshotOf(topic, book))
        }
        if (!market.started) {
          market.started = true
          this.later(this.frameIntervalMs, () => this.pump(client.category))
        }
        return
      }
      case "unsubscribe":
        for (const topic of message.args ?? []) client.topics.delete(topic)
        return reply(true, "")
      default:
        return reply(false, `error:unknown op ${String(message.op)}`)
    }
  }

  private snapshotOf(topic: string, book: Book): Message {
    const side = (levels: Map<string, string>, descending: boolean) =>
      [...levels].sort((a, b) => (descending ? Number(b[0]) - Number(a[0]) : Number(a[0]) - Number(b[0])))
    const now = Date.now()
    return {
      topic,
      type: "snapshot",
      ts: now,
      data: { s: topic.slice(topic.lastIndexOf(".") + 1), b: side(book.bids, true), a: side(book.asks, false), u: book.u, seq: book.seq },
      cts: now
    }
  }

  private shift(m: Message, pass: number): Message {
    const offset = this.offset + pass * this.span
    const out: Message = { ...m, ts: m.ts + offset }
    delete out.synthetic
    if (typeof m.cts === "number") out.cts = m.cts + offset
    if (m.topic.startsWith("publicTrade.")) out.data = m.data.map((t: Message) => ({ ...t, T: t.T + offset, i: pass === 0 ? t.i : `${t.i}-${pass}` }))
    return out
  }

  /** The next frame of a market's timeline: the true book moves, then subscribers get it (through the faults). */
  private pump(category: Category): void {
    if (this.frozen) return
    const market = this.markets[category]
    if (market.position >= market.frames.length && this.loop) {
      market.position = 0
      market.pass++
    }
    const recorded = market.frames[market.position++]
    if (recorded === undefined) return
    const message = this.shift(recorded, market.pass)
    const channel = message.topic.slice(0, message.topic.indexOf("."))
    const symbol = message.topic.slice(message.topic.lastIndexOf(".") + 1)
    if (channel === "orderbook") this.applyToBook(market, symbol, message)
    if (channel === "publicTrade") {
      market.trades.push(...message.data)
      if (category !== "spot" && market.trades.length % this.liquidationEvery === 0) this.liquidation(category, symbol, message)
    }
    this.publish(category, message, channel === "orderbook" || channel === "publicTrade" ? `${channel}:${symbol}` : undefined)
    this.later(this.frameIntervalMs, () => this.pump(category))
  }

  private applyToBook(market: Market, symbol: string, message: Message): void {
    let book = market.books.get(symbol)
    if (message.type === "snapshot" || book === undefined) {
      book = { bids: new Map(), asks: new Map(), u: 0, seq: 0 }
      market.books.set(symbol, book)
    }
    for (const [price, size] of message.data.b as Array<[string, string]>) size === "0" ? book.bids.delete(price) : book.bids.set(price, size)
    for (const [price, size] of message.data.a as Array<[string, string]>) size === "0" ? book.asks.delete(price) : book.asks.set(price, size)
    book.u = message.data.u
    book.seq = message.data.seq ?? book.seq
  }

  /** A liquidation in Bybit's documented `allLiquidation` format (synthesized: the session saw none). */
  private liquidation(category: Category, symbol: string, trade: Message): void {
    const last = trade.data[trade.data.length - 1]
    const long = this.markets[category].trades.length % (2 * this.liquidationEvery) === 0
    const message = {
      topic: `allLiquidation.${symbol}`,
      type: "snapshot",
      ts: trade.ts,
      data: [{ T: last.T, s: symbol, S: long ? "Buy" : "Sell", v: last.v, p: (Number(last.p) * (long ? 0.999 : 1.001)).toFixed(2) }]
    }
    this.publish(category, message, undefined)
  }

  private publish(category: Category, message: Message, routed: string | undefined): void {
    let lost = false
    for (const client of this.clients) {
      if (client.category !== category || !client.topics.has(message.topic)) continue
      if (routed === undefined) {
        this.answer(client, message)
        continue
      }
      this.faults.route(routed, message, (m) => {
        if (m.topic.startsWith("publicTrade.")) this.sentTrades.push(...m.data)
        this.answer(client, m)
      }, () => {
        if (!lost) this.lostFrames.push(message)
        lost = true
      })
    }
  }

  protected rest(req: IncomingMessage, res: ServerResponse): void {
    if (this.faults.restDelayMs > 0) {
      this.later(this.faults.restDelayMs, () => this.restAnswer(req, res))
      return
    }
    this.restAnswer(req, res)
  }

  private restAnswer(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", this.httpUrl)
    this.restCalls.push(`${url.pathname}${url.search}`)
    const json = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body))
    }
    const failure = this.faults.takeFailure(url.pathname)
    if (failure !== undefined) {
      return json(failure.status, { retCode: 10006, retMsg: "Too many visits!", result: {}, time: Date.now() },
        failure.retryAfter === undefined ? {} : { "retry-after": String(failure.retryAfter) })
    }
    const category = url.searchParams.get("category") as Category | null
    const market = category === null ? undefined : this.markets[category]
    if (market === undefined) return json(200, { retCode: 10001, retMsg: "params error: category", result: {}, time: Date.now() })
    switch (url.pathname) {
      case "/v5/market/instruments-info":
        // One page holds everything the fake lists; a cursor asks for a page after it: empty.
        return json(200, { retCode: 0, retMsg: "OK", result: { category, list: url.searchParams.has("cursor") ? [] : market.listings, nextPageCursor: "" }, time: Date.now() })
      case "/v5/market/recent-trade": {
        const symbol = url.searchParams.get("symbol")
        const limit = Number(url.searchParams.get("limit") ?? (category === "spot" ? 60 : 500))
        const list = market.trades.filter((t) => t.s === symbol).slice(-limit).reverse().map((t) => ({
          execId: t.i, symbol: t.s, price: t.p, size: t.v, side: t.S, time: String(t.T), isBlockTrade: t.BT === true, isRPITrade: t.RPI === true
        }))
        return json(200, { retCode: 0, retMsg: "OK", result: { category, list }, retExtInfo: {}, time: Date.now() })
      }
      default:
        return json(404, { retCode: 10404, retMsg: "not found" })
    }
  }
}
