/**
 * What every fake exchange does the same way with its WebSocket clients and
 * timers: track clients, send a raw frame to all of them, drop them (with or
 * without a close frame), run something later, and shut everything down.
 */
import type { Server } from "node:http"
import type { WebSocket, WebSocketServer } from "ws"

export class LoopbackClients<C extends { readonly ws: WebSocket }> {
  readonly clients = new Set<C>()
  private readonly timers = new Set<NodeJS.Timeout>()

  /** Keeps `client` until its socket closes. */
  track(client: C): C {
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

  later(ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      run()
    }, ms)
    this.timers.add(timer)
  }

  async close(server: Server, wss: WebSocketServer): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer)
    for (const client of this.clients) client.ws.terminate()
    wss.close()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
