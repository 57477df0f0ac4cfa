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
import type { Contract } from "../../src/venues/cme/contracts.ts"

export interface DaySettlement {
  readonly contract: Contract
  readonly price: number
  readonly volume: number
  readonly openInterest: number
}

const monthCodes = ["F", "G", "H", "J", "K", "M", "N", "Q", "U", "V", "X", "Z"]
const monthLabel = (c: Contract) =>
  `${["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"][c.month - 1]} ${String(c.year % 100).padStart(2, "0")}`
const display = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 2 })
const productIds: Record<string, string> = { "8478": "BTC", "9024": "MBT" }

/**
 * The contracts CME lists on each trade date the tests use, written out by
 * hand (never computed by the code under test), front month first, with each
 * one's last trading day. CME's contract specs (BTC and MBT alike):
 * - "Monthly contracts listed for 6 consecutive months and 2 additional Dec
 *   contract months. If the 6 consecutive months includes Dec, list only 1
 *   additional Dec contract month."
 * - "Trading terminates at 4:00 p.m. London time on the last Friday of the
 *   contract month. If this is not both a London and U.S. business day,
 *   trading terminates on the prior London and U.S. business day."
 * A month trades through its last day; the next month is listed after it.
 * Last Fridays: Nov 2026 the 27th; Dec 2026 the 25th, Christmas, so Thu 24th;
 * Jan 2027 the 29th; Feb the 26th; Mar the 26th, Good Friday (Easter Sunday
 * 28 Mar 2027), so Thu 25th; Apr the 30th; May the 28th; Jun the 25th; Jul
 * the 30th; Aug the 27th; Sep the 24th; Dec 2027 the 31st; Dec 2028 the 29th.
 */
const listed: Record<string, ReadonlyArray<readonly [code: string, lastTradingDay: string]>> = {}
const nov2026 = [["X26", "2026-11-27"], ["Z26", "2026-12-24"], ["F27", "2027-01-29"], ["G27", "2027-02-26"], ["H27", "2027-03-25"], ["J27", "2027-04-30"], ["Z27", "2027-12-31"]] as const
// X26 expired: Nov 2026 to Apr 2027 become Dec 2026 to May 2027 (still with Dec 2026: one more Dec).
const dec2026 = [["Z26", "2026-12-24"], ["F27", "2027-01-29"], ["G27", "2027-02-26"], ["H27", "2027-03-25"], ["J27", "2027-04-30"], ["K27", "2027-05-28"], ["Z27", "2027-12-31"]] as const
// Z26 expired: Jan to Jun 2027, no Dec among them, so two more: Dec 2027 and Dec 2028.
const jan2027 = [["F27", "2027-01-29"], ["G27", "2027-02-26"], ["H27", "2027-03-25"], ["J27", "2027-04-30"], ["K27", "2027-05-28"], ["M27", "2027-06-25"], ["Z27", "2027-12-31"], ["Z28", "2028-12-29"]] as const
// F27 and G27 expired (Jul and Aug 2027 listed after them): Mar to Aug 2027, plus Dec 2027 and Dec 2028.
const mar2027 = [["H27", "2027-03-25"], ["J27", "2027-04-30"], ["K27", "2027-05-28"], ["M27", "2027-06-25"], ["N27", "2027-07-30"], ["Q27", "2027-08-27"], ["Z27", "2027-12-31"], ["Z28", "2028-12-29"]] as const
// H27 expired on Thu 25 Mar: Apr to Sep 2027, plus Dec 2027 and Dec 2028.
const apr2027 = [["J27", "2027-04-30"], ["K27", "2027-05-28"], ["M27", "2027-06-25"], ["N27", "2027-07-30"], ["Q27", "2027-08-27"], ["U27", "2027-09-24"], ["Z27", "2027-12-31"], ["Z28", "2028-12-29"]] as const
for (const day of ["2026-11-23", "2026-11-24", "2026-11-27"]) listed[day] = nov2026
for (const day of ["2026-11-30", "2026-12-24"]) listed[day] = dec2026
for (const day of ["2026-12-25", "2026-12-31"]) listed[day] = jan2027
listed["2027-03-25"] = mar2027
listed["2027-03-26"] = apr2027

/** The trade dates the hand-written table covers. */
export const handListedTradeDates = () => Object.keys(listed)

/** The hand-written listing of a trade date, as contracts of `root`. */
export const contractsListedOn = (tradeDate: string, root: string): Array<Contract> => {
  const table = listed[tradeDate]
  if (table === undefined) throw new Error(`no hand-written CME listing for ${tradeDate}: add it to test/fake/cme.ts`)
  return table.map(([code, lastTradingDay]) => ({
    symbol: `${root}${code}`,
    root,
    year: 2000 + Number(code.slice(1)),
    month: monthCodes.indexOf(code[0]!) + 1,
    expiry: Date.parse(`${lastTradingDay}T00:00:00Z`)
  }))
}

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
   * A plausible curve over the contracts listed on a trade date (the
   * hand-written table): the front month holds the most open interest unless
   * `rolled`, when the second month has overtaken it.
   */
  publish(tradeDate: string, root: string, spot: number, options: { readonly rolled?: boolean } = {}): Array<DaySettlement> {
    const settlements = contractsListedOn(tradeDate, root).map((contract, i) => ({
      contract,
      price: Math.round(spot * (1 + 0.005 * (i + 1))),
      volume: [9000, 4000, 300, 20, 12, 8, 5, 3][i]!,
      openInterest: (options.rolled === true ? [7000, 9500, 800, 100, 60, 40, 20, 10] : [12000, 5000, 800, 100, 60, 40, 20, 10])[i]!
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
