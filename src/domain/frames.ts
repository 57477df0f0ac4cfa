/** The first step of every venue decoder: one frame to a JSON value, and a DecodeError that quotes it briefly. */
import { DecodeError } from "./errors.ts"

const sampleOf = (frame: string) => (frame.length > 200 ? `${frame.slice(0, 200)}...` : frame)

export const decodeFailure = (venue: string) => (channel: string, detail: string, frame: string) =>
  new DecodeError({ venue, channel, detail, sample: sampleOf(frame) })

/** The parsed frame, or why it is unusable ("frame is not JSON", "frame is not an object"). */
export const parseFrame = (frame: string, options: { readonly arrays: boolean }): object | string => {
  let parsed: unknown
  try {
    parsed = JSON.parse(frame)
  } catch {
    return "frame is not JSON"
  }
  if (typeof parsed !== "object" || parsed === null || (!options.arrays && Array.isArray(parsed))) return "frame is not an object"
  return parsed
}
