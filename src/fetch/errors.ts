// FetchError: one line naming the URL and what went wrong, plus a machine-readable `kind` so callers
// (the agent's mirror fail-over, the CLI, tests) can react without parsing messages.

export type FetchErrorKind =
  | "dns" // name did not resolve
  | "refused" // TCP connection refused
  | "net" // other transport failure before the response (reset, unreachable)
  | "timeout" // no bytes for timeoutMs, or the overall deadline passed
  | "http" // non-2xx status
  | "tls" // certificate or handshake failure
  | "short" // body ended before Content-Length / the expected size
  | "size" // body longer than expected, or Content-Length disagrees with the expected size
  | "hash" // sha256 mismatch
  | "io" // local write/rename failed
  | "aborted" // the caller's signal fired
  | "url"; // malformed or unsupported URL

export class FetchError extends Error {
  constructor(
    readonly kind: FetchErrorKind,
    readonly url: string,
    detail: string,
    /** HTTP status for kind "http". */
    readonly status?: number,
    /** true when another attempt may succeed (the retry loop reads this). */
    readonly transient = false,
  ) {
    super(`fetch ${url}: ${detail}`);
    this.name = "FetchError";
  }
}

/** Strips credentials (user:pass@) from every http(s) URL in a text (a message, a command line). */
export function redactUrls(text: string): string {
  return text.replace(/\b(https?:\/\/)[^\s/?#@]*@/gi, "$1");
}

/** Strips credentials (user:pass@) from a URL before it appears in a message or log. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = "";
      u.password = "";
    }
    return u.toString();
  } catch {
    return url;
  }
}

// Bun's fetch reports transport failures as TypeErrors carrying a libuv/OpenSSL-style `code`.
const TLS_CODES = /CERT|SELF_SIGNED|TLS|SSL|EPROTO|UNABLE_TO|HOSTNAME|ALTNAME|ERR_TLS|UNABLE_TO_VERIFY/i;

/** Maps an error thrown by fetch() (before any body byte) to a FetchError. */
export function classifyTransportError(err: unknown, url: string, host: string): FetchError {
  const e = err as { code?: string; message?: string; name?: string } | undefined;
  const code = String(e?.code ?? "");
  const msg = String(e?.message ?? err);
  if (code === "ENOTFOUND" || code === "EAI_NONAME" || code === "EAI_NODATA") {
    return new FetchError("dns", url, `DNS lookup failed for ${host}`);
  }
  if (code === "EAI_AGAIN" || code === "DNSException" || /getaddrinfo/i.test(msg)) {
    // A temporary resolver failure (network just came up): worth another try.
    return new FetchError("dns", url, `DNS lookup failed for ${host} (${code || "temporary"})`, undefined, true);
  }
  if (code === "ECONNREFUSED") return new FetchError("refused", url, `connection refused by ${host}`, undefined, true);
  if (TLS_CODES.test(code)) return new FetchError("tls", url, `TLS failure with ${host}: ${tlsReason(code, msg)}`);
  if (code === "ETIMEDOUT") return new FetchError("timeout", url, `connection to ${host} timed out`, undefined, true);
  const why = code ? `${code}` : msg.split("\n")[0];
  return new FetchError("net", url, `network error talking to ${host}: ${why}`, undefined, true);
}

/** "TLS failure with HOST: why" when fetch() failed on TLS, else null. */
export function tlsFailure(err: unknown, url: string): string | null {
  const e = err as { code?: string; message?: string } | undefined;
  const code = String(e?.code ?? "");
  if (!TLS_CODES.test(code)) return null;
  let host = url;
  try {
    host = new URL(url).hostname;
  } catch {}
  return `TLS failure with ${host}: ${tlsReason(code, String(e?.message ?? err))}`;
}

// A private CA is the usual cause: say how to trust one.
const PASS_CA = "pass its CA with --ca FILE; a boot trusts /etc/inetboot/ca.pem in the initramfs";

function tlsReason(code: string, msg: string): string {
  if (code === "DEPTH_ZERO_SELF_SIGNED_CERT" || code === "SELF_SIGNED_CERT_IN_CHAIN") {
    return `self-signed certificate not trusted (${PASS_CA})`;
  }
  if (code === "UNABLE_TO_GET_ISSUER_CERT_LOCALLY" || code === "UNABLE_TO_VERIFY_LEAF_SIGNATURE") {
    return `certificate issuer not trusted (${PASS_CA})`;
  }
  if (code === "CERT_HAS_EXPIRED") return "certificate has expired";
  if (/HOSTNAME|ALTNAME/.test(code)) return "certificate does not match the host name";
  if (code === "EPROTO") return "handshake failed (does the server speak TLS on this port?)";
  return `${code}: ${msg.split("\n")[0]}`;
}
