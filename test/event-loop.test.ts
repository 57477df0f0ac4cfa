/**
 * The event-loop delay on /metrics (src/observability/event-loop.ts): a loop
 * blocked for 300 ms shows in the 10-second window's maximum, and the window
 * counter moves once per published window. Real time: the monitor is Node's.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric } from "effect"
import { EventLoopDelayLive } from "../src/observability/event-loop.ts"

const gauge = (quantile: string) =>
  Effect.map(Metric.snapshot, (snapshots) => {
    const found = snapshots.find((m) => m.id === "event_loop_delay_ms" && m.attributes?.quantile === quantile)
    return found === undefined ? undefined : Number((found.state as { value: number }).value)
  })

const windows = Effect.map(Metric.snapshot, (snapshots) => {
  const found = snapshots.find((m) => m.id === "event_loop_delay_windows_total")
  return found === undefined ? 0 : Number((found.state as { count: number }).count)
})

describe("event-loop delay", () => {
  it.live("publishes a blocked loop in the window's maximum, one window every 10 s", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* Layer.build(EventLoopDelayLive)
      yield* Effect.sleep("1 second")
      // 300 ms without yielding: the monitor's 10 ms timer fires about 300 ms late, so the maximum is at
      // least 300 - 10 (the timer may have been due up to 10 ms into the block) = 290 ms; 250 leaves room.
      yield* Effect.sync(() => {
        const until = performance.now() + 300
        while (performance.now() < until) {
          // busy
        }
      })
      assert.strictEqual(yield* windows, 0)
      // The first window closes 10 s after the layer started.
      yield* Effect.sleep("10 seconds")
      assert.strictEqual(yield* windows, 1)
      const max = (yield* gauge("1"))!
      const p99 = (yield* gauge("0.99"))!
      const p50 = (yield* gauge("0.5"))!
      assert.isAtLeast(max, 250)
      assert.isAtMost(p50, p99)
      assert.isAtMost(p99, max)
    })), 30_000)
})
