/**
 * A fake Binance on loopback: a real HTTP + WebSocket server speaking Binance's
 * protocol (combined streams on /stream, USD-M routed on /public/stream and
 * /market/stream, the REST endpoints the collector calls), replaying the
 * recorded sessions in shared/fixtures/recorded with their times moved to now.
 *
 * The recordings hold no markPrice, forceOrder or open interest; those are
 * synthesized here from Binance's documented formats, priced from the
 * recording's own bookTicker mid prices, and marked as synthetic in `sent`.
 *
 * Like a live venue, each market has one timeline: it starts with the first
 * subscriber and moves on whether or not anyone is connected, so a client that
 * reconnects has missed what was sent meanwhile. The fake keeps the true order
 * book (recorded snapshot + every recorded diff that has gone by), so a depth
 * snapshot is always current, and serves `aggTrades?fromId=` from the recording.
 *
 * Faults: `failNext` answers a REST path with a status (429/418/500 with
 * Retry-After); `dropConnections` closes every socket; `loseNext` drops the
 * next frames of a stream in transit (they stay in the REST history).
 */
import { readFileSync } from "node:fs"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { WebSocketServer, type WebSocket } from "ws"
import { parseRecording, type Recording } from "../../src/replay/recorded.ts"

export { fixtures } from "../support/fixtures.ts"
import { fixtures } from "../support/fixtures.ts"

type Market = "spot" | "futures"

interface TrueBook {
  readonly bids: Map<string, string>
  readonly asks: Map<string, string>
  lastUpdateId: number
}

interface Subscriber {
  readonly ws: WebSocket
  readonly streams: Set<string>
}

interface TimelineFrame {
  readonly stream: string
  readonly data: Record<string, unknown>
  /** Not in the recording: added by `spotTrades`. */
  readonly synthetic?: boolean
}

interface MarketData {
  readonly recording: Recording
  readonly frames: ReadonlyArray<TimelineFrame>
  readonly exchangeInfo: string
  readonly books: Map<string, TrueBook>
  readonly aggTrades: Map<string, Array<Record<string, unknown>>>
  /** Offset added to every recorded exchange timestamp so the session happens now. */
  offset: number
  readonly mids: Map<string, number>
  readonly subscribers: Set<Subscriber>
  position: number
  started: boolean
}

export interface SentFrame {
  readonly market: Market
  readonly stream: string
  readonly data: Record<string, unknown>
  readonly synthetic: boolean
}

/**
 * The recording's frames with a synthetic aggTrade of `symbol` after every
 * `every` frames: ids consecutive with the recorded trade of that symbol (the
 * run is numbered so the recorded one falls in its place), at the recorded
 * price, timed as the last timed frame before it.
 */
const withTradeRun = (frames: ReadonlyArray<TimelineFrame>, run: SpotTradeRun): Array<TimelineFrame> => {
  const stream = `${run.symbol.toLowerCase()}@aggTrade`
  const recordedAt = frames.findIndex((f) => f.stream === stream)
  if (recordedAt < 0) throw new Error(`the recording has no ${stream} to continue`)
  const recorded = frames[recordedAt]!.data
  const before = Math.floor(recordedAt / run.every)
  let id = (recorded.a as number) - before
  let tradeId = (recorded.f as number) - before
  const out: Array<TimelineFrame> = []
  let lastAt = (frames.find((f) => typeof f.data.E === "number")?.data.E ?? recorded.E) as number
  for (const [index, frame] of frames.entries()) {
    if (typeof frame.data.E === "number") lastAt = frame.data.E
    if (frame.stream === stream) {
      id = (frame.data.a as number) + 1
      tradeId = (frame.data.l as number) + 1
    }
    out.push(frame)
    if ((index + 1) % run.every !== 0) continue
    const at = lastAt
    out.push({
      stream,
      synthetic: true,
      data: { e: "aggTrade", E: at, s: run.symbol, a: id++, p: recorded.p, q: `${20 + (index % 7) * 5}.00000000`, f: tradeId, l: tradeId++, T: at, m: index % 2 === 0, M: true }
    })
  }
  return out
}

