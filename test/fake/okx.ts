/**
 * A fake OKX on loopback speaking v5: the public WebSocket (/ws/v5/public:
 * `subscribe` / `unsubscribe` with per-channel `event` answers, text
 * `ping` -> `pong`) and the REST endpoints the collector calls
 * (`/api/v5/public/instruments`, `/api/v5/market/history-trades`).
 *
 * It replays the recorded 2022 session (shared/fixtures/recorded/OKX.ws.1.0:
 * BTC-USDT spot, the UNI-USD-SWAP inverse swap, the BTC-USD-220527 inverse
 * future; books with their real checksums, trades, tickers) with times moved
 * to now, in today's format: book messages numbered with `seqId` /
 * `prevSeqId`, and trades as one push per taker order and price with `count`
 * (the recording predates both: its consecutive fills at one time, side and
 * price are merged). What the
 * session lacks is synthesized in OKX's documented formats and marked so:
 * `funding-rate`, `open-interest` (fixed readings, `openInterestReadings`),
 * `mark-price` (the last traded price) and `liquidation-orders` (hedge
 * and net mode, `liquidationPositions`). The fake
 * keeps the true books, so a resubscription gets a current snapshot (with a
 * checksum it computes the way OKX does).
 *
 * `loop`: after the recording, play it again: books start over from their
 * recorded snapshots (seqId keeps rising), trade ids continue where they left
 * off. Faults (`faults`) aim at `books:<instId>` and `trades:<instId>`.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import { crc32 } from "node:zlib"
import type { WebSocket } from "ws"
import { recording } from "../support/fixtures.ts"
import { FaultPlan } from "./faults.ts"
import { LoopbackVenue } from "./loopback.ts"

type Message = Record<string, any>

interface Book {
  readonly bids: Map<string, Array<string>>
  readonly asks: Map<string, Array<string>>
}

interface Client {
  readonly ws: WebSocket
  readonly args: Set<string>
}

export const okxInstruments = ["BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527"] as const

const argKey = (arg: Message) => `${arg.channel}:${arg.instId ?? arg.instType}`

const checksumOf = (book: Book): number => {
  const bids = [...book.bids.values()].sort((a, b) => Number(b[0]) - Number(a[0]))
  const asks = [...book.asks.values()].sort((a, b) => Number(a[0]) - Number(b[0]))
  const parts: Array<string> = []
  for (let i = 0; i < 25; i++) {
    if (bids[i] !== undefined) parts.push(bids[i]![0]!, bids[i]![1]!)
    if (asks[i] !== undefined) parts.push(asks[i]![0]!, asks[i]![1]!)
  }
  return crc32(parts.join(":")) | 0
}

const decimals = (s: string) => (s.includes(".") ? s.length - s.indexOf(".") - 1 : 0)
const addDecimal = (a: string, b: string) => String(Number((Number(a) + Number(b)).toFixed(Math.max(decimals(a), decimals(b)))))

/**
 * Today's `trades` channel pushes one message per taker order and price, `count`
 * fills aggregated; the 2022 recording has one push per fill. Consecutive fills
 * with the same time, side and price (consecutive ids) become one push, as OKX
 * sends them now. `fills` keeps each one for the REST history.
 */
const aggregateTrades = (frames: ReadonlyArray<Message>): Array<Message> => {
  const out: Array<Message> = []
  for (const frame of frames) {
    const last = out.at(-1)
    if (frame.arg.channel === "trades" && frame.data.length === 1 && last?.arg.channel === "trades" && last.arg.instId === frame.arg.instId) {
      const previous = last.data.at(-1)
      const fill = frame.data[0]
      if (previous.ts === fill.ts && previous.side === fill.side && previous.px === fill.px && Number(fill.tradeId) === Number(previous.tradeId) + 1) {
        last.data[last.data.length - 1] = { ...previous, tradeId: fill.tradeId, sz: addDecimal(previous.sz, fill.sz), count: String(Number(previous.count ?? 1) + 1), fills: [...(previous.fills ?? [previous]), fill] }
        continue
      }
    }
    out.push(frame.arg.channel === "trades" ? { ...frame, data: frame.data.map((t: Message) => ({ ...t })) } : frame)
  }
  return out
}

