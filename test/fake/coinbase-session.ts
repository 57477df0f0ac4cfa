/**
 * A real Coinbase Advanced Trade session (shared/fixtures/sessions, recorded
 * 2026-08-09) served back on loopback: a client's first subscription starts
 * the recorded frames of the session's connection, in order, at their recorded
 * pace divided by `speed`, exactly as received (sequence_num included).
 * REST: `/products` in the Exchange format, derived from the session's own
 * products response, and `/products/{id}/trades` from the session's trades.
 */
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { WebSocketServer, type WebSocket } from "ws"
import type { Recording } from "../../src/replay/recorded.ts"
import { session } from "../support/fixtures.ts"

export class FakeCoinbaseSession {
  readonly recording: Recording = session("COINBASE.jsonl.zst")
  readonly subscribeMessages: Array<Record<string, unknown>> = []
  readonly restCalls: Array<string> = []
  /** Frames sent so far. */
  sent = 0
  private readonly server: Server
  private readonly wss: WebSocketServer
  private readonly timers = new Set<NodeJS.Timeout>()
  private port = 0
  private readonly speed: number

  private constructor(speed: number) {
    this.speed = speed
    this.server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://localhost")
      this.restCalls.push(url.pathname)
      const json = (status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body))
      if (url.pathname === "/products") return json(200, this.products())
      const trades = /^\/products\/([A-Z0-9-]+)\/trades$/.exec(url.pathname)
      if (trades !== null) return json(200, this.tradesOf(trades[1]!))
      json(404, { message: "NotFound" })
    })
    this.wss = new WebSocketServer({ noServer: true })
    this.server.on("upgrade", (req, socket, head) => this.wss.handleUpgrade(req, socket, head, (ws) => this.connect(ws)))
  }

  static async start(options: { readonly speed?: number } = {}): Promise<FakeCoinbaseSession> {
    const fake = new FakeCoinbaseSession(options.speed ?? 10)
    await new Promise<void>((resolve) => fake.server.listen(0, "127.0.0.1", resolve))
    fake.port = (fake.server.address() as AddressInfo).port
    return fake
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`
  }

  get finished(): boolean {
    return this.sent === this.recording.frames.length
  }

  /** The session's frames as parsed messages. */
  messages(): Array<Record<string, any>> {
    return this.recording.frames.map((f) => JSON.parse(f.text))
  }

  private products() {
    const body = JSON.parse(this.recording.rest.find((r) => r.url.endsWith("/market/products"))!.body) as {
      products: Array<{ product_id: string; base_currency_id: string; quote_currency_id: string; status: string; trading_disabled: boolean }>
    }
    return body.products.map((p) => ({ id: p.product_id, base_currency: p.base_currency_id, quote_currency: p.quote_currency_id, status: p.status, trading_disabled: p.trading_disabled }))
  }

  /** The session's trades of a product in the Exchange REST format (newest first; `side` the maker's, as sent). */
  private tradesOf(product: string) {
    return this.messages()
      .filter((m) => m.channel === "market_trades")
      .flatMap((m) => m.events.flatMap((e: any) => e.trades))
      .filter((t: any) => t.product_id === product)
      .map((t: any) => ({ trade_id: Number(t.trade_id), price: t.price, size: t.size, side: t.side.toLowerCase(), time: t.time }))
      .sort((a: any, b: any) => b.trade_id - a.trade_id)
  }

  private connect(ws: WebSocket): void {
    let playing = false
    ws.on("message", (raw) => {
      this.subscribeMessages.push(JSON.parse(String(raw)))
      if (playing) return
      playing = true
      const frames = this.recording.frames
      const start = frames[0]!.receivedAt!
      for (const frame of frames) {
        const timer = setTimeout(() => {
          this.timers.delete(timer)
          if (ws.readyState !== ws.OPEN) return
          ws.send(frame.text)
          this.sent++
        }, (frame.receivedAt! - start) / this.speed)
        this.timers.add(timer)
      }
    })
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer)
    for (const ws of this.wss.clients) ws.terminate()
    this.wss.close()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
