/** The contract's JSON envelopes: success, and errors with a code and a message. */
import { HttpServerResponse } from "effect/http"

const json = (status: number, body: unknown, headers?: Record<string, string>) =>
  HttpServerResponse.text(JSON.stringify(body), { status, contentType: "application/json", ...(headers === undefined ? {} : { headers }) })

export const success = (data: unknown, filters: Record<string, unknown>, coverage?: unknown) =>
  json(
    200,
    coverage === undefined
      ? { success: true, data, filters, timestamp: new Date().toISOString() }
      : { success: true, data, coverage, filters, timestamp: new Date().toISOString() }
  )

export const failure = (status: number, code: string, message: string, headers?: Record<string, string>) =>
  json(status, { success: false, error: { code, message }, timestamp: new Date().toISOString() }, headers)

export const raw = json
