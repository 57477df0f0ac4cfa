/**
 * Where the real captures are, and readers for them. `FIXTURES_DIR` (default
 * `../shared/fixtures` beside the repository) holds `recorded/` and `sessions/`;
 * a clone without it gets them with `npm run fixtures` (scripts/fixtures.ts),
 * into `.fixtures/`.
 */
import { existsSync } from "node:fs"
import { resolve } from "node:path"
import { readRecordings, type Recording } from "../../src/replay/recorded.ts"

const repositoryRoot = new URL("../../", import.meta.url).pathname
const shared = resolve(repositoryRoot, "../shared/fixtures")
/** FIXTURES_DIR, else ../shared/fixtures beside the clone, else what `npm run fixtures` cached. */
export const fixturesDir = process.env.FIXTURES_DIR !== undefined
  ? resolve(repositoryRoot, process.env.FIXTURES_DIR)
  : existsSync(shared)
  ? shared
  : resolve(repositoryRoot, process.env.FIXTURES_CACHE ?? ".fixtures")
/** The 2021-22 captures, with a trailing slash (files are named by appending). */
export const fixtures = `${fixturesDir}/recorded/`
export const sessions = `${fixturesDir}/sessions/`

export const recording = (...files: ReadonlyArray<string>): Recording => readRecordings(files.map((file) => `${fixtures}${file}`))
/** A `sessions/` capture (`COINBASE.jsonl.zst`, ...). */
export const session = (file: string): Recording => readRecordings([`${sessions}${file}`])

export const binanceSpot = () => recording("BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0")
export const binanceFutures = () => recording("BINANCE_FUTURES.0", "BINANCE_FUTURES.http.0.0", "BINANCE_FUTURES.ws.1.0")