const load = (prefix: string, tradeRun?: SpotTradeRun): MarketData => {
  const recording: Recording = { frames: [], sent: [], rest: [] }
  for (const file of [`${prefix}.0`, `${prefix}.http.0.0`, `${prefix}.ws.1.0`]) {
    parseRecording(readFileSync(`${fixtures}${file}`, "utf8"), recording)
  }
  const exchangeInfo = recording.rest.find((r) => r.url.endsWith("/exchangeInfo"))!.body
  const books = new Map<string, TrueBook>()
  for (const rest of recording.rest) {
    const symbol = new URL(rest.url).searchParams.get("symbol")
    if (!rest.url.includes("/depth") || symbol === null) continue
    const snapshot = JSON.parse(rest.body) as { lastUpdateId: number; bids: Array<[string, string]>; asks: Array<[string, string]> }
    books.set(symbol, { bids: new Map(snapshot.bids), asks: new Map(snapshot.asks), lastUpdateId: snapshot.lastUpdateId })
  }
  const recorded = recording.frames.map((f) => JSON.parse(f.text) as TimelineFrame)
  const frames = tradeRun === undefined ? recorded : withTradeRun(recorded, tradeRun)
  const mids = new Map<string, number>()
  const aggTrades = new Map<string, Array<Record<string, unknown>>>()
  for (const { stream, data } of frames) {
    if (stream.endsWith("@bookTicker")) mids.set(data.s as string, (Number(data.b) + Number(data.a)) / 2)
    if (stream.endsWith("@aggTrade")) aggTrades.set(data.s as string, [...(aggTrades.get(data.s as string) ?? []), data])
  }
  return { recording, frames, exchangeInfo, books, aggTrades, offset: 0, mids, subscribers: new Set(), position: 0, started: false }
}

/** The venue's own book moves with every diff that goes by, whoever is listening. */
const applyToTrueBook = (book: TrueBook, data: Record<string, unknown>) => {
  const u = data.u as number
  if (u <= book.lastUpdateId) return
  for (const [side, levels] of [[book.bids, data.b], [book.asks, data.a]] as const) {
    for (const [price, size] of levels as Array<[string, string]>) {
      if (Number(size) === 0) side.delete(price)
      else side.set(price, size)
    }
  }
  book.lastUpdateId = u
}

const topLevels = (side: Map<string, string>, descending: boolean, limit: number) =>
  [...side].sort((a, b) => (descending ? Number(b[0]) - Number(a[0]) : Number(a[0]) - Number(b[0]))).slice(0, limit)

const shiftTimes = (data: Record<string, unknown>, offset: number): Record<string, unknown> => {
  const out = { ...data }
  for (const key of ["E", "T"]) if (typeof out[key] === "number") out[key] = (out[key] as number) + offset
  return out
}

export interface FakeBinanceOptions {
  /** Milliseconds between frames of a market's timeline (one number for both, or per market). */
  readonly frameIntervalMs?: number | { readonly spot: number; readonly futures: number }
  /** Synthesized markPrice frames per symbol on /market, this often. */
  readonly markPriceIntervalMs?: number
  /**
   * The spot recording has two aggTrades in all; trade faults need a run of
   * them. This adds one for `symbol` after every `every` spot frames, on the
   * stream and in the REST history alike (marked synthetic in `played`/`sent`).
   */
  readonly spotTrades?: SpotTradeRun
}

export interface SpotTradeRun {
  readonly symbol: string
  readonly every: number
}

