/**
 * Fault switches shared by the fake exchanges: the next message of a kind can
 * be lost, sent twice, swapped with the one after it, or sent with a field
 * renamed; everything can be held back (a silent but open socket); REST can
 * answer with an error status or slowly.
 */
type Message = Record<string, any>

export class FaultPlan {
  readonly lost: Array<Message> = []
  paused = false
  restDelayMs = 0
  private readonly losses: Array<{ kind: string; count: number }> = []
  private readonly duplicates: Array<string> = []
  /** Planned swaps, and the message each swap holds back, per routed kind. */
  private readonly reorders: Array<string> = []
  private readonly held = new Map<string, Message>()
  private readonly renames: Array<{ readonly kind: string; readonly from: string; readonly to: string }> = []
  private readonly failures: Array<{ readonly path: string; readonly status: number; readonly retryAfter?: number }> = []
  faultsInjected = 0

  /** `kind` is a message kind (l2update), or a kind on one stream (l2update:BTC-USD). */
  loseNext(kind: string, count = 1): void {
    this.losses.push({ kind, count })
  }

  duplicateNext(kind: string): void {
    this.duplicates.push(kind)
  }

  /** The next two messages of `kind` on the same stream arrive swapped. */
  reorderNext(kind: string): void {
    this.reorders.push(kind)
  }

  /** The next message of `kind` has its field `from` (at any depth) called `to`. */
  renameNext(kind: string, from: string, to: string): void {
    this.renames.push({ kind, from, to })
  }

  failNext(path: string, status: number, retryAfter?: number): void {
    this.failures.push(retryAfter === undefined ? { path, status } : { path, status, retryAfter })
  }

  /** The status a REST call to `path` must get instead of its answer, if any. */
  takeFailure(path: string): { readonly status: number; readonly retryAfter?: number } | undefined {
    const index = this.failures.findIndex((f) => path.endsWith(f.path))
    return index < 0 ? undefined : this.failures.splice(index, 1)[0]
  }

  /**
   * Sends `message` through the planned faults: `deliver` zero, one or two
   * times, now or after the next one; `onLost` when it is lost. `routed` is
   * "kind:stream" (l2update:BTC-USD); a fault planned for a kind hits the next
   * message of that kind on any stream, and a swap pairs two of the same stream.
   */
  route(routed: string, message: Message, deliver: (message: Message) => void, onLost?: (message: Message) => void): void {
    const kind = routed.split(":")[0]!
    const hits = (planned: string) => planned === routed || planned === kind
    if (this.paused) {
      this.lost.push(message)
      onLost?.(message)
      return
    }
    const loss = this.losses.find((l) => hits(l.kind) && l.count > 0)
    if (loss !== undefined) {
      loss.count--
      this.lost.push(message)
      onLost?.(message)
      return
    }
    const rename = this.renames.findIndex((r) => hits(r.kind))
    if (rename >= 0) {
      const { from, to } = this.renames.splice(rename, 1)[0]!
      deliver(renameField(message, from, to))
      return
    }
    const duplicate = this.duplicates.findIndex(hits)
    if (duplicate >= 0) {
      this.duplicates.splice(duplicate, 1)
      deliver(message)
      deliver(message)
      return
    }
    const held = this.held.get(routed)
    if (held !== undefined) {
      this.held.delete(routed)
      deliver(message)
      deliver(held)
      return
    }
    const reorder = this.reorders.findIndex(hits)
    if (reorder >= 0) {
      this.reorders.splice(reorder, 1)
      this.held.set(routed, message)
      return
    }
    deliver(message)
  }
}

const renameField = (value: unknown, from: string, to: string): any => {
  if (Array.isArray(value)) return value.map((item) => renameField(item, from, to))
  if (typeof value !== "object" || value === null) return value
  const out: Record<string, unknown> = {}
  for (const [key, inner] of Object.entries(value)) out[key === from ? to : key] = renameField(inner, from, to)
  return out
}
