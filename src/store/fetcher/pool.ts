// Bounded HTTP client: at most `maxParallel` requests in flight, a per-request timeout covering
// headers *and* body, and strict checks that the body is complete (status, Content-Length,
// Content-Range), since a short or stalled body must become an error the mirror layer can fail
// over from. Requests go through our own keep-alive HTTP/1.1 client (http1.ts: a fraction of
// fetch's per-request cost, TLS included); redirects, requests through a proxy, and large Range
// bodies over plain http go through fetch.
import { Http1Client } from "./http1.ts";
import { describeTransportError, PROXY_CREDENTIALS, redactUrls, tlsFailure } from "../../fetch/errors.ts";
import { tlsOptions } from "../../fetch/trust.ts";
import { describeVia, proxyOf, proxyOption, tlsPeer } from "../../fetch/proxy.ts";
import { authorize, netrcFileFor } from "../../fetch/netrc.ts";
import { concatBytes } from "../../sys/bytes.ts";

export class HttpError extends Error {
  constructor(
    readonly url: string,
    message: string,
    readonly status?: number,
    /** asking again will not help: the server's certificate was refused (a CA file might), or its
     *  name does not exist */
    readonly final = false,
  ) {
    super(`${redactUrls(url)}: ${message}`); // never a password in a message or log
    this.name = "HttpError";
  }
}

/** A fetch() body, failing as soon as it is longer than `max` (a chunk's body has a known bound). */
async function readCapped(res: Response, max: number): Promise<Uint8Array> {
  if (max === Number.POSITIVE_INFINITY) return new Uint8Array(await res.arrayBuffer());
  const tooLong = (n: number) => new Error(`body of ${n} bytes or more, longer than the ${max} expected at most`);
  const cl = Number(res.headers.get("content-length") ?? NaN);
  if (cl > max) {
    await res.body?.cancel().catch(() => {});
    throw tooLong(cl);
  }
  const parts: Uint8Array[] = [];
  let n = 0;
  const reader = res.body!.getReader();
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    n += r.value.length;
    if (n > max) {
      await reader.cancel().catch(() => {});
      throw tooLong(n);
    }
    parts.push(r.value);
  }
  return concatBytes(parts, n);
}

/** Refused for who we are (401, 403, a proxy's 407): asking again the same way will not help. */
export const refusedStatus = (status: number | undefined) => status === 401 || status === 403 || status === 407;

/** A request that failed before any response, in the words fetch's failures get (fetch/errors.ts):
 *  a refused certificate or an unknown host name is final; through a proxy, the proxy is named. */
function transportError(url: string, e: unknown): HttpError {
  const via = proxyOf(url);
  const tls = tlsFailure(e, url, tlsPeer(url, via));
  if (tls) return new HttpError(url, tls, undefined, true);
  const d = describeTransportError(e, new URL(url).hostname, via ? describeVia(via) : undefined);
  // (an error without a known code keeps its own words: "connection closed before the response")
  const why = d.kind === "net" && !via ? ((e as Error).message?.split("\n")[0] ?? String(e)) : d.detail;
  return new HttpError(url, why, d.status, d.kind === "dns" && !d.transient);
}

function statusReason(status: number, url: string): string {
  const via = proxyOf(url);
  if (status === 407 && via) return `HTTP 407: the ${describeVia(via)} wants a user and password (${PROXY_CREDENTIALS})`;
  if (status !== 401) return `HTTP ${status}`;
  // (some proxies, tinyproxy among them, answer wrong proxy credentials with 401, not 407)
  if (via) return `HTTP 401: the server, or the ${describeVia(via)}, refused the request's user and password`;
  const netrc = netrcFileFor(url);
  if (netrc) return `HTTP 401: the server refused the user and password for ${new URL(url).hostname} in ${netrc}`;
  return redactUrls(url) !== url ? "HTTP 401: the server refused the user and password in the URL" : "HTTP 401: the server wants a user and password (put USER:PASSWORD@ before the host in the URL)";
}

