/**
 * Black-Scholes on a forward (Black-76) with no discounting: the model crypto
 * option venues quote greeks in (Deribit: interest rate 0, the option's
 * underlying future or index as the forward). Greeks per the venues' units:
 * delta per 1 of the underlying, gamma per 1 of the underlying, vega per one
 * volatility point (1 %), theta per calendar day, rho per 1 % of rate; all in
 * the quote currency (USD).
 */

export interface OptionTerms {
  readonly forward: number
  readonly strike: number
  /** Annualised volatility as a fraction (0.65 for 65 %). */
  readonly volatility: number
  /** Time to expiry in years (365-day). */
  readonly years: number
  readonly type: "call" | "put"
}

export interface Greeks {
  readonly delta: number
  readonly gamma: number
  readonly vega: number
  readonly theta: number
  readonly rho: number
}

const dayInYears = 1 / 365

/** The standard normal density. */
const density = (x: number): number => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI)

/** The standard normal distribution function. */
export const normalCdf = (x: number): number => 0.5 * erfc(-x / Math.SQRT2)

const erfc = (x: number): number => {
  // Numerical Recipes' erfc with Chebyshev fit: fractional error below 1.2e-7 everywhere, ample for 5-decimal greeks.
  const z = Math.abs(x)
  const t = 1 / (1 + 0.5 * z)
  const r = t * Math.exp(
    -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
      t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
  )
  return x >= 0 ? r : 2 - r
}

/** The option's value in the quote currency (intrinsic value at or after expiry). */
export const optionValue = (terms: OptionTerms): number => {
  const { forward: f, strike: k, volatility: v, years: t, type } = terms
  if (t <= 0 || v <= 0) return Math.max(type === "call" ? f - k : k - f, 0)
  const sd = v * Math.sqrt(t)
  const d1 = (Math.log(f / k) + 0.5 * sd * sd) / sd
  const d2 = d1 - sd
  return type === "call" ? f * normalCdf(d1) - k * normalCdf(d2) : k * normalCdf(-d2) - f * normalCdf(-d1)
}

/**
 * Greeks, or undefined where they do not exist (expired, no volatility, a
 * non-positive price). Within a day of expiry theta is the value the option
 * loses by expiry (a day's decay cannot exceed what is left), as Deribit
 * reports it; otherwise the analytic theta per day.
 */
export const greeks = (terms: OptionTerms): Greeks | undefined => {
  const { forward: f, strike: k, volatility: v, years: t, type } = terms
  if (!(t > 0 && v > 0 && f > 0 && k > 0)) return undefined
  const sqrtT = Math.sqrt(t)
  const sd = v * sqrtT
  const d1 = (Math.log(f / k) + 0.5 * sd * sd) / sd
  const d2 = d1 - sd
  const pdf = density(d1)
  const call = type === "call"
  const theta = t < dayInYears
    ? optionValue({ ...terms, years: 0 }) - optionValue(terms)
    : (-f * pdf * v) / (2 * sqrtT) * dayInYears
  return {
    delta: call ? normalCdf(d1) : normalCdf(d1) - 1,
    gamma: pdf / (f * sd),
    vega: (f * pdf * sqrtT) / 100,
    theta,
    rho: call ? (k * t * normalCdf(d2)) / 100 : (-k * t * normalCdf(-d2)) / 100
  }
}
