/**
 * A typed client of the service's HTTP API for TypeScript users, derived from
 * the same declaration the server is built from (src/api/contract.ts):
 *
 *   import { MarketDataClient } from "market-data-service/client"
 *   const client = yield* MarketDataClient.make("http://localhost:8002", { token })
 *   const { data } = yield* client.exchange.largeTrades({ query: { symbol: "BTC", hours: 24 } })
 *
 * Query parameters are typed and checked before the request leaves; answers
 * are decoded into typed values; the contract's error envelopes (400, 401,
 * 429, 503) arrive as typed failures.
 */
import { Effect } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import { MarketDataApi } from "./api/contract.ts"

export { MarketDataApi } from "./api/contract.ts"

export const MarketDataClient = {
  /** A client of the service at `baseUrl` (needs an HttpClient: `FetchHttpClient.layer`, provided by `layer`). */
  make: (baseUrl: string, options: { readonly token?: string | undefined } = {}) =>
    HttpApiClient.make(MarketDataApi, {
      baseUrl,
      transformClient: options.token === undefined
        ? undefined
        : HttpClient.mapRequest(HttpClientRequest.bearerToken(options.token))
    }),
  /** The HttpClient it runs on, for programs that have none: `Effect.provide(MarketDataClient.layer)`. */
  layer: FetchHttpClient.layer
}

export type MarketDataClient = Effect.Success<ReturnType<typeof MarketDataClient.make>>