export class FakeBinance {
  readonly sent: Array<SentFrame> = []
  readonly restCalls: Array<string> = []
  readonly openInterest = new Map<string, number>()
  readonly connections = new Set<WebSocket>()
  /** When each message from a client arrived, and on which connection (Binance counts per connection). */
  readonly receivedAt: Array<{ readonly ws: WebSocket; readonly at: number }> = []
  readonly lost: Array<SentFrame> = []
  /** Every frame that has gone by on a market's timeline, delivered to anyone or not. */
  readonly played: Array<SentFrame> = []
  private readonly failures: Array<{ readonly path: string; readonly status: number; readonly retryAfter?: number }> = []
  private readonly losses: Array<{ stream: string; count: number; after: number }> = []
  private readonly silenced = new Set<string>()
  private readonly corruptions: Array<string> = []
  private readonly duplicates: Array<string> = []
  private readonly renames: Array<{ readonly stream: string; readonly from: string; readonly to: string }> = []
  private readonly reorders = new Map<string, { held: Record<string, unknown> | undefined }>()
  private paused = false
  private restDelayMs = 0
  /** SUBSCRIBE / UNSUBSCRIBE requests received from clients. */
  readonly controlMessages: Array<{ readonly method: string; readonly params: ReadonlyArray<string> }> = []
  private readonly markets: Record<Market, MarketData>
  private readonly server: Server
  private readonly wss: WebSocketServer
  private readonly options: { readonly frameIntervalMs: Record<Market, number>; readonly markPriceIntervalMs: number }
  private timers = new Set<NodeJS.Timeout>()
  port = 0

  private constructor(options: FakeBinanceOptions) {
    const interval = options.frameIntervalMs ?? 2
    this.options = {
      frameIntervalMs: typeof interval === "number" ? { spot: interval, futures: interval } : interval,
      markPriceIntervalMs: options.markPriceIntervalMs ?? 250
    }
    this.markets = { spot: load("BINANCE", options.spotTrades), futures: load("BINANCE_FUTURES") }
    const now = Date.now()
    for (const market of Object.values(this.markets)) {
      const first = market.recording.frames[0]!.receivedAt!
      market.offset = Math.round(now - first)
    }
    this.server = createServer((req, res) => {
      if (this.restDelayMs > 0) this.later(this.restDelayMs, () => this.rest(req, res))
      else this.rest(req, res)
    })
    this.wss = new WebSocketServer({ noServer: true })
    this.server.on("upgrade", (req, socket, head) => {
      this.wss.handleUpgrade(req, socket, head, (ws) => this.stream(ws, req))
    })
  }

