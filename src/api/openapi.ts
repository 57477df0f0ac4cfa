/** The OpenAPI document, generated from the same parameter table that validates requests. */
import { type ParamName, params } from "./params.ts"

const envelope = (data: Record<string, unknown>) => ({
  type: "object",
  required: ["success", "data", "filters", "timestamp"],
  properties: {
    success: { type: "boolean", const: true },
    data: { type: "object", properties: data },
    filters: { type: "object", additionalProperties: true },
    coverage: {
      type: "object",
      description: "Gaps overlapping the window for the channels this answer draws on; complete is false while any is not verified",
      properties: { complete: { type: "boolean" }, gap_count: { type: "number" }, unrepaired_gap_count: { type: "number" }, gaps: { type: "array" } }
    },
    timestamp: { type: "string", format: "date-time" }
  }
})

const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } }
})

const operation = (summary: string, names: ReadonlyArray<ParamName>, data: Record<string, unknown>) => ({
  get: {
    summary,
    parameters: names.map((name) => ({
      name,
      in: "query",
      required: false,
      description: params[name].description,
      schema: params[name].schema
    })),
    responses: {
      "200": { description: "OK", content: { "application/json": { schema: envelope(data) } } },
      "400": errorResponse("A parameter is invalid; the message names it"),
      "503": errorResponse("The database is unreachable")
    }
  }
})

const array = (items: Record<string, unknown>) => ({ type: "array", items: { type: "object", properties: items } })
const str = { type: "string" }
const num = { type: "number" }
const time = { type: "string", format: "date-time" }
const names = { type: "array", items: str }

export const endpointParams = {
  largeTrades: ["symbol", "exchange", "hours", "min_value_usd", "only_liquidations", "side", "limit"],
  fundingRates: ["symbol", "exchange", "hours", "limit"],
  openInterest: ["symbol", "exchange", "hours", "limit"],
  orderbooks: ["symbol", "exchange", "depth"],
  gaps: ["symbol", "exchange", "hours", "limit", "channel", "status"],
  volatilityIndex: ["index", "exchange", "hours", "limit"],
  optionChain: ["currency", "expiry", "exchange", "limit"],
  settlements: ["symbol", "exchange", "hours", "limit"],
  basis: ["symbol", "exchange", "hours", "limit"],
  rolls: ["root", "exchange", "hours", "limit"]
} as const satisfies Record<string, ReadonlyArray<ParamName>>

