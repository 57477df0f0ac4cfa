/** Outgoing frames: paced to the venue's budget on virtual time, and resubscriptions gathered into one listed message. */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { makePacer, makeResubscriber } from "../src/feed/pacing.ts"

describe("outgoing pacing", () => {
  it.effect("sends at most the budget per window, first come first served, whatever the burst", () =>
    Effect.gen(function*() {
      const pacer = makePacer({ messages: 4, perMs: 1000 })
      const sent: Array<[number, number]> = []
      const burst = yield* Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) =>
        Effect.forkChild(Effect.andThen(pacer.take, Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => sent.push([i, at])))))
      )
      yield* TestClock.adjust("5 seconds")
      yield* Effect.forEach(burst, Fiber.join)
      assert.deepStrictEqual(sent.map(([i]) => i), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "in the order asked")
      // 4 at once, the next 4 a window (and its jitter margin) later, then the last 2.
      assert.deepStrictEqual(sent.map(([, at]) => at), [0, 0, 0, 0, 1050, 1050, 1050, 1050, 2100, 2100])
      for (const [, at] of sent) assert.isAtMost(sent.filter(([, other]) => other >= at && other < at + 1000).length, 4)
    }))

  it.effect("gathers resubscriptions asked one by one into one unsubscribe and one subscribe listing them", () =>
    Effect.gen(function*() {
      const frames: Array<string> = []
      const resubscriber = makeResubscriber({
        lingerMs: 100,
        maxKeys: 3,
        messages: (keys) => [`unsubscribe ${keys.join(",")}`, `subscribe ${keys.join(",")}`]
      })
      const send = (frame: string) => Effect.sync(() => void frames.push(frame))
      const asks = yield* Effect.forEach(["a", "b", "c", "b", "d"], (key) => Effect.forkChild(resubscriber.request(key, send)))
      yield* TestClock.adjust("1 second")
      yield* Effect.forEach(asks, Fiber.join)
      assert.deepStrictEqual(frames, ["unsubscribe a,b,c", "subscribe a,b,c", "unsubscribe d", "subscribe d"])
      yield* Effect.forkChild(resubscriber.request("e", send))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(frames.slice(4), ["unsubscribe e", "subscribe e"], "a later request starts a new message")
    }))
})
