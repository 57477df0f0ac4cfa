/**
 * Admission control for API queries: the service degrades under load, it
 * never falls over. Queries run in two lanes with their own permits: `light`
 * (windows of a day or less, point lookups) and `heavy` (long windows, whole
 * tables). A request waits a bounded time for a permit in its lane; one that
 * cannot get it in time is shed at once with an Overloaded (503 and
 * Retry-After) instead of queueing without end, so a flood of year-long
 * summaries cannot make a cheap query or /health wait.
 */
import { Config, Context, Duration, Effect, Layer, Metric, Semaphore } from "effect"

export type Lane = "light" | "heavy"

export class Overloaded {
  readonly _tag = "Overloaded"
  readonly lane: Lane
  readonly retryAfterSeconds: number
  constructor(lane: Lane, retryAfterSeconds: number) {
    this.lane = lane
    this.retryAfterSeconds = retryAfterSeconds
  }
}

const shed = Metric.counter("api_requests_shed_total", { description: "API queries refused because their lane was full, per lane", incremental: true })
const admitted = Metric.counter("api_queries_admitted_total", { description: "API queries admitted, per lane", incremental: true })

export const admissionConfig = Config.all({
  light: Config.Int("API_MAX_LIGHT_QUERIES").pipe(Config.withDefault(4)),
  heavy: Config.Int("API_MAX_HEAVY_QUERIES").pipe(Config.withDefault(2)),
  waitMs: Config.Number("API_QUEUE_WAIT_MS").pipe(Config.withDefault(1000)),
  /** Windows longer than this are heavy. */
  heavyAfterHours: Config.Number("API_HEAVY_WINDOW_HOURS").pipe(Config.withDefault(24))
})

export class QueryAdmission extends Context.Service<QueryAdmission, {
  /** Runs `query` once its lane has room, or fails with Overloaded after the bounded wait. */
  readonly admit: <A, E, R>(lane: Lane, query: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Overloaded, R>
  readonly laneOf: (hours: number | undefined) => Lane
}>()("market-data/api/QueryAdmission") {
  static readonly layer = Layer.effect(QueryAdmission, Effect.gen(function*() {
    const config = yield* admissionConfig
    const permits = { light: Semaphore.makeUnsafe(config.light), heavy: Semaphore.makeUnsafe(config.heavy) }
    const waiting = { light: 0, heavy: 0 }
    const wait = Duration.millis(config.waitMs)
    return QueryAdmission.of({
      laneOf: (hours) => (hours !== undefined && hours > config.heavyAfterHours ? "heavy" : "light"),
      admit: (lane, query) =>
        Effect.gen(function*() {
          const semaphore = permits[lane]
          // More waiting than the lane could serve within the wait: shed now rather than after it.
          if (waiting[lane] >= 4 * (lane === "light" ? config.light : config.heavy)) {
            yield* Metric.update(Metric.withAttributes(shed, { lane }), 1)
            return yield* Effect.fail(new Overloaded(lane, 1))
          }
          waiting[lane]++
          // Taking the permit is interruptible (the bounded wait); once taken, it is always given back.
          return yield* Effect.acquireUseRelease(
            Effect.interruptible(Semaphore.take(semaphore, 1)).pipe(
              Effect.timeoutOrElse({ duration: wait, orElse: () => Effect.fail(new Overloaded(lane, 1)) }),
              Effect.ensuring(Effect.sync(() => waiting[lane]--)),
              Effect.tapError(() => Metric.update(Metric.withAttributes(shed, { lane }), 1))
            ),
            () => Effect.andThen(Metric.update(Metric.withAttributes(admitted, { lane }), 1), query),
            () => Semaphore.release(semaphore, 1)
          )
        })
    })
  }))
}
