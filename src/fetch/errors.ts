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

/** Strips credentials (user:pass@) from every URL in a text (a message, a command line), whatever
 *  its scheme: a password in an ftp:// or nbd:// URL the agent refuses is still a password. The
 *  userinfo runs to the last @ before the host's end (a raw @ in a password), never past a quote,
 *  so a URL inside JSON keeps the JSON intact. */
export function redactUrls(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#"'<>]*@/gi, "$1");
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

/** Where a proxy's user and password go (the 407 messages of both clients). */
export const PROXY_CREDENTIALS = "USER:PASSWORD@ before its host in the variable, or a netrc entry for it";

// Bun's fetch reports transport failures as TypeErrors carrying a libuv/OpenSSL-style `code`.
const TLS_CODES = /CERT|SELF_SIGNED|TLS|SSL|EPROTO|UNABLE_TO|HOSTNAME|ALTNAME|ERR_TLS|UNABLE_TO_VERIFY/i;

/** What went wrong before any response, in words: `host` is the server, `through` the proxy when
 *  there is one (then the proxy, not the server, is what could not be resolved or reached), and
 *  `tlsWith` whom a TLS failure concerns (the server, unless the proxy is https://: tlsPeer()). */
export function describeTransportError(err: unknown, host: string, through?: string, tlsWith = host): { kind: FetchErrorKind; detail: string; transient: boolean; status?: number } {
  const e = err as { code?: string; message?: string; name?: string } | undefined;
  const code = String(e?.code ?? "");
  const msg = String(e?.message ?? err);
  const peer = through ?? host;
  if (code === "ENOTFOUND" || code === "EAI_NONAME" || code === "EAI_NODATA") return { kind: "dns", detail: `DNS lookup failed for ${peer}`, transient: false };
  // A temporary resolver failure (network just came up): worth another try.
  if (code === "EAI_AGAIN" || code === "DNSException" || /getaddrinfo/i.test(msg))
    return { kind: "dns", detail: `DNS lookup failed for ${peer} (${code || "temporary"})`, transient: true };
  if (code === "ECONNREFUSED") return { kind: "refused", detail: `connection refused by ${peer}`, transient: true };
  if (TLS_CODES.test(code)) return { kind: "tls", detail: `TLS failure with ${tlsWith}: ${tlsReason(code, msg)}`, transient: false };
  if (code === "ETIMEDOUT") return { kind: "timeout", detail: `connection to ${peer} timed out`, transient: true };
  // an https:// request's CONNECT answered with an error status (Bun: "Proxy refused to open a tunnel: 407 …")
  const tunnel = /refused to open a tunnel: (\d{3})(.*)/i.exec(msg);
  if (tunnel) {
    const hint = tunnel[1] === "407" ? ` (it wants a user and password: ${PROXY_CREDENTIALS})` : "";
    return { kind: "http", detail: `${peer} refused to open a tunnel: ${tunnel[1]}${tunnel[2]!.split("\n")[0]}${hint}`, transient: false, status: Number(tunnel[1]) };
  }
  return { kind: "net", detail: `network error talking to ${peer}: ${code || msg.split("\n")[0]}`, transient: true };
}

/** Maps an error thrown by fetch() (before any body byte) to a FetchError. */
export function classifyTransportError(err: unknown, url: string, host: string, through?: string, tlsWith?: string): FetchError {
  const d = describeTransportError(err, host, through, tlsWith);
  return new FetchError(d.kind, url, d.detail, d.status, d.transient);
}

/** "TLS failure with HOST: why" when fetch() failed on TLS, else null; `tlsWith` as in
 *  describeTransportError (default: the URL's host). */
export function tlsFailure(err: unknown, url: string, tlsWith?: string): string | null {
  const e = err as { code?: string; message?: string } | undefined;
  const code = String(e?.code ?? "");
  if (!TLS_CODES.test(code)) return null;
  let host = url;
  try {
    host = new URL(url).hostname;
  } catch {}
  return `TLS failure with ${tlsWith ?? host}: ${tlsReason(code, String(e?.message ?? err))}`;
}

// A private CA is the usual cause: say how to trust one.
const PASS_CA = "pass its CA with --ca FILE; a boot trusts the one built in with inetboot initramfs --ca";

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