/**
 * Two open-interest readings per derivative, alternating, in OKX's format
 * (`oi` contracts, `oiCcy` coins, `oiUsd` USD). Both are inverse contracts of
 * the recorded instruments (OKX.0): UNI-USD-SWAP ctVal 10 USD, BTC-USD-220527
 * ctVal 100 USD, ctMult 1, so oiUsd = oi x ctVal whatever the price:
 *   48,213 x 10 = 482,130     48,250 x 10 = 482,500
 *   71,250 x 100 = 7,125,000  71,300 x 100 = 7,130,000
 * oiCcy is that USD in coins at the recording's own trade price (UNI 5.123,
 * BTC 30,229.6): 482,130 / 5.123 = 94,110.8725..., 7,125,000 / 30,229.6 = 235.6961...
 */
export const openInterestReadings: Readonly<Record<string, ReadonlyArray<{ readonly oi: string; readonly oiCcy: string; readonly oiUsd: string }>>> = {
  "UNI-USD-SWAP": [{ oi: "48213", oiCcy: "94110.87253562", oiUsd: "482130" }, { oi: "48250", oiCcy: "94183.09584228", oiUsd: "482500" }],
  "BTC-USD-220527": [{ oi: "71250", oiCcy: "235.69613888", oiUsd: "7125000" }, { oi: "71300", oiCcy: "235.86153968", oiUsd: "7130000" }]
}

/**
 * The `posSide` / `side` pairs of OKX's liquidation-orders channel: hedge mode
 * (the documented example has `"posSide":"short","side":"buy"`) and net mode
 * (`posSide` "net", documented as "Net mode"), where only the order's side
 * says which position was closed.
 */
export const liquidationPositions: ReadonlyArray<{ readonly posSide: string; readonly side: string }> = [
  { posSide: "short", side: "buy" },
  { posSide: "long", side: "sell" },
  { posSide: "net", side: "sell" },
  { posSide: "net", side: "buy" }
]

export class FakeOkx extends LoopbackVenue<Client> {
  readonly faults = new FaultPlan()
  readonly restCalls: Array<string> = []
  readonly requests: Array<Message> = []
  /** Every trade that went by, per instrument (delivered or lost), oldest first. */
  readonly trades = new Map<string, Array<Message>>()
  readonly sentTrades: Array<Message> = []
  /** Every liquidation detail pushed, with its instrument. */
  readonly sentLiquidations: Array<Message> = []
  /** Every single fill behind those pushes, per instrument, for the REST history. */
  readonly fills = new Map<string, Array<Message>>()
  pings = 0
  private readonly frames: Array<Message>
  private readonly listings: Map<string, Array<Message>>
  private readonly books = new Map<string, Book>()
  private readonly seqIds = new Map<string, number>()
  private readonly frameIntervalMs: number
  private readonly loop: boolean
  private readonly offset: number
  private readonly span: number
  private readonly idSpan = new Map<string, number>()
  private readonly lastPrice = new Map<string, number>()
  private readonly corruptions = new Set<string>()
  private position = 0
  private pass = 0
  private started = false
  private frozen = false
  private step = 0

  private constructor(options: { readonly frameIntervalMs: number; readonly loop: boolean }) {
    super()
    this.frameIntervalMs = options.frameIntervalMs
    this.loop = options.loop
    const recorded = recording("OKX.0", "OKX.ws.1.0")
    this.frames = aggregateTrades(recorded.frames.map((f) => JSON.parse(f.text) as Message).filter((m) => m.arg !== undefined && Array.isArray(m.data)))
    this.listings = new Map()
    for (const rest of recorded.rest) {
      const type = new URL(rest.url).searchParams.get("instType")!
      if (!this.listings.has(type)) this.listings.set(type, JSON.parse(rest.body).data)
    }
    const times = this.frames.flatMap((m) => m.data.map((d: Message) => Number(d.ts)).filter(Number.isFinite))
    this.offset = Date.now() - Math.min(...times)
    this.span = Math.max(...times) - Math.min(...times) + 1000
    for (const instId of okxInstruments) {
      const ids = this.frames.filter((m) => m.arg.channel === "trades" && m.arg.instId === instId)
        .flatMap((m) => m.data.flatMap((t: Message) => (t.fills ?? [t]).map((f: Message) => Number(f.tradeId))))
      this.idSpan.set(instId, ids.length === 0 ? 0 : Math.max(...ids) - Math.min(...ids) + 1)
    }
    this.server.on("upgrade", (req, socket, head) => {
      if (new URL(req.url ?? "/", "http://x").pathname !== "/ws/v5/public") return socket.destroy()
      this.wss.handleUpgrade(req, socket, head, (ws) => this.connect(ws))
    })
  }

