// fetchFile: download one whole file over HTTP(S), verified while it streams.
// - bodies go to DEST.part, are synced and renamed onto DEST only after size and sha256 check out,
//   so DEST is never a wrong or partial file;
// - a stall timer (no bytes for timeoutMs) and an overall deadline bound every attempt;
// - transient failures (timeouts, refused, resets, 5xx, short bodies) are retried with backoff;
//   an interrupted body is resumed with Range + If-Range when the server allows it, otherwise
//   restarted from byte 0 (the running hash is restarted with it).
import { open, rename, unlink, type FileHandle } from "node:fs/promises";
import { ofetch } from "ofetch";
import { backoffDelay, sleep, type BackoffOptions } from "./backoff.ts";
import { classifyTransportError, FetchError, redactUrl } from "./errors.ts";
import type { FetchProgress } from "./progress.ts";
import { authorize } from "./netrc.ts";
import { describeVia, proxyOf, tlsPeer } from "./proxy.ts";
import { tlsOptions } from "./trust.ts";
import { concatBytes } from "../sys/bytes.ts";

// Reason phrases for servers that send none (HTTP/2): the ones a download meets. (node:http's
// table would cost the boot ~10 ms of loading, more under TCG.)
const REASONS: Record<number, string> = {
  400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
  407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone", 416: "Range Not Satisfiable",
  429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
};

export interface FetchFileOptions {
  /** Write the body here (atomically, via DEST.part). Without it the body is returned as `bytes`. */
  dest?: string;
  /** Keep no body at all (only size and sha256 are computed); ignored when `dest` is set. */
  discard?: boolean;
  /** Expected sha256 (hex). A mismatch fails with kind "hash" and is not retried. */
  sha256?: string;
  /** Expected size in bytes; a server announcing or sending another size fails early. */
  size?: number;
  /** At most this many bytes: a longer body (announced or sent) fails at once, unretried (a
   *  manifest, a signature: PID 1 must not buffer whatever a server sends). */
  maxBytes?: number;
  /** Stall timeout per attempt: fail when no byte (or no response) arrives for this long. Default 30 s. */
  timeoutMs?: number;
  /** Overall deadline for all attempts together, ms. Default none. */
  deadlineMs?: number;
  /** Extra attempts after the first for transient errors. Default 3. */
  retries?: number;
  /** A PEM file with extra CA certificates, trusted in addition to Bun's built-in store. */
  caFile?: string;
  /** Extra request headers. */
  headers?: Record<string, string>;
  onProgress?: (p: FetchProgress) => void;
  /** Told before each retry sleeps (the agent logs it). */
  onRetry?: (err: FetchError, attempt: number, delayMs: number) => void;
  signal?: AbortSignal;
  backoff?: BackoffOptions;
}

export interface FetchFileResult {
  /** DEST, when `dest` was given. */
  path?: string;
  /** The body, when neither `dest` nor `discard` was given. */
  bytes?: Uint8Array;
  size: number;
  /** sha256 of the body, lower-case hex. */
  sha256: string;
  /** Wall-clock milliseconds for the whole download, retries included. */
  ms: number;
  /** The URL that finally answered (after redirects). */
  url: string;
  /** The response's Date header, if any (a clock for a machine whose own is unset). */
  date?: string;
  attempts: number;
}

const PROGRESS_EVERY_MS = 250;

// Why an attempt's controller fired (the abort reason we set ourselves).
const STALL = Symbol("stall");
const DEADLINE = Symbol("deadline");

/** Where received body bytes go; reset() restarts the body from byte 0. */
interface Sink {
  write(chunk: Uint8Array): Promise<void>;
  reset(): Promise<void>;
}

