/**
 * What CME settlements say beyond themselves: the basis of each contract to
 * spot, and the roll from one contract to the next.
 */
import { type Contract, daysToExpiry } from "./contracts.ts"
import type { Settlement } from "./sources.ts"

/** 3:00 p.m. Chicago time on a trade date, in UTC: when CME's crypto futures settle. */
export const settlementTime = (tradeDate: number): number => {
  const noonUtc = tradeDate + 12 * 3_600_000
  // Chicago's offset that day (CST -6 h, CDT -5 h), read from the time-zone database.
  const chicago = new Date(new Date(noonUtc).toLocaleString("en-US", { timeZone: "America/Chicago" }) + " UTC").getTime()
  const offset = chicago - noonUtc
  return tradeDate + 15 * 3_600_000 - offset
}

export interface Basis {
  readonly contract: Contract
  readonly futuresPrice: number
  readonly spotPrice: number
  readonly basis: number
  readonly basisPercent: number
  /** Simple annualisation over the days left: basis% x 365 / days. */
  readonly annualizedPercent: number | null
  readonly daysToExpiry: number
  readonly at: number
}

export const computeBasis = (contract: Contract, futuresPrice: number, spotPrice: number, at: number): Basis => {
  const basis = futuresPrice - spotPrice
  const basisPercent = (basis / spotPrice) * 100
  const days = daysToExpiry(contract, at)
  return {
    contract,
    futuresPrice,
    spotPrice,
    basis,
    basisPercent,
    // Within a day of expiry the annualised figure means nothing (and divides by ~0).
    annualizedPercent: days >= 1 ? (basisPercent * 365) / days : null,
    daysToExpiry: days,
    at
  }
}

export interface RollState {
  readonly root: string
  /** The nearest contract not yet expired. */
  readonly front: Settlement | undefined
  /** The contract after it. */
  readonly next: Settlement | undefined
  /** The contract with the most open interest: where the market is. */
  readonly active: Settlement | undefined
}

/** The front, next and most-held contracts of one root on one trade date. */
export const rollState = (root: string, settlements: ReadonlyArray<Settlement>, at: number): RollState => {
  const live = settlements
    .filter((s) => s.contract.root === root && s.contract.expiry + 86_400_000 > at)
    .sort((a, b) => a.contract.expiry - b.contract.expiry)
  const active = live.reduce<Settlement | undefined>(
    (best, s) => ((s.openInterest ?? -1) > (best?.openInterest ?? -1) ? s : best),
    undefined
  )
  return { root, front: live[0], next: live[1], active }
}

export interface RollEvent {
  readonly root: string
  readonly from: Settlement
  readonly to: Settlement
  readonly reason: "open_interest" | "volume"
  readonly tradeDate: number
}

/**
 * A roll: the next contract's open interest (or, where open interest is not
 * published, its volume) overtakes the front contract's on this trade date.
 */
export const detectRoll = (state: RollState): RollEvent | undefined => {
  const { front, next } = state
  if (front === undefined || next === undefined) return undefined
  if (front.openInterest !== null && next.openInterest !== null) {
    return next.openInterest > front.openInterest
      ? { root: state.root, from: front, to: next, reason: "open_interest", tradeDate: front.tradeDate }
      : undefined
  }
  if (front.volume !== null && next.volume !== null && next.volume > front.volume) {
    return { root: state.root, from: front, to: next, reason: "volume", tradeDate: front.tradeDate }
  }
  return undefined
}
