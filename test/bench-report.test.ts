/**
 * The bench's JSON results and their comparison (bench/results.ts) on two
 * pinned runs: which cells become figures, under which names, and the change
 * printed between the runs. Every expected value is worked out by hand below.
 */
import { assert, describe, it } from "@effect/vitest"
import { type BenchRun, cellNumber, compareRuns, figuresOf, resultFileName } from "../bench/results.ts"

const earlier: BenchRun = {
  format: 1,
  startedAt: "2026-12-03T10:00:00.000Z",
  machine: "node v24.21.0, 2 cores",
  sections: [
    {
      section: "e2e:postgres",
      tables: [{
        title: "2. end to end into postgres: flood venue, 10 s per pace",
        header: ["database", "pace/s", "sustained/s", "CPU busy", "over parse", "verdict"],
        // The pace is a number but names the row: two key columns.
        keyColumns: 2,
        rows: [["postgres", "25,000", "24,900", "41%", "0.05x", "ok"]]
      }]
    },
    {
      section: "normalize",
      tables: [{
        title: "1. normalization on recorded frames: ns per frame",
        header: ["venue", "channel", "frames", "ours", "ours/parse"],
        rows: [["binance", "trades", "2", "1,200", "1.50x"]]
      }]
    }
  ]
}

const later: BenchRun = {
  format: 1,
  startedAt: "2026-12-04T19:30:05.000Z",
  machine: "node v24.21.0, 2 cores (noisy)",
  sections: [
    {
      section: "e2e:postgres",
      tables: [{
        title: "2. end to end into postgres: flood venue, 20 s per pace",
        header: ["database", "pace/s", "sustained/s", "CPU busy", "over parse", "verdict"],
        keyColumns: 2,
        rows: [["postgres", "25,000", "22,410", "45%", "0.04x", "saturated"]]
      }]
    },
    {
      section: "normalize",
      tables: [{
        title: "1. normalization on recorded frames: ns per frame",
        header: ["venue", "channel", "frames", "ours", "ours/parse"],
        rows: [["okx", "trades", "5", "800", "n/a"]]
      }]
    }
  ]
}

describe("bench results", () => {
  it("names the file after the run's own start time, to the second, without colons", () => {
    assert.strictEqual(resultFileName(new Date("2026-12-04T19:30:05.123Z")), "2026-12-04T19-30-05Z.json")
  })

  it("reads numbers with thousands separators, percentages and ratios, and nothing else", () => {
    assert.strictEqual(cellNumber("12,345"), 12345)
    assert.strictEqual(cellNumber("97%"), 97)
    assert.strictEqual(cellNumber("1.61x"), 1.61)
    assert.strictEqual(cellNumber("-3.5"), -3.5)
    assert.strictEqual(cellNumber("n/a"), undefined)
    assert.strictEqual(cellNumber("max"), undefined)
    assert.strictEqual(cellNumber("ok"), undefined)
  })

  it("makes every numeric cell a figure named by table id, row key and column", () => {
    assert.deepStrictEqual([...figuresOf(earlier)], [
      ["2. end to end into postgres | postgres 25,000 | sustained/s", 24900],
      ["2. end to end into postgres | postgres 25,000 | CPU busy", 41],
      ["2. end to end into postgres | postgres 25,000 | over parse", 0.05],
      // No keyColumns: the key is the leading non-numeric cells, "binance" and "trades".
      ["1. normalization on recorded frames | binance trades | frames", 2],
      ["1. normalization on recorded frames | binance trades | ours", 1200],
      ["1. normalization on recorded frames | binance trades | ours/parse", 1.5]
    ])
  })

  it("prints each figure's change in percent of the earlier value, and n/a where one run lacks it", () => {
    const table = compareRuns(earlier, later)
    assert.strictEqual(table.title, "change from 2026-12-03T10:00:00.000Z to 2026-12-04T19:30:05.000Z")
    assert.deepStrictEqual(table.rows, [
      // (22,410 - 24,900) / 24,900 = -2,490 / 24,900 = -10.0 %
      ["2. end to end into postgres | postgres 25,000 | sustained/s", "24900", "22410", "-10.0%"],
      // (45 - 41) / 41 = 0.09756 -> +9.8 %
      ["2. end to end into postgres | postgres 25,000 | CPU busy", "41", "45", "+9.8%"],
      // (0.04 - 0.05) / 0.05 = -0.2 -> -20.0 %
      ["2. end to end into postgres | postgres 25,000 | over parse", "0.05", "0.04", "-20.0%"],
      ["1. normalization on recorded frames | binance trades | frames", "2", "n/a", "n/a"],
      ["1. normalization on recorded frames | binance trades | ours", "1200", "n/a", "n/a"],
      ["1. normalization on recorded frames | binance trades | ours/parse", "1.5", "n/a", "n/a"],
      // okx's "n/a" ratio is no figure at all.
      ["1. normalization on recorded frames | okx trades | frames", "n/a", "5", "n/a"],
      ["1. normalization on recorded frames | okx trades | ours", "n/a", "800", "n/a"]
    ])
  })
})