export async function fetchFile(url: string, opts: FetchFileOptions = {}): Promise<FetchFileResult> {
  const t0 = performance.now();
  const shown = redactUrl(url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new FetchError("url", shown, "not a valid URL");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new FetchError("url", shown, `unsupported scheme ${parsed.protocol} (only http: and https:)`);
  }
  const host = parsed.hostname;
  const via = proxyOf(url);
  const through = via ? describeVia(via) : undefined;
  const tlsWith = tlsPeer(url, via);
  const stallMs = opts.timeoutMs ?? 30_000;
  const retries = opts.retries ?? 3;
  const wantSha = opts.sha256?.toLowerCase();
  if (wantSha !== undefined && !/^[0-9a-f]{64}$/.test(wantSha)) {
    throw new FetchError("url", shown, `expected sha256 is not 64 hex digits: ${opts.sha256}`);
  }
  let tls: ReturnType<typeof tlsOptions>;
  try {
    tls = tlsOptions(opts.caFile); // undefined: --ca of the process, or INETBOOT_CA_FILE
  } catch (e) {
    throw new FetchError("io", shown, (e as Error).message);
  }

  // Overall deadline and the caller's signal, merged into one outer signal.
  const outer = new AbortController();
  const onUserAbort = () => outer.abort(opts.signal!.reason);
  if (opts.signal?.aborted) throw new FetchError("aborted", shown, "aborted");
  opts.signal?.addEventListener("abort", onUserAbort, { once: true });
  const deadline = opts.deadlineMs !== undefined ? setTimeout(() => outer.abort(DEADLINE), opts.deadlineMs) : undefined;

  // Body destination.
  const part = opts.dest ? `${opts.dest}.part` : undefined;
  let fh: FileHandle | undefined;
  let chunks: Uint8Array[] = [];
  if (part) {
    try {
      fh = await open(part, "w", 0o644);
    } catch (e) {
      cleanup();
      throw new FetchError("io", shown, `cannot create ${part}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
  }
  // Written at explicit positions: truncate() does not move a file's offset, so after a restart
  // position-less writes would land after a hole of zeros (and the digest, taken on the stream,
  // would still match).
  let at = 0;
  const sink: Sink = fh
    ? {
        write: async (c) => {
          for (let off = 0; off < c.length; ) {
            const { bytesWritten } = await fh!.write(c, off, c.length - off, at);
            off += bytesWritten;
            at += bytesWritten;
          }
        },
        reset: async () => {
          await fh!.truncate(0);
          at = 0;
        },
      }
    : opts.discard
      ? { write: async () => {}, reset: async () => {} }
      : {
          write: async (c) => {
            chunks.push(c);
          },
          reset: async () => {
            chunks = [];
          },
        };

  // Body state that survives between attempts (for resuming).
  let hasher = new Bun.CryptoHasher("sha256");
  let received = 0;
  let validator: string | undefined; // ETag or Last-Modified of the response being received
  let resumable = false;
  let finalUrl = url;
  let serverDate: string | undefined;
  let attempts = 0;
  let lastProgress = -Infinity;

  function cleanup() {
    if (deadline) clearTimeout(deadline);
    opts.signal?.removeEventListener("abort", onUserAbort);
  }
  async function restart() {
    hasher = new Bun.CryptoHasher("sha256");
    received = 0;
    await sink.reset();
  }
  function progress(total: number | undefined, done: boolean) {
    if (!opts.onProgress) return;
    const ms = performance.now() - t0;
    if (!done && ms - lastProgress < PROGRESS_EVERY_MS) return;
    lastProgress = ms;
    opts.onProgress({ url: finalUrl, bytes: received, total, ms, done });
  }

  /** Turns why an attempt's signal fired into the error to report. */
  function abortError(reason: unknown): FetchError {
    if (reason === STALL) {
      return new FetchError("timeout", shown, `timed out: no data for ${fmtSec(stallMs)}`, undefined, true);
    }
    if (reason === DEADLINE) return new FetchError("timeout", shown, `deadline of ${fmtSec(opts.deadlineMs!)} passed`);
    return new FetchError("aborted", shown, "aborted");
  }

  /** One request; resolves when the whole body is in, throws FetchError otherwise. */
  async function attempt(): Promise<number | undefined> {
    const ac = new AbortController();
    const fwd = () => ac.abort(outer.signal.reason);
    if (outer.signal.aborted) throw abortError(outer.signal.reason);
    outer.signal.addEventListener("abort", fwd, { once: true });
    let stall: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      if (stall) clearTimeout(stall);
      stall = setTimeout(() => ac.abort(STALL), stallMs);
    };
    try {
      const headers: Record<string, string> = { "accept-encoding": "identity", ...opts.headers };
      const resuming = received > 0 && resumable;
      if (received > 0 && !resumable) await restart();
      if (resuming) {
        headers.range = `bytes=${received}-`;
        if (validator) headers["if-range"] = validator;
      }
      arm();
      let res: Response;
      try {
        res = await ofetch.raw(authorize(url), {
          method: "GET",
          headers,
          responseType: "stream",
          retry: false,
          ignoreResponseError: true,
          redirect: "follow",
          signal: ac.signal,
          ...(tls ? { tls } : {}),
          ...(via ? { proxy: authorize(via.url) } : {}),
        } as never);
      } catch (e) {
        if (ac.signal.aborted) throw abortError(ac.signal.reason);
        throw classifyTransportError((e as { cause?: unknown }).cause ?? e, shown, host, through, tlsWith);
      }
      finalUrl = res.url || url;
      serverDate = res.headers.get("date") ?? serverDate;

      if (res.status < 200 || res.status > 299) {
        await res.body?.cancel().catch(() => {});
        if (res.status === 416 && resuming) {
          // Our offset is past the current file: it changed under us; start over.
          await restart();
          throw new FetchError("net", shown, "resume refused (HTTP 416); restarting", 416, true);
        }
        const text = res.statusText || REASONS[res.status] || "";
        const transient = res.status >= 500 || res.status === 408 || res.status === 429;
        throw new FetchError("http", shown, `HTTP ${res.status}${text ? ` ${text}` : ""}`, res.status, transient);
      }

      // Where this body starts, and the full size if the server told us.
      let total: number | undefined;
      const len = res.headers.get("content-length");
      const encoded = (res.headers.get("content-encoding") ?? "identity") !== "identity";
      if (res.status === 206 && resuming) {
        const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
        if (!cr || Number(cr[1]) !== received) {
          await res.body?.cancel().catch(() => {});
          await restart();
          throw new FetchError("net", shown, "server resumed at the wrong offset; restarting", 206, true);
        }
        total = cr[3] !== "*" ? Number(cr[3]) : undefined;
      } else {
        if (received > 0) await restart(); // a 200 means the whole body again
        total = len !== null && !encoded ? Number(len) : undefined;
        validator = strongValidator(res.headers);
        resumable = (res.headers.get("accept-ranges") ?? "").toLowerCase() === "bytes" && (!!validator || !!wantSha);
      }
      if (opts.size !== undefined && total !== undefined && total !== opts.size) {
        await res.body?.cancel().catch(() => {});
        throw new FetchError("size", shown, `size mismatch: expected ${opts.size} bytes, server announces ${total}`);
      }
      if (opts.maxBytes !== undefined && total !== undefined && total > opts.maxBytes) {
        await res.body?.cancel().catch(() => {});
        throw new FetchError("size", shown, `too large: ${total} bytes, at most ${opts.maxBytes} expected`);
      }
      const limit = opts.size ?? total;

      const reader = res.body?.getReader();
      if (reader) {
        for (;;) {
          let r: { done: true; value?: undefined } | { done: false; value: Uint8Array };
          try {
            r = await reader.read();
          } catch (e) {
            if (ac.signal.aborted) throw abortError(ac.signal.reason);
            if (total !== undefined) throw shortError(total);
            throw classifyTransportError(e, shown, host, through, tlsWith);
          }
          if (r.done) break;
          arm();
          const chunk = r.value;
          if (limit !== undefined && received + chunk.length > limit) {
            await reader.cancel().catch(() => {});
            throw new FetchError("size", shown, `body longer than ${limit} bytes`);
          }
          if (opts.maxBytes !== undefined && received + chunk.length > opts.maxBytes) {
            await reader.cancel().catch(() => {});
            throw new FetchError("size", shown, `too large: more than the ${opts.maxBytes} bytes expected at most`);
          }
          hasher.update(chunk);
          try {
            await sink.write(chunk);
          } catch (e) {
            throw new FetchError("io", shown, `cannot write ${part}: ${(e as NodeJS.ErrnoException).code ?? e}`);
          }
          received += chunk.length;
          progress(limit, false);
        }
      }
      if (limit !== undefined && received < limit) throw shortError(limit);
      return limit;
    } finally {
      if (stall) clearTimeout(stall);
      outer.signal.removeEventListener("abort", fwd);
    }
  }

  function shortError(total: number): FetchError {
    return new FetchError("short", shown, `short body: got ${received} of ${total} bytes`, undefined, true);
  }

  try {
    let total: number | undefined;
    for (;;) {
      attempts++;
      try {
        total = await attempt();
        break;
      } catch (e) {
        const err = e instanceof FetchError ? e : new FetchError("net", shown, String(e), undefined, true);
        if (!err.transient || attempts > retries) throw err;
        const delay = backoffDelay(attempts, opts.backoff);
        opts.onRetry?.(err, attempts, delay);
        try {
          await sleep(delay, outer.signal);
        } catch {
          throw abortError(outer.signal.reason);
        }
      }
    }

    const sha256 = hasher.digest("hex");
    if (wantSha !== undefined && sha256 !== wantSha) {
      throw new FetchError("hash", shown, `sha256 mismatch: expected ${wantSha}, got ${sha256}`);
    }
    if (fh) {
      try {
        await fh.sync(); // data on disk before the name points at it
        await fh.close();
        fh = undefined;
        await rename(part!, opts.dest!);
      } catch (e) {
        throw new FetchError("io", shown, `cannot save ${opts.dest}: ${(e as NodeJS.ErrnoException).code ?? e}`);
      }
    }
    progress(total ?? received, true);
    const out: FetchFileResult = {
      size: received,
      sha256,
      ms: Math.round(performance.now() - t0),
      url: finalUrl,
      attempts,
    };
    if (serverDate !== undefined) out.date = serverDate;
    if (opts.dest) out.path = opts.dest;
    else if (!opts.discard) out.bytes = concatBytes(chunks, received);
    return out;
  } catch (e) {
    // Never leave a partial or wrong file behind.
    if (fh) await fh.close().catch(() => {});
    if (part) await unlink(part).catch(() => {});
    throw e;
  } finally {
    cleanup();
  }
}

/** A validator usable in If-Range: a strong ETag, else Last-Modified. */
function strongValidator(h: Headers): string | undefined {
  const etag = h.get("etag");
  if (etag && !etag.startsWith("W/")) return etag;
  return h.get("last-modified") ?? undefined;
}

function fmtSec(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}
