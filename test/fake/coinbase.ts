/**
 * A fake Coinbase on loopback: HTTP (`/products`, `/products/{id}/trades`,
 * `/products/{id}/book`) and one WebSocket endpoint speaking both feeds. A
 * connection's first subscribe message tells which: the Exchange feed sends
 * `channels: [...]`, Advanced Trade one `channel` per message.
 *
 * The venue's timeline is the recorded Exchange session
 * (shared/fixtures/recorded/COINBASE.ws.28.0) with its times moved to now; it
 * starts with the first subscriber and runs whether or not anyone listens. The
 * fake keeps the true book of every product, so a subscription gets a current
 * snapshot, as on the real venue. Advanced Trade messages are derived from the
 * same frames in that feed's documented format (`l2_data` snapshot/update with
 * bid/offer sides, `market_trades` with the taker side, `heartbeats`), numbered
 * by a per-connection `sequence_num`. Heartbeats are synthesized every second.
 *
 * Faults (`faults`, see faults.ts): messages lost, duplicated, reordered or
 * renamed in transit (on Advanced Trade the `sequence_num` is stamped when the
 * venue emits, so a lost or swapped message shows in the numbering, as on a
 * real loss), a silent open socket, REST errors and delays; `dropConnections`
 * with or without a close frame; `inject` of raw frames.
 */
import { readFileSync } from "node:fs"
import type { IncomingMessage, ServerResponse } from "node:http"
import type { WebSocket } from "ws"
import { parseRecording } from "../../src/replay/recorded.ts"
import { fixtures } from "./binance.ts"
import { FaultPlan } from "./faults.ts"
import { LoopbackVenue } from "./loopback.ts"

type Protocol = "exchange" | "advanced"
type Message = Record<string, any>

interface Client {
  readonly ws: WebSocket
  protocol: Protocol | undefined
  sequence: number
  readonly channels: Map<string, Set<string>>
}

const bookChannels = new Set(["level2", "level2_batch"])

export class FakeCoinbase extends LoopbackVenue<Client> {
  readonly played: Array<Message> = []
  readonly sent: Array<{ readonly protocol: Protocol; readonly message: Message }> = []
  readonly lost: Array<Message> = []
  readonly restCalls: Array<string> = []
  readonly subscribeMessages: Array<Message> = []
  /** When each message from a client arrived (all connections: Coinbase counts per IP). */
  readonly receivedAt: Array<number> = []
  readonly faults = new FaultPlan()
  private readonly timeline: Array<Message>
  private readonly productsBody: string
  private readonly books = new Map<string, { bids: Map<string, string>; asks: Map<string, string> }>()
  private readonly trades = new Map<string, Array<Message>>()
  private position = 0
  private started = false
  private readonly frameIntervalMs: number
  /** The venue's clock: message times, heartbeats (a test may pin the date). */
  private readonly now: () => number

  private constructor(frameIntervalMs: number, now: () => number) {
    super()
    this.frameIntervalMs = frameIntervalMs
    this.now = now
    const recording = parseRecording(readFileSync(`${fixtures}COINBASE.ws.28.0`, "utf8"))
    const messages = recording.frames.map((f) => JSON.parse(f.text) as Message)
    // The recorded snapshots open the session: they are the venue's books when the timeline starts.
    for (const message of messages) if (message.type === "snapshot") this.applyToTruth(message)
    this.timeline = messages.filter((m) => m.type !== "subscriptions" && m.type !== "snapshot")
    const rest = parseRecording(readFileSync(`${fixtures}COINBASE.0`, "utf8")).rest
    this.productsBody = rest.find((r) => new URL(r.url).pathname === "/products")!.body
    this.server.on("upgrade", (req, socket, head) => this.wss.handleUpgrade(req, socket, head, (ws) => this.connect(ws)))
  }

