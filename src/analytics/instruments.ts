/**
 * What a stored symbol says about itself, read without a venue: its base asset
 * (BTCUSDT, BTC-PERPETUAL, MBTZ26: BTC) and, for a dated future, its expiry.
 * The symbol shapes are those baseAssetPattern (storage/queries.ts) matches.
 */
import { baseAssetPattern } from "../storage/queries.ts"

const day = 86_400_000
const months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
const monthCodes = "FGHJKMNQUVXZ"
/** CME's micro contracts carry their own roots (MBTZ26 is bitcoin). */
const microAssets: Record<string, string> = { MBT: "BTC", MET: "ETH" }

const patterns = new Map<string, RegExp>()
const matchesAsset = (symbol: string, asset: string) => {
  let pattern = patterns.get(asset)
  if (pattern === undefined) patterns.set(asset, pattern = new RegExp(baseAssetPattern(asset)))
  return pattern.test(symbol)
}

/** The base asset of a symbol: the shortest leading run that baseAssetPattern accepts for it; the symbol itself when none does. */
export const assetOf = (symbol: string): string => {
  const upper = symbol.toUpperCase()
  for (let length = 2; length < upper.length; length++) {
    const candidate = upper.slice(0, length)
    if (!/^[A-Z0-9]+$/.test(candidate)) break
    if (matchesAsset(upper, candidate)) return microAssets[candidate] ?? candidate
  }
  return upper
}

/** The last Friday of a month at `hour` UTC. */
const lastFriday = (year: number, month: number, hour: number) => {
  const last = new Date(Date.UTC(year, month, 0, hour))
  return last.getTime() - ((last.getUTCDay() + 2) % 7) * day
}

/**
 * The expiry of a dated future from its symbol, or undefined (a perpetual,
 * spot, an option, a shape not known here). Crypto venues expire their
 * futures at 08:00 UTC:
 * - BTC-27DEC24, BTCUSDT-26DEC25 (Deribit, Bybit linear): that day;
 * - BTCUSDT_251226, BTC-USD-251226 (Binance, OKX): YYMMDD;
 * - BTCUSDZ26 (Bybit inverse): the last Friday of the coded month.
 * CME's (BTCZ26) come from its settlements, which carry the expiry.
 */
export const expiryOf = (symbol: string): number | undefined => {
  const named = /^[A-Z0-9]+(?:[-_][A-Z]+)?-(\d{1,2})([A-Z]{3})(\d{2})$/.exec(symbol)
  if (named !== null) {
    const month = months.indexOf(named[2]!)
    return month < 0 ? undefined : Date.UTC(2000 + Number(named[3]), month, Number(named[1]), 8)
  }
  const numeric = /^[A-Z0-9]+(?:[-_]?(?:USDT|USDC|USD))?[-_](\d{2})(\d{2})(\d{2})$/.exec(symbol)
  if (numeric !== null) {
    const [year, month, date] = [2000 + Number(numeric[1]), Number(numeric[2]) - 1, Number(numeric[3])]
    const at = Date.UTC(year, month, date, 8)
    return new Date(at).getUTCMonth() === month && month >= 0 ? at : undefined
  }
  const coded = /^[A-Z]+USD([FGHJKMNQUVXZ])(\d{2})$/.exec(symbol)
  if (coded !== null) return lastFriday(2000 + Number(coded[2]), monthCodes.indexOf(coded[1]!) + 1, 8)
  return undefined
}

/** Perpetual symbols: BTC-PERPETUAL, BTC-USDT-SWAP, BTCPERP; the linear pairs funding rows carry (BTCUSDT) are perpetuals by being there. */
export const looksPerpetual = (symbol: string): boolean => /(-PERPETUAL|-SWAP|PERP)$/.test(symbol)
