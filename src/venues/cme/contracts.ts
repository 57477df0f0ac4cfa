/**
 * CME crypto futures: the four products, their multipliers, month codes and
 * expiries. CME lists monthly contracts; each terminates on the last Friday of
 * its contract month (4 p.m. London), or the prior day that is both a London
 * and a U.S. business day. The only holidays that can fall on a month's last
 * Friday are Christmas Day, Boxing Day (London) and Good Friday; all are
 * computed (Dec 2026: the 25th is a Friday, so BTCZ26 expires on Thursday the
 * 24th; Dec 2025: the 26th is a Friday, and the 25th, so BTCZ25 expired on
 * Wednesday the 24th).
 */
export interface Product {
  readonly root: string
  readonly base: "BTC" | "ETH"
  /** Coins per contract. */
  readonly multiplier: number
  readonly name: string
}

export const products: Record<string, Product> = {
  BTC: { root: "BTC", base: "BTC", multiplier: 5, name: "Bitcoin futures" },
  MBT: { root: "MBT", base: "BTC", multiplier: 0.1, name: "Micro Bitcoin futures" },
  ETH: { root: "ETH", base: "ETH", multiplier: 50, name: "Ether futures" },
  MET: { root: "MET", base: "ETH", multiplier: 0.1, name: "Micro Ether futures" }
}

export const monthCodes = ["F", "G", "H", "J", "K", "M", "N", "Q", "U", "V", "X", "Z"] as const
const monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"] as const

export interface Contract {
  /** Root, month code and two-digit year: BTCZ25. */
  readonly symbol: string
  readonly root: string
  readonly year: number
  /** 1..12 */
  readonly month: number
  /** The last Friday of the contract month, 00:00 UTC of that day. */
  readonly expiry: number
}

/** Easter Sunday (Gregorian, anonymous algorithm), UTC midnight. */
const easter = (year: number): number => {
  const a = year % 19
  const b = Math.floor(year / 100)
  const c = year % 100
  const d = Math.floor(b / 4)
  const e = b % 4
  const f = Math.floor((b + 8) / 25)
  const g = Math.floor((b - f + 1) / 3)
  const h = (19 * a + b - d - g + 15) % 30
  const i = Math.floor(c / 4)
  const k = c % 4
  const l = (32 + 2 * e + 2 * i - h - k) % 7
  const m = Math.floor((a + 11 * h + 22 * l) / 451)
  const month = Math.floor((h + l - 7 * m + 114) / 31)
  const day = ((h + l - 7 * m + 114) % 31) + 1
  return Date.UTC(year, month - 1, day)
}

const day = 86_400_000

/** Not both a London and a U.S. business day (weekdays only: the dates tried are a last Friday and the days before it). */
const isHoliday = (date: number): boolean => {
  const d = new Date(date)
  // Christmas Day (both), Boxing Day (London).
  if (d.getUTCMonth() === 11 && (d.getUTCDate() === 25 || d.getUTCDate() === 26)) return true
  return date === easter(d.getUTCFullYear()) - 2 * day
}

/** The last Friday of a month (UTC midnight), moved to the business day before it on a holiday. */
export const lastFriday = (year: number, month: number): number => {
  const last = new Date(Date.UTC(year, month, 0))
  const back = (last.getUTCDay() - 5 + 7) % 7
  let date = Date.UTC(year, month - 1, last.getUTCDate() - back)
  while (isHoliday(date)) date -= day
  return date
}

export const contract = (root: string, year: number, month: number): Contract => ({
  symbol: `${root}${monthCodes[month - 1]}${String(year % 100).padStart(2, "0")}`,
  root,
  year,
  month,
  expiry: lastFriday(year, month)
})

/** The next `count` monthly contracts of a root not yet expired at `now`. */
export const listedContracts = (root: string, now: number, count: number): Array<Contract> => {
  const today = new Date(now)
  const out: Array<Contract> = []
  let year = today.getUTCFullYear()
  let month = today.getUTCMonth() + 1
  while (out.length < count) {
    const c = contract(root, year, month)
    // A contract trades through its expiry day.
    if (c.expiry + day > now) out.push(c)
    month++
    if (month > 12) {
      month = 1
      year++
    }
  }
  return out
}

/** CME's month label on its settlement pages: "DEC 25". */
export const fromMonthLabel = (root: string, label: string): Contract | undefined => {
  const match = /^([A-Z]{3})\s+(\d{2})$/.exec(label.trim())
  if (match === null) return undefined
  const month = monthNames.indexOf(match[1] as (typeof monthNames)[number]) + 1
  return month === 0 ? undefined : contract(root, 2000 + Number(match[2]), month)
}

/**
 * A Globex symbol (BTCZ5: one-digit year) or ours (BTCZ25). A one-digit year is
 * the next year ending in that digit from `now` (allowing contracts expired up
 * to a year ago).
 */
export const fromSymbol = (symbol: string, now: number): Contract | undefined => {
  const match = /^([A-Z]{3})([FGHJKMNQUVXZ])(\d{1,2})$/.exec(symbol)
  if (match === null || products[match[1]!] === undefined) return undefined
  const month = monthCodes.indexOf(match[2] as (typeof monthCodes)[number]) + 1
  const digits = match[3]!
  const currentYear = new Date(now).getUTCFullYear()
  let year: number
  if (digits.length === 2) year = 2000 + Number(digits)
  else {
    year = currentYear - (currentYear % 10) + Number(digits)
    if (year < currentYear - 1) year += 10
  }
  return contract(match[1]!, year, month)
}

export const daysToExpiry = (c: Contract, at: number): number => (c.expiry - at) / day
