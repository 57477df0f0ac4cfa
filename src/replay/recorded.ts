/**
 * Reads recorded sessions (the format of shared/fixtures/recorded: `URL <-> T`,
 * `URL <- T: TEXT`, `T: TEXT`, `URL -> T: BODY`) and plain files of one raw frame
 * per line. Times are epoch seconds in the files, milliseconds here.
 */
import type { RecordedRest } from "../venues/venue.ts"

export interface RecordedFrame {
  readonly connection: string
  /** Epoch ms; undefined for plain frame files. */
  readonly receivedAt: number | undefined
  readonly text: string
}

export interface Recording {
  readonly frames: Array<RecordedFrame>
  readonly sent: Array<RecordedFrame>
  readonly rest: Array<RecordedRest>
}

const opened = /^(\S+) <-> (\d+(?:\.\d+)?)$/
const sent = /^(\S+) <- (\d+(?:\.\d+)?): (.*)$/
const restResponse = /^(\S+) -> (\d+(?:\.\d+)?): (.*)$/
const received = /^(\d+(?:\.\d+)?): (.*)$/

export const parseRecording = (content: string, into: Recording = { frames: [], sent: [], rest: [] }): Recording => {
  let connection = "plain"
  for (const line of content.split("\n")) {
    if (line.length === 0 || line.startsWith("configuration:")) continue
    let match = received.exec(line)
    if (match !== null) {
      into.frames.push({ connection, receivedAt: Number(match[1]) * 1000, text: match[2]! })
      continue
    }
    match = opened.exec(line)
    if (match !== null) {
      connection = match[1]!
      continue
    }
    match = restResponse.exec(line)
    if (match !== null) {
      into.rest.push({ url: match[1]!, receivedAt: Number(match[2]) * 1000, body: match[3]! })
      continue
    }
    match = sent.exec(line)
    if (match !== null) {
      into.sent.push({ connection: match[1]!, receivedAt: Number(match[2]) * 1000, text: match[3]! })
      continue
    }
    into.frames.push({ connection: "plain", receivedAt: undefined, text: line })
  }
  return into
}
