/**
 * The fan-out point: the writer, the sink of record, gets every batch whatever
 * a side sink does; a side sink that throws is counted per sink and the sinks
 * after it still run.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { fanOut, makeSideSinks } from "../src/collectors.ts"
import { RowBatch } from "../src/domain/rows.ts"

const failuresOf = (sink: string) =>
  Effect.map(Metric.snapshot, (snapshots) => {
    const found = snapshots.find((m) => m.id === "fanout_sink_failures_total" && m.attributes?.sink === sink)
    return found === undefined ? 0 : Number((found.state as { count: number }).count)
  })

describe("fan-out", () => {
  it.live("stores every batch though the alert engine throws on each; the stream still gets them; the failures are counted", () =>
    Effect.scoped(Effect.gen(function*() {
      const stored: Array<RowBatch> = []
      const streamed: Array<RowBatch> = []
      const sinks = yield* makeSideSinks
      const emit = fanOut((batch) => Effect.sync(() => void stored.push(batch)), sinks, [
        ["alerts", () => {
          throw new Error("alert engine bug")
        }],
        ["stream", (batch) => void streamed.push(batch)]
      ])
      const batches = Array.from({ length: 5 }, () => new RowBatch())
      for (const batch of batches) yield* emit(batch)
      assert.deepStrictEqual(stored, batches, "the writer had every batch")
      assert.deepStrictEqual(streamed, batches, "the sink after the failing one had every batch too")
      // The counts reach /metrics from a fiber that reports once a second.
      yield* Effect.sleep("1200 millis")
      assert.strictEqual(yield* failuresOf("alerts"), 5)
      assert.strictEqual(yield* failuresOf("stream"), 0)
    })))
})
