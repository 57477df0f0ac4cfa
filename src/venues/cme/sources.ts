/**
 * Where CME settlements come from, behind one interface.
 *
 * - `cme-website` (default, free, delayed): the JSON behind cmegroup.com's
 *   settlement pages, `GET {CME_WEBSITE_URL}/CmeWS/mvc/Settlements/Futures/Settlements/{productId}/FUT?tradeDate=MM/DD/YYYY&strategy=DEFAULT&pageSize=500`,
 *   one call per product and trade date. It is undocumented: CME may change it
 *   or refuse clients (it sits behind bot protection and often answers 403 to
 *   non-browser clients). Any non-200, non-JSON or unexpected shape is a typed
 *   failure, logged and counted; nothing is guessed, and the next poll retries.
 *   Product ids: BTC 8478 and MBT 9024 are verified; ETH and MET must be given
 *   in CME_PRODUCT_IDS (ROOT:id pairs) to be fetched from this source.
 * - `databento` (when DATABENTO_API_KEY is set): the documented historical API,
 *   `POST {DATABENTO_URL}/v0/timeseries.get_range` with a form body (as every
 *   official client calls it) on dataset GLBX.MDP3, schema `statistics`, parent
 *   symbols (BTC.FUT, MBT.FUT, ETH.FUT, MET.FUT), JSON lines with
 *   `pretty_px`/`pretty_ts`/`map_symbols`; HTTP basic auth with the key as user
 *   name. Statistic types: 3 settlement price, 6 cleared volume, 9 open
 *   interest. DBN v3 (the default encoding since 2025) widened `quantity` to
 *   64 bits, which JSON carries as a quoted string, with i64::MAX as
 *   "undefined"; v2 sends a number with i32::MAX. Both are read.
 */
import { Effect, Result, Schema } from "effect"
import { DecodeError } from "../../domain/errors.ts"
import type { RestFailure, RestGate } from "../../rest/gate.ts"
import { type Contract, fromMonthLabel, fromSymbol, products } from "./contracts.ts"

export interface Settlement {
  readonly contract: Contract
  /** The trade date it settles, UTC midnight. */
  readonly tradeDate: number
  readonly price: number
  readonly volume: number | null
  readonly openInterest: number | null
  readonly source: string
}

export interface SettlementSource {
  readonly name: string
  /** Every settlement of the configured products for one trade date (UTC midnight). */
  readonly fetch: (tradeDate: number) => Effect.Effect<ReadonlyArray<Settlement>, RestFailure | DecodeError>
}

const WebsitePage = Schema.Struct({
  settlements: Schema.Array(Schema.Struct({
    month: Schema.String,
    settle: Schema.String,
    volume: Schema.optional(Schema.String),
    openInterest: Schema.optional(Schema.String)
  }))
})
const decodeWebsitePage = Schema.decodeUnknownResult(WebsitePage)

/** "91,250", "91,250B" (bid/ask flags), "-" (none). */
export const websiteNumber = (raw: string | undefined): number | null => {
  if (raw === undefined) return null
  const cleaned = raw.replace(/,/g, "").replace(/[AB]$/, "").trim()
  if (cleaned === "" || cleaned === "-") return null
  const value = Number(cleaned)
  return Number.isFinite(value) ? value : null
}

const mmddyyyy = (date: number) => {
  const d = new Date(date)
  return `${String(d.getUTCMonth() + 1).padStart(2, "0")}/${String(d.getUTCDate()).padStart(2, "0")}/${d.getUTCFullYear()}`
}
const isoDate = (date: number) => new Date(date).toISOString().slice(0, 10)

export const verifiedProductIds: Record<string, number> = { BTC: 8478, MBT: 9024 }

export const cmeWebsiteSource = (gate: RestGate, baseUrl: string, productIds: Record<string, number>): SettlementSource => ({
  name: "cme-website",
  fetch: (tradeDate) =>
    Effect.forEach(Object.entries(productIds), ([root, id]) => {
      const url = `${baseUrl}/CmeWS/mvc/Settlements/Futures/Settlements/${id}/FUT?tradeDate=${mmddyyyy(tradeDate)}&strategy=DEFAULT&pageSize=500`
      return Effect.flatMap(gate.getJson(url, 1), (body) => {
        const page = decodeWebsitePage(body)
        if (Result.isFailure(page)) {
          return Effect.fail(new DecodeError({ venue: gate.venue, channel: "cme-website settlements", detail: page.failure.message, sample: JSON.stringify(body).slice(0, 200) }))
        }
        const out: Array<Settlement> = []
        for (const row of page.success.settlements) {
          const contract = fromMonthLabel(root, row.month)
          const price = websiteNumber(row.settle)
          // The page ends with a "Total" row and lists months without a settlement yet as "-".
          if (contract === undefined || price === null) continue
          out.push({
            contract,
            tradeDate,
            price,
            volume: websiteNumber(row.volume),
            openInterest: websiteNumber(row.openInterest),
            source: "cme-website"
          })
        }
        return Effect.succeed(out)
      })
    }).pipe(Effect.map((lists) => lists.flat()))
})

