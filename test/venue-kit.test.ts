/**
 * The scoped runner that replaces `Effect.runFork` in the processor's
 * synchronous hooks (book resubscriptions, resync records): work started from
 * a callback runs as a fiber of the venue layer, stops with it, sees its
 * logger and LOG_LEVEL, and a failure is logged, never thrown at the caller.
 */
import { assert, describe, it } from "@effect/vitest"
import { Data, Deferred, Effect, Exit, Logger, References, Scope } from "effect"
import { makeScopedRunner } from "../src/pipeline/venue-kit.ts"

interface Captured {
  readonly level: string
  readonly message: string
  readonly annotations: Readonly<Record<string, unknown>>
}

/** A logger that keeps every entry it is given (after the minimum-level filter), instead of printing it. */
const capturingLogger = () => {
  const entries: Array<Captured> = []
  const logger = Logger.make((options) => {
    const parts = Array.isArray(options.message) ? options.message : [options.message]
    entries.push({
      level: options.logLevel,
      message: parts.map(String).join(" "),
      annotations: options.fiber.getRef(References.CurrentLogAnnotations)
    })
  })
  return { entries, logger }
}

/** Lets the forked fibers run; gives up after `tries` scheduler turns. */
const until = (done: () => boolean, tries = 100) =>
  Effect.gen(function*() {
    for (let i = 0; i < tries && !done(); i++) yield* Effect.sleep("5 millis")
  })

class ResubscribeRefused extends Data.TaggedError("ResubscribeRefused")<{ readonly detail: string }> {}

describe("scoped runner (processor hooks)", () => {
  it.live("runs the work it is given", () =>
    Effect.scoped(Effect.gen(function*() {
      const runner = yield* makeScopedRunner({ venue: "test" })
      const ran = yield* Deferred.make<number>()
      runner("task", Deferred.succeed(ran, 42).pipe(Effect.asVoid))
      assert.strictEqual(yield* Deferred.await(ran).pipe(Effect.timeout("1 second")), 42)
    })))

  it.live("interrupts a long-running task when the venue's scope closes (its finalizer runs)", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const runner = yield* makeScopedRunner({ venue: "test" }).pipe(Scope.provide(scope))
      const started = yield* Deferred.make<void>()
      const finalized = yield* Deferred.make<void>()
      runner(
        "long task",
        Deferred.succeed(started, undefined).pipe(
          Effect.andThen(Effect.never),
          Effect.ensuring(Deferred.succeed(finalized, undefined))
        )
      )
      yield* Deferred.await(started).pipe(Effect.timeout("1 second"))
      assert.isFalse(yield* Deferred.isDone(finalized), "still running while the venue runs")
      yield* Scope.close(scope, Exit.void)
      // With Effect.runFork the task is a root fiber nobody interrupts: its finalizer never runs.
      const outcome = yield* Deferred.await(finalized).pipe(Effect.timeout("500 millis"), Effect.exit)
      assert.isTrue(Exit.isSuccess(outcome), "the task's finalizer ran when the scope closed")
    }))

  it.live("logs a failure through the layer's logger, at Error, with the venue; it does not escape", () => {
    const { entries, logger } = capturingLogger()
    return Effect.scoped(Effect.gen(function*() {
      const runner = yield* makeScopedRunner({ venue: "okx" })
      runner("book resubscription", Effect.fail(new ResubscribeRefused({ detail: "socket closed" })))
      runner("book resubscription", Effect.die(new Error("bug in a hook")))
      yield* until(() => entries.length >= 2)
      assert.strictEqual(entries.length, 2, "one entry per failed task")
      for (const entry of entries) {
        assert.strictEqual(entry.level, "Error")
        assert.include(entry.message, "book resubscription failed")
        assert.strictEqual(entry.annotations["venue"], "okx")
      }
      assert.include(entries[0]!.message, "ResubscribeRefused")
      assert.include(entries[1]!.message, "bug in a hook")
      // The runner keeps working after failures: they did not end it.
      const ran = yield* Deferred.make<void>()
      runner("task", Deferred.succeed(ran, undefined).pipe(Effect.asVoid))
      yield* Deferred.await(ran).pipe(Effect.timeout("1 second"))
    })).pipe(Effect.provide(Logger.layer([logger])))
  })

  it.live("respects the configured minimum log level (LOG_LEVEL)", () => {
    const { entries, logger } = capturingLogger()
    return Effect.scoped(Effect.gen(function*() {
      const runner = yield* makeScopedRunner({ venue: "bybit" })
      runner("resync record", Effect.logWarning("order book resync"))
      runner("resync record", Effect.logError("kept: at the minimum level"))
      yield* until(() => entries.length >= 1)
      yield* Effect.sleep("20 millis")
      assert.deepStrictEqual(entries.map((e) => [e.level, e.message]), [["Error", "kept: at the minimum level"]])
    })).pipe(Effect.provide(Logger.layer([logger])), Effect.provideService(References.MinimumLogLevel, "Error"))
  })
})
