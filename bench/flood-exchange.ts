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
import { FloodSymbol } from "./flood-frames.ts"

const recordedInfo = recording("BINANCE.0", "BINANCE.http.0.0").rest.find((r) => r.url.endsWith("/exchangeInfo"))!.body

/**
 * FLOOD_EXCHANGE_INFO=synthetic (the universe bench, whose symbols are made up):
 * every FLOOD_SYMBOLS symbol listed as the recorded BTCUSDT is (base: the
 * symbol less USDT), and a request-weight budget so large that thousands of
 * depth snapshots are never held back by it.
 */
const syntheticInfo = (symbols: ReadonlyArray<string>): string => {
  const info = JSON.parse(recordedInfo) as { rateLimits: Array<Record<string, unknown>>; symbols: Array<Record<string, unknown>> }
  const template = info.symbols.find((s) => s.symbol === "BTCUSDT")!
  return JSON.stringify({
    ...info,
    rateLimits: info.rateLimits.map((limit) => (limit.rateLimitType === "REQUEST_WEIGHT" ? { ...limit, limit: 10_000_000 } : limit)),
    symbols: symbols.map((symbol) => ({ ...template, symbol, baseAsset: symbol.replace(/USDT$/, "") }))
  })
}

const symbols = new Map<string, FloodSymbol>()
const symbolList = (process.env.FLOOD_SYMBOLS ?? "BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT,BNBUSDT,DOGEUSDT").split(",")
symbolList.forEach((symbol, i) => symbols.set(symbol, new FloodSymbol(symbol, 1000 + 100 * i)))
const exchangeInfo = process.env.FLOOD_EXCHANGE_INFO === "synthetic" ? syntheticInfo(symbolList) : recordedInfo

const sockets = new Set<{ readonly ws: WebSocket; readonly symbols: Array<FloodSymbol>; cursor: number }>()
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
    const entry = { ws, symbols: wanted, cursor: 0 }
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
  for (const entry of sockets) {
    const { symbols: wanted, ws } = entry
    if (wanted.length === 0 || ws.readyState !== ws.OPEN) continue
    const share = Math.ceil(budget / sockets.size)
    for (let i = 0; i < share && ws.bufferedAmount < 1 << 20; i++) {
      // Each socket goes on where its last push stopped, so every symbol gets its turn however small the pushes.
      ws.send(wanted[entry.cursor++ % wanted.length]!.next(now))
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
