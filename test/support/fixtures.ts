/** Reads the recorded real sessions of shared/fixtures/recorded. */
import { readFileSync } from "node:fs"
import { parseRecording, type Recording } from "../../src/replay/recorded.ts"
import { fixtures } from "../fake/binance.ts"

export const recording = (...files: ReadonlyArray<string>): Recording => {
  const into: Recording = { frames: [], sent: [], rest: [] }
  for (const file of files) parseRecording(readFileSync(`${fixtures}${file}`, "utf8"), into)
  return into
}

export const binanceSpot = () => recording("BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0")
export const binanceFutures = () => recording("BINANCE_FUTURES.0", "BINANCE_FUTURES.http.0.0", "BINANCE_FUTURES.ws.1.0")