  static async start(options: { readonly frameIntervalMs?: number; readonly loop?: boolean } = {}): Promise<FakeOkx> {
    const fake = new FakeOkx({ frameIntervalMs: options.frameIntervalMs ?? 5, loop: options.loop ?? false })
    await fake.listen()
    return fake
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`
  }

  finished(): boolean {
    return !this.loop && this.started && this.position >= this.frames.length
  }

  /** The contract value of an instrument, from the recorded listing. */
  listing(instId: string): Message | undefined {
    for (const list of this.listings.values()) {
      const found = list.find((l) => l.instId === instId)
      if (found !== undefined) return found
    }
    return undefined
  }

  bestOf(instId: string): readonly [number, number] | undefined {
    const book = this.books.get(instId)
    if (book === undefined) return undefined
    return [Math.max(...[...book.bids.keys()].map(Number)), Math.min(...[...book.asks.keys()].map(Number))]
  }

  /**
   * The next update of `instId` arrives with one level's size changed but its
   * sequence numbers and checksum intact: only the checksum can tell.
   */
  corruptNext(instId: string): void {
    this.corruptions.add(instId)
  }

  freeze(): void {
    this.frozen = true
  }

  private connect(ws: WebSocket): void {
    const client: Client = { ws, args: new Set() }
    this.track(client)
    ws.on("message", (raw) => {
      const text = String(raw)
      if (text === "ping") {
        this.pings++
        return this.send(client, "pong")
      }
      this.request(client, JSON.parse(text))
    })
  }

  private send(client: Client, message: Message | string): void {
    if (client.ws.readyState === client.ws.OPEN && !this.faults.paused) client.ws.send(typeof message === "string" ? message : JSON.stringify(message))
  }

  private request(client: Client, message: Message): void {
    this.requests.push(message)
    const args: Array<Message> = message.args ?? []
    for (const arg of args) {
      const instId = arg.instId as string | undefined
      if (instId !== undefined && this.listing(instId) === undefined) {
        this.send(client, { event: "error", code: "60018", msg: `Wrong URL or channel:${arg.channel},instId:${instId} doesn't exist.`, connId: "fake" })
        continue
      }
      if (message.op === "subscribe") client.args.add(argKey(arg))
      else client.args.delete(argKey(arg))
      this.send(client, { event: message.op, arg, connId: "fake" })
      if (message.op === "subscribe" && arg.channel === "books" && this.books.has(instId!)) this.send(client, this.snapshotOf(instId!))
    }
    if (message.op === "subscribe" && !this.started) {
      this.started = true
      this.later(this.frameIntervalMs, () => this.pump())
    }
  }

  private nextSeq(instId: string): [number, number] {
    const previous = this.seqIds.get(instId) ?? 1_000_000
    this.seqIds.set(instId, previous + 1)
    return [previous, previous + 1]
  }

  private snapshotOf(instId: string): Message {
    const book = this.books.get(instId)!
    const [, seqId] = this.nextSeq(instId)
    return {
      arg: { channel: "books", instId },
      action: "snapshot",
      data: [{
        asks: [...book.asks.values()].sort((a, b) => Number(a[0]) - Number(b[0])),
        bids: [...book.bids.values()].sort((a, b) => Number(b[0]) - Number(a[0])),
        ts: String(Date.now()),
        checksum: checksumOf(book),
        prevSeqId: -1,
        seqId
      }]
    }
  }

  private shiftTime(ts: string): string {
    return String(Number(ts) + this.offset + this.pass * this.span)
  }

  private pump(): void {
    if (this.frozen) return
    if (this.position >= this.frames.length && this.loop) {
      this.position = 0
      this.pass++
    }
    const recorded = this.frames[this.position++]
    if (recorded === undefined) return
    const channel = recorded.arg.channel as string
    const instId = recorded.arg.instId as string
    if (channel === "books") {
      let book = this.books.get(instId)
      if (recorded.action === "snapshot" || book === undefined) this.books.set(instId, book = { bids: new Map(), asks: new Map() })
      for (const side of ["bids", "asks"] as const) {
        for (const level of recorded.data[0][side] as Array<Array<string>>) {
          if (Number(level[1]) === 0) book[side].delete(level[0]!)
          else book[side].set(level[0]!, level)
        }
      }
      const [previous, seqId] = this.nextSeq(instId)
      const data = { ...recorded.data[0], ts: this.shiftTime(recorded.data[0].ts), seqId, prevSeqId: recorded.action === "snapshot" ? -1 : previous }
      if (recorded.action === "update" && this.corruptions.delete(instId)) {
        // A phantom size at the best bid: what the venue's own book never had.
        const best = [...book.bids.values()].sort((a, b) => Number(b[0]) - Number(a[0]))[0]!
        data.bids = [...data.bids, [best[0], String(Number(best[1]) + 1), "0", "1"]]
      }
      this.publish({ arg: recorded.arg, action: recorded.action, data: [data] }, `books:${instId}`)
    } else if (channel === "trades") {
      const shiftId = (id: string) => String(Number(id) + this.pass * this.idSpan.get(instId)!)
      const data = recorded.data.map(({ fills: _, ...t }: Message) => ({ ...t, tradeId: shiftId(t.tradeId), ts: this.shiftTime(t.ts), count: t.count ?? "1" }))
      const list = this.trades.get(instId) ?? []
      this.trades.set(instId, list)
      list.push(...data)
      const fills = this.fills.get(instId) ?? []
      this.fills.set(instId, fills)
      for (const t of recorded.data) for (const f of t.fills ?? [t]) fills.push({ instId, tradeId: shiftId(f.tradeId), px: f.px, sz: f.sz, side: f.side, ts: this.shiftTime(f.ts) })
      this.lastPrice.set(instId, Number(data.at(-1).px))
      this.publish({ arg: recorded.arg, data }, `trades:${instId}`)
      if (++this.step % 5 === 0) this.derivatives()
    } else this.publish({ arg: recorded.arg, data: recorded.data.map((d: Message) => ({ ...d, ts: this.shiftTime(d.ts) })) }, undefined)
    this.later(this.frameIntervalMs, () => this.pump())
  }

  /** Funding, open interest, mark prices and a liquidation, in OKX's documented formats (synthesized). */
  private derivatives(): void {
    const now = Date.now()
    for (const instId of okxInstruments) {
      const listing = this.listing(instId)!
      if (listing.instType === "SPOT") continue
      const mark = this.lastPrice.get(instId) ?? Number(this.bestOf(instId)?.[0] ?? 0)
      if (!(mark > 0)) continue
      this.publish({ arg: { channel: "mark-price", instId }, data: [{ instId, instType: listing.instType, markPx: String(mark), ts: String(now) }] }, undefined)
      // Open interest as OKX sends it: fixed readings written out above, never computed here from the contract.
      const reading = openInterestReadings[instId]![(this.step / 5) % 2]!
      this.publish({ arg: { channel: "open-interest", instId }, data: [{ instId, instType: listing.instType, ...reading, ts: String(now) }] }, undefined)
      if (listing.instType === "SWAP") {
        const fundingTime = Math.ceil(now / 28_800_000) * 28_800_000
        this.publish({ arg: { channel: "funding-rate", instId }, data: [{ instId, instType: "SWAP", fundingRate: "0.0001", fundingTime: String(fundingTime), nextFundingTime: String(fundingTime + 28_800_000), method: "current_period", ts: String(now) }] }, undefined)
      }
      const positions = liquidationPositions[(this.step / 5) % liquidationPositions.length]!
      const detail = { bkLoss: "0", bkPx: String(mark), ccy: "", ...positions, sz: "3", ts: String(now) }
      this.sentLiquidations.push({ instId, ...detail })
      this.publish({
        arg: { channel: "liquidation-orders", instType: listing.instType },
        data: [{ instId, instType: listing.instType, instFamily: listing.uly, uly: listing.uly, details: [detail] }]
      }, undefined)
    }
  }

  private publish(message: Message, routed: string | undefined): void {
    const key = argKey(message.arg)
    for (const client of this.clients) {
      if (!client.args.has(key)) continue
      if (routed === undefined) {
        this.send(client, message)
        continue
      }
      this.faults.route(routed, message, (m) => {
        if (m.arg.channel === "trades") this.sentTrades.push(...m.data)
        this.send(client, m)
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
      return json(failure.status, { code: "50011", msg: "Too Many Requests", data: [] }, failure.retryAfter === undefined ? {} : { "retry-after": String(failure.retryAfter) })
    }
    switch (url.pathname) {
      case "/api/v5/public/instruments":
        return json(200, { code: "0", msg: "", data: this.listings.get(url.searchParams.get("instType") ?? "") ?? [] })
      case "/api/v5/market/history-trades": {
        // type=1: by trade id; `after`: ids below it, newest first.
        const after = Number(url.searchParams.get("after") ?? Infinity)
        const limit = Number(url.searchParams.get("limit") ?? 100)
        const list = (this.fills.get(url.searchParams.get("instId") ?? "") ?? []).filter((t) => Number(t.tradeId) < after)
        return json(200, { code: "0", msg: "", data: list.slice(-limit).reverse() })
      }
      default:
        return json(404, { code: "50000", msg: "not found", data: [] })
    }
  }
}
