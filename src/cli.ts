/**
 * npm run cli -- replay --venue <id> <files...>   recorded frames through the live pipeline into the database
 * npm run cli -- normalize --venue <id> <file>    normalized records as JSON lines on stdout
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer } from "effect"
import type { NormalizedRecord } from "./domain/records.ts"
import { PipelineSettings } from "./pipeline/runtime.ts"
import { readRecordings } from "./replay/recorded.ts"
import { replayRecording } from "./replay/replay.ts"
import { DatabaseLive } from "./storage/database.ts"
import { Writer } from "./storage/writer.ts"
import { venueById, venues } from "./venues/registry.ts"

const usage = `usage:
  npm run cli -- replay --venue <id> <files...>
  npm run cli -- normalize --venue <id> <file>
venues: ${venues.map((v) => v.id).join(", ")}`

class UsageError {
  readonly _tag = "UsageError"
  readonly message: string
  constructor(message: string) {
    this.message = message
  }
}

const parseArgs = (argv: ReadonlyArray<string>) => {
  const [command, ...rest] = argv
  const files: Array<string> = []
  let venueId: string | undefined
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === "--venue") venueId = rest[++i]
    else files.push(rest[i]!)
  }
  if (command !== "replay" && command !== "normalize") return new UsageError(usage)
  const venue = venueId === undefined ? undefined : venueById(venueId)
  if (venue === undefined) return new UsageError(`unknown or missing --venue ${venueId ?? ""}\n${usage}`)
  if (files.length === 0 || (command === "normalize" && files.length !== 1)) return new UsageError(usage)
  return { command, venue, files }
}

const program = Effect.gen(function*() {
  const args = parseArgs(process.argv.slice(2))
  if (args instanceof UsageError) {
    yield* Console.error(args.message)
    return yield* Effect.sync(() => process.exit(2))
  }
  const recording = readRecordings(args.files)
  if (args.command === "normalize") {
    for (const rest of recording.rest) {
      for (const record of args.venue.fromRest(rest).records ?? []) process.stdout.write(`${JSON.stringify(record)}\n`)
    }
    let errors = 0
    for (const frame of recording.frames) {
      const out: Array<NormalizedRecord> = []
      const error = args.venue.decodeFrame(frame.text, out)
      if (error !== undefined) {
        errors++
        process.stderr.write(`decode error (${error.channel}): ${error.detail}\n`)
      }
      for (const record of out) process.stdout.write(`${JSON.stringify(record)}\n`)
    }
    if (errors > 0) process.stderr.write(`${errors} frame(s) could not be decoded\n`)
    return
  }
  const settings = yield* PipelineSettings
  const stats = yield* Effect.scoped(Layer.build(Writer.layer.pipe(Layer.provideMerge(DatabaseLive))).pipe(
    Effect.flatMap((context) =>
      Effect.gen(function*() {
        const writer = yield* Writer
        const stats = yield* replayRecording(args.venue, recording, settings, writer.offer)
        return { stats, writer }
      }).pipe(Effect.provideContext(context))
    )
  )).pipe(Effect.map(({ stats, writer }) => ({ ...stats, inserted: Object.fromEntries(Object.values(writer.state().tables).map((t) => [t.table, t.written])) })))
  yield* Console.log(JSON.stringify(stats, null, 2))
})

// `normalize ... | head` closes stdout early; that is not an error.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0)
})

program.pipe(NodeRuntime.runMain)