  static async start(options: FakeBinanceOptions = {}): Promise<FakeBinance> {
    const fake = new FakeBinance(options)
    await new Promise<void>((resolve) => fake.server.listen(0, "127.0.0.1", resolve))
    fake.port = (fake.server.address() as AddressInfo).port
    return fake
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`
  }

  /** The next REST call whose path ends with `path` gets this status. */
  failNext(path: string, status: number, retryAfter?: number): void {
    this.failures.push(retryAfter === undefined ? { path, status } : { path, status, retryAfter })
  }

  /** After `after` more frames of `stream`, the next `count` are lost in transit (still in the REST history). */
  loseNext(stream: string, count: number, after = 0): void {
    this.losses.push({ stream, count, after })
  }

  /**
   * The next diff of `stream` carries a phantom bid level (half a tick under its
   * best bid) the venue's own book never had: the sequence stays intact, so only
   * a comparison with a REST snapshot can notice.
   */
  corruptNext(stream: string): void {
    this.corruptions.push(stream)
  }

  /** The next frame of `stream` arrives with field `from` renamed to `to` (a format change the decoder must survive). */
  renameNext(stream: string, from: string, to: string): void {
    this.renames.push({ stream, from, to })
  }

  /** The next frame of `stream` is delivered twice. */
  duplicateNext(stream: string): void {
    this.duplicates.push(stream)
  }

  /** The next two frames of `stream` are delivered in swapped order. */
  reorderNext(stream: string): void {
    this.reorders.set(stream, { held: undefined })
  }

  /** Every connection stays open but nothing is delivered (the timeline moves on) until `resume`. */
  pause(): void {
    this.paused = true
  }

  resume(): void {
    this.paused = false
  }

  /** Sends a raw text frame on every open connection of a market: malformed, unknown or renamed content. */
  inject(market: Market, text: string): void {
    for (const { ws } of this.markets[market].subscribers) if (ws.readyState === ws.OPEN) ws.send(text)
  }

  /**
   * Announces a server shutdown on every open connection of a market (the
   * documented connection event) and closes those connections `closeAfterMs`
   * later, as Binance does about ten minutes after its notice.
   */
  announceShutdown(market: Market, closeAfterMs: number): void {
    const doomed = [...this.markets[market].subscribers].map(({ ws }) => ws).filter((ws) => ws.readyState === ws.OPEN)
    for (const ws of doomed) ws.send(JSON.stringify({ event: { e: "serverShutdown", E: Date.now() } }))
    this.later(closeAfterMs, () => {
      for (const ws of doomed) ws.close(1001, "server shutdown")
    })
  }

  /** Every REST answer waits this long. */
  delayRest(ms: number): void {
    this.restDelayMs = ms
  }

  /** Stops delivering one stream on every connection (the socket stays busy with the others) until it is subscribed again. */
  silence(stream: string): void {
    this.silenced.add(stream)
  }

  /** Closes every socket with a close frame (or abruptly with `terminate`). */
  dropConnections(how: "close" | "terminate" = "close"): void {
    for (const ws of this.connections) how === "close" ? ws.close(1001, "going away") : ws.terminate()
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer)
    for (const ws of this.connections) ws.terminate()
    this.wss.close()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private later(ms: number, f: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      f()
    }, ms)
    this.timers.add(timer)
  }

  private reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
    res.writeHead(status, { "content-type": "application/json", "x-mbx-used-weight-1m": "10", ...headers })
    res.end(body)
  }

  private rest(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", this.httpUrl)
    this.restCalls.push(url.pathname + url.search)
    const failure = this.failures.findIndex((f) => url.pathname.endsWith(f.path))
    if (failure >= 0) {
      const { status, retryAfter } = this.failures.splice(failure, 1)[0]!
      return this.reply(res, status, JSON.stringify({ code: -1003, msg: "fault injected" }), retryAfter === undefined ? {} : { "retry-after": String(retryAfter) })
    }
    const market: Market = url.pathname.startsWith("/fapi/") ? "futures" : "spot"
    const data = this.markets[market]
    const symbol = url.searchParams.get("symbol") ?? ""
    const now = Date.now()
    switch (url.pathname) {
      case "/api/v3/exchangeInfo":
      case "/fapi/v1/exchangeInfo":
        return this.reply(res, 200, data.exchangeInfo)
      case "/api/v3/depth":
      case "/fapi/v1/depth": {
        const book = data.books.get(symbol)
        if (book === undefined) return this.reply(res, 400, JSON.stringify({ code: -1121, msg: "Invalid symbol." }))
        const limit = Number(url.searchParams.get("limit") ?? 100)
        const body = {
          lastUpdateId: book.lastUpdateId,
          ...(market === "futures" ? { E: now, T: now } : {}),
          bids: topLevels(book.bids, true, limit),
          asks: topLevels(book.asks, false, limit)
        }
        return this.reply(res, 200, JSON.stringify(body))
      }
      case "/api/v3/aggTrades":
      case "/fapi/v1/aggTrades": {
        const trades = data.aggTrades.get(symbol)
        if (trades === undefined) return this.reply(res, 400, JSON.stringify({ code: -1121, msg: "Invalid symbol." }))
        const fromId = Number(url.searchParams.get("fromId") ?? 0)
        const limit = Math.min(1000, Number(url.searchParams.get("limit") ?? 500))
        const page = trades.filter((t) => (t.a as number) >= fromId).slice(0, limit)
          .map((t) => ({ a: t.a, p: t.p, q: t.q, f: t.f, l: t.l, T: (t.T as number) + data.offset, m: t.m, M: true }))
        return this.reply(res, 200, JSON.stringify(page))
      }
      case "/fapi/v1/fundingInfo":
        return this.reply(res, 200, "[]")
      case "/fapi/v1/premiumIndex": {
        const mid = data.mids.get(symbol)
        if (mid === undefined) return this.reply(res, 400, JSON.stringify({ code: -1121, msg: "Invalid symbol." }))
        return this.reply(res, 200, JSON.stringify(this.premium(symbol, mid, now)))
      }
      case "/fapi/v1/openInterest": {
        if (!data.mids.has(symbol)) return this.reply(res, 400, JSON.stringify({ code: -1121, msg: "Invalid symbol." }))
        const value = 100_000 + symbol.length * 1234.5
        this.openInterest.set(symbol, value)
        return this.reply(res, 200, JSON.stringify({ openInterest: value.toFixed(3), symbol, time: now }))
      }
      default:
        return this.reply(res, 404, JSON.stringify({ code: -1, msg: "no such endpoint" }))
    }
  }

  private premium(symbol: string, mid: number, now: number) {
    return {
      symbol,
      markPrice: mid.toFixed(6),
      indexPrice: (mid * 0.9999).toFixed(6),
      estimatedSettlePrice: (mid * 0.9998).toFixed(6),
      lastFundingRate: "0.00010000",
      interestRate: "0.00010000",
      nextFundingTime: Math.ceil(now / 28_800_000) * 28_800_000,
      time: now
    }
  }

  private stream(ws: WebSocket, req: IncomingMessage): void {
    const url = new URL(req.url ?? "/", this.httpUrl)
    const market: Market | undefined = url.pathname === "/stream"
      ? "spot"
      : url.pathname === "/public/stream" || url.pathname === "/market/stream"
      ? "futures"
      : undefined
    if (market === undefined) return ws.close(1008, "unknown path")
    const streams = new Set((url.searchParams.get("streams") ?? "").split("/").filter((s) => s.length > 0))
    this.connections.add(ws)
    const data = this.markets[market]
    const subscriber = { ws, streams }
    data.subscribers.add(subscriber)
    // Binance's live subscription requests: {"method": "SUBSCRIBE" | "UNSUBSCRIBE", "params": [...], "id": n}.
    ws.on("message", (raw) => {
      this.receivedAt.push({ ws, at: Date.now() })
      let request: { method?: unknown; params?: unknown; id?: unknown }
      try {
        request = JSON.parse(String(raw))
      } catch {
        return ws.send(JSON.stringify({ error: { code: 3, msg: "Invalid JSON" } }))
      }
      const params = Array.isArray(request.params) ? request.params.filter((p): p is string => typeof p === "string") : []
      if (request.method === "SUBSCRIBE") {
        for (const stream of params) {
          streams.add(stream)
          this.silenced.delete(stream)
        }
      } else if (request.method === "UNSUBSCRIBE") {
        for (const stream of params) streams.delete(stream)
      } else {
        return ws.send(JSON.stringify({ error: { code: 2, msg: "Invalid request" }, id: request.id ?? null }))
      }
      this.controlMessages.push({ method: request.method, params })
      ws.send(JSON.stringify({ result: null, id: request.id ?? null }))
    })
    ws.on("close", () => {
      this.connections.delete(ws)
      data.subscribers.delete(subscriber)
    })
    if (!data.started) {
      data.started = true
      this.later(this.options.frameIntervalMs[market], () => this.pump(market))
    }
    if (url.pathname === "/market/stream") this.synthesize(ws, streams, data)
  }

  /** Moves a market's timeline on by one frame: the true book first, then every subscriber of that stream. */
  private pump(market: Market): void {
    const data = this.markets[market]
    const frame = data.frames[data.position++]
    if (frame === undefined) return
    let shifted = shiftTimes(frame.data, data.offset)
    if (frame.stream.includes("@depth")) {
      const book = data.books.get(frame.data.s as string)
      if (book !== undefined) applyToTrueBook(book, frame.data)
    }
    const synthetic = frame.synthetic === true
    this.played.push({ market, stream: frame.stream, data: shifted, synthetic })
    const rename = this.renames.findIndex((r) => r.stream === frame.stream)
    if (rename >= 0) {
      const { from, to } = this.renames.splice(rename, 1)[0]!
      const { [from]: value, ...rest } = shifted
      shifted = { ...rest, [to]: value }
    }
    const corrupt = this.corruptions.indexOf(frame.stream)
    let delivered = shifted
    if (corrupt >= 0 && frame.stream.includes("@depth")) {
      this.corruptions.splice(corrupt, 1)
      const book = data.books.get(frame.data.s as string)!
      const best = Math.max(...[...book.bids.keys()].map(Number))
      const bids = [...(shifted.b as Array<[string, string]>), [String(best - 0.00005), "123"]]
      delivered = { ...shifted, b: bids }
    }
    const loss = this.losses.find((l) => l.stream === frame.stream && l.count > 0)
    if (loss !== undefined && loss.after > 0) loss.after--
    else if (loss !== undefined) {
      loss.count--
      this.lost.push({ market, stream: frame.stream, data: shifted, synthetic })
    } else {
      const send = (payload: Record<string, unknown>) => {
        for (const { ws, streams } of data.subscribers) {
          if (this.paused || !streams.has(frame.stream) || this.silenced.has(frame.stream) || ws.readyState !== ws.OPEN) continue
          this.sent.push({ market, stream: frame.stream, data: payload, synthetic })
          ws.send(JSON.stringify({ stream: frame.stream, data: payload }))
        }
      }
      const reorder = this.reorders.get(frame.stream)
      if (reorder !== undefined && reorder.held === undefined) {
        reorder.held = delivered
      } else {
        send(delivered)
        if (reorder !== undefined && reorder.held !== undefined) {
          this.reorders.delete(frame.stream)
          send(reorder.held)
        }
        const duplicate = this.duplicates.indexOf(frame.stream)
        if (duplicate >= 0) {
          this.duplicates.splice(duplicate, 1)
          send(delivered)
        }
      }
    }
    this.later(this.options.frameIntervalMs[market], () => this.pump(market))
  }

  /** True once a market's recording has been played out. */
  finished(market: Market): boolean {
    return this.markets[market].position >= this.markets[market].frames.length
  }

  /** markPrice@1s and forceOrder in Binance's documented formats, priced off the recording. */
  private synthesize(ws: WebSocket, streams: ReadonlySet<string>, data: MarketData): void {
    const symbols = [...data.mids.keys()]
    const send = (stream: string, payload: Record<string, unknown>) => {
      if (this.paused) return
      this.sent.push({ market: "futures", stream, data: payload, synthetic: true })
      ws.send(JSON.stringify({ stream, data: payload }))
    }
    const tick = () => {
      if (ws.readyState !== ws.OPEN) return
      const now = Date.now()
      for (const symbol of symbols) {
        const stream = `${symbol.toLowerCase()}@markPrice@1s`
        if (!streams.has(stream)) continue
        const p = this.premium(symbol, data.mids.get(symbol)!, now)
        send(stream, {
          e: "markPriceUpdate",
          E: now,
          s: symbol,
          p: p.markPrice,
          i: p.indexPrice,
          P: p.estimatedSettlePrice,
          r: p.lastFundingRate,
          T: p.nextFundingTime
        })
      }
      this.later(this.options.markPriceIntervalMs, tick)
    }
    this.later(5, tick)
    this.later(20, () => {
      if (ws.readyState !== ws.OPEN) return
      for (const symbol of symbols) {
        const stream = `${symbol.toLowerCase()}@forceOrder`
        if (!streams.has(stream)) continue
        const mid = data.mids.get(symbol)!
        const now = Date.now()
        send(stream, {
          e: "forceOrder",
          E: now,
          o: {
            s: symbol,
            S: "SELL",
            o: "LIMIT",
            f: "IOC",
            q: "1500",
            p: (mid * 0.99).toFixed(4),
            ap: mid.toFixed(4),
            X: "FILLED",
            l: "1500",
            z: "1500",
            T: now
          }
        })
      }
    })
  }
}
