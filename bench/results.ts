/**
 * A bench run as JSON (bench/results/<start time>.json), and the change
 * between two of them (`npm run bench -- --compare <file>`).
 *
 * Every numeric cell of every printed table is a figure, named
 * "<table id> | <row key> | <column>": the table id is its title up to the
 * first colon ("2. end to end into postgres"), the row key its first
 * `keyColumns` cells (by default the leading cells that are not numbers), so
 * two runs with the same sections name the same figures and a section needs no
 * code of its own to be compared. Ratios to a same-run baseline are columns
 * like any other: on a noisy machine they are the figures to compare.
 */
import type { Table } from "./report.ts"

export interface SectionResult {
  readonly section: string
  readonly tables: ReadonlyArray<Table>
}

export interface BenchRun {
  readonly format: 1
  /** The run's own clock when it started (ISO 8601); the file is named after it. */
  readonly startedAt: string
  readonly machine: string
  readonly sections: ReadonlyArray<SectionResult>
}

/** "2026-12-04T19:30:05.123Z" -> "2026-12-04T19-30-05Z.json": sortable, one file per run, no colons. */
export const resultFileName = (startedAt: Date): string => `${startedAt.toISOString().slice(0, 19).replaceAll(":", "-")}Z.json`

/** "12,345", "-3.5", "97%", "1.61x" -> a number; anything else (names, "n/a", "ok") -> undefined. */
export const cellNumber = (cell: string): number | undefined => {
  const match = /^(-?[\d,]*\.?\d+)(%|x)?$/.exec(cell.trim())
  if (match === null) return undefined
  const value = Number(match[1]!.replaceAll(",", ""))
  return Number.isFinite(value) ? value : undefined
}

const tableId = (table: Table): string => table.title.split(":")[0]!.trim()

const keyWidth = (table: Table, row: ReadonlyArray<string>): number => {
  if (table.keyColumns !== undefined) return table.keyColumns
  const firstNumber = row.findIndex((cell) => cellNumber(cell) !== undefined)
  return firstNumber < 0 ? row.length : firstNumber
}

/** Every numeric cell of a run, by figure name. */
export const figuresOf = (run: BenchRun): Map<string, number> => {
  const figures = new Map<string, number>()
  for (const { tables } of run.sections) {
    for (const table of tables) {
      for (const row of table.rows) {
        const width = keyWidth(table, row)
        const key = row.slice(0, width).join(" ")
        for (let i = width; i < row.length; i++) {
          const value = cellNumber(row[i]!)
          if (value !== undefined) figures.set(`${tableId(table)} | ${key} | ${table.header[i] ?? i}`, value)
        }
      }
    }
  }
  return figures
}

const signed = (x: number, digits: number) => `${x >= 0 ? "+" : ""}${x.toFixed(digits)}`

/**
 * The figures of `earlier` and `later` side by side with the change in percent
 * of the earlier value; figures only one run has are listed with "n/a".
 */
export const compareRuns = (earlier: BenchRun, later: BenchRun): Table => {
  const before = figuresOf(earlier)
  const after = figuresOf(later)
  const names = [...new Set([...before.keys(), ...after.keys()])]
  const rows = names.map((name) => {
    const a = before.get(name)
    const b = after.get(name)
    const change = a === undefined || b === undefined ? "n/a" : a === 0 ? (b === 0 ? "+0.0%" : "n/a") : `${signed(((b - a) / Math.abs(a)) * 100, 1)}%`
    return [name, a === undefined ? "n/a" : String(a), b === undefined ? "n/a" : String(b), change]
  })
  return {
    title: `change from ${earlier.startedAt} to ${later.startedAt}`,
    header: ["figure", "earlier", "later", "change"],
    rows,
    keyColumns: 1,
    notes: [
      `earlier: ${earlier.machine}`,
      `later: ${later.machine}`,
      "change = (later - earlier) / earlier; on a shared machine trust the ratio columns (each to a baseline of its own run) over absolute figures"
    ]
  }
}
