/**
 * The command line, on effect/cli: `--help` on every command, typed options,
 * errors that say what is wrong, exit codes (0 done, 1 failed, 2 bad usage).
 *
 *   npm run cli -- replay --venue <id> <files...>   recorded frames through the live pipeline into the database
 *   npm run cli -- normalize --venue <id> <file>    normalized records as JSON lines on stdout
 *   npm run cli -- rejected [--replay]              the rows the database refused (rejected_rows), and a retry of them
 *   npm run cli -- returned [--requeue [--kind k]]  the messages the broker returned (outbox_returned), and putting them back in the outbox
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Console, Effect, Layer, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import type { NormalizedRecord } from "./domain/records.ts"
import { transportCause } from "./domain/transport.ts"
import { ConfigLive } from "./main.ts"
import { PipelineSettings } from "./pipeline/runtime.ts"
import { readRecordings } from "./replay/recorded.ts"
import { replayRecording } from "./replay/replay.ts"
import { DatabaseLive } from "./storage/database.ts"
import { Outbox } from "./storage/outbox.ts"
import { requeueReturned, returnedSummary } from "./publish/returned.ts"
import { rejectedSummary, replayRejected } from "./storage/rejected.ts"
import { Writer } from "./storage/writer.ts"
import { serviceVersion } from "./version.ts"
import { venueById, venues } from "./venues/registry.ts"

const venueIds = venues.map((v) => v.id)

const venue = Flag.Literals("venue", venueIds).pipe(Flag.withDescription(`the venue whose frames these are: ${venueIds.join(", ")}`))

const recordingFiles = Argument.File("files", { mustExist: true }).pipe(
  Argument.withDescription("capture files: the recorded/ line format, sessions/ JSON lines (.jsonl, .zst, .gz), or one raw frame per line"),
  Argument.atLeast(1)
)

const replay = Command.make("replay", { venue, files: recordingFiles }, ({ venue: id, files }) =>
  Effect.gen(function*() {
    const definition = venueById(id)!
    const recording = readRecordings(files)
    const settings = yield* PipelineSettings
    const { stats, writer } = yield* Effect.scoped(Effect.gen(function*() {
      const context = yield* Layer.build(Writer.layer.pipe(Layer.provideMerge(DatabaseLive)))
      return yield* Effect.gen(function*() {
        const writer = yield* Writer
        const stats = yield* replayRecording(definition, recording, settings, writer.offer)
        return { stats, writer }
      }).pipe(Effect.provideContext(context))
    }))
    const tables = Object.values(writer.state().tables)
    const inserted = Object.fromEntries(tables.map((t) => [t.table, t.written]))
    // Every row built must be stored (or be there already): anything else is a failed replay, said per table and why.
    const notStored = Object.fromEntries(tables.filter((t) => t.dropped + t.rejected + t.unstored > 0).map((t) => [t.table, {
      built: stats.rows[t.table],
      rejected: t.rejected,
      dropped_queue_full: t.dropped,
      unstored_at_deadline: t.unstored
    }]))
    yield* Console.log(JSON.stringify({ ...stats, inserted, not_stored: notStored }, null, 2))
    const missing = Object.values(notStored).reduce((n, t) => n + t.rejected + t.dropped_queue_full + t.unstored_at_deadline, 0)
    if (missing > 0) {
      const built = Object.values(stats.rows).reduce((n, count) => n + count, 0)
      return yield* Effect.fail(new Error(
        `${missing} of ${built} rows built were not stored (${Object.entries(notStored).map(([table, t]) =>
          `${table}: ${t.rejected} rejected (kept in rejected_rows), ${t.dropped_queue_full} dropped (queue full), ${t.unstored_at_deadline} unstored when the drain deadline passed`
        ).join("; ")})`
      ))
    }
  })).pipe(Command.withDescription(
    "Runs recorded frames through the live pipeline (decode, normalize, detect, writer) into the configured database (DATABASE_URL, else the embedded one). Running it twice stores nothing twice."
  ))

const normalize = Command.make("normalize", { venue, file: Argument.File("file", { mustExist: true }).pipe(Argument.withDescription("one capture file")) }, ({ venue: id, file }) =>
  Effect.sync(() => {
    const definition = venueById(id)!
    const recording = readRecordings([file])
    for (const rest of recording.rest) {
      for (const record of definition.fromRest(rest).records ?? []) process.stdout.write(`${JSON.stringify(record)}\n`)
    }
    let errors = 0
    for (const frame of recording.frames) {
      const out: Array<NormalizedRecord> = []
      const error = definition.decodeFrame(frame.text, out)
      if (error !== undefined && error.dropped === undefined) {
        errors++
        process.stderr.write(`decode error (${error.channel}): ${error.detail}\n`)
      }
      for (const record of out) process.stdout.write(`${JSON.stringify(record)}\n`)
    }
    if (errors > 0) process.stderr.write(`${errors} frame(s) could not be decoded\n`)
  })).pipe(Command.withDescription("Prints the normalized records of a capture as JSON lines on stdout; undecodable frames are reported on stderr."))

const rejected = Command.make("rejected", { replay: Flag.Boolean("replay").pipe(Flag.withDefault(false), Flag.withDescription("insert every waiting row again; the ones stored are marked replayed (and published, with AMQP_URL), their rejected gaps settled")) }, ({ replay }) =>
  Effect.gen(function*() {
    if (replay) {
      const { stored, refused, gaps } = yield* replayRejected
      yield* Console.log(JSON.stringify({ stored, still_refused: refused, gaps_settled: gaps }, null, 2))
      if (refused.length > 0) return yield* Effect.fail(new Error(`${refused.length} rows are still refused; they stay in rejected_rows`))
    }
    yield* Console.log(JSON.stringify({ waiting: yield* rejectedSummary }, null, 2))
  }).pipe(
    // As in the service: with AMQP_URL set, a replayed row's broker message is staged with its insert.
    Effect.provide(Outbox.layer.pipe(Layer.provideMerge(DatabaseLive)))
  )).pipe(Command.withDescription(
    "Lists the rows the database refused as data (rejected_rows: table, SQLSTATE, count, first and last time, a message); --replay inserts them again once the cause is fixed."
  ))

const returned = Command.make("returned", {
  requeue: Flag.Boolean("requeue").pipe(Flag.withDefault(false), Flag.withDescription("move the kept messages back into the outbox; the running service publishes them again")),
  kind: Flag.String("kind").pipe(Flag.optional, Flag.withDescription("only messages of this kind (large_trade, liquidation, funding, open_interest, orderbook, gap, alert)"))
}, ({ requeue, kind }) =>
  Effect.gen(function*() {
    const requeued = requeue ? { requeued: yield* requeueReturned(Option.getOrUndefined(kind)) } : {}
    yield* Console.log(JSON.stringify({ ...requeued, kept: yield* returnedSummary }, null, 2))
  }).pipe(Effect.provide(DatabaseLive))).pipe(Command.withDescription(
    "Lists the messages the broker returned because no queue is bound to their routing key (outbox_returned: kind, exchange, reason, count, first and last time); --requeue puts them back into the outbox once a queue is bound."
  ))

export const cli = Command.make("market-data").pipe(
  Command.withDescription("Replays and inspects exchange captures with the service's own pipeline."),
  Command.withSubcommands([replay, normalize, rejected, returned])
)

const describeFailure = (error: unknown): string => {
  const { _tag, message } = error as { _tag?: string; message?: string }
  const cause = transportCause(error)
  const text = `${_tag ?? "Error"}: ${message ?? String(error)}`
  return cause === undefined || text.includes(cause) ? text : `${text} (${cause})`
}

// `normalize ... | head` closes stdout early; that is not an error.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0)
})

if (import.meta.main) {
  Command.run(cli, { version: serviceVersion }).pipe(
    // Help and the error were shown already; bad usage exits 2, as command-line tools do.
    Effect.catchTag("ShowHelp", (help) => Effect.sync(() => void (process.exitCode = help.errors.length > 0 ? 2 : 0))),
    // Anything else that failed: one line saying what and why (e.g. the database refused the connection), exit 1.
    Effect.catch((error) =>
      Console.error(`market-data: ${describeFailure(error)}`).pipe(Effect.andThen(Effect.sync(() => void (process.exitCode = 1))))
    ),
    Effect.provide(Layer.mergeAll(NodeServices.layer, ConfigLive)),
    NodeRuntime.runMain
  )
}
