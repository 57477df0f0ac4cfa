/**
 * What every fake exchange does the same way: an HTTP server for its REST
 * answers with a WebSocket server beside it on one loopback port, its clients
 * tracked, a raw frame sent to all of them, clients dropped (with or without a
 * close frame), timers run later, and everything shut down. A fake extends it
 * with its protocol: `rest` answers requests, and its own upgrade handler
 * (paths differ per venue) hands sockets to `track`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { type WebSocket, WebSocketServer } from "ws"

export abstract class LoopbackVenue<C extends { readonly ws: WebSocket }> {
  port = 0
  protected readonly clients = new Set<C>()
  private readonly timers = new Set<NodeJS.Timeout>()
  protected readonly server = createServer((req, res) => this.rest(req, res))
  protected readonly wss = new WebSocketServer({ noServer: true })

  protected abstract rest(req: IncomingMessage, res: ServerResponse): void

  /** Listens on a free loopback port (then in `port`). */
  protected async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve))
    this.port = (this.server.address() as AddressInfo).port
  }

  /** Keeps `client` until its socket closes. */
  protected track(client: C): C {
    this.clients.add(client)
    client.ws.on("close", () => this.clients.delete(client))
    return client
  }

  /** A raw frame to every client, as the venue would send something we do not expect. */
  inject(raw: string): void {
    for (const client of this.clients) if (client.ws.readyState === client.ws.OPEN) client.ws.send(raw)
  }

  dropConnections(mode: "close" | "terminate" = "terminate"): void {
    for (const client of this.clients) {
      if (mode === "close") client.ws.close(1001, "going away")
      else client.ws.terminate()
    }
  }

  protected later(ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      run()
    }, ms)
    this.timers.add(timer)
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer)
    for (const client of this.clients) client.ws.terminate()
    this.wss.close()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
