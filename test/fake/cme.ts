/**
 * Fakes of the two CME settlement sources, serving their documented formats:
 * - cmegroup.com's settlements JSON (`/CmeWS/mvc/Settlements/Futures/Settlements/{id}/FUT`):
 *   `settlements[]` with `month` ("DEC 26"), `settle`, `volume`, `openInterest`
 *   as display strings ("91,250", "-"), closing with a "Total" row;
 * - Databento's `/v0/timeseries.get_range` (POSTed form or GET; statistics
 *   schema, JSON lines with pretty_px/pretty_ts/map_symbols): stat_type 3
 *   settlement, 6 cleared volume, 9 open interest, Globex symbols with
 *   one-digit years, spreads included; DBN v3 quantities (quoted 64-bit) or v2.
 * Each can be told to refuse (403 as CME's bot protection does, 401 for a bad key).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { type Contract, listedContracts, monthCodes } from "../../src/venues/cme/contracts.ts"

export interface DaySettlement {
  readonly contract: Contract
  readonly price: number
  readonly volume: number
  readonly openInterest: number
}

const monthLabel = (c: Contract) =>
  `${["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"][c.month - 1]} ${String(c.year % 100).padStart(2, "0")}`
const display = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 2 })
const productIds: Record<string, string> = { "8478": "BTC", "9024": "MBT" }

export class FakeCme {
  readonly calls: Array<string> = []
  readonly databentoCalls: Array<{ readonly method: string; readonly params: Record<string, string> }> = []
  refuse: number | undefined
  /** Databento's DBN version for its JSON: 3 (the default since 2025) or 2. */
  dbnVersion: 2 | 3 = 3
  private readonly server: Server
  /** Settlements per trade date (YYYY-MM-DD) and root. */
  readonly days = new Map<string, Map<string, Array<DaySettlement>>>()
  port = 0

  private constructor() {
    this.server = createServer((req, res) => this.handle(req, res))
  }

  static async start(): Promise<FakeCme> {
    const fake = new FakeCme()
    await new Promise<void>((resolve) => fake.server.listen(0, "127.0.0.1", resolve))
    fake.port = (fake.server.address() as AddressInfo).port
    return fake
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /**
   * A plausible curve for a trade date: the front month holds the most open
   * interest unless `rolled`, when the second month has overtaken it.
   */
  publish(tradeDate: string, root: string, spot: number, options: { readonly rolled?: boolean } = {}): Array<DaySettlement> {
    const contracts = listedContracts(root, Date.parse(`${tradeDate}T12:00:00Z`), 4)
    const settlements = contracts.map((contract, i) => ({
      contract,
      price: Math.round(spot * (1 + 0.005 * (i + 1))),
      volume: [9000, 4000, 300, 20][i]!,
      openInterest: (options.rolled === true ? [7000, 9500, 800, 100] : [12000, 5000, 800, 100])[i]!
    }))
    const day = this.days.get(tradeDate) ?? new Map<string, Array<DaySettlement>>()
    day.set(root, settlements)
    this.days.set(tradeDate, day)
    return settlements
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()))
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const readBody = () =>
      new Promise<string>((resolve) => {
        let text = ""
        req.on("data", (chunk) => (text += chunk))
        req.on("end", () => resolve(text))
      })
    const url = new URL(req.url ?? "/", this.url)
    this.calls.push(`${url.pathname}${url.search}`)
    if (this.refuse !== undefined) {
      res.writeHead(this.refuse, { "content-type": "text/html" }).end("<html><body>Access Denied</body></html>")
      return
    }
    const website = /^\/CmeWS\/mvc\/Settlements\/Futures\/Settlements\/(\d+)\/FUT$/.exec(url.pathname)
    if (website !== null) {
      const [mm, dd, yyyy] = (url.searchParams.get("tradeDate") ?? "").split("/")
      const root = productIds[website[1]!]
      const rows = root === undefined ? [] : this.days.get(`${yyyy}-${mm}-${dd}`)?.get(root) ?? []
      const body = {
        empty: rows.length === 0,
        tradeDate: url.searchParams.get("tradeDate"),
        settlements: [
          ...rows.map((s) => ({
            month: monthLabel(s.contract),
            open: "-",
            high: "-",
            low: "-",
            last: "-",
            change: "UNCH",
            settle: display(s.price),
            volume: display(s.volume),
            openInterest: display(s.openInterest)
          })),
          { month: "Total", open: "", high: "", low: "", last: "", change: "", settle: "", volume: display(rows.reduce((n, s) => n + s.volume, 0)), openInterest: display(rows.reduce((n, s) => n + s.openInterest, 0)) }
        ]
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body))
      return
    }
    if (url.pathname === "/v0/timeseries.get_range") {
      if (req.headers.authorization !== `Basic ${Buffer.from("db-test-key:").toString("base64")}`) {
        res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ detail: "Authentication failed." }))
        return
      }
      // Every official client POSTs a form; a GET with the same query parameters is served too.
      const params = req.method === "POST" ? new URLSearchParams(await readBody()) : url.searchParams
      this.databentoCalls.push({ method: req.method ?? "GET", params: Object.fromEntries(params) })
      const start = params.get("start")!
      const roots = params.get("symbols")!.split(",").map((s) => s.replace(".FUT", ""))
      // DBN v3 (Databento's default): 64-bit quantities as quoted strings, "undefined" = i64::MAX; v2: numbers, i32::MAX.
      const v3 = this.dbnVersion === 3
      const quantity = (n: number) => (v3 ? String(n) : n)
      const undefinedQuantity = v3 ? "9223372036854775807" : 2147483647
      const lines: Array<string> = []
      for (const root of roots) {
        for (const s of this.days.get(start)?.get(root) ?? []) {
          const symbol = `${root}${monthCodes[s.contract.month - 1]}${s.contract.year % 10}`
          const base = { ts_recv: `${start}T22:00:00.000000000Z`, hd: { ts_event: `${start}T21:00:00.000000000Z`, rtype: 24, publisher_id: 1, instrument_id: 42 }, ts_ref: `${start}T00:00:00.000000000Z`, sequence: 1, ts_in_delta: 0, channel_id: 0, update_action: 1, stat_flags: 1, symbol }
          lines.push(JSON.stringify({ ...base, stat_type: 3, price: s.price.toFixed(9), quantity: undefinedQuantity }))
          lines.push(JSON.stringify({ ...base, stat_type: 6, price: null, quantity: quantity(s.volume) }))
          lines.push(JSON.stringify({ ...base, stat_type: 9, price: null, quantity: quantity(s.openInterest) }))
        }
        // A calendar spread of the same parent: not an outright contract.
        lines.push(JSON.stringify({ ts_recv: `${start}T22:00:00Z`, stat_type: 3, price: "150.000000000", quantity: undefinedQuantity, ts_ref: `${start}T00:00:00Z`, symbol: `${root}Z6-${root}F7` }))
      }
      res.writeHead(200, { "content-type": "application/json" }).end(lines.join("\n") + "\n")
      return
    }
    res.writeHead(404).end()
  }
}
