/**
 * Where the real captures are, and readers for them. `FIXTURES_DIR` (default
 * `../shared/fixtures` beside the repository) holds `recorded/` and `sessions/`;
 * a clone without it gets them with `npm run fixtures` (see scripts/fixtures.ts).
 */
import { resolve } from "node:path"
import { readRecordings, type Recording } from "../../src/replay/recorded.ts"

const repositoryRoot = new URL("../../", import.meta.url).pathname
export const fixturesDir = resolve(repositoryRoot, process.env.FIXTURES_DIR ?? "../shared/fixtures")
/** The 2021-22 captures, with a trailing slash (files are named by appending). */
export const fixtures = `${fixturesDir}/recorded/`
export const sessions = `${fixturesDir}/sessions/`

export const recording = (...files: ReadonlyArray<string>): Recording => readRecordings(files.map((file) => `${fixtures}${file}`))
/** A `sessions/` capture (`COINBASE.jsonl.zst`, ...). */
export const session = (file: string): Recording => readRecordings([`${sessions}${file}`])

export const binanceSpot = () => recording("BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0")
export const binanceFutures = () => recording("BINANCE_FUTURES.0", "BINANCE_FUTURES.http.0.0", "BINANCE_FUTURES.ws.1.0")
