/**
 * PostgreSQL's wire protocol on a loopback port, in front of PGlite.
 *
 * PGlite is one backend with one session, and every pool (the writer's, the
 * API's, the health probe's) connects to it. A client's exchange spans several
 * protocol messages (Parse, Bind, Execute, Sync), and a transaction spans
 * several exchanges; the session holds the unnamed portal and the transaction
 * in between. So one connection at a time owns the session, from its first
 * message until PGlite answers ReadyForQuery with status idle: another
 * connection's Bind can never land between this one's Parse and Execute, nor
 * its statements inside this one's transaction.
 *
 * This replaces @electric-sql/pglite-socket's server, which queues each message
 * on its own: under concurrent pools the writer's batch failed with
 * `portal "" does not exist` and the API got another query's rows
 * (test/embedded-server.test.ts shows both). Each connection is a fiber of
 * Effect's socket server; ownership is a one-permit Semaphore.
 */
import type { PGlite } from "@electric-sql/pglite"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import { Effect, Semaphore } from "effect"
import type { Socket } from "effect/socket"

const SSL_REQUEST = 80877103
const GSSENC_REQUEST = 80877104
const CANCEL_REQUEST = 80877102
const PROTOCOL_3 = 196608
const TERMINATE = 0x58 // 'X'
const READY_FOR_QUERY = 0x5a // 'Z'
const IDLE = 0x49 // 'I'
const SYNC = new Uint8Array([0x53, 0, 0, 0, 4])

/** The status of the last ReadyForQuery in an answer, or undefined when the answer ends without one. */
export const lastReadyStatus = (answer: Uint8Array): number | undefined => {
  const view = new DataView(answer.buffer, answer.byteOffset, answer.byteLength)
  let offset = 0
  let status: number | undefined
  while (offset + 5 <= answer.length) {
    const type = answer[offset]
    const length = view.getInt32(offset + 1)
    if (offset + 1 + length > answer.length) break
    status = type === READY_FOR_QUERY ? answer[offset + 5] : undefined
    offset += 1 + length
  }
  return status
}

const encoder = new TextEncoder()
const asBytes = (chunk: Uint8Array | string): Uint8Array => typeof chunk === "string" ? encoder.encode(chunk) : chunk

const concat = (chunks: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (chunks.length === 1) return chunks[0]!
  let size = 0
  for (const chunk of chunks) size += chunk.length
  const out = new Uint8Array(size)
  let offset = 0
  for (const chunk of chunks) {
    out.set(chunk, offset)
    offset += chunk.length
  }
  return out
}

/** Serves `db` on 127.0.0.1 (port 0 picks one) for as long as the scope lives. */
export const serveEmbedded = (db: PGlite, options: { readonly port?: number } = {}) =>
  Effect.gen(function*() {
    const session = yield* Semaphore.make(1)
    const server = yield* NodeSocketServer.make({ host: "127.0.0.1", port: options.port ?? 0 })
    const run = (message: Uint8Array) =>
      Effect.promise(async () => {
        const answer: Array<Uint8Array> = []
        await db.runExclusive(() => db.execProtocolRawStream(message, { onRawData: (data) => answer.push(data.slice()) }))
        return concat(answer)
      })

    const connection = (socket: Socket.Socket) =>
      Effect.gen(function*() {
        const reader = yield* socket.reader
        const writer = yield* socket.writer
        let pending: Uint8Array = new Uint8Array(0)
        let terminated = false

        /** Reads until at least `size` bytes are pending, joining them once (a large insert spans many reads). */
        const fill = (size: number) =>
          Effect.gen(function*() {
            const parts = [pending]
            let have = pending.length
            while (have < size) {
              for (const chunk of yield* reader.pull) {
                const part = asBytes(chunk)
                parts.push(part)
                have += part.length
              }
            }
            pending = concat(parts)
          })

        /** Answers the requests before startup here, then returns the startup message (undefined for a cancel request). */
        const startup = Effect.gen(function*() {
          while (true) {
            yield* fill(8)
            const view = new DataView(pending.buffer, pending.byteOffset, pending.byteLength)
            const length = view.getInt32(0)
            yield* fill(length)
            const code = view.getInt32(4)
            const message = pending.slice(0, length)
            pending = pending.slice(length)
            if (code === PROTOCOL_3) return message
            if (code === SSL_REQUEST || code === GSSENC_REQUEST) yield* writer.write(new Uint8Array([0x4e])) // 'N': no encryption on loopback
            else if (code === CANCEL_REQUEST) return undefined // PGlite has no backend to signal
            else return yield* Effect.die(new Error(`embedded database: unknown startup code ${code}`))
          }
        })

        /** Every whole typed message that has arrived, waiting for at least one; empty once the client said Terminate. */
        const nextMessages = Effect.gen(function*() {
          while (true) {
            const view = new DataView(pending.buffer, pending.byteOffset, pending.byteLength)
            let offset = 0
            while (offset + 5 <= pending.length) {
              if (pending[offset] === TERMINATE) {
                terminated = true
                break
              }
              const length = view.getInt32(offset + 1)
              if (offset + 1 + length > pending.length) break
              offset += 1 + length
            }
            if (offset > 0 || terminated) {
              const messages = pending.slice(0, offset)
              pending = pending.slice(offset)
              return messages
            }
            yield* fill(pending.length < 5 ? 5 : 1 + view.getInt32(1))
          }
        })

        /**
         * Owns the session from `first` until PGlite reports it idle again,
         * reading on through this connection's later messages meanwhile. Left
         * early (the client hung up mid-transaction), it rolls back.
         */
        const own = (first: Uint8Array) => {
          let idle = false
          return Effect.gen(function*() {
            let messages = first
            while (messages.length > 0) {
              const answer = yield* run(messages)
              if (answer.length > 0) yield* writer.write(answer)
              if (lastReadyStatus(answer) === IDLE) {
                idle = true
                return
              }
              messages = yield* nextMessages
            }
          }).pipe(
            // Left mid-exchange: a Sync first ends whatever extended-protocol state it left (after an error the
            // session ignores everything until one), then its transaction is rolled back. Not under runExclusive:
            // PGlite's exec takes that lock itself.
            Effect.onExit(() => idle ? Effect.void : Effect.promise(async () => {
              await db.runExclusive(() => db.execProtocolRawStream(SYNC, { onRawData: () => undefined }))
              if (db.isInTransaction()) await db.exec("ROLLBACK")
            })),
            session.withPermit
          )
        }

        const hello = yield* startup
        if (hello === undefined) return
        yield* own(hello)
        while (true) {
          const messages = yield* nextMessages
          if (messages.length > 0) yield* own(messages)
          if (terminated) return
        }
      }).pipe(
        Effect.scoped,
        // A client that hangs up ends its fiber; nothing to report.
        Effect.catchTag("SocketError", () => Effect.void)
      )

    yield* server.run(connection).pipe(Effect.forkScoped)
    const address = server.address
    if (address._tag === "UnixPathAddress") return yield* Effect.die(new Error("embedded database: expected a TCP address"))
    return { port: address.port }
  })
