/** The REST gate on virtual time: weight budget, 429 + Retry-After, 418 ban, circuit breaker. */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer } from "effect"
import { HttpClient, HttpClientResponse } from "effect/http"
import { TestClock } from "effect/testing"
import { defaultGateOptions, makeRestGate } from "../src/rest/gate.ts"

interface Scripted {
  readonly status: number
  readonly headers?: Record<string, string>
}

/** An HttpClient answering from a script (200 "{}" once it runs out) and logging call times. */
const scriptedClient = (script: Array<Scripted>, calls: Array<number>) =>
  Layer.succeed(HttpClient.HttpClient)(HttpClient.make((request) =>
    Effect.gen(function*() {
      calls.push(yield* Clock.currentTimeMillis)
      const next = script.shift() ?? { status: 200 }
      return HttpClientResponse.fromWeb(request, new Response("{}", { status: next.status, headers: next.headers ?? {} }))
    })
  ))

const gateWith = (script: Array<Scripted>, calls: Array<number>, weightLimit = 10) =>
  makeRestGate({ ...defaultGateOptions("test", weightLimit), breakerThreshold: 3, breakerOpenMs: 30_000 }).pipe(
    Effect.provide(scriptedClient(script, calls))
  )

describe("REST gate", () => {
  it.effect("spends weight per window and waits for the next window when it runs out", () =>
    Effect.gen(function*() {
      const calls: Array<number> = []
      const gate = yield* gateWith([], calls, 10)
      yield* gate.getJson("http://x/a", 4)
      yield* gate.getJson("http://x/a", 4)
      const third = yield* Effect.forkChild(gate.getJson("http://x/a", 4))
      yield* TestClock.adjust("59 seconds")
      assert.strictEqual(calls.length, 2)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(third)
      assert.deepStrictEqual(calls, [0, 0, 60_000])
    }))

  it.effect("a 429 fails with RateLimitedError and no call goes out until Retry-After has passed", () =>
    Effect.gen(function*() {
      const calls: Array<number> = []
      const gate = yield* gateWith([{ status: 429, headers: { "retry-after": "30" } }], calls, 1000)
      const error = yield* Effect.flip(gate.getJson("http://x/a", 1))
      assert.strictEqual(error._tag, "RateLimitedError")
      const next = yield* Effect.forkChild(gate.getJson("http://x/a", 1))
      yield* TestClock.adjust("29 seconds")
      assert.strictEqual(calls.length, 1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(next)
      assert.deepStrictEqual(calls, [0, 30_000])
      assert.strictEqual(gate.state().blockedUntil, null)
    }))

  it.effect("a 418 is a ban: BannedError, then silence until it expires", () =>
    Effect.gen(function*() {
      const calls: Array<number> = []
      const gate = yield* gateWith([{ status: 418, headers: { "retry-after": "120" } }], calls, 1000)
      const error = yield* Effect.flip(gate.getJson("http://x/a", 1))
      assert.strictEqual(error._tag, "BannedError")
      assert.strictEqual((error as { untilMs: number }).untilMs, 120_000)
      const next = yield* Effect.forkChild(gate.getJson("http://x/a", 1))
      yield* TestClock.adjust("119 seconds")
      assert.strictEqual(calls.length, 1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(next)
      assert.deepStrictEqual(calls, [0, 120_000])
    }))

  it.effect("repeated server errors open the circuit; it half-opens after the pause", () =>
    Effect.gen(function*() {
      const calls: Array<number> = []
      const gate = yield* gateWith([{ status: 500 }, { status: 502 }, { status: 503 }], calls, 1000)
      for (let i = 0; i < 3; i++) assert.strictEqual((yield* Effect.flip(gate.getJson("http://x/a", 1)))._tag, "RestError")
      const open = yield* Effect.flip(gate.getJson("http://x/a", 1))
      assert.match((open as { detail: string }).detail, /circuit open/)
      assert.strictEqual(calls.length, 3)
      assert.strictEqual(gate.state().circuit, "open")
      yield* TestClock.adjust("30 seconds")
      yield* gate.getJson("http://x/a", 1)
      assert.strictEqual(calls.length, 4)
      assert.strictEqual(gate.state().circuit, "closed")
    }))

  it.effect("the venue's used-weight header corrects the local count", () =>
    Effect.gen(function*() {
      const calls: Array<number> = []
      const gate = yield* makeRestGate({ ...defaultGateOptions("test", 100), usedWeightHeader: "x-mbx-used-weight-1m" }).pipe(
        Effect.provide(scriptedClient([{ status: 200, headers: { "x-mbx-used-weight-1m": "98" } }], calls))
      )
      yield* gate.getJson("http://x/a", 1)
      assert.strictEqual(gate.state().weightUsed, 98)
      const waiting = yield* Effect.forkChild(gate.getJson("http://x/a", 5))
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(calls.length, 1)
      yield* TestClock.adjust("30 seconds")
      yield* Fiber.join(waiting)
      assert.strictEqual(calls.length, 2)
    }))
})