  static async start(options: { readonly frameIntervalMs?: number; readonly now?: () => number } = {}): Promise<FakeCoinbase> {
    const fake = new FakeCoinbase(options.frameIntervalMs ?? 2, options.now ?? Date.now)
    await fake.listen()
    return fake
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`
  }

  /** The products the recording carries. */
  get products(): ReadonlyArray<string> {
    return [...this.books.keys()]
  }

  finished(): boolean {
    return this.position >= this.timeline.length
  }

  /** The next `count` messages of `type` (match, l2update) are lost on the way to every client. */
  loseNext(type: string, count: number): void {
    this.faults.loseNext(type, count)
  }

  failNext(path: string, status: number, retryAfter?: number): void {
    this.faults.failNext(path, status, retryAfter)
  }

  /** Stops the timeline: what has been played is all there will be. */
  freeze(): void {
    this.position = this.timeline.length
  }

  private connect(ws: WebSocket): void {
    const client: Client = { ws, protocol: undefined, sequence: 0, channels: new Map() }
    this.track(client)
    ws.on("message", (raw) => {
      this.receivedAt.push(Date.now())
      this.control(client, JSON.parse(String(raw)) as Message)
    })
  }

  private control(client: Client, message: Message): void {
    this.subscribeMessages.push(message)
    // The venue's timeline starts with the first subscription (the recording opens with one).
    if (!this.started) {
      this.started = true
      this.later(this.frameIntervalMs, () => this.pump())
      this.heartbeat()
    }
    client.protocol ??= "channels" in message ? "exchange" : "advanced"
    const channels: Array<string> = client.protocol === "exchange"
      ? (message.channels as Array<string | { name: string }>).map((c) => (typeof c === "string" ? c : c.name))
      : [message.channel as string]
    const products: Array<string> = message.product_ids ?? []
    for (const channel of channels) {
      const subscribed = client.channels.get(channel) ?? new Set<string>()
      client.channels.set(channel, subscribed)
      for (const product of products) {
        if (message.type === "unsubscribe") subscribed.delete(product)
        else {
          subscribed.add(product)
          if (bookChannels.has(channel)) this.send(client, this.snapshotOf(product))
        }
      }
    }
    const summary = [...client.channels].map(([name, ids]) => ({ name, product_ids: [...ids] }))
    if (client.protocol === "exchange") this.deliver(client, { type: "subscriptions", channels: summary })
    else this.deliver(client, { channel: "subscriptions", events: [{ subscriptions: Object.fromEntries(summary.map((c) => [c.name, c.product_ids])) }] })
  }

  private snapshotOf(product: string): Message {
    const book = this.books.get(product) ?? { bids: new Map(), asks: new Map() }
    const levels = (side: Map<string, string>, descending: boolean) =>
      [...side].sort((a, b) => (descending ? Number(b[0]) - Number(a[0]) : Number(a[0]) - Number(b[0])))
    return { type: "snapshot", product_id: product, bids: levels(book.bids, true), asks: levels(book.asks, false) }
  }

  /** Moves the venue's timeline on by one message. */
  private pump(): void {
    const message = this.timeline[this.position++]
    if (message === undefined) return
    const now = new Date(this.now()).toISOString()
    const live: Message = "time" in message ? { ...message, time: now } : { ...message }
    this.applyToTruth(live)
    this.played.push(live)
    let lost = false
    for (const client of this.clients) {
      if (!this.wants(client, live)) continue
      this.send(client, live, `${live.type}:${live.product_id}`, () => {
        if (!lost) this.lost.push(live)
        lost = true
      })
    }
    this.later(this.frameIntervalMs, () => this.pump())
  }

  private applyToTruth(message: Message): void {
    const product = message.product_id as string
    if (message.type === "snapshot") {
      this.books.set(product, { bids: new Map(message.bids.map((l: Array<string>) => [l[0], l[1]])), asks: new Map(message.asks.map((l: Array<string>) => [l[0], l[1]])) })
    } else if (message.type === "l2update") {
      const book = this.books.get(product)
      if (book === undefined) return
      for (const [side, price, size] of message.changes as Array<[string, string, string]>) {
        const levels = side === "buy" ? book.bids : book.asks
        if (Number(size) === 0) levels.delete(price)
        else levels.set(price, size)
      }
    } else if (message.type === "match" || message.type === "last_match") {
      const list = this.trades.get(product) ?? []
      list.push(message)
      this.trades.set(product, list)
    }
  }

  private wants(client: Client, message: Message): boolean {
    const product = message.product_id as string
    const on = (channel: string) => client.channels.get(channel)?.has(product) === true
    switch (message.type) {
      case "l2update":
        return on("level2") || on("level2_batch")
      case "match":
      case "last_match":
        return on("matches") || on("market_trades")
      case "ticker":
        return on("ticker")
      default:
        return false
    }
  }

  private heartbeat(): void {
    for (const client of this.clients) {
      const products = [...(client.channels.get("heartbeat") ?? [])]
      if (client.protocol === "exchange") {
        for (const product of products) {
          const last = this.trades.get(product)?.at(-1)
          this.deliver(client, { type: "heartbeat", sequence: this.position, last_trade_id: last?.trade_id ?? 0, product_id: product, time: new Date(this.now()).toISOString() })
        }
      } else if (client.channels.has("heartbeats")) {
        this.deliver(client, { channel: "heartbeats", events: [{ current_time: new Date(this.now()).toISOString(), heartbeat_counter: this.position }] })
      }
    }
    this.later(1000, () => this.heartbeat())
  }

  /** Sends a venue message in the client's protocol; timeline messages (`kind`) pass through the fault plan. */
  private send(client: Client, message: Message, kind?: string, onLost?: () => void): void {
    const framed = client.protocol === "advanced" ? this.frame(client, toAdvanced(message)) : message
    if (framed === undefined) return
    if (kind === undefined) this.write(client, framed)
    else this.faults.route(kind, framed, (m) => this.write(client, m), onLost)
  }

  /** Advanced Trade's envelope; the sequence number is the venue's, taken when the message is emitted. */
  private frame(client: Client, message: Message | undefined): Message | undefined {
    if (message === undefined) return undefined
    return { channel: message.channel, client_id: "", timestamp: new Date(this.now()).toISOString(), sequence_num: client.sequence++, events: message.events }
  }

  private deliver(client: Client, message: Message): void {
    const framed = client.protocol === "advanced" ? this.frame(client, message) : message
    if (framed !== undefined) this.write(client, framed)
  }

  private write(client: Client, message: Message): void {
    if (client.ws.readyState !== client.ws.OPEN || this.faults.paused) return
    this.sent.push({ protocol: client.protocol ?? "exchange", message })
    client.ws.send(JSON.stringify(message))
  }

  protected rest(req: IncomingMessage, res: ServerResponse): void {
    if (this.faults.restDelayMs > 0) {
      this.later(this.faults.restDelayMs, () => this.answer(req, res))
      return
    }
    this.answer(req, res)
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", this.httpUrl)
    this.restCalls.push(`${url.pathname}${url.search}`)
    // As the real venue: a request without a User-Agent is refused.
    if (req.headers["user-agent"] === undefined) {
      res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ message: "User-Agent header is required" }))
      return
    }
    const failure = this.faults.takeFailure(url.pathname)
    if (failure !== undefined) {
      const headers: Record<string, string> = { "content-type": "application/json" }
      if (failure.retryAfter !== undefined) headers["retry-after"] = String(failure.retryAfter)
      res.writeHead(failure.status, headers).end(JSON.stringify({ message: failure.status === 429 ? "Too many requests" : "Forbidden" }))
      return
    }
    const json = (body: unknown): void => {
      res.writeHead(200, { "content-type": "application/json" }).end(typeof body === "string" ? body : JSON.stringify(body))
    }
    if (url.pathname === "/products") return json(this.productsBody)
    const trades = /^\/products\/([^/]+)\/trades$/.exec(url.pathname)
    if (trades !== null) {
      // Newest first; `after` pages towards older trades (trade_id < after), as Coinbase documents.
      const after = Number(url.searchParams.get("after") ?? Number.MAX_SAFE_INTEGER)
      const limit = Number(url.searchParams.get("limit") ?? 100)
      const page = (this.trades.get(trades[1]!) ?? [])
        .filter((t) => t.trade_id < after)
        .sort((a, b) => b.trade_id - a.trade_id)
        .slice(0, limit)
        .map((t) => ({ trade_id: t.trade_id, price: t.price, size: t.size, side: t.side, time: t.time }))
      return json(page)
    }
    const book = /^\/products\/([^/]+)\/book$/.exec(url.pathname)
    if (book !== null) {
      const snapshot = this.snapshotOf(book[1]!)
      return json({ sequence: this.position, bids: snapshot.bids.map((l: Array<string>) => [...l, 1]), asks: snapshot.asks.map((l: Array<string>) => [...l, 1]) })
    }
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ message: "NotFound" }))
  }
}

/** An Exchange-feed message in the Advanced Trade feed's documented format (sequence_num added on delivery). */
export const toAdvanced = (message: Message): Message | undefined => {
  const now = message.time ?? new Date().toISOString()
  switch (message.type) {
    case "snapshot":
    case "l2update": {
      const updates = message.type === "snapshot"
        ? [
          ...message.bids.map((l: Array<string>) => ({ side: "bid", event_time: now, price_level: l[0], new_quantity: l[1] })),
          ...message.asks.map((l: Array<string>) => ({ side: "offer", event_time: now, price_level: l[0], new_quantity: l[1] }))
        ]
        : message.changes.map((c: Array<string>) => ({ side: c[0] === "buy" ? "bid" : "offer", event_time: now, price_level: c[1], new_quantity: c[2] }))
      return { channel: "l2_data", events: [{ type: message.type === "snapshot" ? "snapshot" : "update", product_id: message.product_id, updates }] }
    }
    case "match":
    case "last_match":
      // Advanced Trade labels trades with the maker's side, as the Exchange feed does (seen in the real 2026 session).
      return {
        channel: "market_trades",
        events: [{
          type: "update",
          trades: [{ trade_id: String(message.trade_id), product_id: message.product_id, price: message.price, size: message.size, side: message.side === "buy" ? "BUY" : "SELL", time: now }]
        }]
      }
    default:
      return undefined
  }
}