export interface PoolOptions {
  maxParallel?: number;
  /** per-request timeout in ms (headers and body) */
  timeoutMs?: number;
  /** use fetch for plain http too (default false: the raw HTTP/1.1 client) */
  fetchOnly?: boolean;
}

/** Range bodies from this size on go through fetch even for plain http: its socket I/O and body
 *  assembly run on Bun's HTTP thread, leaving the event loop to the NBD replies (raw images read
 *  ahead in ranges of up to 1 MiB; nbdcopy reads 256 KiB: fetch measured 1.2-1.5x faster than
 *  http1.ts for those on loopback). Smaller reads are latency-bound, where http1.ts is cheaper. */
const FETCH_MIN_BODY = 256 * 1024;

export class HttpPool {
  readonly maxParallel: number;
  readonly timeoutMs: number;
  private active = 0;
  private waiters: (() => void)[] = [];
  /** requests issued (for tests and stats) */
  requests = 0;
  /** keep-alive client for plain http (null: fetch only) */
  readonly http1: Http1Client | null;

  constructor(opts: PoolOptions = {}) {
    this.maxParallel = opts.maxParallel ?? 8;
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.http1 = opts.fetchOnly ? null : new Http1Client({ maxIdlePerOrigin: Math.max(8, this.maxParallel) });
  }

  private async acquire(): Promise<void> {
    if (this.active < this.maxParallel) {
      this.active++;
      return;
    }
    await new Promise<void>((r) => this.waiters.push(r));
  }

  private release(): void {
    const next = this.waiters.shift();
    if (next) next(); // hand the slot over directly
    else this.active--;
  }

  /** One request through the raw HTTP/1.1 client (plain http) or fetch (https, redirects).
   *  `expect` is the status whose body is wanted; other bodies are skipped. */
  private async send(
    url: string,
    headers: Record<string, string>,
    sig: AbortSignal,
    expect: number,
    large = false,
    maxBody = Number.POSITIVE_INFINITY,
  ): Promise<{ status: number; header(name: string): string | null; body: Uint8Array }> {
    // (over TLS the large bodies come through http1.ts faster too: fetch's HTTP thread then both
    // decrypts and copies every body, and becomes the bottleneck; raw image over https 0.66 s
    // instead of 0.79)
    const proxy = proxyOption(url);
    const target = authorize(url); // (the password stays out of `url`, which messages show)
    if (this.http1 && (!large || url.startsWith("https:")) && Http1Client.handles(url) && !proxy) {
      const r = await this.http1.request(target, { headers, signal: sig, wantBody: (st) => st === expect, maxBody });
      // Redirects are rare for chunk GETs: let fetch follow them.
      if (!(r.status >= 300 && r.status < 400 && r.headers.has("location")))
        return { status: r.status, header: (n) => r.headers.get(n) ?? null, body: r.body };
    }
    const res = await fetch(target, { headers, signal: sig, redirect: "follow", tls: tlsOptions(), proxy });
    if (res.status !== expect) {
      await res.body?.cancel().catch(() => {});
      return { status: res.status, header: (n) => res.headers.get(n), body: new Uint8Array(0) };
    }
    return { status: res.status, header: (n) => res.headers.get(n), body: await readCapped(res, maxBody) };
  }

