/** Every way a feed, a REST call or the store can fail, as tagged errors handled by tag. */
import { Schema } from "effect"

const feedFields = { feed: Schema.String, detail: Schema.String }

/** The socket could not be opened (refused, DNS, TLS, open timeout). */
export class FeedConnectError extends Schema.TaggedError<FeedConnectError>()("FeedConnectError", feedFields) {}

/** The venue (or the network) closed an open socket. */
export class FeedClosedError extends Schema.TaggedError<FeedClosedError>()("FeedClosedError", {
  ...feedFields,
  code: Schema.optional(Schema.Number)
}) {}

/** Nothing arrived for longer than the venue's stale limit. */
export class FeedStaleError extends Schema.TaggedError<FeedStaleError>()("FeedStaleError", {
  ...feedFields,
  silentForMs: Schema.Number
}) {}

/** The venue broke its own protocol (an error event, a failed subscription, a lifetime rotation). */
export class FeedProtocolError extends Schema.TaggedError<FeedProtocolError>()("FeedProtocolError", feedFields) {}

/**
 * A frame or REST body that does not match the venue's documented format.
 * With `dropped`, the message was read but for that many unreadable elements
 * (book levels, instruments), which were left out: the rest was kept.
 */
export class DecodeError extends Schema.TaggedError<DecodeError>()("DecodeError", {
  venue: Schema.String,
  channel: Schema.String,
  detail: Schema.String,
  sample: Schema.String,
  dropped: Schema.optional(Schema.Number)
}) {}

/** HTTP 429 (or an exhausted local budget): back off until `retryAfterMs`. */
export class RateLimitedError extends Schema.TaggedError<RateLimitedError>()("RateLimitedError", {
  venue: Schema.String,
  retryAfterMs: Schema.Number,
  detail: Schema.String
}) {}

/** HTTP 418 or a venue ban: no calls until `untilMs`. */
export class BannedError extends Schema.TaggedError<BannedError>()("BannedError", {
  venue: Schema.String,
  untilMs: Schema.Number,
  detail: Schema.String
}) {}

/** A REST call failed for any other reason (network, 5xx, circuit open). */
export class RestError extends Schema.TaggedError<RestError>()("RestError", {
  venue: Schema.String,
  url: Schema.String,
  status: Schema.optional(Schema.Number),
  detail: Schema.String
}) {}

export type FeedError = FeedConnectError | FeedClosedError | FeedStaleError | FeedProtocolError
export type RestFailure = RateLimitedError | BannedError | RestError | DecodeError
