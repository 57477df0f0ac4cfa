/** The REST gate on virtual time: weight budget, 429 + Retry-After, 418 ban, circuit breaker. */
import { assert, describe, it } from "@effect/vitest"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { NodeHttpClient } from "@effect/platform-node"
import { Clock, ConfigProvider, Effect, Fiber, Layer } from "effect"
import { defaultUserAgent } from "../src/version.ts"
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

  it.live("introduces itself on every call (User-Agent), POSTs forms, and names a transport failure's cause", () =>
    Effect.scoped(Effect.gen(function*() {
      const seen: Array<{ method: string; agent: string | undefined; type: string | undefined; body: string }> = []
      const server = createServer((req, res) => {
        let body = ""
        req.on("data", (chunk) => (body += chunk))
        req.on("end", () => {
          seen.push({ method: req.method!, agent: req.headers["user-agent"], type: req.headers["content-type"], body })
          res.writeHead(200, { "content-type": "application/json" }).end("{}")
        })
      })
      yield* Effect.acquireRelease(Effect.promise(() => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))), () =>
        Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve()))))
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const gate = yield* makeRestGate(defaultGateOptions("test", 100))
      yield* gate.getJson(`${url}/products`, 1)
      yield* gate.getJson(`${url}/v0/timeseries.get_range`, 1, { form: { dataset: "GLBX.MDP3", schema: "statistics" } })
      assert.deepStrictEqual(seen[0], { method: "GET", agent: defaultUserAgent, type: undefined, body: "" })
      assert.match(defaultUserAgent, /^market-data-service\/\d+\.\d+\.\d+$/)
      assert.deepStrictEqual(seen[1], { method: "POST", agent: defaultUserAgent, type: "application/x-www-form-urlencoded", body: "dataset=GLBX.MDP3&schema=statistics" })
      const configured = yield* makeRestGate(defaultGateOptions("test", 100)).pipe(
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { USER_AGENT: "acme-research/2" } })))
      )
      yield* configured.getJson(`${url}/products`, 1)
      assert.strictEqual(seen[2]!.agent, "acme-research/2")
      // Nothing listens on port 1 of loopback: the error says "connection refused", not just "Transport error".
      const refused = yield* Effect.flip(gate.getJson("http://127.0.0.1:1/products", 1))
      assert.strictEqual(refused._tag, "RestError")
      assert.include(refused.detail, "ECONNREFUSED (connection refused)")
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))))
})