  /** GET a whole resource, or bytes [start, end) with a Range request. 404 → HttpError status 404.
   *  The body may be a view behind the response head, in a buffer that holds nothing else: the
   *  caller owns it (and may detach it). A body longer than `maxBody` fails before it is all read. */
  async get(url: string, range?: { start: number; end: number; total?: number }, signal?: AbortSignal, maxBody?: number): Promise<Uint8Array> {
    await this.acquire();
    try {
      const timeout = AbortSignal.timeout(this.timeoutMs);
      const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
      // identity: a transparently decompressed body would not match Content-Length.
      const headers: Record<string, string> = { "accept-encoding": "identity" };
      if (range) headers.range = `bytes=${range.start}-${range.end - 1}`;
      this.requests++;
      let res: Awaited<ReturnType<HttpPool["send"]>>;
      try {
        res = await this.send(url, headers, sig, range ? 206 : 200, !!range && range.end - range.start >= FETCH_MIN_BODY, maxBody);
      } catch (e) {
        if (timeout.aborted) throw new HttpError(url, `timed out after ${this.timeoutMs} ms`);
        if (signal?.aborted) throw new HttpError(url, "aborted");
        throw transportError(url, e);
      }
      if (res.status === 404) throw new HttpError(url, "404 not found", 404);
      if (range ? res.status !== 206 : res.status !== 200) {
        const why = range && res.status === 200 ? "server ignored the Range header" : statusReason(res.status, url);
        throw new HttpError(url, why, res.status);
      }
      const body = res.body;
      // (with Transfer-Encoding the Content-Length is not the body's: chunked framing wins)
      const cl = res.header("transfer-encoding") === null ? res.header("content-length") : null;
      if (cl !== null && Number(cl) !== body.length)
        throw new HttpError(url, `short body: ${body.length} of ${cl} bytes`);
      if (range) {
        const want = range.end - range.start;
        const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.header("content-range") ?? "");
        if (!cr || Number(cr[1]) !== range.start || Number(cr[2]) !== range.end - 1)
          throw new HttpError(url, `unexpected Content-Range "${res.header("content-range")}"`);
        // a mirror holding another build of the image must not be read as this one
        if (range.total !== undefined && cr[3] !== "*" && Number(cr[3]) !== range.total)
          throw new HttpError(url, `the image here is ${cr[3]} bytes, not ${range.total} (another version of it?)`);
        if (body.length !== want) throw new HttpError(url, `short body: ${body.length} of ${want} bytes`);
      }
      return body;
    } finally {
      this.release();
    }
  }

  /**
   * A GET whose body the caller reads as it streams in (fetch; not counted in maxParallel: one long
   * transfer beside the chunk requests). The head must arrive within the pool's timeout; the body
   * is the caller's to time (reader.cancel()). 404 → HttpError status 404.
   */
  async stream(url: string): Promise<ReadableStreamDefaultReader<Uint8Array>> {
    const head = AbortSignal.timeout(this.timeoutMs);
    const ctl = new AbortController();
    const onHead = () => ctl.abort();
    head.addEventListener("abort", onHead);
    this.requests++;
    let res: Response;
    try {
      res = await fetch(authorize(url), { headers: { "accept-encoding": "identity" }, signal: ctl.signal, redirect: "follow", tls: tlsOptions(), proxy: proxyOption(url) });
    } catch (e) {
      if (head.aborted) throw new HttpError(url, `timed out after ${this.timeoutMs} ms`);
      throw transportError(url, e);
    } finally {
      head.removeEventListener("abort", onHead);
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      throw new HttpError(url, res.status === 404 ? "404 not found" : `HTTP ${res.status}`, res.status);
    }
    if (!res.body) throw new HttpError(url, "no body");
    return res.body.getReader() as ReadableStreamDefaultReader<Uint8Array>;
  }

  /** Size of a resource: a 1-byte Range GET's Content-Range total, else a 200's Content-Length. */
  async size(url: string, signal?: AbortSignal): Promise<{ size: number; ranges: boolean }> {
    await this.acquire();
    try {
      const timeout = AbortSignal.timeout(this.timeoutMs);
      const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
      this.requests++;
      let res: Awaited<ReturnType<HttpPool["send"]>>;
      try {
        res = await this.send(url, { range: "bytes=0-0", "accept-encoding": "identity" }, sig, 206);
      } catch (e) {
        if (timeout.aborted) throw new HttpError(url, `timed out after ${this.timeoutMs} ms`);
        throw transportError(url, e);
      }
      if (res.status === 206) {
        const m = /\/(\d+)$/.exec(res.header("content-range") ?? "");
        if (!m) throw new HttpError(url, "Range reply without a total size");
        return { size: Number(m[1]), ranges: true };
      }
      if (res.status === 200) return { size: Number(res.header("content-length") ?? NaN), ranges: false };
      throw new HttpError(url, `HTTP ${res.status}`, res.status);
    } finally {
      this.release();
    }
  }

  /** Drops idle keep-alive connections. */
  close(): void {
    this.http1?.close();
  }
}
