/**
 * What we send to a venue is rate-limited too: Binance spot takes 5 incoming
 * messages a second per connection (SUBSCRIBE, pings and pongs count), USD-M
 * 10; Coinbase's Advanced Trade feed 8 a second per IP, unauthenticated;
 * Deribit's `public/subscribe` about 3.3 a second, and its error 10028 ends the
 * session. A burst over the limit gets the connection closed (or the IP
 * banned), so every outgoing frame of a connection waits for its pacer.
 *
 * - `Pacer`: at most `messages` per `perMs`, first come first served. One per
 *   connection where the venue counts per connection; one shared by all a
 *   venue's connections where it counts per IP.
 * - `Resubscriber`: resubscriptions asked for one by one (a resync storm: ten
 *   books at once) gather while they wait and go out as one unsubscribe and
 *   one subscribe message listing them all, where the venue takes a list.
 */
import { Clock, Duration, Effect, Semaphore } from "effect"

export interface PacingBudget {
  /** Messages allowed per window (keep a margin under the venue's limit for what the socket library sends itself). */
  readonly messages: number
  readonly perMs: number
}

export interface Pacer {
  readonly budget: PacingBudget
  /** Waits until one more message may go out, and counts it. */
  readonly take: Effect.Effect<void>
  /** Messages sent in the last window (for tests and /health). */
  readonly recent: () => number
}

/**
 * The venue counts arrivals, we count departures: network jitter can bunch two
 * windows' messages into one at the far end. Each slot is held this much longer.
 */
const jitterMarginMs = 50

export const makePacer = (budget: PacingBudget): Pacer => {
  const turn = Semaphore.makeUnsafe(1)
  const windowMs = budget.perMs + jitterMarginMs
  // Send times of the last `messages` messages, oldest first.
  const sent: Array<number> = []
  const take = Semaphore.withPermits(turn, 1)(Effect.gen(function*() {
    while (true) {
      const now = yield* Clock.currentTimeMillis
      while (sent.length > 0 && now - sent[0]! >= windowMs) sent.shift()
      if (sent.length < budget.messages) {
        sent.push(now)
        return
      }
      yield* Effect.sleep(Duration.millis(sent[0]! + windowMs - now))
    }
  }))
  return {
    budget,
    take,
    recent: () => {
      const now = Date.now()
      return sent.filter((at) => now - at < budget.perMs).length
    }
  }
}

/** The frame (or frames) that resubscribes a set of channels or products on one connection, built at `now`. */
export type ResubscribeMessages = (keys: ReadonlyArray<string>, now: number) => ReadonlyArray<string>

/**
 * Gathers resubscription requests and sends them together: a request made while
 * others wait (for the pacer, or within `lingerMs`) joins their message.
 */
export const makeResubscriber = (options: {
  readonly lingerMs: number
  /** Up to this many keys in one message (the venue's list limit). */
  readonly maxKeys: number
  readonly messages: ResubscribeMessages
}) => {
  const pending = new Set<string>()
  let flushing = false
  return {
    /** Resubscribes `key` on the connection `send` writes to (sends nothing if it is already pending). */
    request: (key: string, send: (message: string) => Effect.Effect<void>): Effect.Effect<void> =>
      Effect.suspend(() => {
        pending.add(key)
        if (flushing) return Effect.void
        flushing = true
        return Effect.gen(function*() {
          yield* Effect.sleep(Duration.millis(options.lingerMs))
          while (pending.size > 0) {
            const keys = [...pending].slice(0, options.maxKeys)
            for (const k of keys) pending.delete(k)
            for (const message of options.messages(keys, yield* Clock.currentTimeMillis)) yield* send(message)
          }
        }).pipe(Effect.ensuring(Effect.sync(() => (flushing = false))))
      }),
    pending: () => pending.size
  }
}
