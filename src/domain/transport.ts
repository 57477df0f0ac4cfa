/**
 * What actually went wrong under a transport failure, in words a user behind a
 * proxy or a firewall can act on: the system error code (ENOTFOUND,
 * ECONNREFUSED, ECONNRESET, ETIMEDOUT, a TLS certificate code, undici's
 * UND_ERR_CONNECT_TIMEOUT) and message, found by walking the `cause` chain
 * that HTTP clients and sockets wrap around it.
 */
const explanations: Record<string, string> = {
  ENOTFOUND: "host name not found (DNS)",
  EAI_AGAIN: "DNS lookup timed out",
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset by peer",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  UND_ERR_CONNECT_TIMEOUT: "connection timed out",
  UND_ERR_HEADERS_TIMEOUT: "no response headers in time",
  UND_ERR_SOCKET: "socket closed by the other side",
  CERT_HAS_EXPIRED: "TLS: certificate expired",
  DEPTH_ZERO_SELF_SIGNED_CERT: "TLS: self-signed certificate (a proxy intercepting TLS?)",
  SELF_SIGNED_CERT_IN_CHAIN: "TLS: self-signed certificate in chain (a proxy intercepting TLS?)",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "TLS: certificate not verifiable",
  ERR_TLS_CERT_ALTNAME_INVALID: "TLS: certificate does not match the host name"
}

export const transportCause = (error: unknown): string | undefined => {
  let current: unknown = error
  const seen = new Set<unknown>()
  let deepestMessage: string | undefined
  for (let depth = 0; depth < 8 && typeof current === "object" && current !== null && !seen.has(current); depth++) {
    seen.add(current)
    const { code, message } = current as { code?: unknown; message?: unknown }
    if (typeof code === "string" && code.length > 0) {
      const explained = explanations[code] ?? (code.startsWith("ERR_TLS") || code.includes("CERT") ? "TLS failure" : undefined)
      const text = typeof message === "string" && message.length > 0 ? message : code
      return explained === undefined ? `${code}: ${text}` : `${code} (${explained}): ${text}`
    }
    if (typeof message === "string" && message.length > 0) deepestMessage = message
    // Effect's HttpClientError keeps its reason in `reason`; a WebSocket ErrorEvent its Error in `error`;
    // Node's AggregateError (happy eyeballs) its tries in `errors`.
    const next = current as { cause?: unknown; reason?: unknown; error?: unknown; errors?: unknown }
    current = next.cause ?? next.error ?? (typeof next.reason === "object" ? next.reason : undefined) ??
      (Array.isArray(next.errors) ? next.errors[0] : undefined)
  }
  return deepestMessage
}
