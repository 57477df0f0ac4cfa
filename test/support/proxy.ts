/** A loopback TCP proxy the tests can cut and restore, to take a database away and bring it back. */
import { createConnection, createServer, type Server, type Socket } from "node:net"
import type { AddressInfo } from "node:net"

export class TcpProxy {
  private server: Server | undefined
  private readonly sockets = new Set<Socket>()
  port = 0
  private readonly targetPort: number
  private readonly targetHost: string

  private constructor(targetPort: number, targetHost: string) {
    this.targetPort = targetPort
    this.targetHost = targetHost
  }

  static async start(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetPort, targetHost)
    await proxy.listen(0)
    return proxy
  }

  private listen(port: number): Promise<void> {
    const server = createServer((client) => {
      const upstream = createConnection({ host: this.targetHost, port: this.targetPort })
      for (const socket of [client, upstream]) {
        this.sockets.add(socket)
        socket.on("close", () => this.sockets.delete(socket))
        socket.on("error", () => socket.destroy())
      }
      client.pipe(upstream).pipe(client)
      client.on("close", () => upstream.destroy())
      upstream.on("close", () => client.destroy())
    })
    this.server = server
    return new Promise((resolve) =>
      server.listen(port, "127.0.0.1", () => {
        this.port = (server.address() as AddressInfo).port
        resolve()
      })
    )
  }

  /** Drops every open connection and refuses new ones. */
  async cut(): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    const server = this.server
    this.server = undefined
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  restore(): Promise<void> {
    return this.listen(this.port)
  }

  close(): Promise<void> {
    return this.cut()
  }
}
