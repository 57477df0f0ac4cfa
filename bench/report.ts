/** Shared by the bench sections: statistics and the printed table. */
export interface Table {
  readonly title: string
  readonly header: ReadonlyArray<string>
  readonly rows: ReadonlyArray<ReadonlyArray<string>>
  readonly notes?: ReadonlyArray<string>
  /** How many leading cells name a row in the JSON results (bench/results.ts); by default the leading cells that are not numbers. */
  readonly keyColumns?: number
}

export const median = (xs: ReadonlyArray<number>): number => quantile(xs, 0.5)

/** Nearest-rank quantile. */
export const quantile = (xs: ReadonlyArray<number>, q: number): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN
}

export const formatRate = (perSecond: number): string => Math.round(perSecond).toLocaleString("en-US")

export const printTable = (table: Table): void => {
  const widths = table.header.map((h, i) => Math.max(h.length, ...table.rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => c.padStart(widths[i]!)).join("  ")
  console.log(`\n${table.title}`)
  console.log(line(table.header))
  for (const row of table.rows) console.log(line(row))
  for (const note of table.notes ?? []) console.log(`  ${note}`)
}
