/**
 * The live books, read-only (architecture: "live state is read, not reached
 * into"). Every RecordProcessor's BookSync registers itself here with the
 * instrument registry of its runtime (pipeline/runtime.ts `makeProcessor`);
 * analytics read each book's top, state and age through `books()`, as plain
 * objects made at the moment of reading. Nothing can change a book through
 * this view, and it knows no venue.
 *
 * A venue that restarts builds new processors; the old ones are held weakly
 * (they go with their venue's scope) and, while both exist, a book is read
 * from the source that heard from it last.
 */
import { Context, Layer } from "effect"
import type { Instrument } from "../domain/instruments.ts"
import type { BookState } from "./sync.ts"

/** One book's top of book and how current it is, at the moment it was read. */
export interface BookView {
  readonly exchange: string
  readonly symbol: string
  readonly state: BookState
  readonly bestBid: number | null
  readonly bidSize: number | null
  readonly bestAsk: number | null
  readonly askSize: number | null
  /** The exchange's time of the last update applied (epoch ms); null before the first. */
  readonly exchangeTime: number | null
  /** Our clock when that update arrived (epoch ms); null when not known. */
  readonly receivedAt: number | null
  /** Best bid at or above best ask: only a missed or misapplied update makes one. */
  readonly crossed: boolean
}

/** What a book keeper hands the view: its books' tops, made when asked. */
export interface LiveBookSource {
  readonly views: () => ReadonlyArray<BookView>
}

/** What the view needs of an instrument registry (domain/instruments.ts `InstrumentRegistry.get`). */
export type InstrumentReader = (venue: string, symbol: string) => Instrument | undefined

interface Registration {
  readonly source: WeakRef<LiveBookSource>
  readonly instruments: InstrumentReader
}

/** The registry behind the view: sources register once; readers only read. */
export class LiveBookRegistry {
  private readonly registrations: Array<Registration> = []

  register(source: LiveBookSource, instruments: InstrumentReader): void {
    this.registrations.push({ source: new WeakRef(source), instruments })
  }

  private live(): Array<{ readonly source: LiveBookSource; readonly instruments: InstrumentReader }> {
    const out: Array<{ source: LiveBookSource; instruments: InstrumentReader }> = []
    for (let i = this.registrations.length - 1; i >= 0; i--) {
      const registration = this.registrations[i]!
      const source = registration.source.deref()
      if (source === undefined) this.registrations.splice(i, 1)
      else out.push({ source, instruments: registration.instruments })
    }
    return out
  }

  /** Every registered book now; a (venue, symbol) kept by two sources is the one updated last. */
  books(): Array<BookView> {
    const byKey = new Map<string, BookView>()
    for (const { source } of this.live()) {
      for (const view of source.views()) {
        const key = `${view.exchange}\u0000${view.symbol}`
        const other = byKey.get(key)
        if (other === undefined || (view.receivedAt ?? -Infinity) > (other.receivedAt ?? -Infinity)) byKey.set(key, view)
      }
    }
    return [...byKey.values()]
  }

  /** An instrument's facts, from the registry of a runtime whose processors registered here. */
  instrument(venue: string, symbol: string): Instrument | undefined {
    for (const { instruments } of this.live()) {
      const found = instruments(venue, symbol)
      if (found !== undefined) return found
    }
    return undefined
  }
}

/**
 * The service: one registry for the process, handed to the venues' runtime
 * (collectors.ts) and read by analytics (analytics/).
 */
export class LiveBooks extends Context.Service<LiveBooks, LiveBookRegistry>()("market-data/book/LiveBooks") {
  static readonly layer = Layer.sync(LiveBooks, () => new LiveBookRegistry())
}
