/** The command line as a user runs it: help, typed options, errors that say what is wrong, exit codes. */
import { spawnSync } from "node:child_process"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { postgresLayer } from "../src/storage/database.ts"
import { sessions } from "./support/fixtures.ts"
import { postgresUrl, truncateAll } from "./support/service.ts"

const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const run = spawnSync(process.execPath, ["src/cli.ts", ...args], {
    cwd: new URL("..", import.meta.url).pathname,
    encoding: "utf8",
    env: { ...process.env, LOG_LEVEL: "Warn", ...env },
    timeout: 60_000,
    maxBuffer: 256 * 1024 * 1024
  })
  return { status: run.status, stdout: run.stdout, stderr: run.stderr, output: `${run.stdout}${run.stderr}` }
}

describe("command line", () => {
  it("explains itself: --help lists the commands, a command's --help its options", () => {
    const top = cli(["--help"])
    assert.strictEqual(top.status, 0)
    assert.include(top.output, "replay")
    assert.include(top.output, "normalize")
    const replay = cli(["replay", "--help"])
    assert.strictEqual(replay.status, 0)
    assert.include(replay.output, "--venue")
    assert.include(replay.output, "binance-futures")
  })

  it("refuses bad usage with a message naming what is wrong, exit code 2", () => {
    const venue = cli(["normalize", "--venue", "nope", `${sessions}COINBASE.jsonl.zst`])
    assert.strictEqual(venue.status, 2)
    assert.include(venue.output, 'Invalid value for flag --venue: "nope"')
    const file = cli(["normalize", "--venue", "coinbase", "/no/such/capture"])
    assert.strictEqual(file.status, 2)
    assert.include(file.output, "Path does not exist: /no/such/capture")
    const command = cli(["replai"])
    assert.strictEqual(command.status, 2)
  })

  it("normalize prints a capture's records as JSON lines", () => {
    const run = cli(["normalize", "--venue", "coinbase", `${sessions}COINBASE.jsonl.zst`])
    assert.strictEqual(run.status, 0, run.stderr)
    const records = run.stdout.trim().split("\n").map((line) => JSON.parse(line))
    assert.strictEqual(records.filter((r) => r.kind === "trade").length, 279)
    assert.strictEqual(run.stderr.includes("could not be decoded"), false)
  })

  it.live("replay stores a capture and says what it did; a database that refuses says so, exit code 1", () =>
    Effect.gen(function*() {
      yield* truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
      const run = cli(["replay", "--venue", "coinbase", `${sessions}COINBASE.jsonl.zst`], { DATABASE_URL: postgresUrl, LARGE_TRADE_THRESHOLD_BTC: "0", LARGE_TRADE_THRESHOLD_ETH: "0" })
      assert.strictEqual(run.status, 0, run.stderr)
      const stats = JSON.parse(run.stdout.slice(run.stdout.indexOf("{")))
      assert.strictEqual(stats.frames, 1030)
      assert.strictEqual(stats.inserted.large_trades, 279)
      const refused = cli(["replay", "--venue", "coinbase", `${sessions}COINBASE.jsonl.zst`], { DATABASE_URL: "postgres://postgres@127.0.0.1:1/none" })
      assert.strictEqual(refused.status, 1)
      assert.include(refused.stderr, "ECONNREFUSED (connection refused)")
    }), { timeout: 120_000 })
})
