/**
 * The check every normalized record passes before it goes any further, whatever
 * venue or path it came from (frames, REST, repaired trades, replays): the
 * record processor applies it to everything handed to it (pipeline/processor.ts).
 *
 * A record is refused when any number in it (prices, sizes, rates, open
 * interest, greeks, book levels, sequences, optional fields when present,
 * details) is NaN or infinite, or when one of its times is not a time:
 * - an event time (`timestamp`, `tradeDate`) before 2009-01-01 (no crypto
 *   market existed) or more than a day ahead of the clock it was received by
 *   (a book record's 0, "time not sent", excepted: see below);
 * - a scheduled time (`expiry`, `nextFundingTime`), which lies ahead by design,
 *   before 2009-01-01 or more than ten years ahead (no venue lists that far out).
 * A funding reading's 0 is also "time not sent" (OKX may omit `ts`): it is
 * stamped with its receive time and says so (`details.time_source: "receipt"`),
 * never given its next settlement time, which lies in the future. A next
 * funding time of 0 is "not published" too: null, so the rate is kept.
 * It knows no venue and no record kind beyond the names of the time fields
 * (test/validate.test.ts holds that list equal to the time fields of records.ts).
 */
import type { NormalizedRecord } from "./records.ts"

/** 2009-01-01T00:00:00Z: nothing any venue reports happened before it. */
export const earliestTime = Date.UTC(2009, 0, 1)
/** How far ahead of the receiving clock an event may be stamped (venue clocks drift, never by a day). */
export const maxAheadMs = 86_400_000
/** How far ahead a scheduled time (an expiry, the next funding) may lie. */
export const maxScheduledAheadMs = 10 * 365 * 86_400_000

/** Times of something that happened: no later than a day after it was received. */
export const eventTimeFields: ReadonlySet<string> = new Set(["timestamp", "tradeDate"])
/** Times of something scheduled: ahead by design. */
export const scheduledTimeFields: ReadonlySet<string> = new Set(["expiry", "nextFundingTime"])

/** Dates hold ±8.64e15 ms: beyond that `toISOString` throws, so the number is shown as it is. */
const shown = (ms: number) => (Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : String(ms))

/** Why a value nested in a record is not a finite number where it is a number, or undefined. */
const nonFinite = (value: unknown, path: string, depth: number): string | undefined => {
  if (typeof value === "number") return Number.isFinite(value) ? undefined : `${path} is ${value}`
  if (typeof value !== "object" || value === null || depth > 8) return undefined
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i]
      // Book levels: [price, size], thousands per message, checked without recursion.
      if (Array.isArray(item) && item.length === 2 && typeof item[0] === "number" && typeof item[1] === "number") {
        if (!Number.isFinite(item[0]) || !Number.isFinite(item[1])) return `${path}[${i}] is [${item[0]}, ${item[1]}]`
        continue
      }
      const why = nonFinite(item, `${path}[${i}]`, depth + 1)
      if (why !== undefined) return why
    }
    return undefined
  }
  const fields = value as Record<string, unknown>
  for (const key in fields) {
    const why = nonFinite(fields[key], `${path}.${key}`, depth + 1)
    if (why !== undefined) return why
  }
  return undefined
}

/**
 * Book records may carry 0 for a time the venue did not send (Coinbase
 * Exchange's snapshot): the book machinery keeps its last known time then and
 * builds no row from it (book/sync.ts), so 0 there is "unknown", not 1970.
 */
const unknownTimeAllowed: ReadonlySet<string> = new Set(["book_snapshot", "book_delta"])

/** Readings of a state that may arrive without a time: stamped when they were received. */
const stampedAtReceipt: ReadonlySet<string> = new Set(["funding"])

const stampAtReceipt = (record: NormalizedRecord, now: number): NormalizedRecord =>
  record.kind === "funding" ? { ...record, timestamp: now, details: { ...record.details, time_source: "receipt" } } : record

/** A funding reading whose next funding time is 0: not published, so null (the field allows it), not 1970. */
const unsentNextFunding = (record: NormalizedRecord): NormalizedRecord =>
  record.kind === "funding" && record.nextFundingTime === 0 ? { ...record, nextFundingTime: null } : record

const timeProblem = (key: string, value: unknown, latest: number): string | undefined => {
  // Null stands for "not published" where the schema allows it (nextFundingTime).
  if (value === null) return undefined
  if (typeof value !== "number") return `${key} is not a number`
  if (!Number.isFinite(value)) return `${key} is ${value}`
  if (value < earliestTime) return `${key} ${value} is before 2009-01-01`
  if (value > latest) return `${key} ${shown(value)} is more than allowed ahead of the clock`
  return undefined
}

/**
 * Why `record`, received at `now` (epoch ms, the venue connection's clock or
 * the recorded receive time), must not go any further; undefined when it may.
 */
export const invalidRecord = (record: NormalizedRecord, now: number): string | undefined => {
  const fields = record as unknown as Record<string, unknown>
  for (const key in fields) {
    const value = fields[key]
    if (eventTimeFields.has(key)) {
      if (value === 0 && key === "timestamp" && unknownTimeAllowed.has(record.kind)) continue
      const why = timeProblem(key, value, now + maxAheadMs)
      if (why !== undefined) return why
    } else if (scheduledTimeFields.has(key)) {
      const why = timeProblem(key, value, now + maxScheduledAheadMs)
      if (why !== undefined) return why
    } else {
      const why = nonFinite(value, key, 0)
      if (why !== undefined) return why
    }
  }
  return undefined
}

/** A record refused by `invalidRecord`, and why. */
export interface RefusedRecord {
  readonly record: NormalizedRecord
  readonly reason: string
}

/**
 * The records of `records` that pass, in order (the same array when all do, so
 * the hot path allocates nothing); each refused one goes to `refuse`.
 */
export const admitRecords = (
  records: ReadonlyArray<NormalizedRecord>,
  now: number,
  refuse: (refused: RefusedRecord) => void
): ReadonlyArray<NormalizedRecord> => {
  let kept: Array<NormalizedRecord> | undefined
  for (let i = 0; i < records.length; i++) {
    let record = records[i]!
    if (record.timestamp === 0 && stampedAtReceipt.has(record.kind)) {
      record = stampAtReceipt(record, now)
      kept ??= records.slice(0, i)
    }
    if (record.kind === "funding" && record.nextFundingTime === 0) {
      record = unsentNextFunding(record)
      kept ??= records.slice(0, i)
    }
    const reason = invalidRecord(record, now)
    if (reason === undefined) {
      kept?.push(record)
      continue
    }
    kept ??= records.slice(0, i)
    refuse({ record, reason })
  }
  return kept ?? records
}

/** A refused record in a log line: its kind, venue, symbol and reason. */
export const describeRefused = ({ record, reason }: RefusedRecord): string =>
  `${record.kind} ${record.venue} ${record.symbol}: ${reason}`