const StatisticsRecord = Schema.Struct({
  stat_type: Schema.Number,
  price: Schema.optional(Schema.NullOr(Schema.String)),
  quantity: Schema.optional(Schema.NullOr(Schema.Union([Schema.Number, Schema.String]))),
  ts_ref: Schema.optional(Schema.NullOr(Schema.String)),
  symbol: Schema.String
})
const decodeStatistics = Schema.decodeUnknownResult(Schema.Array(StatisticsRecord))

/** Databento's "undefined" quantity: i32::MAX in DBN v2 (a JSON number), i64::MAX in v3 (a quoted string). */
const undefinedQuantities: ReadonlySet<string> = new Set(["2147483647", "9223372036854775807"])

/** A statistics quantity (number or, DBN v3, decimal string), null when it is Databento's "undefined". */
export const databentoQuantity = (raw: number | string | null | undefined): number | undefined => {
  if (raw === undefined || raw === null) return undefined
  const text = typeof raw === "number" ? String(raw) : raw.trim()
  if (undefinedQuantities.has(text) || !/^-?\d+$/.test(text)) return undefined
  return Number(text)
}

export const databentoSource = (gate: RestGate, baseUrl: string, apiKey: string, roots: ReadonlyArray<string>): SettlementSource => ({
  name: "databento",
  fetch: (tradeDate) => {
    const form = {
      dataset: "GLBX.MDP3",
      schema: "statistics",
      stype_in: "parent",
      symbols: roots.map((root) => `${root}.FUT`).join(","),
      start: isoDate(tradeDate),
      end: isoDate(tradeDate + 2 * 86_400_000),
      encoding: "json",
      pretty_px: "true",
      pretty_ts: "true",
      map_symbols: "true"
    }
    const headers = { authorization: `Basic ${Buffer.from(`${apiKey}:`).toString("base64")}` }
    return Effect.flatMap(gate.getJson(`${baseUrl}/v0/timeseries.get_range`, 1, { headers, form, lines: true }), (body) => {
      const records = decodeStatistics(body)
      if (Result.isFailure(records)) {
        return Effect.fail(new DecodeError({ venue: gate.venue, channel: "databento statistics", detail: records.failure.message, sample: JSON.stringify(body).slice(0, 200) }))
      }
      const byContract = new Map<string, { contract: Contract; price?: number; volume?: number; openInterest?: number }>()
      for (const r of records.success) {
        const contract = fromSymbol(r.symbol, tradeDate)
        // Spreads (BTCZ5-BTCF6) and other instruments of the parent are not outright contracts.
        if (contract === undefined) continue
        // Settlements carry the trading date they belong to in ts_ref; keep only the requested one.
        if (r.stat_type === 3 && r.ts_ref !== undefined && r.ts_ref !== null && !r.ts_ref.startsWith(isoDate(tradeDate))) continue
        const entry = byContract.get(contract.symbol) ?? { contract }
        byContract.set(contract.symbol, entry)
        const price = r.price === undefined || r.price === null ? undefined : Number(r.price)
        const quantity = databentoQuantity(r.quantity)
        if (r.stat_type === 3 && price !== undefined && Number.isFinite(price)) entry.price = price
        if (r.stat_type === 6 && quantity !== undefined) entry.volume = quantity
        if (r.stat_type === 9 && quantity !== undefined) entry.openInterest = quantity
      }
      const out: Array<Settlement> = []
      for (const e of byContract.values()) {
        if (e.price === undefined) continue
        out.push({ contract: e.contract, tradeDate, price: e.price, volume: e.volume ?? null, openInterest: e.openInterest ?? null, source: "databento" })
      }
      return Effect.succeed(out)
    })
  }
})

export const knownRoots = Object.keys(products)
