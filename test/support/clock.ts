/**
 * A pinned calendar for tests that run the whole service: a wall clock that
 * reads `startAt` when it is made and then runs in real time (sleeps, timers
 * and monotonic time are the real ones). Provided as the Effect Clock, it moves
 * everything the service dates (polls, look-backs, API windows) to that day, so
 * a test's outcome never depends on the day it runs.
 */
import { Clock, Effect, Layer } from "effect"

export interface PinnedClock {
  /** The pinned wall time now, for fakes that stamp their own messages. */
  readonly now: () => number
  readonly layer: Layer.Layer<never>
}

export const pinnedClock = (startAt: number): PinnedClock => {
  const real = Clock.Clock.defaultValue()
  const offset = Math.round(startAt) - Date.now()
  const now = () => Date.now() + offset
  const clock: Clock.Clock = {
    currentTimeMillisUnsafe: now,
    currentTimeMillis: Effect.sync(now),
    currentTimeNanosUnsafe: () => BigInt(now()) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => BigInt(now()) * 1_000_000n),
    monotonicTimeNanosUnsafe: () => real.monotonicTimeNanosUnsafe(),
    monotonicTimeNanos: real.monotonicTimeNanos,
    sleep: (duration) => real.sleep(duration)
  }
  return { now, layer: Layer.succeed(Clock.Clock, clock) }
}
