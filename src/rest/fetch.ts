/** Typed GET-and-decode over a gate, and a patient retry for calls a feed cannot do without. */
import { Duration, Effect, Result, Schema } from "effect"
import { DecodeError } from "../domain/errors.ts"
import { VenueProblem } from "../feed/status.ts"
import type { RestFailure, RestGate } from "./gate.ts"

export const fetchDecoded = <A>(
  gate: RestGate,
  url: string,
  weight: number,
  decode: (input: unknown) => Result.Result<A, Schema.SchemaError>
): Effect.Effect<A, RestFailure | DecodeError> =>
  Effect.flatMap(gate.getJson(url, weight), (body) => {
    const decoded = decode(body)
    return Result.isSuccess(decoded)
      ? Effect.succeed(decoded.success)
      : Effect.fail(
        new DecodeError({
          venue: gate.venue,
          channel: new URL(url).pathname,
          detail: decoded.failure.message,
          sample: JSON.stringify(body).slice(0, 200)
        })
      )
  })

/**
 * Retries with capped exponential backoff until it succeeds. The gate already
 * waits out 429s and bans, so this loop never hammers a venue.
 */
export const retryPatiently = <A, E extends { readonly _tag: string }>(
  what: string,
  effect: Effect.Effect<A, E>,
  maxDelayMs = 60_000
): Effect.Effect<A> =>
  Effect.gen(function*() {
    const problem = yield* VenueProblem
    let attempt = 0
    while (true) {
      const result = yield* Effect.result(effect)
      if (Result.isSuccess(result)) {
        if (attempt > 0) problem.report(undefined)
        return result.success
      }
      const delay = Math.min(maxDelayMs, 1000 * 2 ** Math.min(attempt++, 16))
      const detail = (result.failure as { detail?: unknown }).detail
      problem.report(`${what} failed: ${detail === undefined ? result.failure._tag : String(detail)}`)
      yield* Effect.logWarning(`${what} failed; retrying`).pipe(
        Effect.annotateLogs({ error: result.failure._tag, detail: String((result.failure as { detail?: unknown }).detail ?? ""), retryInMs: delay })
      )
      yield* Effect.sleep(Duration.millis(delay))
    }
  })