export const openApiDocument = {
  openapi: "3.1.0",
  info: { title: "Market data service", version: "0.1.0" },
  paths: {
    "/api/v1/exchange/large-trades": operation("Large trades and liquidations, newest first", endpointParams.largeTrades, {
      count: num,
      trades: array({
        exchange: str,
        symbol: str,
        side: str,
        price: num,
        size: num,
        value_usd: num,
        timestamp: time,
        trade_id: str,
        is_liquidation: { type: "boolean" },
        metadata: { type: "object" }
      }),
      summary: {
        type: "object",
        properties: { total_value_usd: num, liquidation_count: num, exchanges: names, symbols: names }
      }
    }),
    "/api/v1/exchange/funding-rates": operation("Funding rates, newest first", endpointParams.fundingRates, {
      count: num,
      funding_rates: array({
        exchange: str,
        symbol: str,
        rate: num,
        predicted_rate: { type: ["number", "null"] },
        timestamp: time,
        next_funding_time: { type: ["string", "null"], format: "date-time" },
        metadata: { type: ["object", "null"] }
      }),
      summary: { type: "object", properties: { average_rate: num, average_rate_percent: num, exchanges: names, symbols: names } }
    }),
    "/api/v1/exchange/open-interest": operation("Open interest, newest first", endpointParams.openInterest, {
      count: num,
      open_interest: array({
        exchange: str,
        symbol: str,
        open_interest: num,
        open_interest_usd: num,
        timestamp: time,
        metadata: { type: ["object", "null"] }
      }),
      summary: { type: "object", properties: { total_oi_usd: num, exchanges: names, symbols: names } }
    }),
    "/api/v1/exchange/orderbooks": operation("Latest stored order-book snapshot per instrument", endpointParams.orderbooks, {
      count: num,
      orderbooks: array({ exchange: str, symbol: str, bids: { type: "array" }, asks: { type: "array" }, timestamp: time, sequence: num })
    }),
    "/api/v1/exchange/gaps": operation("The gap ledger: holes in the collected data and their repair status", endpointParams.gaps, {
      count: num,
      unrepaired: num,
      gaps: array({
        exchange: str,
        channel: str,
        symbol: str,
        start: time,
        end: { type: ["string", "null"], format: "date-time" },
        cause: str,
        estimated_missing: { type: ["number", "null"] },
        repair_status: str,
        repaired_count: num
      })
    }),
    "/api/v1/exchange/volatility-index": operation("Volatility index values (Deribit DVOL), newest first", endpointParams.volatilityIndex, {
      count: num,
      values: array({ exchange: str, index: str, value: num, timestamp: time }),
      summary: { type: "object", properties: { latest: { type: ["number", "null"] }, min: { type: ["number", "null"] }, max: { type: ["number", "null"] }, average: { type: ["number", "null"] }, indexes: names } }
    }),
    "/api/v1/exchange/option-chain": operation("The latest option chain snapshot per currency (Deribit)", endpointParams.optionChain, {
      count: num,
      options: array({
        exchange: str,
        currency: str,
        instrument: str,
        expiry: time,
        strike: num,
        option_type: str,
        mark_price: { type: ["number", "null"] },
        mark_iv: { type: ["number", "null"] },
        bid_iv: { type: ["number", "null"] },
        ask_iv: { type: ["number", "null"] },
        greeks: { type: ["object", "null"] },
        open_interest: num,
        underlying_price: { type: ["number", "null"] },
        timestamp: time
      }),
      summary: { type: "object", properties: { snapshot_times: { type: "object" }, expiries: names, calls: num, puts: num, total_open_interest: num } }
    }),
    "/api/v1/exchange/settlements": operation("Daily futures settlements (CME), with volume and open interest", endpointParams.settlements, {
      count: num,
      settlements: array({ exchange: str, symbol: str, root: str, trade_date: str, expiry: str, settlement_price: num, volume: { type: ["number", "null"] }, open_interest: { type: ["number", "null"] }, contract_size: num, source: str, timestamp: time }),
      summary: { type: "object", properties: { latest_trade_date: { type: ["string", "null"] }, symbols: names } }
    }),
    "/api/v1/exchange/basis": operation("Futures basis to spot: absolute, percent, annualised to expiry", endpointParams.basis, {
      count: num,
      basis: array({ exchange: str, symbol: str, futures_price: num, spot_price: num, spot_source: str, basis: num, basis_percent: num, annualized_percent: { type: ["number", "null"] }, days_to_expiry: num, timestamp: time }),
      summary: { type: "object", properties: { average_annualized_percent: { type: ["number", "null"] }, symbols: names } }
    }),
    "/api/v1/exchange/rolls": operation("Roll events and each product's front and most-held contract", endpointParams.rolls, {
      count: num,
      rolls: array({ exchange: str, root: str, from_symbol: str, to_symbol: str, reason: str, trade_date: str, timestamp: time }),
      front_months: array({ exchange: str, root: str, trade_date: str, front: str, next: { type: ["string", "null"] }, active: str, active_open_interest: { type: ["number", "null"] } })
    }),
    "/health": { get: { summary: "Per-feed state, writer and database health (503 when the database is unreachable)", responses: { "200": { description: "healthy" }, "503": { description: "database unreachable" } } } },
    "/metrics": { get: { summary: "Prometheus metrics", responses: { "200": { description: "text/plain exposition format" } } } }
  },
  components: {
    schemas: {
      Error: {
        type: "object",
        required: ["success", "error", "timestamp"],
        properties: {
          success: { type: "boolean", const: false },
          error: { type: "object", required: ["code", "message"], properties: { code: str, message: str } },
          timestamp: time
        }
      }
    }
  }
}
