import { assert, describe, it } from "@effect/vitest"
import { RowLag } from "../src/storage/lag.ts"

describe("row lag", () => {
  it("answers quantiles within the bucket width and ignores rows without a timestamp", () => {
    const lag = new RowLag()
    const committedAt = 1_700_000_000_000
    const rows: Array<unknown> = []
    for (let ms = 1; ms <= 1000; ms++) rows.push({ timestamp: committedAt - ms })
    rows.push({ kind: "cursor" })
    lag.record(rows, committedAt)
    assert.strictEqual(lag.count, 1000)
    const p50 = lag.quantile(0.5)!
    const p99 = lag.quantile(0.99)!
    assert.isTrue(p50 <= 500 && p50 >= 500 / 1.03, `p50 ${p50}`)
    assert.isTrue(p99 <= 990 && p99 >= 990 / 1.03, `p99 ${p99}`)
    assert.strictEqual(lag.quantile(0.01), 10)
  })

  it("has no quantile before any row, and clamps clock skew and week-old rows into its range", () => {
    const lag = new RowLag()
    assert.strictEqual(lag.quantile(0.5), undefined)
    lag.record([{ timestamp: 2_000 }, { timestamp: 0 }], 1_000)
    assert.strictEqual(lag.quantile(0.5), 0)
    assert.isTrue(lag.quantile(1)! > 0)
  })
})
