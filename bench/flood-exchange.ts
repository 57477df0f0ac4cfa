/**
 * A flood Binance spot venue for the end-to-end bench, run as a child process
 * so it has its own core: the documented combined-stream WebSocket
 * (/stream?streams=...) and the REST endpoints the collector calls
 * (exchangeInfo as recorded, depth snapshots consistent with the diffs sent,
 * aggTrades). Each symbol alternates an aggTrade and a depthUpdate diff with
 * consecutive update ids; every trade's E and T are the time it was sent, so
 * a stored row's exchange time is its send time.
 *
 * The parent sets the pace over IPC: { rate } frames per second in total, or
 * { rate: 0 }, as fast as the collector reads (the socket's own backpressure:
 * frames are written only while less than 1 MB waits in the kernel and ws).
 * It answers { counts } with frames sent so far ({ sent }) and the trades sent
 * per symbol ({ trades }). { rate: -1 } pauses it.
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { WebSocketServer, type WebSocket } from "ws"
import { recording } from "../test/support/fixtures.ts"

const exchangeInfo = recording("BINANCE.0", "BINANCE.http.0.0").rest.find((r) => r.url.endsWith("/exchangeInfo"))!.body

const levelsPerSide = 200

/** A synthetic book: level i of each side at a fixed price, sizes moved by the diffs; it never crosses. */
class FloodSymbol {
  readonly stream: string
  readonly bidSizes = new Float64Array(levelsPerSide).fill(1)
  readonly askSizes = new Float64Array(levelsPerSide).fill(1)
  updateId = 1_000_000
  tradeId = 5_000_000
  turn = 0
  readonly symbol: string
  readonly mid: number
  constructor(symbol: string, mid: number) {
    this.symbol = symbol
    this.mid = mid
    this.stream = symbol.toLowerCase()
  }
  bidPrice(i: number) {
    return (this.mid - 0.01 * (i + 1)).toFixed(2)
  }
  askPrice(i: number) {
    return (this.mid + 0.01 * (i + 1)).toFixed(2)
  }
  next(now: number): string {
    this.turn++
    if (this.turn % 2 === 0) {
      const id = ++this.tradeId
      const price = this.bidPrice(0)
      return `{"stream":"${this.stream}@aggTrade","data":{"e":"aggTrade","E":${now},"s":"${this.symbol}","a":${id},"p":"${price}","q":"3.50000000","f":${id},"l":${id},"T":${now},"m":${id % 3 === 0},"M":true}}`
    }
    const first = this.updateId + 1
    const bids: Array<string> = []
    const asks: Array<string> = []
    for (let k = 0; k < 3; k++) {
      const i = (this.turn * 7 + k * 13) % levelsPerSide
      const size = ((this.turn + k) % 50) + 1
      this.bidSizes[i] = size
      this.askSizes[(i + 5) % levelsPerSide] = size
      bids.push(`["${this.bidPrice(i)}","${size.toFixed(8)}"]`)
      asks.push(`["${this.askPrice((i + 5) % levelsPerSide)}","${size.toFixed(8)}"]`)
    }
    this.updateId = first + 2
    return `{"stream":"${this.stream}@depth@100ms","data":{"e":"depthUpdate","E":${now},"s":"${this.symbol}","U":${first},"u":${this.updateId},"b":[${bids.join(",")}],"a":[${asks.join(",")}]}}`
  }
  snapshot(limit: number): string {
    const count = Math.min(limit, levelsPerSide)
    const bids = Array.from({ length: count }, (_, i) => [this.bidPrice(i), this.bidSizes[i]!.toFixed(8)])
    const asks = Array.from({ length: count }, (_, i) => [this.askPrice(i), this.askSizes[i]!.toFixed(8)])
    return JSON.stringify({ lastUpdateId: this.updateId, bids, asks })
  }
}

const symbols = new Map<string, FloodSymbol>()
const symbolList = (process.env.FLOOD_SYMBOLS ?? "BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT,BNBUSDT,DOGEUSDT").split(",")
symbolList.forEach((symbol, i) => symbols.set(symbol, new FloodSymbol(symbol, 1000 + 100 * i)))

const sockets = new Set<{ readonly ws: WebSocket; readonly symbols: Array<FloodSymbol> }>()
let rate = -1
let sent = 0
let paceStart = performance.now()
let paceSent = 0

const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost")
  const reply = (status: number, body: string) => {
    res.writeHead(status, { "content-type": "application/json", "x-mbx-used-weight-1m": "10" })
    res.end(body)
  }
  const flood = symbols.get(url.searchParams.get("symbol") ?? "")
  if (url.pathname === "/api/v3/exchangeInfo") return reply(200, exchangeInfo)
  if (url.pathname === "/api/v3/depth" && flood !== undefined) return reply(200, flood.snapshot(Number(url.searchParams.get("limit") ?? 100)))
  if (url.pathname === "/api/v3/aggTrades" && flood !== undefined) return reply(200, "[]")
  return reply(400, JSON.stringify({ code: -1121, msg: "Invalid symbol." }))
})
const wss = new WebSocketServer({ noServer: true })
server.on("upgrade", (req, socket, head) =>
  wss.handleUpgrade(req, socket, head, (ws) => {
    const streams = new URL(req.url ?? "/", "http://localhost").searchParams.get("streams")?.split("/") ?? []
    const wanted = [...new Set(streams.map((s) => s.split("@")[0]!.toUpperCase()))].flatMap((s) => symbols.get(s) ?? [])
    const entry = { ws, symbols: wanted }
    sockets.add(entry)
    ws.on("message", (data) => {
      const request = JSON.parse(String(data)) as { id?: number }
      ws.send(JSON.stringify({ result: null, id: request.id ?? null }))
    })
    ws.on("close", () => sockets.delete(entry))
  }))

/** Writes up to `budget` frames round-robin over every subscribed symbol; returns how many went out. */
const push = (budget: number): number => {
  let pushed = 0
  const now = Date.now()
  for (const { symbols: wanted, ws } of sockets) {
    if (wanted.length === 0 || ws.readyState !== ws.OPEN) continue
    const share = Math.ceil(budget / sockets.size)
    for (let i = 0; i < share && ws.bufferedAmount < 1 << 20; i++) {
      ws.send(wanted[i % wanted.length]!.next(now))
      pushed++
    }
  }
  sent += pushed
  return pushed
}

const tick = () => {
  if (rate < 0) {
    // paused until the parent sets a pace
  } else if (rate === 0) push(2000)
  else {
    const owed = Math.floor(((performance.now() - paceStart) / 1000) * rate) - paceSent
    if (owed > 0) paceSent += push(Math.min(owed, rate))
  }
  setTimeout(tick, 1)
}

process.on("message", (message: { readonly rate?: number; readonly counts?: true; readonly stop?: true }) => {
  if (message.rate !== undefined) {
    rate = message.rate
    paceStart = performance.now()
    paceSent = 0
  }
  // Trades per symbol too: each symbol's trade ids run consecutively from 5,000,001, so a consumer knows every id sent.
  if (message.counts === true) process.send!({ sent, trades: Object.fromEntries([...symbols].map(([symbol, flood]) => [symbol, flood.tradeId - 5_000_000])) })
  if (message.stop === true) process.exit(0)
})

server.listen(0, "127.0.0.1", () => {
  tick()
  process.send!({ port: (server.address() as AddressInfo).port })
})
