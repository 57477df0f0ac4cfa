import { assert, describe, it } from "@effect/vitest"
import { LagHistogram, RecentLag } from "../src/observability/lag.ts"

describe("row lag", () => {
  it("answers quantiles within the bucket width and ignores rows without a timestamp", () => {
    const lag = new LagHistogram()
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
    const lag = new LagHistogram()
    assert.strictEqual(lag.quantile(0.5), undefined)
    lag.record([{ timestamp: 2_000 }, { timestamp: 0 }], 1_000)
    assert.strictEqual(lag.quantile(0.5), 0)
    assert.isTrue(lag.quantile(1)! > 0)
  })
})

describe("recent lag", () => {
  it("summarises the last one to two windows, forgets older ones, and keeps a negative minimum (clock behind the venue's)", () => {
    const lag = new RecentLag(60_000)
    const t0 = 1_700_000_000_000
    assert.isNull(lag.summary(t0))
    for (let i = 0; i < 100; i++) lag.add(100 + i, t0 + i * 100)
    lag.add(-40, t0 + 20_000)
    const first = lag.summary(t0 + 30_000)!
    assert.strictEqual(first.samples, 101)
    assert.strictEqual(first.min_ms, -40)
    assert.isTrue(first.p50_ms >= 145 && first.p50_ms <= 150, `p50 ${first.p50_ms}`)
    assert.isTrue(first.p99_ms >= 190 && first.p99_ms <= 199, `p99 ${first.p99_ms}`)
    // One window on: the old samples are the previous window, still counted; new ones join them.
    for (let i = 0; i < 100; i++) lag.add(1_000, t0 + 70_000 + i)
    const second = lag.summary(t0 + 80_000)!
    assert.strictEqual(second.samples, 201)
    assert.strictEqual(second.min_ms, -40)
    assert.isTrue(second.p99_ms >= 970 && second.p99_ms <= 1_000, `p99 ${second.p99_ms}`)
    // Another window on, the first samples are gone; two windows of silence forget everything.
    const third = lag.summary(t0 + 135_000)!
    assert.strictEqual(third.samples, 100)
    assert.strictEqual(third.min_ms, 1_000)
    assert.isNull(lag.summary(t0 + 400_000))
  })
})
