/**
 * What a venue folder provides to the shared machinery. The pipeline, the
 * replay tool and the service all drive venues through this interface only.
 */
import type { Config, Effect, Scope } from "effect"
import type { Socket } from "effect/socket"
import type { HttpClient } from "effect/http"
import type { SequenceRule } from "../book/sync.ts"
import type { DecodeError } from "../domain/errors.ts"
import type { Instrument } from "../domain/instruments.ts"
import type { NormalizedRecord } from "../domain/records.ts"
import type { FeedRegistry } from "../feed/status.ts"
import type { GapLedger } from "../gaps/ledger.ts"
import type { VenueRuntime } from "../pipeline/runtime.ts"

export interface RecordedRest {
  readonly url: string
  readonly receivedAt: number
  readonly body: string
}

export interface VenueDefinition {
  readonly id: string
  /** Raw frame to normalized records; a frame the venue does not document becomes a DecodeError. */
  readonly decodeFrame: (frame: string, out: Array<NormalizedRecord>) => DecodeError | undefined
  readonly sequenceRule: SequenceRule | undefined
  /** Turns a recorded or live REST response into instruments or records (replay uses the same parsers as live). */
  readonly fromRest: (response: RecordedRest) => {
    readonly instruments?: ReadonlyArray<Instrument>
    readonly records?: ReadonlyArray<NormalizedRecord>
  }
  /** Instruments guessed from symbols alone, for replays that carry no metadata. */
  readonly guessInstrument: (symbol: string) => Instrument | undefined
  /** Connects, subscribes and polls for as long as the scope lives. */
  readonly live: (
    runtime: VenueRuntime
  ) => Effect.Effect<void, Config.ConfigError, Scope.Scope | HttpClient.HttpClient | FeedRegistry | GapLedger | Socket.WebSocketConstructor>
}
