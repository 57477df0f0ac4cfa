/**
 * Reads recorded sessions in both of the fixtures' formats, and plain files of
 * one raw frame per line. Times are epoch seconds in the files, milliseconds here.
 * - `recorded/`: lines `URL <-> T`, `URL <- T: TEXT`, `T: TEXT`, `URL -> T: BODY`.
 * - `sessions/`: one JSON object per line (`header`, `http`, `connect`, `send`,
 *   `recv` with `data` text or `b64` binary, gzip- or deflate-compressed as the
 *   venue sent it), several connections told apart by `conn`; the file itself
 *   plain, `.zst` or `.gz`.
 */
import { readFileSync } from "node:fs"
import * as zlib from "node:zlib"
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

const emptyRecording = (): Recording => ({ frames: [], sent: [], rest: [] })

/** A binary frame as the venue sent it: gzip (Huobi), zlib or raw deflate (OKX), or plain bytes. */
export const binaryFrameText = (bytes: Buffer): string => {
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return zlib.gunzipSync(bytes).toString("utf8")
  if (bytes[0] === 0x78) {
    try {
      return zlib.inflateSync(bytes).toString("utf8")
    } catch {
      // not zlib after all: try raw deflate below
    }
  }
  try {
    return zlib.inflateRawSync(bytes).toString("utf8")
  } catch {
    return bytes.toString("utf8")
  }
}

interface SessionLine {
  readonly t?: string
  readonly conn?: string
  readonly ts?: number
  readonly url?: string
  readonly addr?: string
  readonly data?: unknown
  readonly b64?: string
}

/** The `sessions/` format: one JSON object per line. */
export const parseSessionLines = (content: string, into: Recording = emptyRecording()): Recording => {
  for (const line of content.split("\n")) {
    if (line.trim().length === 0) continue
    const entry = JSON.parse(line) as SessionLine
    const at = typeof entry.ts === "number" ? entry.ts * 1000 : undefined
    const text = () =>
      entry.b64 !== undefined
        ? binaryFrameText(Buffer.from(entry.b64, "base64"))
        : typeof entry.data === "string" ? entry.data : JSON.stringify(entry.data)
    switch (entry.t) {
      case "recv":
        into.frames.push({ connection: entry.conn ?? "plain", receivedAt: at, text: text() })
        break
      case "send":
        into.sent.push({ connection: entry.conn ?? "plain", receivedAt: at, text: text() })
        break
      case "http":
        into.rest.push({ url: entry.url ?? "", receivedAt: at ?? 0, body: text() })
        break
      default:
        // header and connect lines carry nothing to replay
        break
    }
  }
  return into
}

const isSessionFormat = (content: string) => /^\s*\{\s*"t"\s*:/.test(content.slice(0, 64))

/** Text of a recording file: zstd (Node 24's zlib) or gzip decompressed by their magic bytes. */
export const recordingText = (bytes: Buffer): string => {
  if (bytes.readUInt32LE(0) === 0xfd2fb528) return zlib.zstdDecompressSync(bytes).toString("utf8")
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return zlib.gunzipSync(bytes).toString("utf8")
  return bytes.toString("utf8")
}

/** Parses a recording's text in whichever format it is written. */
export const parseAnyRecording = (content: string, into: Recording = emptyRecording()): Recording =>
  isSessionFormat(content) ? parseSessionLines(content, into) : parseRecording(content, into)

/** Reads recording files (any format, compressed or not) into one recording. */
export const readRecordings = (paths: ReadonlyArray<string>): Recording => {
  const into = emptyRecording()
  for (const path of paths) parseAnyRecording(recordingText(readFileSync(path)), into)
  return into
}
