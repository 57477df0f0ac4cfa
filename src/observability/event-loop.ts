/**
 * The event loop's delay on /metrics (`event_loop_delay_ms`): Node's own
 * monitor (perf_hooks monitorEventLoopDelay) samples a 10 ms timer; every
 * 10 seconds its window's p50, p99 and maximum are published and it starts
 * over, so the gauges always describe one recent, complete window and a
 * start-up pause is gone from them 10 s later. A loop that is always late is
 * the sign that one process no longer keeps up (see README, Benchmark).
 */
import { monitorEventLoopDelay } from "node:perf_hooks"
import { Effect, Layer, Metric, Schedule } from "effect"
import { eventLoopDelay, eventLoopDelayWindows } from "./metrics.ts"

const resolutionMs = 10

export const EventLoopDelayLive = Layer.effectDiscard(Effect.gen(function*() {
  const histogram = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const monitor = monitorEventLoopDelay({ resolution: resolutionMs })
      monitor.enable()
      return monitor
    }),
    (monitor) => Effect.sync(() => monitor.disable())
  )
  // The monitor records each timer's whole interval, its 10 ms included: what is beyond it is the delay.
  const lateMs = (ns: number) => Math.max(0, ns / 1e6 - resolutionMs)
  const publish = Effect.gen(function*() {
    if (histogram.count === 0) return
    const window = [["0.5", histogram.percentile(50)], ["0.99", histogram.percentile(99)], ["1", histogram.max]] as const
    histogram.reset()
    for (const [quantile, ns] of window) yield* Metric.update(Metric.withAttributes(eventLoopDelay, { quantile }), lateMs(ns))
    yield* Metric.update(eventLoopDelayWindows, 1)
  })
  yield* Effect.forkScoped(Effect.repeat(publish, Schedule.spaced("10 seconds")))
}))
